//! Recovery codes: ten single-use codes shown once at enrolment, for a lost phone. Each is
//! 10 characters of a 32-letter alphabet without look-alikes (50 random bits), shown as
//! `xxxxx-xxxxx`, and stored only as an HMAC-SHA-256 of its normalized form under a key
//! derived from the factor key (`FactorKey::code_mac`): 50 bits are few enough that a
//! reader of the table could try every one against a plain hash, not against a keyed one.

use ring::rand::{SecureRandom, SystemRandom};

use super::sealed::FactorKey;

pub const COUNT: usize = 10;
const LENGTH: usize = 10;
/// Crockford's base32 alphabet, lower case: no i, l, o, u.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// `COUNT` new codes, as shown to the user.
pub fn new_codes() -> Option<Vec<String>> {
    let rng = SystemRandom::new();
    (0..COUNT)
        .map(|_| {
            let mut bytes = [0u8; LENGTH];
            rng.fill(&mut bytes).ok()?;
            let chars: String = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
            Some(format!("{}-{}", &chars[..5], &chars[5..]))
        })
        .collect()
}

/// What is stored of a code: the hex HMAC of its normalized form (lower case, without the
/// dash or spaces, look-alikes read as Crockford reads them) under `key`; `None` for text
/// that cannot be a code.
pub fn code_hash(key: &FactorKey, code: &str) -> Option<String> {
    let normalized: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            other => other,
        })
        .collect();
    if normalized.len() != LENGTH || !normalized.bytes().all(|b| ALPHABET.contains(&b)) {
        return None;
    }
    Some(key.code_mac(normalized.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FactorKey {
        FactorKey::new(&[5; 32]).unwrap()
    }

    #[test]
    fn ten_distinct_codes_of_fifty_bits_each_stored_only_hashed() {
        let codes = new_codes().unwrap();
        assert_eq!(codes.len(), COUNT);
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 11);
            assert_eq!(&code[5..6], "-");
            let hash = code_hash(&key(), code).unwrap();
            assert_eq!(hash.len(), 64);
            assert!(!hash.contains(&code.replace('-', "")));
            // Keyed: not the plain SHA-256 a reader of the table could try codes against,
            // and another key's hash is another.
            assert_ne!(hash, crate::tokens::one_time::token_hash(&code.replace('-', "")));
            assert_ne!(hash, code_hash(&FactorKey::new(&[6; 32]).unwrap(), code).unwrap());
        }
    }

    #[test]
    fn a_code_is_read_as_people_type_it() {
        let code = "0a1b2-c3d4e";
        let hash = code_hash(&key(), code).unwrap();
        for typed in ["0A1B2-C3D4E", "0a1b2c3d4e", " 0a1b2 c3d4e", "oa1b2-c3d4e", "0aib2-c3d4e"] {
            assert_eq!(code_hash(&key(), typed).as_deref(), Some(hash.as_str()), "{typed:?}");
        }
        for bad in ["", "0a1b2-c3d4", "0a1b2-c3d4e5", "0a1b2-c3d4u", "!a1b2-c3d4e"] {
            assert_eq!(code_hash(&key(), bad), None, "{bad:?}");
        }
    }
}
