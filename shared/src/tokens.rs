//! Claims, issuing and verifying. The algorithm is pinned per key by configuration; the
//! token header's `alg` is only compared against it, never trusted to choose it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use jsonwebtoken::{Header, Validation, errors::ErrorKind};
use serde::Serialize;
use uuid::Uuid;

use crate::config::{ApiConfig, TokenConfig};

mod claims;
mod crypto;
pub mod keys;
pub mod one_time;
mod keyset;

pub use claims::{AccessClaims, Amr, DeviceClaims, IssuedPair, PairIds, RefreshClaims, Subject, TokenError, TokenUse};

/// How long a known-device credential lives (each login renews it). It verifies only as
/// long as the key that signed it is published, which a rotation schedule keeps at least
/// as long as a refresh token.
pub const DEVICE_TTL_SECONDS: u64 = 30 * 86_400;
pub use keys::{Jwks, KeyError, PrivateKey, PublicJwk};
use keyset::VerifyingKey;
pub use keyset::{KeySet, SigningKey};

/// Tokens longer than this are refused before any parsing; ours are well under 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The keys in use, swapped whole when they are reloaded.
struct KeyState {
    /// `None` in functions that do not sign (they never read a private key).
    signer: Option<SigningKey>,
    keys: HashMap<String, VerifyingKey>,
    /// The public keys that verify this service's tokens, as the JWKS publishes them
    /// (empty with HMAC: a secret is never published).
    published: Arc<Jwks>,
}

/// The keys a loader produces: what `TokenService::with_keys` takes.
pub struct LoadedKeys {
    pub signer: Option<SigningKey>,
    pub keys: KeySet,
    pub published: Jwks,
}

/// Where keys are read again after a rotation (Secrets Manager, deployed). Errors are
/// messages for the log, never key material.
#[async_trait::async_trait]
pub trait KeyLoader: Send + Sync {
    async fn load(&self) -> Result<LoadedKeys, String>;
}

/// A token whose `kid` is unknown triggers at most one reload of the keys this often, per
/// execution environment: a forged `kid` never costs a secret read per token.
pub const KEY_RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Keys are read again when they are this old: a rotation's new key signs without a
/// redeploy (verifiers learn it first: the rotation publishes it before it signs
/// anything), the JWKS serves it, and a key dropped from the public set stops verifying.
pub const KEY_MAX_AGE: Duration = Duration::from_secs(300);

struct Reloading {
    loader: Arc<dyn KeyLoader>,
    /// One reload at a time; the others wait for it and use its result.
    lock: tokio::sync::Mutex<()>,
    /// When the keys were last read (or a read last failed).
    loaded: std::sync::Mutex<Instant>,
    /// When an unknown `kid` last caused a read (`None`: never).
    unknown_kid: std::sync::Mutex<Option<Instant>>,
    reloads: AtomicU64,
}

/// Which rule asks for a read.
#[derive(Clone, Copy)]
enum Why {
    /// The keys are older than `KEY_MAX_AGE`.
    Age,
    /// A token named a `kid` this service does not know.
    UnknownKid,
}

pub struct TokenService {
    /// The issuer when the configuration leaves it to the API (see `TokenConfig::issuer`).
    learnt_issuer: std::sync::OnceLock<String>,
    state: RwLock<Arc<KeyState>>,
    reloading: Option<Reloading>,
    config: TokenConfig,
    /// The deployed API's region and stage, which an issuer may be learnt from.
    api: ApiConfig,
}

impl TokenService {
    pub fn new(config: TokenConfig, signer: SigningKey, keys: KeySet) -> Self {
        Self::with_keys(config, Some(signer), keys, Jwks::default())
    }

    /// A service that signs with `signer` (if any: a function that only verifies has none)
    /// and verifies with `keys`; `published` is the public part, for the JWKS.
    pub fn with_keys(config: TokenConfig, signer: Option<SigningKey>, keys: KeySet, published: Jwks) -> Self {
        crypto::install();
        let state = Self::state(&config, LoadedKeys { signer, keys, published });
        TokenService {
            learnt_issuer: Default::default(),
            state: RwLock::new(Arc::new(state)),
            reloading: None,
            config,
            api: ApiConfig::default(),
        }
    }

    /// As `with_keys`, with keys read by `loader` now, and again when a token names an
    /// unknown `kid` (at most once per `KEY_RELOAD_MIN_INTERVAL`) and when they are older
    /// than `KEY_MAX_AGE` at signing time.
    pub async fn reloadable(config: TokenConfig, loader: Arc<dyn KeyLoader>) -> Result<Self, String> {
        let loaded = loader.load().await?;
        Ok(Self::reloadable_with(config, loader, loaded))
    }

    /// As `reloadable`, with the keys the loader has just read.
    pub fn reloadable_with(config: TokenConfig, loader: Arc<dyn KeyLoader>, loaded: LoadedKeys) -> Self {
        crypto::install();
        let state = Self::state(&config, loaded);
        let reloading = Reloading {
            loader,
            lock: tokio::sync::Mutex::new(()),
            loaded: std::sync::Mutex::new(Instant::now()),
            unknown_kid: std::sync::Mutex::new(None),
            reloads: AtomicU64::new(0),
        };
        TokenService {
            learnt_issuer: Default::default(),
            state: RwLock::new(Arc::new(state)),
            reloading: Some(reloading),
            api: ApiConfig::default(),
            config,
        }
    }

    fn state(config: &TokenConfig, loaded: LoadedKeys) -> KeyState {
        let keys = loaded
            .keys
            .keys
            .into_iter()
            .map(|(kid, (algorithm, key))| {
                let mut validation = Validation::new(algorithm);
                // The issuer is compared after decoding (it may be learnt later).
                validation.iss = None;
                validation.set_audience(&[&config.audience]);
                validation.leeway = config.leeway_seconds;
                validation.validate_nbf = true;
                validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
                (kid, VerifyingKey { key, validation })
            })
            .collect();
        KeyState { signer: loaded.signer, keys, published: Arc::new(loaded.published) }
    }

    fn current(&self) -> Arc<KeyState> {
        self.state.read().map(|s| s.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The `iss` tokens carry and must carry: the configured one, or the one learnt from
    /// the API (`None` until then: nothing is signed and every token is refused).
    pub fn issuer(&self) -> Option<&str> {
        match self.config.issuer.as_str() {
            "" => self.learnt_issuer.get().map(String::as_str),
            fixed => Some(fixed),
        }
    }

    /// When the configuration leaves the issuer to the API: takes its default URL,
    /// `https://{api_id}.execute-api.{region}.amazonaws.com/{stage}`, from the first request
    /// (an execution environment serves one API). Without effect otherwise, or once learnt.
    pub fn learn_issuer(&self, api_id: &str, region: &str, stage: &str) {
        // Configured, or learnt already: nothing to do (this runs on every request).
        if !self.config.issuer.is_empty() || self.learnt_issuer.get().is_some() {
            return;
        }
        let part = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // Only from the deployed stage (API_STAGE): never from a console test invocation
        // ("test-invoke-stage") or another API's stage, which would stick for the life of
        // the execution environment.
        if self.api.stage.as_deref().is_some_and(|expected| expected != stage) {
            tracing::warn!(stage, "issuer not learnt from a request of another stage");
            return;
        }
        if part(api_id) && part(region) && part(stage) {
            let _ = self.learnt_issuer.set(format!("https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"));
        }
    }

    /// The deployed API this service's issuer may be learnt from (`ApiConfig`).
    pub fn for_api(mut self, api: ApiConfig) -> Self {
        self.api = api;
        self
    }

    /// The region the function runs in (`AWS_REGION`), for an issuer learnt from a request.
    pub fn region(&self) -> &str {
        &self.api.region
    }

    /// The public keys, as `GET /.well-known/jwks.json` answers them.
    pub fn jwks(&self) -> Arc<Jwks> {
        self.current().published.clone()
    }

    /// How many times the keys were read again since the cold start.
    pub fn reloads(&self) -> u64 {
        self.reloading.as_ref().map_or(0, |r| r.reloads.load(Ordering::Relaxed))
    }

    /// Reads the keys again when `why` says it is due; one reader at a time, and those
    /// that waited for it do not read again. A failed read keeps the keys in use (and
    /// counts as a read for both rules).
    async fn reload(&self, why: Why) {
        let Some(r) = &self.reloading else { return };
        let due = || match why {
            Why::Age => r.loaded.lock().map(|at| at.elapsed() >= KEY_MAX_AGE).unwrap_or(true),
            Why::UnknownKid => r
                .unknown_kid
                .lock()
                .map(|at| at.is_none_or(|at| at.elapsed() >= KEY_RELOAD_MIN_INTERVAL))
                .unwrap_or(true),
        };
        if !due() {
            return;
        }
        let _one = r.lock.lock().await;
        if !due() {
            return;
        }
        let now = Instant::now();
        if let Ok(mut at) = r.loaded.lock() {
            *at = now;
        }
        if let (Why::UnknownKid, Ok(mut at)) = (why, r.unknown_kid.lock()) {
            *at = Some(now);
        }
        r.reloads.fetch_add(1, Ordering::Relaxed);
        match r.loader.load().await {
            Ok(loaded) => {
                let state = Arc::new(Self::state(&self.config, loaded));
                if let Ok(mut current) = self.state.write() {
                    *current = state;
                }
                tracing::info!("signing keys read again");
            }
            Err(e) => tracing::warn!(error = %e, "signing keys could not be read again; the keys in use stay"),
        }
    }

    /// Keys older than `KEY_MAX_AGE` are read again (before signing, verifying, or
    /// publishing them).
    pub async fn keep_fresh(&self) {
        self.reload(Why::Age).await;
    }

    /// `verify_access`, reading the keys again first (rate-limited) when the token names a
    /// `kid` this service does not know: a key published by a rotation since the cold start.
    pub async fn verify_access_reloading(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.keys_for(token).await;
        self.verify_access(token)
    }

    /// As `verify_access_reloading`, for refresh tokens.
    pub async fn verify_refresh_reloading(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        self.keys_for(token).await;
        self.verify_refresh(token)
    }

    /// Before verifying `token`: old keys are read again (a key dropped from the public set
    /// after a compromise stops verifying within KEY_MAX_AGE), and so are keys that do not
    /// know the token's `kid` (rate-limited).
    async fn keys_for(&self, token: &str) {
        self.keep_fresh().await;
        if self.names_unknown_kid(token) {
            self.reload(Why::UnknownKid).await;
        }
    }

    fn names_unknown_kid(&self, token: &str) -> bool {
        if self.reloading.is_none() || token.len() > MAX_TOKEN_BYTES {
            return false;
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else { return false };
        header.kid.is_some_and(|kid| !self.current().keys.contains_key(&kid))
    }

    /// For functions that neither sign nor verify (logout reads the authorizer's context):
    /// the token settings without any key, so the key is never read. Signing fails and
    /// every token is refused.
    pub fn without_keys(config: TokenConfig) -> Self {
        let state = KeyState { signer: None, keys: HashMap::new(), published: Arc::new(Jwks::default()) };
        TokenService {
            learnt_issuer: Default::default(),
            state: RwLock::new(Arc::new(state)),
            reloading: None,
            config,
            api: ApiConfig::default(),
        }
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
        self.issue_pair_until(subject, sid, Amr::Password, now, u64::MAX)
    }

    /// As `issue_pair`, but neither token expires after `not_after` (epoch seconds): the
    /// end of the session's absolute lifetime. Refused if that is not after `now`.
    pub fn issue_pair_until(
        &self,
        subject: Subject<'_>,
        sid: &str,
        amr: Amr,
        now: u64,
        not_after: u64,
    ) -> Result<IssuedPair, TokenError> {
        if not_after <= now {
            return Err(TokenError::Expired);
        }
        let ids = PairIds {
            access_jti: Uuid::new_v4().to_string(),
            refresh_jti: Uuid::new_v4().to_string(),
            iat: now,
            access_exp: (now + self.config.access_ttl_seconds).min(not_after),
            refresh_exp: (now + self.config.refresh_ttl_seconds).min(not_after),
        };
        self.sign_pair(subject, sid, amr, &ids)
    }

    /// Signs the pair of these ids and times for `subject` in session `sid`: a new pair,
    /// or again one handed out before (a refresh retried within the grace window).
    pub fn sign_pair(&self, subject: Subject<'_>, sid: &str, amr: Amr, ids: &PairIds) -> Result<IssuedPair, TokenError> {
        // Nothing is signed before the issuer is known.
        let issuer = self.issuer().ok_or(TokenError::Invalid)?.to_string();
        let access = AccessClaims {
            iss: issuer.clone(),
            aud: self.config.audience.clone(),
            sub: subject.user_id.to_string(),
            username: subject.username.to_string(),
            roles: subject.roles.to_vec(),
            iat: ids.iat,
            nbf: ids.iat,
            exp: ids.access_exp,
            jti: ids.access_jti.clone(),
            sid: sid.to_string(),
            token_use: TokenUse::Access,
            amr: amr.claim(),
        };
        let refresh = RefreshClaims {
            iss: issuer,
            aud: self.config.audience.clone(),
            sub: subject.user_id.to_string(),
            iat: ids.iat,
            nbf: ids.iat,
            exp: ids.refresh_exp,
            jti: ids.refresh_jti.clone(),
            sid: sid.to_string(),
            token_use: TokenUse::Refresh,
            amr: amr.claim(),
        };
        Ok(IssuedPair { access_token: self.sign(&access)?, access, refresh_token: self.sign(&refresh)?, refresh })
    }

    /// Signs any claims with the current key. Public so tests can forge edge cases.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let state = self.current();
        let signer = state.signer.as_ref().ok_or(TokenError::Invalid)?;
        let mut header = Header::new(signer.algorithm);
        header.typ = Some("JWT".to_string());
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &signer.key).map_err(|e| {
            tracing::error!(kind = ?e.kind(), "token signing failed");
            TokenError::Invalid
        })
    }

    /// A known-device credential for `subject`, device `device_id`, from `now` (epoch
    /// seconds) for [`DEVICE_TTL_SECONDS`].
    pub fn issue_device(&self, subject: Subject<'_>, device_id: &str, now: u64) -> Result<String, TokenError> {
        let claims = DeviceClaims {
            iss: self.issuer().ok_or(TokenError::Invalid)?.to_string(),
            aud: self.config.audience.clone(),
            sub: subject.user_id.to_string(),
            username: subject.username.to_string(),
            iat: now,
            nbf: now,
            exp: now + DEVICE_TTL_SECONDS,
            jti: device_id.to_string(),
            token_use: TokenUse::Device,
        };
        self.sign(&claims)
    }

    pub fn verify_device(&self, token: &str) -> Result<DeviceClaims, TokenError> {
        self.verify(token, TokenUse::Device)
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
        let state = self.current();
        let key = header.kid.as_deref().and_then(|kid| state.keys.get(kid)).ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &key.validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            _ => TokenError::Invalid,
        })?;
        if data.claims.get("iss").and_then(|v| v.as_str()) != self.issuer() {
            return Err(TokenError::Invalid);
        }
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
