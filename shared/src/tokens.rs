//! Claims, issuing and verifying. The algorithm is pinned per key by configuration; the
//! token header's `alg` is only compared against it, never trusted to choose it.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::TokenConfig;

mod crypto;
pub mod keys;

pub use keys::{Jwks, KeyError, PrivateKey, PublicJwk};

/// Tokens longer than this are refused before any parsing; ours are well under 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Access,
    Refresh,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub username: String,
    pub roles: Vec<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub sid: String,
    pub token_use: TokenUse,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub sid: String,
    pub token_use: TokenUse,
}

/// Why a token was refused. Callers map all of these to one client-facing error; the
/// kinds exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has the wrong token_use")]
    WrongTokenUse,
    #[error("token invalid")]
    Invalid,
}

/// A key that signs: the current one.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
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

struct VerifyingKey {
    key: DecodingKey,
    validation: Validation,
}

/// Keys that verify, looked up by `kid`. Holds the current key and any still-trusted
/// previous ones (rotation); each key carries its own pinned algorithm.
pub struct KeySet {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
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

/// A freshly issued access + refresh pair and the claims inside them.
#[derive(Debug, Clone)]
pub struct IssuedPair {
    pub access_token: String,
    pub access: AccessClaims,
    pub refresh_token: String,
    pub refresh: RefreshClaims,
}

/// Who a token is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub roles: &'a [String],
}

pub struct TokenService {
    /// `None` in functions that neither sign nor verify (they never read the key).
    signer: Option<SigningKey>,
    keys: HashMap<String, VerifyingKey>,
    /// The public keys that verify this service's tokens, as the JWKS publishes them
    /// (empty with HMAC: a secret is never published).
    published: Jwks,
    config: TokenConfig,
}

impl TokenService {
    pub fn new(config: TokenConfig, signer: SigningKey, keys: KeySet) -> Self {
        Self::with_keys(config, Some(signer), keys, Jwks::default())
    }

    /// A service that signs with `signer` (if any: a function that only verifies has none)
    /// and verifies with `keys`; `published` is the public part, for the JWKS.
    pub fn with_keys(config: TokenConfig, signer: Option<SigningKey>, keys: KeySet, published: Jwks) -> Self {
        crypto::install();
        let keys = keys
            .keys
            .into_iter()
            .map(|(kid, (algorithm, key))| {
                let mut validation = Validation::new(algorithm);
                validation.set_issuer(&[&config.issuer]);
                validation.set_audience(&[&config.audience]);
                validation.leeway = config.leeway_seconds;
                validation.validate_nbf = true;
                validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
                (kid, VerifyingKey { key, validation })
            })
            .collect();
        TokenService { signer, keys, published, config }
    }

    /// The public keys, as `GET /.well-known/jwks.json` answers them.
    pub fn jwks(&self) -> &Jwks {
        &self.published
    }

    /// For functions that neither sign nor verify (logout reads the authorizer's context):
    /// the token settings without any key, so the key is never read. Signing fails and
    /// every token is refused.
    pub fn without_keys(config: TokenConfig) -> Self {
        TokenService { signer: None, keys: HashMap::new(), published: Jwks::default(), config }
    }

    /// The usual setup: one HMAC secret that both signs and verifies.
    pub fn from_secret(config: TokenConfig, secret: &[u8]) -> Self {
        let signer = SigningKey::hmac(config.key_id.clone(), config.algorithm, secret);
        let keys = KeySet::new().with_hmac(config.key_id.clone(), config.algorithm, secret);
        TokenService::new(config, signer, keys)
    }

    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Issues an access + refresh pair for one session at time `now` (epoch seconds).
    pub fn issue_pair(&self, subject: Subject<'_>, sid: &str, now: u64) -> Result<IssuedPair, TokenError> {
        self.issue_pair_until(subject, sid, now, u64::MAX)
    }

    /// As `issue_pair`, but neither token expires after `not_after` (epoch seconds): the
    /// end of the session's absolute lifetime. Refused if that is not after `now`.
    pub fn issue_pair_until(
        &self,
        subject: Subject<'_>,
        sid: &str,
        now: u64,
        not_after: u64,
    ) -> Result<IssuedPair, TokenError> {
        if not_after <= now {
            return Err(TokenError::Expired);
        }
        let access = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: subject.user_id.to_string(),
            username: subject.username.to_string(),
            roles: subject.roles.to_vec(),
            iat: now,
            nbf: now,
            exp: (now + self.config.access_ttl_seconds).min(not_after),
            jti: Uuid::new_v4().to_string(),
            sid: sid.to_string(),
            token_use: TokenUse::Access,
        };
        let refresh = RefreshClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: subject.user_id.to_string(),
            iat: now,
            nbf: now,
            exp: (now + self.config.refresh_ttl_seconds).min(not_after),
            jti: Uuid::new_v4().to_string(),
            sid: sid.to_string(),
            token_use: TokenUse::Refresh,
        };
        Ok(IssuedPair { access_token: self.sign(&access)?, access, refresh_token: self.sign(&refresh)?, refresh })
    }

    /// Signs any claims with the current key. Public so tests can forge edge cases.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let signer = self.signer.as_ref().ok_or(TokenError::Invalid)?;
        let mut header = Header::new(signer.algorithm);
        header.typ = Some("JWT".to_string());
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &signer.key).map_err(|e| {
            tracing::error!(kind = ?e.kind(), "token signing failed");
            TokenError::Invalid
        })
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify(token, TokenUse::Access)
    }

    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        self.verify(token, TokenUse::Refresh)
    }

    fn verify<T: serde::de::DeserializeOwned>(&self, token: &str, expected: TokenUse) -> Result<T, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.typ.as_deref() != Some("JWT") {
            return Err(TokenError::Invalid);
        }
        // The key, and with it the algorithm, is chosen by `kid` from our own set: an
        // unknown `kid` (or a path, or a URL) matches nothing and is refused.
        let key = header.kid.as_deref().and_then(|kid| self.keys.get(kid)).ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &key.validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            _ => TokenError::Invalid,
        })?;
        let token_use: TokenUse = data
            .claims
            .get("token_use")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or(TokenError::Invalid)?;
        if token_use != expected {
            return Err(TokenError::WrongTokenUse);
        }
        serde_json::from_value(data.claims).map_err(|_| TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests;
