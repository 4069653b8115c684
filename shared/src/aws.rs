//! AWS SDK setup shared by every function: built once per cold start.
//!
//! Lambda hands a function its region and credentials in environment variables, so that is
//! the only place they are read (`AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; `sam local invoke` sets the same). The
//! SDK's default chain would also read profile files and ask STS, ECS and the instance
//! metadata service, none of which exist for a Lambda function, and linking it costs
//! about 0.5 MB of every binary. Local emulators are reached through the SDK's standard
//! endpoint variables (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
//! `AWS_ENDPOINT_URL`).
//!
//! HTTPS is rustls on `ring`, the same crypto library that signs and verifies the JWTs.
//!
//! Timeouts and retries are explicit so the worst case fits well inside API Gateway's
//! 29 s integration limit and the functions' own timeout: per attempt 2 s, at most 3
//! attempts, 6 s per operation in all.

use std::time::Duration;

use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
use aws_config::meta::region::ProvideRegion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

pub async fn load_sdk_config() -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build();
    let retries = RetryConfig::standard().with_max_attempts(3).with_max_backoff(Duration::from_millis(500));
    let https =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    // No region is a configuration error the first call reports (the SDK names it).
    let region = EnvironmentVariableRegionProvider::new().region().await;
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .http_client(https)
        .timeout_config(timeouts)
        .retry_config(retries)
        .build()
}

/// The endpoint override for one service, as the SDK's own loader would find it:
/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true.
fn endpoint_url(service_variable: &str) -> Option<String> {
    endpoint_url_from(service_variable, |name| std::env::var(name).ok())
}

fn endpoint_url_from(service_variable: &str, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let var = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    if var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    var(service_variable).or_else(|| var("AWS_ENDPOINT_URL"))
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    // Every call's time goes into the StoreLatency metric (when metrics are on).
    let mut builder = aws_sdk_dynamodb::config::Builder::from(config).interceptor(crate::metrics::StoreTiming);
    if let Some(url) = endpoint_url("AWS_ENDPOINT_URL_DYNAMODB") {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

pub fn secretsmanager_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let mut builder = aws_sdk_secretsmanager::config::Builder::from(config);
    if let Some(url) = endpoint_url("AWS_ENDPOINT_URL_SECRETS_MANAGER") {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_secretsmanager::Client::from_conf(builder.build())
}

#[cfg(test)]
mod tests {
    use super::endpoint_url_from;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn service_endpoint_wins_over_the_global_one() {
        let vars = [("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"), ("AWS_ENDPOINT_URL", "http://other:1")];
        assert_eq!(
            endpoint_url_from("AWS_ENDPOINT_URL_DYNAMODB", lookup(&vars)).as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            endpoint_url_from("AWS_ENDPOINT_URL_SECRETS_MANAGER", lookup(&vars)).as_deref(),
            Some("http://other:1")
        );
    }

    #[test]
    fn no_or_empty_variables_mean_the_real_endpoint() {
        assert_eq!(endpoint_url_from("AWS_ENDPOINT_URL_DYNAMODB", lookup(&[])), None);
        let vars = [("AWS_ENDPOINT_URL_DYNAMODB", " "), ("AWS_ENDPOINT_URL", "")];
        assert_eq!(endpoint_url_from("AWS_ENDPOINT_URL_DYNAMODB", lookup(&vars)), None);
    }

    #[test]
    fn ignore_flag_turns_overrides_off() {
        let vars =
            [("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE")];
        assert_eq!(endpoint_url_from("AWS_ENDPOINT_URL_DYNAMODB", lookup(&vars)), None);
    }
}
