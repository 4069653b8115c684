//! argon2id password hashing and verification (PHC strings).

use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::Argon2Config;
use crate::error::AuthError;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
const OUTPUT_BYTES: usize = 32;

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. `needs_rehash`: the stored hash is weaker than (or differs
    /// from) the configured parameters and should be replaced while the password is at hand.
    Valid {
        needs_rehash: bool,
    },
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("stored password hash is malformed")]
    MalformedHash,
    #[error("password hashing failed")]
    Hashing,
}

impl From<PasswordError> for AuthError {
    fn from(e: PasswordError) -> Self {
        tracing::error!(error = %e, "password hashing fault");
        AuthError::Internal
    }
}

pub struct PasswordHasher {
    argon2: Argon2<'static>,
    config: Argon2Config,
    /// A PHC string with the configured parameters that no password matches: unknown
    /// users are checked against it so they cost the same argon2 work as known ones.
    dummy_hash: String,
    verifications: AtomicU64,
}

impl PasswordHasher {
    pub fn new(config: Argon2Config) -> Result<Self, PasswordError> {
        let params = Params::new(config.memory_kib, config.iterations, config.parallelism, Some(OUTPUT_BYTES))
            .map_err(|_| PasswordError::Hashing)?;
        // Built from constants rather than by hashing, so a cold start pays nothing for it.
        let dummy_hash = format!(
            "$argon2id$v=19$m={},t={},p={}$ZHVtbXktc2FsdC0xNmJ5dA$QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI",
            config.memory_kib, config.iterations, config.parallelism
        );
        Ok(PasswordHasher {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            config,
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> Argon2Config {
        self.config
    }

    /// Hashes with a fresh 16-byte random salt into a PHC string.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2.hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|_| PasswordError::Hashing)
    }

    /// Verifies with the parameters recorded in the hash itself (so older hashes keep
    /// working) and reports whether the hash should be upgraded.
    pub fn verify(&self, password: &str, phc: &str) -> Result<Verification, PasswordError> {
        let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        match self.argon2.verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(Verification::Valid { needs_rehash: self.needs_rehash(&parsed) }),
            Err(argon2::password_hash::Error::Password) => Ok(Verification::Invalid),
            Err(_) => Err(PasswordError::MalformedHash),
        }
    }

    /// Spends one real verification against the dummy hash; always "invalid".
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, &self.dummy_hash);
    }

    /// How many argon2 verifications this hasher has run (instrumentation for tests and
    /// benchmarks: proves the unknown-user path does the same work).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    fn needs_rehash(&self, hash: &PasswordHash<'_>) -> bool {
        let Ok(params) = Params::try_from(hash) else { return true };
        hash.algorithm.as_str() != "argon2id"
            || hash.version != Some(Version::V0x13 as u32)
            || params.m_cost() < self.config.memory_kib
            || params.t_cost() < self.config.iterations
            || params.p_cost() != self.config.parallelism
            || params.output_len().unwrap_or(OUTPUT_BYTES) < OUTPUT_BYTES
    }
}

/// Password policy for new passwords: 8 to 128 Unicode scalar values, not the username.
pub fn validate_new_password(password: &str, normalized_username: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AuthError::InvalidPassword(format!("password must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(AuthError::InvalidPassword(format!("password must be at most {MAX_PASSWORD_CHARS} characters")));
    }
    if password.to_lowercase() == normalized_username {
        return Err(AuthError::InvalidPassword("password must not be the username".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Config::default()).unwrap()
    }

    #[test]
    fn hashes_are_argon2id_phc_with_owasp_parameters_and_16_byte_salt() {
        let phc = hasher().hash("correct horse").unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.version, Some(19));
        let params = Params::try_from(&parsed).unwrap();
        assert!(params.m_cost() >= 19_456 && params.t_cost() >= 2 && params.p_cost() == 1, "{phc}");
        let mut salt = [0u8; 64];
        assert_eq!(parsed.salt.unwrap().decode_b64(&mut salt).unwrap().len(), 16);
        assert!(!phc.contains("correct horse"));
    }

    #[test]
    fn same_password_twice_gives_different_hashes() {
        let h = hasher();
        assert_ne!(h.hash("correct horse").unwrap(), h.hash("correct horse").unwrap());
    }

    #[test]
    fn verify_accepts_the_right_password_only() {
        let h = hasher();
        let phc = h.hash("correct horse").unwrap();
        assert_eq!(h.verify("correct horse", &phc).unwrap(), Verification::Valid { needs_rehash: false });
        assert_eq!(h.verify("correct horsE", &phc).unwrap(), Verification::Invalid);
        assert_eq!(h.verify("", &phc).unwrap(), Verification::Invalid);
    }

    #[test]
    fn hashes_made_with_other_parameters_verify_and_weaker_ones_ask_for_rehash() {
        let weak = PasswordHasher::new(Argon2Config { memory_kib: 8_192, iterations: 1, parallelism: 1 }).unwrap();
        let phc = weak.hash("correct horse").unwrap();
        assert_eq!(hasher().verify("correct horse", &phc).unwrap(), Verification::Valid { needs_rehash: true });
        assert_eq!(hasher().verify("wrong horse!", &phc).unwrap(), Verification::Invalid);

        let strong = PasswordHasher::new(Argon2Config { memory_kib: 32_768, iterations: 3, parallelism: 1 }).unwrap();
        let phc = strong.hash("correct horse").unwrap();
        assert_eq!(hasher().verify("correct horse", &phc).unwrap(), Verification::Valid { needs_rehash: false });

        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(19_456, 2, 1, Some(32)).unwrap())
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert_eq!(hasher().verify("correct horse", &argon2i).unwrap(), Verification::Valid { needs_rehash: true });
    }

    #[test]
    fn malformed_hash_is_an_error_not_a_match() {
        assert!(matches!(hasher().verify("x", "not-a-phc-string"), Err(PasswordError::MalformedHash)));
        assert!(matches!(hasher().verify("x", ""), Err(PasswordError::MalformedHash)));
    }

    #[test]
    fn dummy_verification_is_a_real_verification_with_configured_parameters() {
        let h = hasher();
        let parsed = PasswordHash::new(&h.dummy_hash).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (parsed.algorithm.as_str(), params.m_cost(), params.t_cost(), params.p_cost()),
            ("argon2id", 19_456, 2, 1)
        );
        assert_eq!(h.verify("anything at all", &h.dummy_hash).unwrap(), Verification::Invalid);
        let before = h.verifications();
        h.verify_dummy("anything at all");
        assert_eq!(h.verifications(), before + 1);
    }

    #[test]
    fn password_policy() {
        assert!(validate_new_password("1234567", "alice").is_err());
        assert!(validate_new_password("12345678", "alice").is_ok());
        assert!(validate_new_password(&"é".repeat(128), "alice").is_ok(), "128 multi-byte characters fit");
        assert!(validate_new_password(&"é".repeat(129), "alice").is_err());
        assert!(validate_new_password("é".repeat(7).as_str(), "alice").is_err(), "counted in characters, not bytes");
        let e = validate_new_password("Alice.Smith", "alice.smith").unwrap_err();
        assert_eq!(e.status_and_code(), (400, "invalid_password"));
    }
}
