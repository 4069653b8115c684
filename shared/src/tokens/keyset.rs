//! The keys a token service holds: the one that signs and the set that verifies, by `kid`.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};

use super::PublicJwk;

/// A key that signs: the current one.
pub struct SigningKey {
    pub(super) kid: String,
    pub(super) algorithm: Algorithm,
    pub(super) key: EncodingKey,
}

impl SigningKey {
    /// An HMAC key (HS256/384/512) from a secret already validated by `config`.
    pub fn hmac(kid: impl Into<String>, algorithm: Algorithm, secret: &[u8]) -> Self {
        SigningKey { kid: kid.into(), algorithm, key: EncodingKey::from_secret(secret) }
    }

    /// An Ed25519 key from its PKCS#8 DER encoding.
    pub fn ed25519(kid: impl Into<String>, pkcs8_der: &[u8]) -> Self {
        SigningKey { kid: kid.into(), algorithm: Algorithm::EdDSA, key: EncodingKey::from_ed_der(pkcs8_der) }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

pub(super) struct VerifyingKey {
    pub(super) key: DecodingKey,
    pub(super) validation: Validation,
}

/// Keys that verify, looked up by `kid`. Holds the current key and any still-trusted
/// previous ones (rotation); each key carries its own pinned algorithm.
pub struct KeySet {
    pub(super) keys: HashMap<String, (Algorithm, DecodingKey)>,
}

impl KeySet {
    pub fn new() -> Self {
        KeySet { keys: HashMap::new() }
    }

    pub fn with_hmac(mut self, kid: impl Into<String>, algorithm: Algorithm, secret: &[u8]) -> Self {
        self.keys.insert(kid.into(), (algorithm, DecodingKey::from_secret(secret)));
        self
    }

    /// A public key as a JWK (RS256, ES256 or EdDSA); `None` if it is not one.
    pub fn with_jwk(mut self, jwk: &PublicJwk) -> Option<Self> {
        let (algorithm, key) = jwk.decoding_key()?;
        self.keys.insert(jwk.kid.clone(), (algorithm, key));
        Some(self)
    }

    /// An Ed25519 public key, raw 32 bytes.
    pub fn with_ed25519(mut self, kid: impl Into<String>, public_key: &[u8]) -> Self {
        self.keys.insert(kid.into(), (Algorithm::EdDSA, DecodingKey::from_ed_der(public_key)));
        self
    }
}

impl Default for KeySet {
    fn default() -> Self {
        Self::new()
    }
}
