//! The entry points: each binary's `main` is one call to one of these, which serves its
//! row of the table (`spec`: what each one answers is written there, once).
//!
//! The runtime loop, its HTTP client, the event types and the handlers are generic code,
//! compiled in the crate that instantiates it. Instantiating it here, in `shared`, compiles
//! it with `shared`'s optimisation level (size) whatever the binary crate's level is: the
//! release profile builds the functions that hash passwords at opt-level 3 so that argon2
//! runs at full speed, and this keeps those binaries as small as the rest (see Cargo.toml).

use std::process::ExitCode;

use lambda_http::{Request, service_fn};
use lambda_runtime::LambdaEvent;

use crate::Auth;
use crate::api;
use crate::authorizer::{AuthorizerEvent, authorize, outcome_metric};
use crate::bootstrap::{auth_from_env_with, init_logging};
use crate::config::{AccessRules, BrowserConfig, MetricsConfig, RotationConfig};
use crate::http::Browser;
use crate::metrics;
use crate::spec::{self, Event, FunctionSpec, HttpFunction, StatelessFunction, UseCaseFunction};

type Error = lambda_http::Error;

/// Logging and metrics (`function`: the binary's name, the metrics' `Function`), then
/// `cold_start_and_serve` on a single-threaded tokio runtime.
/// A failure is logged with its message, which names what to fix (a `main` returning the
/// error would print only its `Debug` form), and the process exits with status 1: Lambda
/// reports `Runtime.ExitError` and retries the cold start on the next request.
fn run(function: &'static str, cold_start_and_serve: impl Future<Output = Result<(), Error>>) -> ExitCode {
    return_large_blocks_to_the_system();
    init_logging();
    metrics::init(function, &MetricsConfig::from_env());
    // One thread: Lambda hands an environment one event at a time, its I/O interleaves on
    // one thread as well as on several, and argon2 runs on the blocking pool either way;
    // no worker threads to start at a cold start (docs/performance.md).
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|runtime| runtime.block_on(cold_start_and_serve));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Cold start: config, AWS clients and keys, once per execution environment. They live
/// as long as the process, so the handlers borrow them for `'static`.
async fn cold_start(spec: &FunctionSpec) -> Result<&'static Auth, Error> {
    Ok(Box::leak(Box::new(auth_from_env_with(spec.keys, spec.factor_key).await?)))
}

fn browser() -> Result<&'static Browser, Error> {
    Ok(Box::leak(Box::new(Browser::new(BrowserConfig::from_env())?)))
}

/// Serves `spec`'s function. Each entry point below calls this once with its own row, so
/// the match resolves at compile time and a binary holds only its own handlers.
fn serve(spec: &'static FunctionSpec) -> ExitCode {
    match spec.event {
        Event::Http(HttpFunction::UseCases(function)) => use_case_function(spec, function),
        Event::Http(HttpFunction::Stateless(function)) => stateless_function(spec, function),
        Event::Authorizer => authorizer_function(spec),
        Event::Rotation => rotation_function(spec),
        Event::Mailer => mailer_function(spec),
    }
}

/// An API Gateway proxy function that runs use cases, with the keys its row names.
fn use_case_function(spec: &'static FunctionSpec, function: UseCaseFunction) -> ExitCode {
    run(spec.name, async move {
        let browser = browser()?;
        let auth = cold_start(spec).await?;
        if spec.hashes_passwords {
            auth.passwords().prepare_memory();
        }
        lambda_http::run(service_fn(move |req: Request| async move {
            let _flush = metrics::FlushOnDrop;
            Ok::<_, Error>(api::handle(spec, function, auth, browser, req).await)
        }))
        .await
    })
}

/// An API Gateway proxy function that answers from the request and the allowed origins.
fn stateless_function(spec: &'static FunctionSpec, function: StatelessFunction) -> ExitCode {
    run(spec.name, async move {
        let browser = browser()?;
        lambda_http::run(service_fn(move |req: Request| async move {
            let _flush = metrics::FlushOnDrop;
            Ok::<_, Error>(api::handle_stateless(spec, function, browser, req).await)
        }))
        .await
    })
}

/// The REST API REQUEST authorizer: an IAM policy, or the error `Unauthorized` (API
/// Gateway's 401), or another error when the store is unreachable (fail closed: API
/// Gateway then refuses the call).
fn authorizer_function(spec: &'static FunctionSpec) -> ExitCode {
    run(spec.name, async {
        let auth = cold_start(spec).await?;
        let rules = &AccessRules::from_env()?;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerEvent>| async move {
            let _flush = metrics::FlushOnDrop;
            let decision = authorize(auth, rules, &event.payload).await;
            metrics::count(outcome_metric(&decision, &event.payload.method_arn));
            decision
        }))
        .await
    })
}

/// The Secrets Manager rotation function of the private signing key (its four steps, see
/// `rotation`).
fn rotation_function(spec: &'static FunctionSpec) -> ExitCode {
    run(spec.name, async {
        let config = RotationConfig::from_env()?;
        let sdk = crate::aws::load_sdk_config().await?;
        let rotation: &'static crate::rotation::Rotation = Box::leak(Box::new(crate::rotation::Rotation {
            client: crate::aws::secretsmanager_client(&sdk),
            private_key_secret: config.private_key_secret,
            algorithm: config.algorithm,
            public_keys_secret: config.public_keys_secret,
        }));
        lambda_runtime::run(service_fn(move |event: LambdaEvent<crate::rotation::RotationEvent>| async move {
            let _flush = metrics::FlushOnDrop;
            let step = event.payload.step.clone();
            rotation.handle(&event.payload).await.map_err(|e| {
                tracing::error!(step, error = %e, "rotation step failed");
                Error::from(e.to_string())
            })
        }))
        .await
    })
}

/// Delivers the outbox through Amazon SES, whatever started it (a stream batch, the
/// schedule): everything queued, not only the batch's records, so a retry or a sweep sends
/// what an earlier round could not. A mail service that is down fails the invocation: the
/// stream's retries (and the next sweep) try again; nothing is lost.
fn mailer_function(spec: &'static FunctionSpec) -> ExitCode {
    run(spec.name, async {
        let config = crate::config::per_function::MailerConfig::from_env()?;
        let sdk = crate::aws::load_sdk_config().await?;
        let store = crate::store::DynamoStore::for_outbox(crate::aws::dynamodb_client(&sdk), &config.mail.outbox_table);
        let ses = crate::mail::Ses::new(crate::aws::sesv2_client(&sdk), &config.mail.from);
        let settings = crate::mail::MailSettings::from(&config.mail);
        let mailer: &'static _ = Box::leak(Box::new((store, ses, settings)));
        lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
            let _flush = metrics::FlushOnDrop;
            let (store, ses, settings) = mailer;
            let done = crate::mail::deliver_queued(store, ses, settings, MAILS_PER_ROUND).await.map_err(|e| {
                tracing::error!(error = %e, "mail delivery stopped; what is left stays queued");
                Error::from("mail delivery failed; retried")
            })?;
            tracing::info!(sent = done.sent, refused = done.refused, "mail delivered");
            Ok::<_, Error>(serde_json::json!({ "sent": done.sent, "refused": done.refused }))
        }))
        .await
    })
}

/// At most this many mails a round: well within the function's timeout.
const MAILS_PER_ROUND: usize = 100;

/// [`spec::MAILER`].
pub fn mailer() -> ExitCode {
    serve(&spec::MAILER)
}

/// [`spec::REGISTER`].
pub fn register() -> ExitCode {
    serve(&spec::REGISTER)
}

/// [`spec::LOGIN`].
pub fn login() -> ExitCode {
    serve(&spec::LOGIN)
}

/// [`spec::EMAIL`].
pub fn email() -> ExitCode {
    serve(&spec::EMAIL)
}

/// [`spec::REFRESH`].
pub fn refresh() -> ExitCode {
    serve(&spec::REFRESH)
}

/// [`spec::LOGOUT`].
pub fn logout() -> ExitCode {
    serve(&spec::LOGOUT)
}

/// [`spec::ME`].
pub fn me() -> ExitCode {
    serve(&spec::ME)
}

/// [`spec::ADMIN`].
pub fn admin() -> ExitCode {
    serve(&spec::ADMIN)
}

/// [`spec::ACCOUNT`].
pub fn account() -> ExitCode {
    serve(&spec::ACCOUNT)
}

/// [`spec::DISCOVERY`].
pub fn discovery() -> ExitCode {
    serve(&spec::DISCOVERY)
}

/// [`spec::PREFLIGHT`].
pub fn preflight() -> ExitCode {
    serve(&spec::PREFLIGHT)
}

/// [`spec::AUTHORIZER`].
pub fn authorizer() -> ExitCode {
    serve(&spec::AUTHORIZER)
}

/// [`spec::ROTATION`].
pub fn rotation() -> ExitCode {
    serve(&spec::ROTATION)
}

/// argon2 needs 19 MiB per hash. The hasher keeps one such block (allocated at the cold
/// start, `PasswordHasher::prepare_memory`); a hash that finds it in use allocates its own.
/// glibc's dynamic mmap threshold would rise to the size of the first such block freed,
/// after which such blocks come from (and stay in) the per-thread heaps, so a function's
/// resident memory would grow by the largest blocks it ever freed. A fixed threshold
/// (which also turns the dynamic one off) maps every block of 1 MiB or more on its own and
/// unmaps it when freed (docs/performance.md has the measured peaks).
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
