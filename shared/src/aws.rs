//! AWS SDK setup shared by every function: built once per cold start.
//!
//! Lambda hands a function its region and credentials in environment variables, so that is
//! the only place they are read (`AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; `sam local invoke` sets the same). The
//! SDK's default chain would also read profile files and ask STS, ECS and the instance
//! metadata service, none of which exist for a Lambda function, and linking it makes every
//! binary larger (docs/performance.md). Local emulators are reached through the SDK's standard
//! endpoint variables (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
//! `AWS_ENDPOINT_URL`).
//!
//! HTTPS is rustls on `ring`, the same crypto library that signs and verifies the JWTs,
//! trusting the roots AWS's endpoints chain to (Amazon Trust Services, `aws/amazon-roots.pem`)
//! and no others: the system's bundle (over a hundred certificates, read and parsed by the
//! first connection of every cold start) is never loaded, which at a small function's CPU
//! share is a large part of its cold answer (docs/performance.md).
//! `AWS_CA_BUNDLE`, the variable AWS's SDKs and CLI read for it, adds a PEM bundle (an
//! emulator served over HTTPS, a TLS-inspecting proxy); it is checked at the cold start.
//!
//! Timeouts and retries are explicit so the worst case fits well inside API Gateway's
//! 29 s integration limit and the functions' own timeout: per attempt 2 s, at most 3
//! attempts, 6 s per operation in all.

pub mod cognito;

use std::time::Duration;

use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
use aws_config::meta::region::ProvideRegion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The roots of Amazon Trust Services, which every AWS endpoint's certificate chains to:
/// Amazon Root CA 1 to 4 and Starfield Services Root CA G2 (the cross-signing root for
/// older clients), copied from Debian's ca-certificates with their SHA-256 fingerprints.
const AMAZON_ROOTS: &[u8] = include_bytes!("aws/amazon-roots.pem");

/// A PEM bundle of further roots to trust (AWS's SDKs and CLI read the same variable).
pub use crate::config::per_function::ENV_CA_BUNDLE;

/// Amazon's roots (checked by the unit tests, not at every cold start), and those of
/// `AWS_CA_BUNDLE` if set, checked here: the HTTPS client parses them only on its first
/// connection, and panics on one it cannot use.
fn trust_store(extra_bundle: Option<&str>) -> Result<tls::TrustStore, String> {
    let mut store = tls::TrustStore::empty().with_native_roots(false);
    store.add_pem_certificate(AMAZON_ROOTS);
    if let Some(path) = extra_bundle {
        let pem = std::fs::read(path).map_err(|e| format!("{ENV_CA_BUNDLE}: cannot read {path}: {e}"))?;
        parse_roots(&pem).map_err(|e| format!("{ENV_CA_BUNDLE}: {path} {e}"))?;
        store.add_pem_certificate(pem);
    }
    Ok(store)
}

/// How many roots a PEM bundle holds, each usable as a trust anchor.
fn parse_roots(pem: &[u8]) -> Result<usize, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| "is not a bundle of PEM certificates".to_string())?;
        roots.add(cert).map_err(|e| format!("holds a certificate that cannot be a root ({e})"))?;
    }
    match roots.len() {
        0 => Err("holds no certificate".into()),
        n => Ok(n),
    }
}

/// The SDK's configuration: region and credentials from the environment, the HTTPS client
/// (its trust store: an unreadable or unusable `AWS_CA_BUNDLE` is the error), timeouts and
/// retries.
pub async fn load_sdk_config() -> Result<SdkConfig, String> {
    let extra = crate::config::aws_ca_bundle();
    let trust = tls::TlsContext::builder()
        .with_trust_store(trust_store(extra.as_deref())?)
        .build()
        .map_err(|e| e.to_string())?;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build();
    let retries = RetryConfig::standard().with_max_attempts(3).with_max_backoff(Duration::from_millis(500));
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(trust)
        .build_https();
    // No region is a configuration error the first call reports (the SDK names it).
    let region = EnvironmentVariableRegionProvider::new().region().await;
    Ok(SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .http_client(https)
        .timeout_config(timeouts)
        .retry_config(retries)
        .build())
}

/// How long a cold start waits for `warm_up`: far more than a connection to DynamoDB in its
/// region takes (a few ms), and little against a cold start.
pub const WARM_UP_BUDGET: Duration = Duration::from_millis(150);

/// Opens the HTTPS connection the first request will use (DNS, TCP, the TLS handshake, and
/// the root certificates, parsed on the first connection) during the cold start, while the
/// keys are read, so the first request finds it in the pool. (It saves CPU nowhere; it
/// saves wall time because on-demand Lambda runs init on a whole vCPU, not the 128 MB
/// share, as AWS's serverless specialists write, though the Lambda Developer Guide does not:
/// the "authorizer, init boost" row of scripts/bench_cold.py.) It sends DynamoDB's health check, an unsigned
/// `GET /` (answered `healthy: dynamodb.<region>.amazonaws.com`): not an API call, so it
/// needs no permission, reads nothing and leaves no CloudTrail entry. Its answer is not
/// looked at. Waits at most `WARM_UP_BUDGET`: a slow or unreachable store neither fails the
/// cold start nor holds it longer (the connection may still open in the background).
pub async fn warm_up(client: &aws_sdk_dynamodb::Client) {
    let probe = client
        .get_item()
        .table_name("warm-up")
        .key("warm-up", aws_sdk_dynamodb::types::AttributeValue::S("warm-up".into()))
        .customize()
        .interceptor(HealthCheck)
        // One attempt: an answer of any kind has opened the connection.
        .config_override(aws_sdk_dynamodb::config::Builder::new().retry_config(RetryConfig::disabled()));
    let task = tokio::spawn(async move {
        let _ = probe.send().await;
    });
    let _ = tokio::time::timeout(WARM_UP_BUDGET, task).await;
}

/// Turns the warm-up's signed request into the unsigned health check, just before it is
/// sent: same endpoint, same client, same connection pool.
#[derive(Debug)]
struct HealthCheck;

impl aws_sdk_dynamodb::config::Intercept for HealthCheck {
    fn name(&self) -> &'static str {
        "HealthCheck"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        crate::metrics::not_a_store_call(cfg);
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        // `scheme://host[:port]` of the endpoint, then `/`.
        let origin = request.uri().splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        *request = aws_smithy_runtime_api::http::Request::get(format!("{origin}/"))?;
        Ok(())
    }
}

/// The endpoint override for one service, as the SDK's own loader would find it:
/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true.
fn endpoint_url(service_variable: &str) -> Option<String> {
    endpoint_url_from(service_variable, crate::config::aws_variable)
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

/// Amazon Cognito, the old directory of a lazy migration (the login function), in the
/// region of the user pool (its id's prefix, `us-east-1_AbC…`), which may not be the
/// function's.
pub fn cognito_client(config: &SdkConfig, user_pool_id: &str) -> aws_sdk_cognitoidentityprovider::Client {
    let mut builder = aws_sdk_cognitoidentityprovider::config::Builder::from(config);
    if let Some((region, _)) = user_pool_id.split_once('_') {
        builder = builder.region(aws_config::Region::new(region.to_string()));
    }
    if let Some(url) = endpoint_url(crate::config::per_function::ENV_ENDPOINT_COGNITO) {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_cognitoidentityprovider::Client::from_conf(builder.build())
}

/// Amazon SES (API v2), for the mailer.
pub fn sesv2_client(config: &SdkConfig) -> aws_sdk_sesv2::Client {
    let mut builder = aws_sdk_sesv2::config::Builder::from(config);
    if let Some(url) = endpoint_url("AWS_ENDPOINT_URL_SESV2") {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_sesv2::Client::from_conf(builder.build())
}

#[cfg(test)]
mod tests {
    use super::{AMAZON_ROOTS, WARM_UP_BUDGET, endpoint_url_from, parse_roots, trust_store, warm_up};

    /// Against a store that accepts the connection and never answers, the warm-up gives up
    /// after its budget, on tokio's clock (paused: it advances only when every task waits,
    /// so the figure is exact and the machine's load cannot move it), not after the SDK's
    /// 2 s attempt.
    #[tokio::test(start_paused = true)]
    async fn the_warm_up_waits_its_budget_and_no_longer_for_a_silent_store() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // never accepts
        // The functions' own HTTP client, timeouts and retries.
        let base = super::load_sdk_config().await.unwrap();
        let sdk = aws_sdk_dynamodb::config::Builder::from(&base)
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{}", silent.local_addr().unwrap()))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"))
            .build();
        let started = tokio::time::Instant::now();
        warm_up(&aws_sdk_dynamodb::Client::from_conf(sdk)).await;
        assert_eq!(started.elapsed(), WARM_UP_BUDGET);
    }

    #[test]
    fn the_built_in_roots_are_amazons_five() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let fingerprints: Vec<String> = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .map(|c| {
                let digest = ring::digest::digest(&ring::digest::SHA256, &c.unwrap());
                digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        // Amazon Root CA 1, 2, 3, 4; Starfield Services Root CA G2 (as AWS publishes them).
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
            ]
        );
        assert_eq!(parse_roots(AMAZON_ROOTS), Ok(5));
    }

    #[test]
    fn a_ca_bundle_that_cannot_be_used_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("ca-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        std::fs::write(path("empty.pem"), "").unwrap();
        std::fs::write(path("garbage.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
            .unwrap();
        std::fs::write(path("good.pem"), AMAZON_ROOTS).unwrap();
        for (file, says) in
            [("absent.pem", "cannot read"), ("empty.pem", "no certificate"), ("garbage.pem", "not a bundle")]
        {
            let e = trust_store(Some(&path(file))).unwrap_err();
            assert!(e.starts_with("AWS_CA_BUNDLE: ") && e.contains(says), "{file}: {e}");
        }
        assert!(trust_store(Some(&path("good.pem"))).is_ok());
        assert!(trust_store(None).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
