//! Cold-start wiring shared by every function: configuration, AWS clients, keys and the
//! use cases, built once per execution environment. Errors name what to fix and never
//! contain key material.

use std::sync::Arc;

use lambda_runtime::tracing::subscriber::filter::{LevelFilter, Targets};

use crate::auth::Auth;
use crate::config::{
    AsymmetricKeys, Config, ConfigError, ENV_MFA_KEY, ENV_MFA_KEY_ARN, ENV_PRIVATE_KEY, ENV_PUBLIC_KEYS, KeyDocument,
    SecretSource, validate_secret,
};
use crate::mfa::sealed::FactorKey;
use crate::password::PasswordHasher;
use crate::store::DynamoStore;
use crate::tokens::{Jwks, KeyLoader, KeySet, LoadedKeys, PrivateKey, TokenService};
use jsonwebtoken::Algorithm;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "could not read the signing secret from Secrets Manager ({0}); check the secret exists and the function may read it"
    )]
    Secret(String),
    #[error("{0} (or its _ARN form): {1}")]
    Key(&'static str, String),
    #[error("password hasher: {0}")]
    Hasher(String),
    /// The HTTPS client's trust store (`AWS_CA_BUNDLE`).
    #[error("{0}")]
    Tls(String),
}

/// Logs to stdout (CloudWatch on Lambda) as text, or as JSON lines when Lambda's
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON`. The filter is Lambda's `AWS_LAMBDA_LOG_LEVEL` if set,
/// else `RUST_LOG` (a level, or `target=level` directives such as `info,aws_smithy_runtime=debug`),
/// else `info`. lambda_runtime's default subscriber does the same through `EnvFilter`, which
/// links a regex engine into every binary for span and field filters nobody here uses.
pub fn init_logging() {
    use lambda_runtime::tracing::subscriber::{self, layer::SubscriberExt as _};
    let config = crate::config::LogConfig::from_env();
    let filter = log_filter(config.lambda_level, config.rust_log);
    let text = subscriber::fmt().with_target(false).without_time().with_writer(std::io::stdout);
    let installed = if config.json {
        tracing::subscriber::set_global_default(text.json().finish().with(filter))
    } else {
        tracing::subscriber::set_global_default(text.finish().with(filter))
    };
    // Only fails if a subscriber is already installed, which then keeps logging.
    let _ = installed;
}

fn log_filter(lambda_level: Option<String>, rust_log: Option<String>) -> Targets {
    let parse = |s: &str| {
        // Lambda's levels include FATAL, which tracing calls ERROR.
        let s = if s.trim().eq_ignore_ascii_case("fatal") { "error" } else { s.trim() };
        s.parse::<Targets>().ok().filter(|_| !s.is_empty())
    };
    // As with EnvFilter's default directive: targets not named log at `info`.
    let with_default = |t: Targets| if t.default_level().is_some() { t } else { t.with_default(LevelFilter::INFO) };
    lambda_level
        .as_deref()
        .and_then(parse)
        .or_else(|| rust_log.as_deref().and_then(parse))
        .map_or_else(|| Targets::new().with_default(LevelFilter::INFO), with_default)
}

/// A secret's current value from Secrets Manager (its string, else its binary).
async fn read_secret(id: &str, sdk: &aws_config::SdkConfig) -> Result<Vec<u8>, StartupError> {
    let client = crate::aws::secretsmanager_client(sdk);
    // The current version, named: the stage a rotation moves (emulators may keep serving
    // an older default version when none is named).
    let out = client.get_secret_value().secret_id(id).version_stage("AWSCURRENT").send().await.map_err(|e| {
        // The error code only: never the response body.
        let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e).unwrap_or("unreachable").to_string();
        StartupError::Secret(code)
    })?;
    let secret =
        out.secret_string().map(|s| s.as_bytes().to_vec()).or_else(|| out.secret_binary().map(|b| b.as_ref().to_vec()));
    secret.ok_or_else(|| StartupError::Secret("empty secret".into()))
}

async fn signing_secret(source: &SecretSource, sdk: &aws_config::SdkConfig) -> Result<Vec<u8>, StartupError> {
    match source {
        SecretSource::Secret(bytes) => Ok(bytes.clone()),
        SecretSource::SecretsManager(id) => {
            Ok(validate_secret(crate::config::ENV_SECRET_ARN, read_secret(id, sdk).await?)?)
        }
    }
}

async fn key_document(
    document: &KeyDocument,
    variable: &'static str,
    sdk: &aws_config::SdkConfig,
) -> Result<zeroize::Zeroizing<String>, StartupError> {
    let text = match document {
        KeyDocument::Inline(text) => text.clone(),
        KeyDocument::SecretsManager(id) => String::from_utf8(read_secret(id, sdk).await?)
            .map_err(|_| StartupError::Key(variable, "the secret is not UTF-8 text".into()))?,
    };
    Ok(zeroize::Zeroizing::new(text))
}

/// The keys of an asymmetric algorithm: the private key if the function signs, and the
/// public keys it verifies with (the published set, plus its own key's public half).
/// Nothing but the signing functions ever parses a private key.
async fn asymmetric_keys(
    documents: &AsymmetricKeys,
    algorithm: Algorithm,
    sdk: &aws_config::SdkConfig,
    keys: Keys,
) -> Result<LoadedKeys, StartupError> {
    let private = match (keys, &documents.private_key) {
        (Keys::SignAndVerify, Some(document)) => {
            let text = key_document(document, ENV_PRIVATE_KEY, sdk).await?;
            let key = PrivateKey::from_json(&text).map_err(|e| StartupError::Key(ENV_PRIVATE_KEY, e.to_string()))?;
            if key.algorithm() != algorithm {
                // SigningAlgorithm changed: the next rotation makes a key of the new one;
                // until then the current key signs (each key pins its own algorithm).
                tracing::warn!(key = ?key.algorithm(), configured = ?algorithm, "signing key of another algorithm until the next rotation");
            }
            Some(key)
        }
        (Keys::SignAndVerify, None) => {
            return Err(StartupError::Key(ENV_PRIVATE_KEY, "is required for a function that signs tokens".into()));
        }
        _ => None,
    };
    let mut published = match &documents.public_keys {
        Some(document) => serde_json::from_str::<Jwks>(&key_document(document, ENV_PUBLIC_KEYS, sdk).await?)
            .map_err(|e| StartupError::Key(ENV_PUBLIC_KEYS, format!("not a JWK Set: {e}")))?,
        None => Jwks::default(),
    };
    if let Some(key) = &private {
        let own = key.public_jwk().map_err(|e| StartupError::Key(ENV_PRIVATE_KEY, e.to_string()))?;
        match published.keys.iter().find(|k| k.kid == own.kid) {
            None => published.keys.insert(0, own),
            Some(listed) if *listed == own => {}
            // The same kid for another key: its tokens would verify nowhere.
            Some(_) => {
                let message = format!("key {:?} is published with another public key than the private key's", own.kid);
                return Err(StartupError::Key(ENV_PUBLIC_KEYS, message));
            }
        }
    }
    let mut set = KeySet::new();
    for jwk in &published.keys {
        set = set.with_jwk(jwk).ok_or_else(|| {
            StartupError::Key(ENV_PUBLIC_KEYS, format!("key {:?} is not an RS256, ES256 or EdDSA signing key", jwk.kid))
        })?;
    }
    if published.keys.is_empty() {
        return Err(StartupError::Key(ENV_PUBLIC_KEYS, "is required: no public key to verify tokens with".into()));
    }
    Ok(LoadedKeys { signer: private.map(|k| k.signing_key()), keys: set, published })
}

/// Reads the key documents again from where they live (after a rotation).
struct DocumentLoader {
    documents: AsymmetricKeys,
    algorithm: Algorithm,
    sdk: aws_config::SdkConfig,
    keys: Keys,
}

#[async_trait::async_trait]
impl KeyLoader for DocumentLoader {
    async fn load(&self) -> Result<LoadedKeys, String> {
        asymmetric_keys(&self.documents, self.algorithm, &self.sdk, self.keys).await.map_err(|e| e.to_string())
    }
}

/// The token service of an asymmetric algorithm. Keys kept in Secrets Manager are read
/// again when they may have rotated; keys given inline never change.
async fn asymmetric_tokens(
    config: &Config,
    sdk: &aws_config::SdkConfig,
    keys: Keys,
) -> Result<TokenService, StartupError> {
    let documents = config.asymmetric.clone().unwrap_or_default();
    let algorithm = config.tokens.algorithm;
    let stored = [&documents.private_key, &documents.public_keys]
        .iter()
        .any(|d| matches!(d, Some(KeyDocument::SecretsManager(_))));
    let loaded = asymmetric_keys(&documents, algorithm, sdk, keys).await?;
    if !stored {
        return Ok(TokenService::with_keys(config.tokens.clone(), loaded.signer, loaded.keys, loaded.published));
    }
    let loader = DocumentLoader { documents, algorithm, sdk: sdk.clone(), keys };
    Ok(TokenService::reloadable_with(config.tokens.clone(), Arc::new(loader), loaded))
}

pub use crate::spec::Keys;

/// Everything a function needs, from the environment.
pub async fn auth_from_env() -> Result<Auth, StartupError> {
    auth_from_env_with(Keys::SignAndVerify, false).await
}

/// With `keys`, and the factor key if `factor_key` (`FunctionSpec::factor_key`).
pub async fn auth_from_env_with(keys: Keys, factor_key: bool) -> Result<Auth, StartupError> {
    let config = Config::from_env()?;
    let sdk = crate::aws::load_sdk_config().await.map_err(StartupError::Tls)?;
    auth_from_config(&config, &sdk, keys, factor_key).await
}

/// The key that seals factor secrets, where the configuration has one.
async fn factor_key(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Option<Arc<FactorKey>>, StartupError> {
    let Some(mfa) = &config.mfa else { return Ok(None) };
    let (secret, variable) = match &mfa.key {
        SecretSource::Secret(bytes) => (zeroize::Zeroizing::new(bytes.clone()), ENV_MFA_KEY),
        SecretSource::SecretsManager(id) => {
            let read = zeroize::Zeroizing::new(read_secret(id, sdk).await?);
            (zeroize::Zeroizing::new(validate_secret(ENV_MFA_KEY_ARN, read.to_vec())?), ENV_MFA_KEY_ARN)
        }
    };
    let key = FactorKey::derive(&secret).map_err(|e| StartupError::Key(variable, e.to_string()))?;
    Ok(Some(Arc::new(key)))
}

pub async fn auth_from_config(
    config: &Config,
    sdk: &aws_config::SdkConfig,
    keys: Keys,
    with_factor_key: bool,
) -> Result<Auth, StartupError> {
    let dynamodb = crate::aws::dynamodb_client(sdk);
    // The store's connection opens while the keys are read: a cold start waits for the
    // slower of the two, not their sum.
    let tokens = async {
        Ok::<_, StartupError>(match (keys, &config.signing_key) {
            (Keys::None | Keys::Rotate, _) | (Keys::Public, Some(_)) => {
                TokenService::without_keys(config.tokens.clone())
            }
            // HMAC: the one secret both signs and verifies.
            (_, Some(secret)) => TokenService::from_secret(config.tokens.clone(), &signing_secret(secret, sdk).await?),
            (_, None) => asymmetric_tokens(config, sdk, keys).await?,
        })
    };
    // (Not for the JWKS function, the one that never calls it.)
    let warm_up = async {
        if keys != Keys::Public {
            crate::aws::warm_up(&dynamodb).await;
        }
    };
    let factor = async {
        match with_factor_key {
            true => factor_key(config, sdk).await,
            false => Ok(None),
        }
    };
    let (tokens, (), factor) = tokio::join!(tokens, warm_up, factor);
    let tokens = tokens?.for_api(config.api.clone());
    let passwords = PasswordHasher::new(config.argon2).map_err(|e| StartupError::Hasher(e.to_string()))?;
    let mut store =
        DynamoStore::new(dynamodb, &config.users_table, &config.revoked_tokens_table, &config.sessions_table);
    if let Some(mail) = &config.mail {
        store = store.with_mail_tables(&mail.tokens_table, &mail.outbox_table);
    }
    if let Some(mfa) = config.mfa.as_ref().filter(|_| with_factor_key) {
        store = store.with_tokens_table(&mfa.tokens_table);
    }
    let legacy = config.legacy_cognito.as_ref().map(|c| {
        let client = crate::aws::cognito_client(sdk, &c.user_pool_id);
        Arc::new(crate::aws::cognito::CognitoDirectory::new(client, &c.client_id))
            as Arc<dyn crate::auth::legacy::LegacyDirectory>
    });
    Ok(Auth::new(Arc::new(store), Arc::new(tokens), Arc::new(passwords))
        .with_legacy_directory(legacy)
        .with_factor_key(factor?)
        .with_mail(config.mail.as_ref())
        .with_required_verification(config.require_verified_email)
        .with_login_throttle(config.login_throttle)
        .with_session_max_lifetime(config.session_max_lifetime_seconds)
        .with_refresh_reuse_grace(config.refresh_reuse_grace_seconds))
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use lambda_runtime::tracing::Level;

    fn allows(filter: &super::Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn lambda_level_wins_over_rust_log() {
        let f = log_filter(Some("WARN".into()), Some("debug".into()));
        assert!(allows(&f, "shared::auth", Level::WARN));
        assert!(!allows(&f, "shared::auth", Level::INFO));
    }

    #[test]
    fn rust_log_directives_filter_per_target() {
        let f = log_filter(None, Some("warn,aws_smithy_runtime=debug".into()));
        assert!(allows(&f, "aws_smithy_runtime::client", Level::DEBUG));
        assert!(!allows(&f, "shared::auth", Level::INFO));
        assert!(allows(&f, "shared::auth", Level::WARN));
        // Naming only some targets leaves the rest at info, not silent.
        let f = log_filter(None, Some("aws_smithy_runtime=debug".into()));
        assert!(allows(&f, "shared::auth", Level::INFO) && !allows(&f, "shared::auth", Level::DEBUG));
    }

    #[test]
    fn fatal_means_errors_only_and_nonsense_means_info() {
        let f = log_filter(Some("FATAL".into()), None);
        assert!(allows(&f, "x", Level::ERROR) && !allows(&f, "x", Level::WARN));
        for bad in [Some("loud".to_string()), Some(String::new()), None] {
            let f = log_filter(bad, None);
            assert!(allows(&f, "x", Level::INFO) && !allows(&f, "x", Level::DEBUG));
        }
    }
}
