//! A factor's secret at rest: AES-256-GCM under a 256-bit data key that only the functions
//! that verify codes hold (a Secrets Manager secret; locally, a variable), with a fresh
//! random nonce per sealing and the user's id as associated data, so a sealed secret copied
//! onto another user's item does not open. The stored text is `v1.` and base64url of
//! nonce ‖ ciphertext ‖ tag.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: &str = "v1.";
pub const KEY_BYTES: usize = 32;
/// HKDF's `info`: a key derived for sealing factors is for nothing else.
const INFO: &[u8] = b"jwt-auth factor secrets v1";
/// And the key recovery codes are hashed under (HMAC-SHA-256), derived from the sealing key.
const CODES_INFO: &[u8] = b"jwt-auth recovery codes v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the factor key is too short (32 bytes, or at least 32 to derive it from)")]
    BadKey,
    #[error("a sealed secret that does not open (another key, another user, or altered)")]
    DoesNotOpen,
    #[error("no randomness")]
    Random,
}

pub struct FactorKey {
    key: LessSafeKey,
    /// Keys the recovery codes' hashes: 50 random bits are too few for a plain hash (a
    /// reader of the table could try them all), not for a keyed one whose key it lacks.
    codes: ring::hmac::Key,
}

impl FactorKey {
    pub fn new(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != KEY_BYTES {
            return Err(SealError::BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKey)?;
        let mut codes = zeroize::Zeroizing::new([0u8; KEY_BYTES]);
        ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"")
            .extract(bytes)
            .expand(&[CODES_INFO], ring::hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(codes.as_mut()))
            .map_err(|_| SealError::BadKey)?;
        let codes = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, codes.as_ref());
        Ok(FactorKey { key: LessSafeKey::new(key), codes })
    }

    /// The key derived from a configured secret (`MFA_KEY`, or the Secrets Manager secret
    /// `MFA_KEY_ARN` names): HKDF-SHA-256 of at least 32 bytes, so any long random text (a
    /// generated secret is printable characters, not raw bytes) makes a full-strength key.
    pub fn derive(secret: &[u8]) -> Result<Self, SealError> {
        if secret.len() < KEY_BYTES {
            return Err(SealError::BadKey);
        }
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"").extract(secret);
        let mut bytes = zeroize::Zeroizing::new([0u8; KEY_BYTES]);
        prk.expand(&[INFO], ring::hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(bytes.as_mut()))
            .map_err(|_| SealError::BadKey)?;
        FactorKey::new(bytes.as_ref())
    }

    /// Hex HMAC-SHA-256 of `data` under the key derived for recovery codes.
    pub fn code_mac(&self, data: &[u8]) -> String {
        ring::hmac::sign(&self.codes, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals `secret` for `user_id`.
    pub fn seal(&self, secret: &[u8], user_id: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(user_id.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Random)?;
        Ok(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat())))
    }

    /// The secret `sealed` holds for `user_id`.
    pub fn open(&self, sealed: &str, user_id: &str) -> Result<Vec<u8>, SealError> {
        let raw = sealed.strip_prefix(VERSION).ok_or(SealError::DoesNotOpen)?;
        let mut bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| SealError::DoesNotOpen)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::DoesNotOpen);
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SealError::DoesNotOpen)?;
        let secret = self
            .key
            .open_in_place(nonce, Aad::from(user_id.as_bytes()), &mut ciphertext)
            .map_err(|_| SealError::DoesNotOpen)?;
        Ok(secret.to_vec())
    }
}

impl std::fmt::Debug for FactorKey {
    // A key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactorKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> FactorKey {
        FactorKey::new(&[byte; KEY_BYTES]).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_for_its_user_and_unaltered() {
        let secret = b"12345678901234567890";
        let sealed = key(1).seal(secret, "user-a").unwrap();
        assert!(sealed.starts_with("v1.") && !sealed.contains("MTIzNDU2"), "{sealed}");
        assert_eq!(key(1).open(&sealed, "user-a").unwrap(), secret);
        assert_eq!(key(2).open(&sealed, "user-a"), Err(SealError::DoesNotOpen), "another key");
        assert_eq!(key(1).open(&sealed, "user-b"), Err(SealError::DoesNotOpen), "another user");
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key(1).open(&String::from_utf8(altered).unwrap(), "user-a"), Err(SealError::DoesNotOpen));
        for junk in ["", "v1.", "v1.!!!", "v2.AAAA", &sealed[3..]] {
            assert_eq!(key(1).open(junk, "user-a"), Err(SealError::DoesNotOpen), "{junk:?}");
        }
        // A derived key: the same text derives the same key, other text another.
        let text = b"a generated secret of sixty-four printable characters, say 0123";
        let sealed_with_text = FactorKey::derive(text).unwrap().seal(secret, "user-a").unwrap();
        assert_eq!(FactorKey::derive(text).unwrap().open(&sealed_with_text, "user-a").unwrap(), secret);
        let other = b"a generated secret of sixty-four printable characters, say 0124";
        assert!(FactorKey::derive(other).unwrap().open(&sealed_with_text, "user-a").is_err());
        // A fresh nonce each time: the same secret seals differently.
        assert_ne!(key(1).seal(secret, "user-a").unwrap(), sealed);
    }

    #[test]
    fn a_key_is_32_bytes_and_never_printed() {
        assert_eq!(FactorKey::new(&[0; 31]).unwrap_err(), SealError::BadKey);
        assert_eq!(FactorKey::derive(&[0; 31]).unwrap_err(), SealError::BadKey);
        assert_eq!(format!("{:?}", key(7)), "FactorKey(<redacted>)");
    }
}
