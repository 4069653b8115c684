//! argon2id password hashing and verification (PHC strings), and the verification of
//! hashes imported from other systems (`imported`), which sign-in replaces by argon2id.
//!
//! argon2's working memory (19 MiB at the configured cost) is allocated once and kept: a
//! fresh allocation per hash is mapped from the kernel and each of its pages is faulted in,
//! which on a virtual machine costs a sizeable part of the hash's own CPU again
//! (docs/performance.md, "Page faults and argon2's memory"). The kept memory is wiped after every hash, so nothing
//! derived from a password outlives the call that used it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroize as _;

pub mod imported;

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
    /// argon2's memory for the configured parameters, empty until the first hash (or
    /// `prepare_memory`), zeroed between hashes. A hash that finds it in use, or needs more
    /// (a stored hash of a higher memory cost), gets memory of its own for that call.
    memory: Mutex<Vec<Block>>,
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
            memory: Mutex::new(Vec::new()),
        })
    }

    /// Allocates argon2's memory and touches every page of it now (for a function that
    /// hashes, at its cold start: on-demand Lambda runs init on a whole vCPU, the first
    /// request gets the memory size's share).
    pub fn prepare_memory(&self) {
        if let Ok(mut kept) = self.memory.lock() {
            self.fill_if_empty(&mut kept);
        }
    }

    fn fill_if_empty(&self, kept: &mut Vec<Block>) {
        if kept.is_empty() {
            *kept = touched_blocks(self.argon2.params().block_count());
        }
    }

    /// argon2's output of `len` bytes for `password` and `salt` under `argon2`'s algorithm,
    /// version and parameters, in the kept memory if it is free and large enough, else in
    /// memory of its own; either is wiped afterwards.
    fn output(&self, argon2: &Argon2<'_>, password: &str, salt: Salt<'_>, len: usize) -> password_hash::Result<Output> {
        let mut salt_bytes = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_bytes)?;
        let blocks = argon2.params().block_count();
        let hash = |memory: &mut [Block]| {
            let output = Output::init_with(len, |out| {
                Ok(argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, &mut *memory)?)
            });
            memory.iter_mut().for_each(|block| block.zeroize());
            output
        };
        if blocks <= self.argon2.params().block_count()
            && let Ok(mut kept) = self.memory.try_lock()
        {
            self.fill_if_empty(&mut kept);
            return hash(&mut kept[..blocks]);
        }
        hash(&mut touched_blocks(blocks))
    }

    pub fn config(&self) -> Argon2Config {
        self.config
    }

    /// Hashes with a fresh 16-byte random salt into a PHC string (the string the argon2
    /// crate's own `PasswordHasher` makes).
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        let output =
            self.output(&self.argon2, password, salt.as_salt(), OUTPUT_BYTES).map_err(|_| PasswordError::Hashing)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params()).map_err(|_| PasswordError::Hashing)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Verifies with the algorithm, version and parameters recorded in the hash itself (so
    /// older hashes keep working) and reports whether the hash should be upgraded. The
    /// outputs are compared in constant time (`Output`'s equality).
    pub fn verify(&self, password: &str, phc: &str) -> Result<Verification, PasswordError> {
        if !phc.starts_with("$argon2") {
            // An imported hash (bcrypt, PBKDF2, scrypt): checked as its library does, and
            // replaced by argon2id while the password is at hand.
            self.verifications.fetch_add(1, Ordering::Relaxed);
            return match imported::verify(password, phc) {
                Ok(true) => Ok(Verification::Valid { needs_rehash: true }),
                Ok(false) => Ok(Verification::Invalid),
                Err(_) => Err(PasswordError::MalformedHash),
            };
        }
        let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Ok(Verification::Invalid);
        };
        fn malformed<E>(_: E) -> PasswordError {
            PasswordError::MalformedHash
        }
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(malformed)?;
        let version = parsed.version.map(Version::try_from).transpose().map_err(malformed)?.unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(malformed)?;
        let argon2 = Argon2::new(algorithm, version, params);
        let computed = self.output(&argon2, password, *salt, expected.len()).map_err(malformed)?;
        if computed == *expected {
            Ok(Verification::Valid { needs_rehash: self.needs_rehash(&parsed) })
        } else {
            Ok(Verification::Invalid)
        }
    }

    /// Spends one real verification against the dummy hash; always "invalid".
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, &self.dummy_hash);
    }

    /// How many password verifications this hasher has run (instrumentation for tests and
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

/// `blocks` blocks of argon2 memory, every page of it written (`vec![value; n]` writes each
/// block; a zeroed allocation would be mapped lazily, page by page, during the hash).
fn touched_blocks(blocks: usize) -> Vec<Block> {
    vec![Block::default(); blocks]
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
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

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
    fn hashes_are_the_argon2_crates_own_phc_strings_both_ways() {
        let h = hasher();
        let crate_hasher =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19_456, 2, 1, Some(32)).unwrap());
        let ours = h.hash("correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert_eq!(parsed.hash.unwrap().len(), 32);
        crate_hasher.verify_password(b"correct horse", &parsed).expect("the argon2 crate verifies our hash");
        assert!(crate_hasher.verify_password(b"correct horsE", &parsed).is_err());
        // Same salt, same string: what the crate makes and what we make are one format.
        let salt = parsed.salt.unwrap();
        let theirs = crate_hasher.hash_password(b"correct horse", salt).unwrap().to_string();
        assert_eq!(theirs, ours);
        let theirs =
            crate_hasher.hash_password(b"battery staple", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert_eq!(h.verify("battery staple", &theirs).unwrap(), Verification::Valid { needs_rehash: false });
        assert_eq!(h.verify("battery stapler", &theirs).unwrap(), Verification::Invalid);
    }

    fn kept(h: &PasswordHasher) -> std::sync::MutexGuard<'_, Vec<Block>> {
        h.memory.lock().unwrap()
    }

    /// Where the kept memory is and how many blocks it has (one lock, released at once).
    fn kept_at(h: &PasswordHasher) -> (*const Block, usize) {
        let kept = kept(h);
        (kept.as_ptr(), kept.len())
    }

    fn all_zero(memory: &[Block]) -> bool {
        memory.iter().all(|block| block.as_ref().iter().all(|&word| word == 0))
    }

    #[test]
    fn argon2_memory_is_allocated_once_kept_and_wiped_after_every_hash() {
        let h = hasher();
        assert!(kept(&h).is_empty(), "nothing is allocated until it is needed");
        h.prepare_memory();
        let (address, blocks) = kept_at(&h);
        assert_eq!(blocks, 19_456, "one 1 KiB block per KiB of the memory cost");
        let phc = h.hash("correct horse").unwrap();
        assert!(all_zero(&kept(&h)), "no password-derived state is left after a hash");
        assert_eq!(h.verify("correct horse", &phc).unwrap(), Verification::Valid { needs_rehash: false });
        assert_eq!(h.verify("wrong horse!", &phc).unwrap(), Verification::Invalid);
        h.verify_dummy("anything");
        assert!(all_zero(&kept(&h)), "nor after a verification");
        assert_eq!(kept_at(&h), (address, blocks), "the same memory every time");
        h.prepare_memory();
        assert_eq!(kept_at(&h).0, address, "preparing twice allocates once");

        let lazy = hasher();
        lazy.hash("correct horse").unwrap();
        assert_eq!(kept(&lazy).len(), 19_456, "without prepare_memory, the first hash allocates it");
    }

    #[test]
    fn a_hash_that_finds_the_memory_in_use_or_needs_more_gets_its_own() {
        let h = hasher();
        let phc = h.hash("correct horse").unwrap();
        {
            let busy = kept(&h);
            assert_eq!(h.verify("correct horse", &phc).unwrap(), Verification::Valid { needs_rehash: false });
            assert_eq!(h.verify("wrong horse!", &phc).unwrap(), Verification::Invalid);
            assert!(PasswordHash::new(&h.hash("correct horse").unwrap()).is_ok());
            drop(busy);
        }
        // A stored hash of a higher memory cost than the configured one.
        let strong = PasswordHasher::new(Argon2Config { memory_kib: 32_768, iterations: 2, parallelism: 1 }).unwrap();
        let phc = strong.hash("correct horse").unwrap();
        assert_eq!(h.verify("correct horse", &phc).unwrap(), Verification::Valid { needs_rehash: false });
        assert_eq!(kept(&h).len(), 19_456, "the kept memory stays the configured size");
        // Many threads at once: each gets the right answer.
        let h = std::sync::Arc::new(h);
        let good = h.hash("correct horse").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (h, good) = (h.clone(), good.clone());
                std::thread::spawn(move || {
                    h.verify(if i % 2 == 0 { "correct horse" } else { "wrong horse!" }, &good).unwrap()
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (i, result) in results.into_iter().enumerate() {
            let expected = if i % 2 == 0 { Verification::Valid { needs_rehash: false } } else { Verification::Invalid };
            assert_eq!(result, expected);
        }
    }

    #[test]
    fn a_hash_string_without_its_output_matches_nothing() {
        let h = hasher();
        let phc = h.hash("correct horse").unwrap();
        let without_output = phc.rsplit_once('$').unwrap().0;
        assert_eq!(h.verify("correct horse", without_output).unwrap(), Verification::Invalid);
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
