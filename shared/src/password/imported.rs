//! Password hashes brought from other systems (CONTRACT.md Part 3, "Importing users"):
//! each recognised format is verified exactly as the library that writes it verifies it,
//! and is replaced by argon2id at the user's next sign-in. Formats that offer no real
//! protection (plain or unsalted digests) are refused, and so are costs that would let one
//! login burn a function's CPU or memory.
//!
//! | scheme | written by | format |
//! |---|---|---|
//! | `argon2id`, `argon2i` | argon2-cffi, libsodium, ... | PHC `$argon2id$v=19$m=,t=,p=$salt$hash` |
//! | `bcrypt` | bcrypt, Flask-Bcrypt, passlib, PHP | `$2a$`, `$2b$`, `$2y$` + cost + 53 characters |
//! | `pbkdf2_sha256` | Django | `pbkdf2_sha256$<iterations>$<salt>$<base64>` |
//! | `pbkdf2_sha256` | passlib | `$pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64>` |
//! | `pbkdf2_sha256` | Werkzeug | `pbkdf2:sha256:<iterations>$<salt>$<hex>` |
//! | `scrypt` | Werkzeug | `scrypt:<n>:<r>:<p>$<salt>$<hex>` |

use std::num::NonZeroU32;

use argon2::PasswordHash;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use subtle::ConstantTimeEq;

/// The highest bcrypt cost accepted: 2^14 rounds, about a second of one core.
pub const MAX_BCRYPT_COST: u32 = 14;
/// The most PBKDF2 iterations accepted (Django 5 writes 1,000,000).
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
/// The most memory a scrypt hash may ask for (128 · n · r bytes; Werkzeug's default is 32 MiB).
pub const MAX_SCRYPT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// And the most work: memory times passes (128 · n · r · p bytes), so `p` cannot multiply it.
pub const MAX_SCRYPT_WORK_BYTES: u64 = 128 * 1024 * 1024;
/// The most memory (KiB) an imported argon2 hash may ask for, and memory times passes
/// (argon2-cffi's default, 64 MiB and 3 passes, is 192 MiB of work).
pub const MAX_ARGON2_MEMORY_KIB: u32 = 128 * 1024;
pub const MAX_ARGON2_WORK_KIB: u64 = 256 * 1024;
/// What Django, passlib and Werkzeug write for PBKDF2-SHA256 (its digest), and Werkzeug for scrypt.
const PBKDF2_OUTPUT_BYTES: usize = 32;
const SCRYPT_OUTPUT_BYTES: usize = 64;

/// The password schemes a stored hash can be in (`password_scheme` in the admin view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2id,
    Argon2i,
    Bcrypt,
    Pbkdf2Sha256,
    Scrypt,
}

impl Scheme {
    pub const ALL: [Scheme; 5] =
        [Scheme::Argon2id, Scheme::Argon2i, Scheme::Bcrypt, Scheme::Pbkdf2Sha256, Scheme::Scrypt];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "argon2id",
            Scheme::Argon2i => "argon2i",
            Scheme::Bcrypt => "bcrypt",
            Scheme::Pbkdf2Sha256 => "pbkdf2_sha256",
            Scheme::Scrypt => "scrypt",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Why a hash cannot be imported: said in the import's per-user result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

fn unsupported(why: impl Into<String>) -> Unsupported {
    Unsupported(why.into())
}

/// A recognised hash, parsed, within the cost limits. No `Debug`: it holds the salt and
/// the expected output.
enum Parsed {
    Argon2 { scheme: Scheme },
    Bcrypt,
    Pbkdf2 { iterations: NonZeroU32, salt: Vec<u8>, expected: Vec<u8> },
    Scrypt { log_n: u8, r: u32, p: u32, salt: Vec<u8>, expected: Vec<u8> },
}

/// The scheme of `hash`, if it is one this service verifies within its cost limits; else
/// why not.
pub fn scheme_of(hash: &str) -> Result<Scheme, Unsupported> {
    Ok(match parse(hash)? {
        Parsed::Argon2 { scheme } => scheme,
        Parsed::Bcrypt => Scheme::Bcrypt,
        Parsed::Pbkdf2 { .. } => Scheme::Pbkdf2Sha256,
        Parsed::Scrypt { .. } => Scheme::Scrypt,
    })
}

/// Verifies `password` against a hash that is not argon2 (those are the hasher's), as its
/// origin library does, comparing in constant time.
pub(super) fn verify(password: &str, hash: &str) -> Result<bool, Unsupported> {
    match parse(hash)? {
        Parsed::Argon2 { .. } => Err(unsupported("argon2 hashes are verified by the argon2 hasher")),
        // bcrypt reads only the first 72 bytes of a password, as every bcrypt library
        // before Python's bcrypt 5 did silently: a hash they made matches those 72 bytes.
        Parsed::Bcrypt => bcrypt::verify(password.as_bytes(), hash).map_err(|_| unsupported("a malformed bcrypt hash")),
        Parsed::Pbkdf2 { iterations, salt, expected } => Ok(ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.as_bytes(),
            &expected,
        )
        .is_ok()),
        Parsed::Scrypt { log_n, r, p, salt, expected } => {
            let params = scrypt::Params::new(log_n, r, p, expected.len())
                .map_err(|_| unsupported("scrypt parameters out of range"))?;
            let mut computed = vec![0u8; expected.len()];
            scrypt::scrypt(password.as_bytes(), &salt, &params, &mut computed)
                .map_err(|_| unsupported("scrypt output length out of range"))?;
            Ok(computed.ct_eq(&expected).into())
        }
    }
}

fn parse(hash: &str) -> Result<Parsed, Unsupported> {
    if hash.starts_with("$argon2") {
        return parse_argon2(hash);
    }
    if let Some(rest) = ["$2a$", "$2b$", "$2y$"].iter().find_map(|p| hash.strip_prefix(p)) {
        return parse_bcrypt(rest);
    }
    if let Some(rest) = hash.strip_prefix("pbkdf2_sha256$") {
        return parse_django(rest);
    }
    if let Some(rest) = hash.strip_prefix("$pbkdf2-sha256$") {
        return parse_passlib(rest);
    }
    if let Some(rest) = hash.strip_prefix("pbkdf2:") {
        return parse_werkzeug_pbkdf2(rest);
    }
    if let Some(rest) = hash.strip_prefix("scrypt:") {
        return parse_werkzeug_scrypt(rest);
    }
    if !hash.is_empty() && hash.len() <= 128 && hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(unsupported("a plain digest (MD5, SHA-1, SHA-256) without salt or cost is refused"));
    }
    Err(unsupported(
        "not a recognised hash: argon2id, argon2i (PHC), bcrypt ($2a$, $2b$, $2y$), PBKDF2-SHA256 \
         (Django, passlib, Werkzeug) or Werkzeug's scrypt",
    ))
}

fn parse_argon2(hash: &str) -> Result<Parsed, Unsupported> {
    let phc = PasswordHash::new(hash).map_err(|_| unsupported("a malformed argon2 PHC string"))?;
    let scheme = match phc.algorithm.as_str() {
        "argon2id" => Scheme::Argon2id,
        "argon2i" => Scheme::Argon2i,
        other => return Err(unsupported(format!("{other} is not argon2id or argon2i"))),
    };
    let params = argon2::Params::try_from(&phc).map_err(|_| unsupported("argon2 parameters out of range"))?;
    if phc.salt.is_none() || phc.hash.is_none() {
        return Err(unsupported("an argon2 PHC string without its salt or output"));
    }
    let work = u64::from(params.m_cost()) * u64::from(params.t_cost());
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB || work > MAX_ARGON2_WORK_KIB {
        return Err(unsupported(format!(
            "argon2 cost over the limit (at most m={MAX_ARGON2_MEMORY_KIB} KiB, and m·t={MAX_ARGON2_WORK_KIB} KiB): one \
             login would take too long"
        )));
    }
    Ok(Parsed::Argon2 { scheme })
}

fn parse_bcrypt(rest: &str) -> Result<Parsed, Unsupported> {
    let malformed = || unsupported("a malformed bcrypt hash");
    let (cost, body) = rest.split_once('$').ok_or_else(malformed)?;
    if cost.len() != 2 || body.len() != 53 || !body.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/') {
        return Err(malformed());
    }
    let cost: u32 = cost.parse().map_err(|_| malformed())?;
    if !(4..=31).contains(&cost) {
        return Err(malformed());
    }
    if cost > MAX_BCRYPT_COST {
        return Err(unsupported(format!("bcrypt cost {cost} is over {MAX_BCRYPT_COST}: one login would take seconds")));
    }
    // The salt and output must decode as bcrypt's own base64 (else no login could match).
    if format!("$2b${rest}").parse::<bcrypt::HashParts>().is_err() {
        return Err(malformed());
    }
    Ok(Parsed::Bcrypt)
}

fn pbkdf2_iterations(text: &str) -> Result<NonZeroU32, Unsupported> {
    let iterations: u32 = text.parse().map_err(|_| unsupported("PBKDF2 iterations that are not a number"))?;
    if iterations > MAX_PBKDF2_ITERATIONS {
        return Err(unsupported(format!(
            "PBKDF2 with {iterations} iterations is over {MAX_PBKDF2_ITERATIONS}: one login would take seconds"
        )));
    }
    NonZeroU32::new(iterations).ok_or_else(|| unsupported("PBKDF2 with no iterations"))
}

fn sha256_output(expected: Vec<u8>) -> Result<Vec<u8>, Unsupported> {
    // As those libraries write it: 32 bytes (a shorter output would match more passwords).
    if expected.len() != PBKDF2_OUTPUT_BYTES {
        return Err(unsupported("a PBKDF2-SHA256 output that is not 32 bytes"));
    }
    Ok(expected)
}

/// Django: `pbkdf2_sha256$<iterations>$<salt>$<base64 of 32 bytes>`; the salt is used as
/// the text it is.
fn parse_django(rest: &str) -> Result<Parsed, Unsupported> {
    let malformed = || unsupported("a malformed Django PBKDF2 hash");
    let mut parts = rest.split('$');
    let (Some(iterations), Some(salt), Some(output), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let expected = STANDARD.decode(output).map_err(|_| malformed())?;
    Ok(Parsed::Pbkdf2 {
        iterations: pbkdf2_iterations(iterations)?,
        salt: non_empty_salt(salt.as_bytes().to_vec())?,
        expected: sha256_output(expected)?,
    })
}

/// passlib: `$pbkdf2-sha256$<rounds>$<salt>$<checksum>`, salt and checksum in passlib's
/// "adapted base64" (`.` for `+`, no padding); the salt is the decoded bytes.
fn parse_passlib(rest: &str) -> Result<Parsed, Unsupported> {
    let malformed = || unsupported("a malformed passlib PBKDF2 hash");
    let ab64 = |text: &str| STANDARD_NO_PAD.decode(text.replace('.', "+")).map_err(|_| malformed());
    let mut parts = rest.split('$');
    let (Some(rounds), Some(salt), Some(checksum), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    Ok(Parsed::Pbkdf2 {
        iterations: pbkdf2_iterations(rounds)?,
        salt: non_empty_salt(ab64(salt)?)?,
        expected: sha256_output(ab64(checksum)?)?,
    })
}

/// Werkzeug: `pbkdf2:sha256:<iterations>$<salt>$<hex>`; the salt is used as the text it is.
fn parse_werkzeug_pbkdf2(rest: &str) -> Result<Parsed, Unsupported> {
    let malformed = || unsupported("a malformed Werkzeug PBKDF2 hash");
    let (method, salt, output) = werkzeug_parts(rest).ok_or_else(malformed)?;
    let mut method = method.split(':');
    match (method.next(), method.next(), method.next()) {
        (Some("sha256"), Some(iterations), None) => Ok(Parsed::Pbkdf2 {
            iterations: pbkdf2_iterations(iterations)?,
            salt: non_empty_salt(salt.as_bytes().to_vec())?,
            expected: sha256_output(hex(output).ok_or_else(malformed)?)?,
        }),
        (Some("sha256"), None, _) => {
            Err(unsupported("a Werkzeug PBKDF2 hash that names no iteration count (its default changed over versions)"))
        }
        (Some(digest), _, _) => Err(unsupported(format!("PBKDF2 with {digest}: only SHA-256 is accepted"))),
        _ => Err(malformed()),
    }
}

/// Werkzeug: `scrypt:<n>:<r>:<p>$<salt>$<hex of 64 bytes>` (hashlib.scrypt, the salt as text).
fn parse_werkzeug_scrypt(rest: &str) -> Result<Parsed, Unsupported> {
    let malformed = || unsupported("a malformed Werkzeug scrypt hash");
    let (method, salt, output) = werkzeug_parts(rest).ok_or_else(malformed)?;
    let numbers: Vec<u64> = method.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|_| malformed())?;
    let [n, r, p] = numbers[..] else { return Err(malformed()) };
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
        return Err(malformed());
    }
    let memory = 128u64.saturating_mul(n).saturating_mul(r);
    let work = memory.saturating_mul(p);
    if memory > MAX_SCRYPT_MEMORY_BYTES || work > MAX_SCRYPT_WORK_BYTES {
        return Err(unsupported(format!(
            "scrypt with n={n}, r={r}, p={p} asks for {} MiB, {} MiB of work: the limits are {} MiB and {} MiB",
            memory >> 20,
            work >> 20,
            MAX_SCRYPT_MEMORY_BYTES >> 20,
            MAX_SCRYPT_WORK_BYTES >> 20
        )));
    }
    let expected = hex(output).filter(|e| e.len() == SCRYPT_OUTPUT_BYTES).ok_or_else(malformed)?;
    let (log_n, r, p) = (n.trailing_zeros() as u8, r as u32, p as u32);
    // Parameters scrypt itself refuses would fail every login: refused here instead.
    scrypt::Params::new(log_n, r, p, SCRYPT_OUTPUT_BYTES).map_err(|_| malformed())?;
    Ok(Parsed::Scrypt { log_n, r, p, salt: non_empty_salt(salt.as_bytes().to_vec())?, expected })
}

/// `<method>$<salt>$<output>`.
fn werkzeug_parts(rest: &str) -> Option<(&str, &str, &str)> {
    let mut parts = rest.split('$');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(salt), Some(output), None) => Some((method, salt, output)),
        _ => None,
    }
}

fn non_empty_salt(salt: Vec<u8>) -> Result<Vec<u8>, Unsupported> {
    if salt.is_empty() {
        return Err(unsupported("a hash without a salt is refused"));
    }
    Ok(salt)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::Verification;

    /// Made by the libraries themselves: scripts/make_hash_vectors.py.
    const VECTORS: &str = include_str!("../../tests/vectors/imported_hashes.json");

    #[test]
    fn every_library_vector_verifies_as_its_library_does_and_refused_ones_are_refused_with_a_reason() {
        let hasher = crate::password::PasswordHasher::new(crate::config::Argon2Config::default()).unwrap();
        let vectors: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        // In threads: the vectors include libraries' default costs (a second or so each).
        std::thread::scope(|s| {
            let handles: Vec<_> = vectors
                .iter()
                .map(|v| {
                    let hasher = &hasher;
                    s.spawn(move || {
                        let (hash, password) = (v["hash"].as_str().unwrap(), v["password"].as_str().unwrap());
                        let what = format!("{} {hash} {password:?}", v["library"]);
                        match v["scheme"].as_str() {
                            None => {
                                let why = scheme_of(hash).expect_err(&what);
                                assert!(why.0.len() > 20, "{what}: says why: {why}");
                                assert!(hasher.verify(password, hash).is_err(), "{what}");
                                None
                            }
                            Some(scheme) => {
                                assert_eq!(scheme_of(hash).map(Scheme::name), Ok(scheme), "{what}");
                                let valid = matches!(hasher.verify(password, hash), Ok(Verification::Valid { .. }));
                                assert_eq!(valid, v["matches"].as_bool().unwrap(), "{what}");
                                Some(format!(
                                    "{} / {}",
                                    scheme,
                                    v["library"].as_str().unwrap().split(' ').next().unwrap()
                                ))
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                seen.extend(h.join().unwrap());
            }
        });
        // Every scheme and origin library is there.
        let want = [
            "argon2i / argon2-cffi",
            "argon2id / argon2-cffi",
            "bcrypt / bcrypt",
            "pbkdf2_sha256 / Django",
            "pbkdf2_sha256 / Werkzeug",
            "pbkdf2_sha256 / passlib",
            "scrypt / Werkzeug",
        ];
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn an_imported_hash_that_matches_asks_to_be_replaced_by_argon2id() {
        let hasher = crate::password::PasswordHasher::new(crate::config::Argon2Config::default()).unwrap();
        let vectors: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
        for scheme in ["bcrypt", "argon2i", "scrypt"] {
            let v = vectors.iter().find(|v| v["scheme"] == scheme && v["matches"] == true).unwrap();
            let verified = hasher.verify(v["password"].as_str().unwrap(), v["hash"].as_str().unwrap()).unwrap();
            assert_eq!(verified, Verification::Valid { needs_rehash: true }, "{scheme}");
        }
    }

    #[test]
    fn scheme_names_round_trip() {
        for scheme in Scheme::ALL {
            assert_eq!(Scheme::from_name(scheme.name()), Some(scheme));
        }
    }

    #[test]
    fn malformed_hashes_of_known_prefixes_are_refused_not_panics() {
        for bad in [
            "$2b$",
            "$2b$04$short",
            "$2b$99$FwGxZhUVWy7bd3/.PUu4j.2L1Al4pmhK45psy918E3WhTQZrv5VK.",
            "pbkdf2_sha256$$salt$",
            "pbkdf2_sha256$0$salt$AAAA",
            "pbkdf2_sha256$1000$$AAAA",
            "$pbkdf2-sha256$1000$!!$AAAA",
            "pbkdf2:sha256:1000$salt$zz",
            "pbkdf2:sha256:1000$salt",
            "scrypt:1000:8:1$salt$00",
            "scrypt:1024:0:1$salt$00",
            "scrypt:1024:8$salt$00",
            // Shorter outputs than the libraries write would match more passwords.
            "pbkdf2:sha256:1000$salt$00",
            "pbkdf2_sha256$1000$salt$AAAA",
            "scrypt:1024:8:1$salt$0011",
            "$argon2id$v=19$m=8,t=1,p=1$",
            "$argon2d$v=19$m=65536,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "",
        ] {
            assert!(scheme_of(bad).is_err(), "{bad:?}");
            assert!(verify("password", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passes_cannot_multiply_the_cost_past_the_limits() {
        let output = "00".repeat(64);
        // Werkzeug's default (32 MiB, one pass) is fine; sixteen passes of it are not.
        assert_eq!(scheme_of(&format!("scrypt:32768:8:1$salt${output}")), Ok(Scheme::Scrypt));
        let e = scheme_of(&format!("scrypt:32768:8:16$salt${output}")).unwrap_err();
        assert!(e.0.contains("of work"), "{e}");
        let argon2 = |m: u32, t: u32| {
            format!("$argon2id$v=19$m={m},t={t},p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
        };
        assert_eq!(scheme_of(&argon2(65536, 3)), Ok(Scheme::Argon2id), "argon2-cffi's default");
        assert!(scheme_of(&argon2(65536, 5)).is_err());
        assert!(scheme_of(&argon2(262144, 1)).is_err());
    }

    #[test]
    fn werkzeug_without_an_iteration_count_is_refused_with_the_reason() {
        let e = scheme_of("pbkdf2:sha256$salt$00").unwrap_err();
        assert!(e.0.contains("no iteration count"), "{e}");
    }
}
