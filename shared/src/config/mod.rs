//! Environment → typed configuration, validated once at cold start: the one module that
//! reads the process environment.
//!
//! Every problem names the variable at fault, so a misconfigured deployment says what to
//! fix instead of failing on the first request. There is no default for any secret.
//! `Config` is what the use cases need; `per_function` holds the rest (browser, metrics,
//! logging, rotation, the authorizer's routes, the AWS clients' overrides).

mod mail;
pub mod per_function;
mod source;

use std::fmt;

use jsonwebtoken::Algorithm;

pub use mail::MailConfig;
use mail::require_verified_email;
pub use source::{ConfigError, ProcessEnv, Source, validate_secret};
pub(crate) use source::{Reader, err};

pub use per_function::{
    AccessRules, ApiConfig, BrowserConfig, LogConfig, MetricsConfig, RotationConfig, RouteRoles, aws_ca_bundle,
    aws_variable,
};

/// Shortest HMAC secret accepted: 256 bits, the HS256 output size (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// Clock leeway is capped by the contract.
pub const MAX_LEEWAY_SECONDS: u64 = 30;
/// OWASP minimum for argon2id: m = 19 MiB, t = 2, p = 1.
pub const MIN_ARGON2_MEMORY_KIB: u32 = 19_456;
pub const MIN_ARGON2_ITERATIONS: u32 = 2;

/// A secret (the HMAC signing secret, the factor key): given inline for local runs, or
/// kept in Secrets Manager and read at cold start.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The secret itself (local runs: `JWT_SECRET`, `MFA_KEY`).
    Secret(Vec<u8>),
    /// An AWS Secrets Manager secret id/ARN, read once per cold start (deployed).
    SecretsManager(String),
}

impl fmt::Debug for SecretSource {
    // Never print key material, not even in a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Secret(_) => f.write_str("Secret(<redacted>)"),
            SecretSource::SecretsManager(id) => write!(f, "SecretsManager({id})"),
        }
    }
}

/// Where a key document comes from: the environment (local runs) or a Secrets Manager
/// secret read at cold start (deployed).
#[derive(Clone, PartialEq, Eq)]
pub enum KeyDocument {
    Inline(String),
    SecretsManager(String),
}

impl fmt::Debug for KeyDocument {
    // A private key document is key material: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDocument::Inline(_) => f.write_str("Inline(<redacted>)"),
            KeyDocument::SecretsManager(id) => write!(f, "SecretsManager({id})"),
        }
    }
}

/// The keys of an asymmetric algorithm (RS256, ES256, EdDSA). A function that signs needs
/// the private key (JSON `{"kid", "alg", "pkcs8"}`); one that verifies needs the public
/// keys (a JWK Set: the current key and, during a rotation, the previous one). Which of the
/// two a function must have is checked at its cold start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AsymmetricKeys {
    pub private_key: Option<KeyDocument>,
    pub public_keys: Option<KeyDocument>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Argon2Config { memory_kib: MIN_ARGON2_MEMORY_KIB, iterations: MIN_ARGON2_ITERATIONS, parallelism: 1 }
    }
}

/// The failed-login throttle (see `auth::throttle`): after `max_failures` consecutive
/// failures of one (username, client) pair, that pair is refused for `base_lock_seconds`,
/// doubling with each further failure up to `max_lock_seconds`; at most
/// `name_max_failures` attempts of one username from all clients are verified per window
/// of `name_window_seconds`, after which the name is refused until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottleConfig {
    pub max_failures: u32,
    pub base_lock_seconds: u64,
    pub max_lock_seconds: u64,
    pub name_max_failures: u32,
    pub name_window_seconds: u64,
}

pub const LOGIN_MAX_FAILURES: u32 = 5;
pub const LOGIN_MAX_LOCK_SECONDS: u64 = 15 * 60;

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig {
            max_failures: LOGIN_MAX_FAILURES,
            base_lock_seconds: 30,
            max_lock_seconds: LOGIN_MAX_LOCK_SECONDS,
            name_max_failures: 50,
            name_window_seconds: 15 * 60,
        }
    }
}

/// Absolute session lifetime by default (ASVS 3.3.2): 90 days from the login that
/// started it, however often it is refreshed.
pub const DEFAULT_SESSION_MAX_LIFETIME_SECONDS: u64 = 90 * 86_400;

/// How long after a refresh token is spent the same client may present it again and get
/// the same successor pair (a retry after a lost answer, tabs refreshing together); 0: never.
pub const DEFAULT_REFRESH_REUSE_GRACE_SECONDS: u64 = 10;
pub const MAX_REFRESH_REUSE_GRACE_SECONDS: u64 = 60;

/// A verification link lives this long (the contract's 24 hours).
pub const VERIFY_TTL_SECONDS: u64 = 24 * 3600;

/// A password reset link lives this long by default (the contract's hour); the mail says so.
pub const DEFAULT_PASSWORD_RESET_TTL_SECONDS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The `iss` of tokens; empty: the API's own URL, `https://{api-id}.execute-api.
    /// {region}.amazonaws.com/{stage}`, learnt from the first request (`TokenService::learn_issuer`).
    pub issuer: String,
    pub audience: String,
    pub algorithm: Algorithm,
    pub key_id: String,
    pub access_ttl_seconds: u64,
    pub refresh_ttl_seconds: u64,
    pub leeway_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub users_table: String,
    pub revoked_tokens_table: String,
    pub sessions_table: String,
    pub tokens: TokenConfig,
    /// The HMAC secret (HS256/384/512); `None` with an asymmetric algorithm.
    pub signing_key: Option<SecretSource>,
    /// The key documents of an asymmetric algorithm; `None` with HMAC.
    pub asymmetric: Option<AsymmetricKeys>,
    pub argon2: Argon2Config,
    pub login_throttle: LoginThrottleConfig,
    /// After this long (from the session's start), refresh fails whatever the refresh
    /// token's own `exp`; no token of the session is issued to outlive it.
    pub session_max_lifetime_seconds: u64,
    /// See [`DEFAULT_REFRESH_REUSE_GRACE_SECONDS`].
    pub refresh_reuse_grace_seconds: u64,
    /// The deployed API (region, stage) an issuer left to the API is learnt from.
    pub api: ApiConfig,
    /// Mail (address verification, password reset): `None` without a sender address,
    /// and the routes that must send mail answer 501 `not_configured`.
    pub mail: Option<MailConfig>,
    /// Addresses are verified before sign-in (needs mail).
    pub require_verified_email: bool,
    /// A Cognito user pool to migrate users from at their first login here.
    pub legacy_cognito: Option<LegacyCognitoConfig>,
    /// Multi-factor authentication, in the functions that verify codes.
    pub mfa: Option<MfaConfig>,
}

/// Multi-factor authentication: the key that seals TOTP secrets at rest (`MFA_KEY`
/// locally, else the Secrets Manager secret `MFA_KEY_ARN` names: at least 32 bytes, never
/// rotated, as the secrets sealed under it would no longer open), and the table the
/// second step's `mfa_token`s live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaConfig {
    pub key: SecretSource,
    pub tokens_table: String,
}

/// The user pool and app client of a lazy migration (`LegacyCognitoUserPoolId`,
/// `LegacyCognitoClientId`): both, or neither (off). The pool's id names its region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCognitoConfig {
    pub user_pool_id: String,
    pub client_id: String,
}

pub const ENV_USERS_TABLE: &str = "USERS_TABLE";
pub const ENV_REVOKED_TOKENS_TABLE: &str = "REVOKED_TOKENS_TABLE";
pub const ENV_SESSIONS_TABLE: &str = "SESSIONS_TABLE";
pub const ENV_ISSUER: &str = "JWT_ISSUER";
pub const ENV_AUDIENCE: &str = "JWT_AUDIENCE";
pub const ENV_ALGORITHM: &str = "JWT_ALGORITHM";
pub const ENV_KEY_ID: &str = "JWT_KEY_ID";
pub const ENV_SECRET: &str = "JWT_SECRET";
pub const ENV_SECRET_ARN: &str = "JWT_SECRET_ARN";
pub const ENV_PRIVATE_KEY: &str = "JWT_PRIVATE_KEY";
pub const ENV_PRIVATE_KEY_ARN: &str = "JWT_PRIVATE_KEY_ARN";
pub const ENV_PUBLIC_KEYS: &str = "JWT_PUBLIC_KEYS";
pub const ENV_PUBLIC_KEYS_ARN: &str = "JWT_PUBLIC_KEYS_ARN";
pub const ENV_ACCESS_TTL: &str = "ACCESS_TOKEN_TTL_SECONDS";
pub const ENV_REFRESH_TTL: &str = "REFRESH_TOKEN_TTL_SECONDS";
pub const ENV_LEEWAY: &str = "JWT_LEEWAY_SECONDS";
pub const ENV_ARGON2_MEMORY: &str = "ARGON2_MEMORY_KIB";
pub const ENV_ARGON2_ITERATIONS: &str = "ARGON2_ITERATIONS";
pub const ENV_ARGON2_PARALLELISM: &str = "ARGON2_PARALLELISM";
pub const ENV_LOGIN_LOCK_SECONDS: &str = "LOGIN_LOCK_SECONDS";
pub const ENV_LOGIN_NAME_MAX_FAILURES: &str = "LOGIN_NAME_MAX_FAILURES";
pub const ENV_LOGIN_NAME_WINDOW_SECONDS: &str = "LOGIN_NAME_WINDOW_SECONDS";
pub const ENV_SESSION_MAX_LIFETIME: &str = "SESSION_MAX_LIFETIME_SECONDS";
pub const ENV_REFRESH_REUSE_GRACE: &str = "REFRESH_REUSE_GRACE_SECONDS";
pub const ENV_KEY_ROTATION_DAYS: &str = "KEY_ROTATION_DAYS";
pub const ENV_EMAIL_FROM: &str = "EMAIL_FROM";
pub const ENV_APP_URL: &str = "APP_URL";
pub const ENV_TOKENS_TABLE: &str = "TOKENS_TABLE";
pub const ENV_OUTBOX_TABLE: &str = "OUTBOX_TABLE";
pub const ENV_REQUIRE_VERIFIED_EMAIL: &str = "REQUIRE_VERIFIED_EMAIL";
pub const ENV_PASSWORD_RESET_TTL: &str = "PASSWORD_RESET_TTL_SECONDS";
pub const ENV_LEGACY_COGNITO_USER_POOL_ID: &str = "LEGACY_COGNITO_USER_POOL_ID";
pub const ENV_LEGACY_COGNITO_CLIENT_ID: &str = "LEGACY_COGNITO_CLIENT_ID";
pub const ENV_MFA_KEY: &str = "MFA_KEY";
pub const ENV_MFA_KEY_ARN: &str = "MFA_KEY_ARN";

/// The factor key's variables: set only for the functions that open factor secrets
/// (`spec::FunctionSpec::factor_key`); every other function leaves `Config::mfa` unset.
pub const MFA_VARIABLES: [&str; 2] = [ENV_MFA_KEY, ENV_MFA_KEY_ARN];

/// Every variable `Config` reads.
pub const CONFIG_VARIABLES: [&str; 33] = [
    ENV_USERS_TABLE,
    ENV_REVOKED_TOKENS_TABLE,
    ENV_SESSIONS_TABLE,
    ENV_ISSUER,
    ENV_AUDIENCE,
    ENV_ALGORITHM,
    ENV_KEY_ID,
    ENV_SECRET,
    ENV_SECRET_ARN,
    ENV_PRIVATE_KEY,
    ENV_PRIVATE_KEY_ARN,
    ENV_PUBLIC_KEYS,
    ENV_PUBLIC_KEYS_ARN,
    ENV_ACCESS_TTL,
    ENV_REFRESH_TTL,
    ENV_LEEWAY,
    ENV_ARGON2_MEMORY,
    ENV_ARGON2_ITERATIONS,
    ENV_ARGON2_PARALLELISM,
    ENV_LOGIN_LOCK_SECONDS,
    ENV_LOGIN_NAME_MAX_FAILURES,
    ENV_LOGIN_NAME_WINDOW_SECONDS,
    ENV_SESSION_MAX_LIFETIME,
    ENV_REFRESH_REUSE_GRACE,
    ENV_KEY_ROTATION_DAYS,
    ENV_EMAIL_FROM,
    ENV_APP_URL,
    ENV_TOKENS_TABLE,
    ENV_OUTBOX_TABLE,
    ENV_REQUIRE_VERIFIED_EMAIL,
    ENV_PASSWORD_RESET_TTL,
    ENV_LEGACY_COGNITO_USER_POOL_ID,
    ENV_LEGACY_COGNITO_CLIENT_ID,
];

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Config, ConfigError> {
        let r = Reader(source);
        let algorithm = match r.optional(ENV_ALGORITHM).as_deref() {
            None | Some("HS256") => Algorithm::HS256,
            Some("HS384") => Algorithm::HS384,
            Some("HS512") => Algorithm::HS512,
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some("EdDSA") => Algorithm::EdDSA,
            Some(other) => {
                return Err(err(
                    ENV_ALGORITHM,
                    format!("must be HS256, HS384, HS512, RS256, ES256 or EdDSA, got {other:?}"),
                ));
            }
        };
        let key_id = r.optional(ENV_KEY_ID).unwrap_or_else(|| "k1".to_string());
        if key_id.len() > 64
            || !key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(err(ENV_KEY_ID, "must be 1-64 characters of A-Z a-z 0-9 . _ -"));
        }

        let hmac = matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        let (signing_key, asymmetric) = if hmac {
            let secret = r.secret(ENV_SECRET, ENV_SECRET_ARN)?.ok_or_else(|| {
                err(ENV_SECRET, format!("is required (or {ENV_SECRET_ARN}); there is no default secret"))
            })?;
            (Some(secret), None)
        } else {
            let document = |inline: &'static str, arn: &'static str| match (
                r.0.get(inline).filter(|s| !s.is_empty()),
                r.optional(arn),
            ) {
                (Some(_), Some(_)) => Err(err(inline, format!("set either {inline} or {arn}, not both"))),
                (Some(text), None) => Ok(Some(KeyDocument::Inline(text))),
                (None, Some(id)) => Ok(Some(KeyDocument::SecretsManager(id))),
                (None, None) => Ok(None),
            };
            let keys = AsymmetricKeys {
                private_key: document(ENV_PRIVATE_KEY, ENV_PRIVATE_KEY_ARN)?,
                public_keys: document(ENV_PUBLIC_KEYS, ENV_PUBLIC_KEYS_ARN)?,
            };
            (None, Some(keys))
        };

        let access_ttl_seconds = r.number(ENV_ACCESS_TTL, 900, 60, 86_400)?;
        let refresh_ttl_seconds = r.number(ENV_REFRESH_TTL, 30 * 86_400, 300, 365 * 86_400)?;
        if refresh_ttl_seconds <= access_ttl_seconds {
            return Err(err(ENV_REFRESH_TTL, format!("must be longer than {ENV_ACCESS_TTL}")));
        }
        let leeway_seconds = r.number(ENV_LEEWAY, 5, 0, MAX_LEEWAY_SECONDS)?;
        // The published set keeps the current and the previous key: a refresh token must
        // expire before its key is rotated out, two rotations after it was signed.
        // (CloudFormation cannot compare numbers, so the template cannot refuse this.)
        if let Some(days) = r.optional(ENV_KEY_ROTATION_DAYS).filter(|_| !hmac) {
            let days: u64 = days.trim().parse().map_err(|_| err(ENV_KEY_ROTATION_DAYS, "must be a number of days"))?;
            if days.saturating_mul(86_400) < refresh_ttl_seconds + leeway_seconds {
                return Err(err(
                    ENV_KEY_ROTATION_DAYS,
                    format!(
                        "{days} days is shorter than the refresh token lifetime plus the leeway \
                         ({refresh_ttl_seconds} + {leeway_seconds} s): tokens would outlive their key"
                    ),
                ));
            }
        }

        Ok(Config {
            users_table: r.required(ENV_USERS_TABLE)?,
            revoked_tokens_table: r.required(ENV_REVOKED_TOKENS_TABLE)?,
            sessions_table: r.required(ENV_SESSIONS_TABLE)?,
            tokens: TokenConfig {
                // Set but empty: the API's own URL, learnt from the first request (the
                // template cannot pass it: the API refers to the functions).
                issuer: match r.0.get(ENV_ISSUER) {
                    Some(v) if v.trim().is_empty() => String::new(),
                    _ => issuer_url(r.required(ENV_ISSUER)?)?,
                },
                audience: r.required(ENV_AUDIENCE)?,
                algorithm,
                key_id,
                access_ttl_seconds,
                refresh_ttl_seconds,
                leeway_seconds,
            },
            signing_key,
            asymmetric,
            argon2: Argon2Config {
                memory_kib: r.number(ENV_ARGON2_MEMORY, MIN_ARGON2_MEMORY_KIB, MIN_ARGON2_MEMORY_KIB, 1 << 21)?,
                iterations: r.number(ENV_ARGON2_ITERATIONS, MIN_ARGON2_ITERATIONS, MIN_ARGON2_ITERATIONS, 20)?,
                parallelism: r.number(ENV_ARGON2_PARALLELISM, 1, 1, 16)?,
            },
            login_throttle: LoginThrottleConfig {
                base_lock_seconds: r.number(
                    ENV_LOGIN_LOCK_SECONDS,
                    LoginThrottleConfig::default().base_lock_seconds,
                    1,
                    LOGIN_MAX_LOCK_SECONDS,
                )?,
                name_max_failures: r.number(
                    ENV_LOGIN_NAME_MAX_FAILURES,
                    LoginThrottleConfig::default().name_max_failures,
                    LOGIN_MAX_FAILURES,
                    10_000,
                )?,
                name_window_seconds: r.number(
                    ENV_LOGIN_NAME_WINDOW_SECONDS,
                    LoginThrottleConfig::default().name_window_seconds,
                    60,
                    86_400,
                )?,
                ..LoginThrottleConfig::default()
            },
            session_max_lifetime_seconds: r.number(
                ENV_SESSION_MAX_LIFETIME,
                DEFAULT_SESSION_MAX_LIFETIME_SECONDS,
                300,
                5 * 365 * 86_400,
            )?,
            refresh_reuse_grace_seconds: r.number(
                ENV_REFRESH_REUSE_GRACE,
                DEFAULT_REFRESH_REUSE_GRACE_SECONDS,
                0,
                MAX_REFRESH_REUSE_GRACE_SECONDS,
            )?,
            api: ApiConfig::from_source(source),
            mail: MailConfig::from_reader(&r)?,
            require_verified_email: require_verified_email(&r)?,
            legacy_cognito: legacy_cognito(&r)?,
            mfa: match r.secret(ENV_MFA_KEY, ENV_MFA_KEY_ARN)? {
                Some(key) => Some(MfaConfig { key, tokens_table: r.required(ENV_TOKENS_TABLE)? }),
                None => None,
            },
        })
    }
}

/// Both variables, or neither.
fn legacy_cognito(r: &Reader<'_>) -> Result<Option<LegacyCognitoConfig>, ConfigError> {
    match (r.optional(ENV_LEGACY_COGNITO_USER_POOL_ID), r.optional(ENV_LEGACY_COGNITO_CLIENT_ID)) {
        (None, None) => Ok(None),
        (Some(user_pool_id), Some(client_id)) => Ok(Some(LegacyCognitoConfig { user_pool_id, client_id })),
        (Some(_), None) => Err(err(ENV_LEGACY_COGNITO_CLIENT_ID, "is required with LEGACY_COGNITO_USER_POOL_ID")),
        (None, Some(_)) => Err(err(ENV_LEGACY_COGNITO_USER_POOL_ID, "is required with LEGACY_COGNITO_CLIENT_ID")),
    }
}

/// `https://…`, or `http://` on loopback (local runs), with no whitespace.
pub(crate) fn web_url(url: &str) -> bool {
    let https = url.strip_prefix("https://").is_some_and(|rest| !rest.is_empty());
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|base| {
        url.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'))
    });
    (https || loopback) && !url.contains(char::is_whitespace)
}

/// The issuer is a URL: discovery names where the keys are under it (OpenID's rule), and
/// nothing is ever built from a request's `Host`. `https://`, or `http://` on loopback for
/// local runs.
fn issuer_url(issuer: String) -> Result<String, ConfigError> {
    if web_url(&issuer) {
        return Ok(issuer);
    }
    Err(err(ENV_ISSUER, "must be empty (the API's own URL) or an https:// URL (http:// on loopback only)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn base() -> HashMap<String, String> {
        [
            (ENV_USERS_TABLE, "users"),
            (ENV_REVOKED_TOKENS_TABLE, "revoked"),
            (ENV_SESSIONS_TABLE, "sessions"),
            (ENV_ISSUER, "https://auth.example.com"),
            (ENV_AUDIENCE, "example-api"),
            (ENV_SECRET, SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn with(changes: &[(&str, Option<&str>)]) -> Result<Config, ConfigError> {
        let mut env = base();
        for (k, v) in changes {
            match v {
                Some(v) => env.insert(k.to_string(), v.to_string()),
                None => env.remove(*k),
            };
        }
        Config::from_source(&env)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = with(&[]).unwrap();
        assert_eq!(c.tokens.access_ttl_seconds, 900);
        assert_eq!(c.tokens.refresh_ttl_seconds, 30 * 86_400);
        assert_eq!(c.tokens.algorithm, Algorithm::HS256);
        assert!(c.tokens.leeway_seconds <= MAX_LEEWAY_SECONDS);
        assert_eq!(c.argon2, Argon2Config { memory_kib: 19_456, iterations: 2, parallelism: 1 });
        assert_eq!(c.signing_key, Some(SecretSource::Secret(SECRET.as_bytes().to_vec())));
        assert_eq!(c.asymmetric, None);
        assert_eq!(c.login_throttle, LoginThrottleConfig::default());
        assert_eq!(c.session_max_lifetime_seconds, 90 * 86_400);
    }

    #[test]
    fn throttle_and_session_lifetime_are_configurable_within_bounds() {
        let c = with(&[
            (ENV_LOGIN_NAME_MAX_FAILURES, Some("100")),
            (ENV_LOGIN_NAME_WINDOW_SECONDS, Some("3600")),
            (ENV_SESSION_MAX_LIFETIME, Some("86400")),
        ])
        .unwrap();
        assert_eq!((c.login_throttle.name_max_failures, c.login_throttle.name_window_seconds), (100, 3600));
        assert_eq!(c.session_max_lifetime_seconds, 86_400);
        // The name-wide ceiling can never be below the per-client one.
        assert_eq!(
            with(&[(ENV_LOGIN_NAME_MAX_FAILURES, Some("4"))]).unwrap_err().variable,
            ENV_LOGIN_NAME_MAX_FAILURES
        );
        assert_eq!(with(&[(ENV_SESSION_MAX_LIFETIME, Some("0"))]).unwrap_err().variable, ENV_SESSION_MAX_LIFETIME);
        // The key rotation period must outlast a refresh token (asymmetric keys only).
        let rs256 = [
            (ENV_ALGORITHM, Some("RS256")),
            (ENV_PRIVATE_KEY_ARN, Some("arn:k")),
            (ENV_PUBLIC_KEYS_ARN, Some("arn:p")),
        ];
        let rotation = |days: &'static str| with(&[rs256.as_slice(), &[(ENV_KEY_ROTATION_DAYS, Some(days))]].concat());
        // The defaults: refresh tokens of 30 days, a leeway of 5 s.
        assert!(rotation("31").is_ok());
        assert_eq!(rotation("30").unwrap_err().variable, ENV_KEY_ROTATION_DAYS, "5 s short");
        assert_eq!(rotation("29").unwrap_err().variable, ENV_KEY_ROTATION_DAYS);
        assert_eq!(rotation("x").unwrap_err().variable, ENV_KEY_ROTATION_DAYS);
        // HMAC keys do not rotate: the setting is not read.
        assert!(with(&[(ENV_KEY_ROTATION_DAYS, Some("1"))]).is_ok());
        // Mail: off without a sender; with one, the app URL and the tables are required.
        assert_eq!(with(&[]).unwrap().mail, None);
        let mail = [
            (ENV_EMAIL_FROM, Some("no-reply@example.com")),
            (ENV_APP_URL, Some("https://app.example.com")),
            (ENV_TOKENS_TABLE, Some("t")),
            (ENV_OUTBOX_TABLE, Some("o")),
        ];
        assert_eq!(with(&mail).unwrap().mail.unwrap().app_url, "https://app.example.com");
        let changed = |k: &'static str, v: Option<&'static str>| {
            let mut m = mail.to_vec();
            m.retain(|(name, _)| *name != k);
            m.push((k, v));
            with(&m)
        };
        assert_eq!(changed(ENV_APP_URL, None).unwrap_err().variable, ENV_APP_URL);
        assert_eq!(changed(ENV_APP_URL, Some("http://app.example.com")).unwrap_err().variable, ENV_APP_URL);
        assert!(changed(ENV_APP_URL, Some("http://127.0.0.1:3001")).is_ok());
        assert_eq!(changed(ENV_EMAIL_FROM, Some("not an address")).unwrap_err().variable, ENV_EMAIL_FROM);
        assert_eq!(changed(ENV_OUTBOX_TABLE, None).unwrap_err().variable, ENV_OUTBOX_TABLE);
        // A lazy migration from Cognito: both variables or neither.
        assert_eq!(with(&[]).unwrap().legacy_cognito, None);
        let pool = (ENV_LEGACY_COGNITO_USER_POOL_ID, Some("us-east-1_abc"));
        let client = (ENV_LEGACY_COGNITO_CLIENT_ID, Some("client123"));
        let both = with(&[pool, client]).unwrap().legacy_cognito.unwrap();
        assert_eq!((both.user_pool_id.as_str(), both.client_id.as_str()), ("us-east-1_abc", "client123"));
        assert_eq!(with(&[pool]).unwrap_err().variable, ENV_LEGACY_COGNITO_CLIENT_ID);
        assert_eq!(with(&[client]).unwrap_err().variable, ENV_LEGACY_COGNITO_USER_POOL_ID);
        // A reset link: an hour unless set, from five minutes to a day.
        assert_eq!(with(&mail).unwrap().mail.unwrap().reset_ttl_seconds, 3600);
        assert_eq!(changed(ENV_PASSWORD_RESET_TTL, Some("900")).unwrap().mail.unwrap().reset_ttl_seconds, 900);
        for bad in ["299", "86401", "1h"] {
            assert_eq!(changed(ENV_PASSWORD_RESET_TTL, Some(bad)).unwrap_err().variable, ENV_PASSWORD_RESET_TTL);
        }
        // Verification before sign-in: off by default, and only with a sender.
        assert!(!with(&mail).unwrap().require_verified_email);
        assert!(changed(ENV_REQUIRE_VERIFIED_EMAIL, Some("true")).unwrap().require_verified_email);
        let no_mail = with(&[(ENV_REQUIRE_VERIFIED_EMAIL, Some("true"))]).unwrap_err();
        assert_eq!(no_mail.variable, ENV_REQUIRE_VERIFIED_EMAIL);
        assert_eq!(changed(ENV_REQUIRE_VERIFIED_EMAIL, Some("yes")).unwrap_err().variable, ENV_REQUIRE_VERIFIED_EMAIL);
        // The refresh grace: 10 s unless set, 0 turns it off, at most a minute.
        assert_eq!(with(&[]).unwrap().refresh_reuse_grace_seconds, 10);
        assert_eq!(with(&[(ENV_REFRESH_REUSE_GRACE, Some("0"))]).unwrap().refresh_reuse_grace_seconds, 0);
        assert_eq!(with(&[(ENV_REFRESH_REUSE_GRACE, Some("61"))]).unwrap_err().variable, ENV_REFRESH_REUSE_GRACE);
    }

    #[test]
    fn the_factor_key_is_inline_or_by_arn_long_enough_and_needs_the_tokens_table() {
        assert_eq!(with(&[]).unwrap().mfa, None);
        let key = "k".repeat(32);
        let inline = with(&[(ENV_MFA_KEY, Some(&key)), (ENV_TOKENS_TABLE, Some("tokens"))]).unwrap().mfa.unwrap();
        assert_eq!(
            inline,
            MfaConfig { key: SecretSource::Secret(key.clone().into_bytes()), tokens_table: "tokens".into() }
        );
        assert!(!format!("{inline:?}").contains(&key), "the key is never printed");
        let arn = with(&[(ENV_MFA_KEY_ARN, Some("arn:mfa")), (ENV_TOKENS_TABLE, Some("tokens"))]).unwrap().mfa.unwrap();
        assert_eq!(arn.key, SecretSource::SecretsManager("arn:mfa".into()));
        let short = with(&[(ENV_MFA_KEY, Some("short")), (ENV_TOKENS_TABLE, Some("tokens"))]).unwrap_err();
        assert_eq!(short.variable, ENV_MFA_KEY);
        let both = [(ENV_MFA_KEY, Some(key.as_str())), (ENV_MFA_KEY_ARN, Some("arn")), (ENV_TOKENS_TABLE, Some("t"))];
        assert_eq!(with(&both).unwrap_err().variable, ENV_MFA_KEY);
        assert_eq!(with(&[(ENV_MFA_KEY, Some(&key))]).unwrap_err().variable, ENV_TOKENS_TABLE);
    }

    #[test]
    fn each_missing_variable_is_named() {
        for var in [ENV_USERS_TABLE, ENV_REVOKED_TOKENS_TABLE, ENV_SESSIONS_TABLE, ENV_ISSUER, ENV_AUDIENCE, ENV_SECRET]
        {
            let e = with(&[(var, None)]).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.to_string().contains(var), "{e}");
        }
        // Set but blank is a choice, not an omission: the API's own URL (the template's
        // default, which cannot name the API the functions belong to).
        let blank = with(&[(ENV_ISSUER, Some("  "))]).unwrap();
        assert_eq!(blank.tokens.issuer, "");
    }

    #[test]
    fn the_issuer_is_an_https_url_or_loopback() {
        for ok in
            ["https://auth.example.com", "https://auth.example.com/v1", "http://127.0.0.1:3000", "http://localhost"]
        {
            assert_eq!(with(&[(ENV_ISSUER, Some(ok))]).unwrap().tokens.issuer, ok);
        }
        for bad in ["jwt-auth", "http://auth.example.com", "https://", "ftp://x", "http://127.0.0.1.evil.example"] {
            assert_eq!(with(&[(ENV_ISSUER, Some(bad))]).unwrap_err().variable, ENV_ISSUER, "{bad}");
        }
    }

    #[test]
    fn there_is_no_default_secret_and_short_ones_are_refused() {
        let e = with(&[(ENV_SECRET, None)]).unwrap_err();
        assert!(e.problem.contains("no default"));
        let short = "x".repeat(31);
        let e = with(&[(ENV_SECRET, Some(&short))]).unwrap_err();
        assert_eq!(e.variable, ENV_SECRET);
        assert!(!e.to_string().contains(&short), "error must not echo the secret");
        assert!(with(&[(ENV_SECRET, Some(&"x".repeat(32)))]).is_ok());
    }

    #[test]
    fn secret_arn_is_an_alternative_but_not_both() {
        let c = with(&[(ENV_SECRET, None), (ENV_SECRET_ARN, Some("arn:aws:secretsmanager:eu-west-1:1:secret:jwt"))])
            .unwrap();
        assert_eq!(
            c.signing_key,
            Some(SecretSource::SecretsManager("arn:aws:secretsmanager:eu-west-1:1:secret:jwt".into()))
        );
        assert!(with(&[(ENV_SECRET_ARN, Some("arn"))]).is_err());
    }

    #[test]
    fn weak_or_malformed_numbers_are_refused() {
        assert_eq!(with(&[(ENV_ARGON2_MEMORY, Some("4096"))]).unwrap_err().variable, ENV_ARGON2_MEMORY);
        assert_eq!(with(&[(ENV_ARGON2_ITERATIONS, Some("1"))]).unwrap_err().variable, ENV_ARGON2_ITERATIONS);
        assert_eq!(with(&[(ENV_ACCESS_TTL, Some("15m"))]).unwrap_err().variable, ENV_ACCESS_TTL);
        assert_eq!(with(&[(ENV_LEEWAY, Some("31"))]).unwrap_err().variable, ENV_LEEWAY);
        assert_eq!(
            with(&[(ENV_REFRESH_TTL, Some("600")), (ENV_ACCESS_TTL, Some("900"))]).unwrap_err().variable,
            ENV_REFRESH_TTL
        );
        assert_eq!(with(&[(ENV_ALGORITHM, Some("none"))]).unwrap_err().variable, ENV_ALGORITHM);
        assert_eq!(with(&[(ENV_KEY_ID, Some("../../etc/passwd"))]).unwrap_err().variable, ENV_KEY_ID);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let c = with(&[]).unwrap();
        assert!(!format!("{c:?}").contains(SECRET));
    }
}
