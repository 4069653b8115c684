//! Cold-start wiring shared by every function: configuration, AWS clients, keys and the
//! use cases, built once per execution environment. Errors name what to fix and never
//! contain key material.

use std::sync::Arc;

use crate::auth::Auth;
use crate::config::{Config, ConfigError, SigningKeySource, validate_secret};
use crate::password::PasswordHasher;
use crate::store::DynamoStore;
use crate::tokens::TokenService;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "could not read the signing secret from Secrets Manager ({0}); check the secret exists and the function may read it"
    )]
    Secret(String),
    #[error("password hasher: {0}")]
    Hasher(String),
}

/// Logs as JSON lines to CloudWatch (or the terminal), level from `RUST_LOG`/`AWS_LAMBDA_LOG_LEVEL`.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

async fn signing_secret(source: &SigningKeySource, sdk: &aws_config::SdkConfig) -> Result<Vec<u8>, StartupError> {
    match source {
        SigningKeySource::Secret(bytes) => Ok(bytes.clone()),
        SigningKeySource::SecretsManager(id) => {
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let out = client.get_secret_value().secret_id(id).send().await.map_err(|e| {
                // The error code only: never the response body.
                let code =
                    aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e).unwrap_or("unreachable").to_string();
                StartupError::Secret(code)
            })?;
            let secret = out
                .secret_string()
                .map(|s| s.as_bytes().to_vec())
                .or_else(|| out.secret_binary().map(|b| b.as_ref().to_vec()));
            let secret = secret.ok_or_else(|| StartupError::Secret("empty secret".into()))?;
            Ok(validate_secret(crate::config::ENV_SECRET_ARN, secret)?)
        }
    }
}

/// Everything a function needs, from the environment.
pub async fn auth_from_env() -> Result<Auth, StartupError> {
    let config = Config::from_env()?;
    let sdk = crate::aws::load_sdk_config().await;
    auth_from_config(&config, &sdk).await
}

pub async fn auth_from_config(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Auth, StartupError> {
    let secret = signing_secret(&config.signing_key, sdk).await?;
    let tokens = TokenService::from_secret(config.tokens.clone(), &secret);
    let passwords = PasswordHasher::new(config.argon2).map_err(|e| StartupError::Hasher(e.to_string()))?;
    let store = DynamoStore::new(crate::aws::dynamodb_client(sdk), &config.users_table, &config.revoked_tokens_table);
    Ok(Auth::new(Arc::new(store), Arc::new(tokens), Arc::new(passwords)).with_login_throttle(config.login_throttle))
}
