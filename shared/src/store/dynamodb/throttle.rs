//! The throttle aggregate on the users table: the failed-login counters, keyed
//! `login#<username>` and `login#<username>#<client>`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::errors::{build_err, classify, condition_held, failed_condition};
use super::item::{Item, get_s, get_u64, n, s};
use super::users::user_from_item;
use super::{DynamoStore, throttle_key};
use crate::store::{FailedLogins, LoginState, NameAttempt, StoreError, Swapped, ThrottleKey, ThrottleStore};

/// Counting a failure races only with other counts and with a stale record's reset.
const COUNT_RETRIES: usize = 3;

fn failures_from_item(item: &Item) -> FailedLogins {
    FailedLogins {
        count: get_u64(item, "failures").unwrap_or(0).try_into().unwrap_or(u32::MAX),
        locked_until_ms: get_u64(item, "locked_until_ms"),
        expires_at: get_u64(item, "expires_at").unwrap_or(0),
        version: get_s(item, "write_id").unwrap_or_default(),
    }
}

/// The condition under which `write_failures` replaces a failed-login record.
enum OnlyIf<'a> {
    Absent,
    /// The record is the one written by the write of this id.
    Version(&'a str),
    /// No record, or one expired at this instant (TTL has not deleted it yet).
    AbsentOrExpired {
        now_ms: u64,
    },
}

impl DynamoStore {
    /// Stores a failed-login record whole (with an update: login may only update and
    /// delete its own records) if `only_if` holds: `None` when written, else the item as
    /// it is (`Some(None)`: no item).
    async fn write_failures(
        &self,
        key: &str,
        record: &FailedLogins,
        only_if: OnlyIf<'_>,
    ) -> Result<Option<Option<Item>>, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(key))
            .expression_attribute_names("#f", "failures")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_names("#w", "write_id")
            .expression_attribute_names("#lock", "locked_until_ms")
            .expression_attribute_values(":f", n(record.count))
            .expression_attribute_values(":exp", n(record.expires_at))
            .expression_attribute_values(":w", s(&record.version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match record.locked_until_ms {
            Some(until) => update
                .update_expression("SET #f = :f, #exp = :exp, #w = :w, #lock = :lock")
                .expression_attribute_values(":lock", n(until)),
            None => update.update_expression("SET #f = :f, #exp = :exp, #w = :w REMOVE #lock"),
        };
        update = match only_if {
            OnlyIf::Absent => update.condition_expression("attribute_not_exists(username)"),
            OnlyIf::Version(version) => {
                update.condition_expression("#w = :seen").expression_attribute_values(":seen", s(version))
            }
            OnlyIf::AbsentOrExpired { now_ms } => update
                .condition_expression("attribute_not_exists(username) OR #exp <= :now")
                .expression_attribute_values(":now", n(now_ms / 1000)),
        };
        match update.send().await {
            Ok(_) => Ok(None),
            Err(e) => failed_condition(&e).map(Some).ok_or_else(|| classify(e)),
        }
    }
}

#[async_trait]
impl ThrottleStore for DynamoStore {
    async fn login_state(&self, username: &str, client: &str) -> Result<LoginState, StoreError> {
        let client_key = throttle_key(&ThrottleKey::Client { username: username.into(), client: client.into() });
        let name_key = throttle_key(&ThrottleKey::Name { username: username.into() });
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for key in [username, &client_key, &name_key] {
            keys = keys.keys(HashMap::from([("username".to_string(), s(key))]));
        }
        let found =
            self.batch_get(HashMap::from([(self.users_table.clone(), keys.build().map_err(build_err)?)])).await?;
        let mut state = LoginState::default();
        for item in found.get(&self.users_table).into_iter().flatten() {
            match get_s(item, "username") {
                Some(key) if key == client_key => state.client_failures = Some(failures_from_item(item)),
                Some(key) if key == name_key => state.name_failures = Some(failures_from_item(item)),
                Some(key) if key == username => state.user = Some(user_from_item(item)?),
                _ => {}
            }
        }
        Ok(state)
    }

    async fn swap_login_failures(
        &self,
        key: &ThrottleKey,
        seen: Option<&str>,
        next: &FailedLogins,
    ) -> Result<Swapped, StoreError> {
        let only_if = match seen {
            Some(version) => OnlyIf::Version(version),
            None => OnlyIf::Absent,
        };
        Ok(match self.write_failures(&throttle_key(key), next, only_if).await? {
            None => Swapped::Done,
            Some(Some(item)) if get_s(&item, "write_id").as_deref() == Some(&next.version) => Swapped::Done,
            Some(item) => Swapped::Changed(item.as_ref().map(failures_from_item)),
        })
    }

    async fn reserve_name_attempt(
        &self,
        key: &ThrottleKey,
        fresh: &FailedLogins,
        max: u32,
        now_ms: u64,
        attempt: &str,
    ) -> Result<NameAttempt, StoreError> {
        let key = throttle_key(key);
        let mine = |item: &Item| get_s(item, "write_id").as_deref() == Some(attempt);
        let granted = |item: &Item| NameAttempt::Granted { expires_at: get_u64(item, "expires_at").unwrap_or(0) };
        for _ in 0..COUNT_RETRIES {
            let counted = self
                .client
                .update_item()
                .table_name(&self.users_table)
                .key("username", s(&key))
                .update_expression("ADD #f :one SET #w = :w")
                // A stale record (TTL lags) is not counted on: it starts afresh below.
                .condition_expression("attribute_exists(username) AND #exp > :now AND #w <> :w AND #f < :max")
                .expression_attribute_names("#f", "failures")
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_names("#w", "write_id")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":w", s(attempt))
                .expression_attribute_values(":now", n(now_ms / 1000))
                .expression_attribute_values(":max", n(max))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match counted {
                Ok(out) => return Ok(out.attributes().map(granted).unwrap_or(NameAttempt::Granted { expires_at: 0 })),
                Err(e) => match failed_condition(&e) {
                    // Our own attempt, applied by a try whose answer was lost.
                    Some(Some(item)) if mine(&item) => return Ok(granted(&item)),
                    Some(Some(item)) if get_u64(&item, "expires_at").unwrap_or(0) * 1000 > now_ms => {
                        let until_ms = get_u64(&item, "expires_at").unwrap_or(0) * 1000;
                        return Ok(NameAttempt::Full { until_ms });
                    }
                    Some(_) => {}
                    None => return Err(classify(e)),
                },
            }
            // No record, or a stale one: start a new window, unless someone just did.
            let fresh = FailedLogins { version: attempt.to_string(), ..fresh.clone() };
            match self.write_failures(&key, &fresh, OnlyIf::AbsentOrExpired { now_ms }).await? {
                None => return Ok(NameAttempt::Granted { expires_at: fresh.expires_at }),
                Some(Some(item)) if mine(&item) => return Ok(granted(&item)),
                Some(_) => {}
            }
        }
        Err(StoreError::Unavailable("failed-login count kept conflicting".into()))
    }

    async fn release_name_attempt(&self, key: &ThrottleKey, window_expires_at: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(throttle_key(key)))
            .update_expression("ADD #f :minus")
            .condition_expression("#exp = :exp AND #f > :zero")
            .expression_attribute_names("#f", "failures")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":exp", n(window_expires_at))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        // Another window by now, or nothing to give back (condition failed): nothing to do.
        condition_held(result).map(|_| ())
    }

    async fn clear_login_failures(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.users_table)
            .key("username", s(throttle_key(key)))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}
