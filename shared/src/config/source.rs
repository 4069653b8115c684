//! Where configuration comes from (the process environment, or a map in tests), how a
//! value is read (blank is unset, numbers within bounds, a secret inline or by ARN), and
//! the error that names the variable at fault.

use std::collections::HashMap;
use std::fmt;

use super::{MIN_SECRET_BYTES, SecretSource};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

pub(crate) fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// Where variables come from: the process environment in production, a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a dyn Source);

impl Reader<'_> {
    /// A set, non-blank value; blank counts as unset so `FOO=` is not silently accepted.
    pub(crate) fn optional(&self, name: &'static str) -> Option<String> {
        self.0.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    pub(crate) fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| err(name, "is required but not set"))
    }

    pub(crate) fn number<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.optional(name) else { return Ok(default) };
        let value: T = raw.parse().map_err(|_| err(name, format!("must be a whole number, got {raw:?}")))?;
        if value < min || value > max {
            return Err(err(name, format!("must be between {min} and {max}, got {value}")));
        }
        Ok(value)
    }

    /// A secret given inline (`inline`, local runs) or as a Secrets Manager id (`arn`,
    /// deployed): one or the other, never both. An inline one must be long enough.
    pub(crate) fn secret(&self, inline: &'static str, arn: &'static str) -> Result<Option<SecretSource>, ConfigError> {
        match (self.0.get(inline).filter(|s| !s.is_empty()), self.optional(arn)) {
            (Some(_), Some(_)) => Err(err(inline, format!("set either {inline} or {arn}, not both"))),
            (Some(secret), None) => Ok(Some(SecretSource::Secret(validate_secret(inline, secret.into_bytes())?))),
            (None, Some(id)) => Ok(Some(SecretSource::SecretsManager(id))),
            (None, None) => Ok(None),
        }
    }
}

/// Checks a secret wherever it came from (environment or Secrets Manager).
pub fn validate_secret(variable: &'static str, secret: Vec<u8>) -> Result<Vec<u8>, ConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(err(variable, format!("must be at least {MIN_SECRET_BYTES} bytes, got {}", secret.len())));
    }
    Ok(secret)
}
