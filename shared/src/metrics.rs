//! CloudWatch metrics in the Embedded Metric Format (EMF): what an operator graphs and
//! alarms on (docs/operations.md). Each invocation's counts and store latencies are
//! collected here and written as at most one JSON line on stdout when it ends; CloudWatch
//! Logs turns that line into metrics, with no API call and no extra latency. The metric
//! names are the template's (its alarms and dashboard use them; tests/test_template.py
//! holds the list and `every_metric_the_template_uses_exists` below checks it).
//!
//! On only where `METRICS_NAMESPACE` is set (the template sets it, with `METRICS_SERVICE`
//! = the stack name as the one dimension); off in the local API and in unit tests unless
//! set. A line carries counts, milliseconds and names only: never a user, token or key.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::config::per_function::{ENV_METRICS_NAMESPACE as ENV_NAMESPACE, ENV_METRICS_SERVICE as ENV_SERVICE};

/// The counted metrics (unit `Count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    LoginSucceeded,
    LoginFailed,
    /// The failed-login throttle refused a login, or a password check of the account routes.
    LoginLocked,
    RefreshSucceeded,
    /// A spent refresh token came back: its session was revoked as stolen.
    RefreshReuseDetected,
    /// The authorizer's policy allows the route called.
    AuthorizerAllowed,
    /// No valid token, or a role the route needs is missing (401 or 403).
    AuthorizerDenied,
    /// The authorizer could not decide (store or key fault): the call was refused.
    AuthorizerUnavailable,
    /// A request failed because of the store (unavailable, throttled, or a fault), after the
    /// SDK's retries: the 503s and 500s the store caused.
    StoreFaults,
    /// This execution environment started (also per function: dimension `Function`).
    ColdStart,
    /// A mail a request queued in the outbox (a verification, a reset link, a notice).
    MailQueued,
    /// A queued mail handed to the mail service (the mailer).
    MailSent,
    /// A queued mail the mail service refused for good (a bad address, an unverified
    /// sender): dropped.
    MailRefused,
}

impl Metric {
    pub const ALL: [Metric; 13] = [
        Metric::LoginSucceeded,
        Metric::LoginFailed,
        Metric::LoginLocked,
        Metric::RefreshSucceeded,
        Metric::RefreshReuseDetected,
        Metric::AuthorizerAllowed,
        Metric::AuthorizerDenied,
        Metric::AuthorizerUnavailable,
        Metric::StoreFaults,
        Metric::ColdStart,
        Metric::MailQueued,
        Metric::MailSent,
        Metric::MailRefused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::LoginSucceeded => "LoginSucceeded",
            Metric::LoginFailed => "LoginFailed",
            Metric::LoginLocked => "LoginLocked",
            Metric::RefreshSucceeded => "RefreshSucceeded",
            Metric::RefreshReuseDetected => "RefreshReuseDetected",
            Metric::AuthorizerAllowed => "AuthorizerAllowed",
            Metric::AuthorizerDenied => "AuthorizerDenied",
            Metric::AuthorizerUnavailable => "AuthorizerUnavailable",
            Metric::StoreFaults => "StoreFaults",
            Metric::ColdStart => "ColdStart",
            Metric::MailQueued => "MailQueued",
            Metric::MailSent => "MailSent",
            Metric::MailRefused => "MailRefused",
        }
    }
}

/// The latency metric (unit `Milliseconds`): one value per DynamoDB call, retries included.
pub const STORE_LATENCY: &str = "StoreLatency";

/// EMF takes at most 100 values per metric in one line; a request makes fewer than 10 calls.
const MAX_VALUES: usize = 100;

/// Where the metrics go: set once at cold start, when `METRICS_NAMESPACE` is set.
#[derive(Debug, Clone)]
struct Sink {
    namespace: String,
    service: String,
    function: &'static str,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// What this invocation recorded so far. Lambda runs one invocation at a time per
/// environment; elsewhere (the local API, off by default) concurrent requests only mix
/// their counts, which the sums do not mind.
#[derive(Debug, Default)]
struct Recorded {
    counts: [u32; Metric::ALL.len()],
    store_latency_ms: Vec<f64>,
}

static RECORDED: Mutex<Recorded> =
    Mutex::new(Recorded { counts: [0; Metric::ALL.len()], store_latency_ms: Vec::new() });

/// Turns metrics on for `function` (the binary's name: `login`, `authorizer`, …) when
/// `METRICS_NAMESPACE` is set, and counts the cold start. A namespace CloudWatch would
/// refuse leaves them off with a warning: metrics never stop a function from starting.
pub fn init(function: &'static str, config: &crate::config::MetricsConfig) {
    let Some(namespace) = config.namespace.clone() else { return };
    if !valid_namespace(&namespace) {
        tracing::warn!(namespace, "METRICS_NAMESPACE is not a valid CloudWatch namespace; metrics are off");
        return;
    }
    let service = config.service.clone().unwrap_or_else(|| "jwt-auth".to_string());
    if SINK.set(Sink { namespace, service, function }).is_ok() {
        count(Metric::ColdStart);
    }
}

/// CloudWatch's rule: 1 to 255 of letters, digits and `. - _ / # :` or space, not `AWS/…`.
fn valid_namespace(ns: &str) -> bool {
    (1..=255).contains(&ns.len())
        && !ns.starts_with("AWS/")
        && ns.chars().all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c))
}

fn enabled() -> bool {
    SINK.get().is_some()
}

fn recorded() -> std::sync::MutexGuard<'static, Recorded> {
    // A panic elsewhere while holding the lock leaves counts that are still numbers.
    RECORDED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds one to `metric` for this invocation.
pub fn count(metric: Metric) {
    if enabled() {
        let i = Metric::ALL.iter().position(|m| *m == metric).expect("every metric is in ALL");
        recorded().counts[i] += 1;
    }
}

/// One DynamoDB call's time, retries included.
pub fn store_latency(elapsed: Duration) {
    if enabled() {
        let mut r = recorded();
        if r.store_latency_ms.len() < MAX_VALUES {
            r.store_latency_ms.push(elapsed.as_secs_f64() * 1000.0);
        }
    }
}

/// Writes what this invocation recorded as one EMF line on stdout (nothing if nothing was
/// recorded), and starts the next invocation from zero. Called when each invocation ends.
pub fn flush() {
    let Some(sink) = SINK.get() else { return };
    let taken = std::mem::take(&mut *recorded());
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    if let Some(line) = document(sink, &taken, now_ms) {
        let mut out = std::io::stdout().lock();
        // Lost metrics are not worth failing a request over.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush());
    }
}

/// Flushes when dropped: at the end of an invocation however it ends, a panic included
/// (which lambda_runtime turns into an error answer; its counts must not pass to the next
/// invocation's line). An invocation Lambda stops at its timeout writes nothing.
pub struct FlushOnDrop;

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush();
    }
}

/// The EMF document of `recorded`: one directive with dimension `Service` for everything
/// recorded, and one for `ColdStart` by `Service` and by `Service` + `Function`.
fn document(sink: &Sink, recorded: &Recorded, timestamp_ms: u64) -> Option<String> {
    use serde_json::{Map, Value, json};
    let mut root = Map::new();
    let (mut metrics, mut cold) = (Vec::new(), Vec::new());
    for (metric, &n) in Metric::ALL.iter().zip(&recorded.counts) {
        if n == 0 {
            continue;
        }
        root.insert(metric.name().into(), json!(n));
        let definition = json!({ "Name": metric.name(), "Unit": "Count" });
        if *metric == Metric::ColdStart { cold.push(definition) } else { metrics.push(definition) }
    }
    if !recorded.store_latency_ms.is_empty() {
        let values: Vec<Value> =
            recorded.store_latency_ms.iter().map(|ms| json!((ms * 1000.0).round() / 1000.0)).collect();
        root.insert(STORE_LATENCY.into(), Value::Array(values));
        metrics.push(json!({ "Name": STORE_LATENCY, "Unit": "Milliseconds" }));
    }
    if metrics.is_empty() && cold.is_empty() {
        return None;
    }
    let mut directives = Vec::new();
    if !metrics.is_empty() {
        directives.push(json!({ "Namespace": sink.namespace, "Dimensions": [["Service"]], "Metrics": metrics }));
    }
    if !cold.is_empty() {
        directives.push(json!({
            "Namespace": sink.namespace,
            "Dimensions": [["Service"], ["Service", "Function"]],
            "Metrics": cold,
        }));
    }
    root.insert("_aws".into(), json!({ "Timestamp": timestamp_ms, "CloudWatchMetrics": directives }));
    root.insert("Service".into(), json!(sink.service));
    root.insert("Function".into(), json!(sink.function));
    Some(Value::Object(root).to_string())
}

/// Times every DynamoDB call (from before it is serialised until its last attempt ended)
/// into `StoreLatency`: registered on the client in `aws::dynamodb_client`.
#[derive(Debug)]
pub struct StoreTiming;

#[derive(Debug, Clone)]
struct Started(Instant);

impl aws_smithy_types::config_bag::Storable for Started {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Marks a request that is no store call (the cold start's connection warm-up): not timed.
#[derive(Debug, Clone)]
struct NotAStoreCall;

impl aws_smithy_types::config_bag::Storable for NotAStoreCall {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Leaves the request of `cfg` out of `StoreLatency`.
pub fn not_a_store_call(cfg: &mut aws_sdk_dynamodb::config::ConfigBag) {
    cfg.interceptor_state().store_put(NotAStoreCall);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl aws_sdk_dynamodb::config::Intercept for StoreTiming {
    fn name(&self) -> &'static str {
        "StoreTiming"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), BoxError> {
        if enabled() {
            cfg.interceptor_state().store_put(Started(Instant::now()));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(Started(at)), None) = (cfg.load::<Started>(), cfg.load::<NotAStoreCall>()) {
            store_latency(at.elapsed());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> Sink {
        Sink { namespace: "JwtAuth".into(), service: "auth-prod".into(), function: "login" }
    }

    fn recorded(counts: &[(Metric, u32)], latencies: &[f64]) -> Recorded {
        let mut r = Recorded::default();
        for (m, n) in counts {
            r.counts[Metric::ALL.iter().position(|x| x == m).unwrap()] = *n;
        }
        r.store_latency_ms = latencies.to_vec();
        r
    }

    #[test]
    fn nothing_recorded_writes_nothing() {
        assert_eq!(document(&sink(), &Recorded::default(), 1), None);
    }

    #[test]
    fn a_document_is_valid_emf() {
        let r = recorded(&[(Metric::LoginSucceeded, 1), (Metric::ColdStart, 1)], &[3.25, 4.0]);
        let line = document(&sink(), &r, 1_700_000_000_123).unwrap();
        assert!(!line.contains('\n'), "one line");
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2);
        assert_eq!(directives[0]["Namespace"], "JwtAuth");
        assert_eq!(directives[0]["Dimensions"], serde_json::json!([["Service"]]));
        assert_eq!(
            directives[0]["Metrics"],
            serde_json::json!([
                {"Name": "LoginSucceeded", "Unit": "Count"},
                {"Name": "StoreLatency", "Unit": "Milliseconds"},
            ])
        );
        assert_eq!(directives[1]["Dimensions"], serde_json::json!([["Service"], ["Service", "Function"]]));
        assert_eq!(directives[1]["Metrics"], serde_json::json!([{"Name": "ColdStart", "Unit": "Count"}]));
        // Every dimension and metric named in a directive is a member of the root.
        assert_eq!(doc["Service"], "auth-prod");
        assert_eq!(doc["Function"], "login");
        assert_eq!(doc["LoginSucceeded"], 1);
        assert_eq!(doc["ColdStart"], 1);
        assert_eq!(doc["StoreLatency"], serde_json::json!([3.25, 4.0]));
        assert!(doc.get("LoginFailed").is_none(), "metrics not recorded are left out");
    }

    #[test]
    fn a_warm_invocation_has_no_cold_start_directive() {
        let r = recorded(&[(Metric::AuthorizerDenied, 2)], &[]);
        let doc: serde_json::Value = serde_json::from_str(&document(&sink(), &r, 1).unwrap()).unwrap();
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        assert_eq!(doc["AuthorizerDenied"], 2);
    }

    #[test]
    fn namespaces_cloudwatch_refuses_are_refused() {
        for ok in ["JwtAuth", "Company/Auth", "auth-prod_1.x#:y z"] {
            assert!(valid_namespace(ok), "{ok}");
        }
        for bad in ["", "AWS/Lambda", "a\"b", "a{b}", &"x".repeat(256)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn every_metric_the_template_uses_exists() {
        let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
        let ours: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).chain([STORE_LATENCY]).collect();
        // The dashboard names each custom metric as `"${MetricsNamespace}", "X"`: every one
        // emitted is graphed. (tests/test_template.py checks the other way: every custom
        // metric the alarms and the dashboard read is one of these.)
        for name in &ours {
            let graphed = format!("\"${{MetricsNamespace}}\", \"{name}\"");
            assert!(template.contains(&graphed), "{name} is emitted but not on the dashboard ({graphed})");
        }
    }
}
