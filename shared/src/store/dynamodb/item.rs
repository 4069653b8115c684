//! Attribute values to and from the record types' fields.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn get_u64(item: &Item, key: &str) -> Option<u64> {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// `sessions_valid_after` is stored as epoch seconds with millisecond precision
/// ("1763800000.123"), so a login in the same second as a "log out everywhere" survives.
pub(super) fn ms_to_seconds_attr(ms: u64) -> AttributeValue {
    AttributeValue::N(format!("{}.{:03}", ms / 1000, ms % 1000))
}

pub(super) fn seconds_attr_to_ms(item: &Item, key: &str) -> Option<u64> {
    let raw = item.get(key)?.as_n().ok()?;
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let frac_ms: u64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    Some(whole.parse::<u64>().ok()? * 1000 + frac_ms)
}

pub(super) fn get_roles(item: &Item) -> Vec<String> {
    let mut roles = item.get("roles").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
    roles.sort();
    roles
}

pub(super) fn is_disabled(item: &Item) -> bool {
    is_true(item, "disabled")
}

/// A boolean attribute that is there and true.
pub(super) fn is_true(item: &Item, key: &str) -> bool {
    item.get(key).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false)
}

/// A string set, or `None` for the empty set (DynamoDB stores no empty sets).
pub(super) fn string_set(values: &[String]) -> Option<AttributeValue> {
    (!values.is_empty()).then(|| AttributeValue::Ss(values.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_after_keeps_milliseconds_through_the_number_format() {
        for ms in [0u64, 1, 999, 1000, 1_763_800_000_123, 1_763_800_000_100, 1_763_800_000_000] {
            let item = HashMap::from([("t".to_string(), ms_to_seconds_attr(ms))]);
            assert_eq!(seconds_attr_to_ms(&item, "t"), Some(ms), "{ms}");
        }
        // DynamoDB normalizes numbers ("…0.100" comes back as "…0.1").
        let item = HashMap::from([("t".to_string(), AttributeValue::N("1763800000.1".into()))]);
        assert_eq!(seconds_attr_to_ms(&item, "t"), Some(1_763_800_000_100));
        let item = HashMap::from([("t".to_string(), AttributeValue::N("1763800000".into()))]);
        assert_eq!(seconds_attr_to_ms(&item, "t"), Some(1_763_800_000_000));
    }
}
