//! The eleven Lambda entry points; each binary's `main` is one call to one of these.
//!
//! The runtime loop, its HTTP client, the event types and the handlers are generic code,
//! compiled in the crate that instantiates it. Instantiating it here, in `shared`, compiles
//! it with `shared`'s optimisation level (size) whatever the binary crate's level is: the
//! release profile builds register and login at opt-level 3 so that argon2 runs at full
//! speed, and this keeps those two binaries as small as the rest (see Cargo.toml).

use std::process::ExitCode;

use lambda_http::{Request, service_fn};
use lambda_runtime::LambdaEvent;

use crate::Auth;
use crate::api::{self, Route};
use crate::authorizer::{AuthorizerEvent, RouteRoles, authorize, outcome_metric};
use crate::bootstrap::{Keys, auth_from_env_with, init_logging};
use crate::http::Browser;
use crate::metrics;

type Error = lambda_http::Error;

/// Logging and metrics (`function`: the binary's name, the metrics' `Function`), then
/// `cold_start_and_serve` on a single-threaded tokio runtime.
/// A failure is logged with its message, which names what to fix (a `main` returning the
/// error would print only its `Debug` form), and the process exits with status 1: Lambda
/// reports `Runtime.ExitError` and retries the cold start on the next request.
fn run(function: &'static str, cold_start_and_serve: impl Future<Output = Result<(), Error>>) -> ExitCode {
    return_large_blocks_to_the_system();
    init_logging();
    metrics::init(function);
    // One thread: Lambda hands an environment one event at a time, its I/O interleaves on
    // one thread as well as on several, and argon2 runs on the blocking pool either way;
    // no worker threads to start at a cold start (see README, "Performance and cost").
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
async fn cold_start(keys: Keys) -> Result<&'static Auth, Error> {
    Ok(Box::leak(Box::new(auth_from_env_with(keys).await?)))
}

/// An API Gateway proxy function serving `route`; the use cases (and with `keys`, the
/// signing key) are built at cold start only for routes that need them.
fn http_function(function: &'static str, route: Route, keys: Keys) -> ExitCode {
    run(function, async move {
        let browser: &'static Browser = Box::leak(Box::new(Browser::from_env()?));
        let auth = if route.needs_auth() { Some(cold_start(keys).await?) } else { None };
        if let Some(auth) = auth
            && route.hashes_passwords()
        {
            auth.passwords().prepare_memory();
        }
        lambda_http::run(service_fn(move |req: Request| async move {
            let _flush = metrics::FlushOnDrop;
            Ok::<_, Error>(api::handle(route, auth, browser, req).await)
        }))
        .await
    })
}

/// POST /auth/register.
pub fn register() -> ExitCode {
    http_function("register", Route::Register, Keys::SignAndVerify)
}

/// POST /auth/login.
pub fn login() -> ExitCode {
    http_function("login", Route::Login, Keys::SignAndVerify)
}

/// POST /auth/refresh.
pub fn refresh() -> ExitCode {
    http_function("refresh", Route::Refresh, Keys::SignAndVerify)
}

/// POST /auth/logout, behind the authorizer, which verified the token: logout needs no key.
pub fn logout() -> ExitCode {
    http_function("logout", Route::Logout, Keys::None)
}

/// GET /auth/me: reads only what the authorizer put into the request context (and the
/// allowed origins); it needs no keys or database.
pub fn me() -> ExitCode {
    http_function("me", Route::Me, Keys::None)
}

/// The administration routes (`/admin/users/{username}…`), behind the authorizer with role
/// `admin`; they neither sign nor verify tokens.
pub fn admin() -> ExitCode {
    http_function("admin", Route::Admin, Keys::None)
}

/// The caller's account (`/auth/password`, `/auth/account`, `/auth/sessions[/{id}]`),
/// behind the authorizer. Signs: a password change answers with a fresh pair.
pub fn account() -> ExitCode {
    http_function("account", Route::Account, Keys::SignAndVerify)
}

/// The JWKS and the OpenID discovery document: public keys only (none with HMAC).
pub fn discovery() -> ExitCode {
    http_function("discovery", Route::Discovery, Keys::Public)
}

/// OPTIONS on every route: the CORS preflight, from the allowed origins alone.
pub fn preflight() -> ExitCode {
    http_function("preflight", Route::Preflight, Keys::None)
}

/// The REST API REQUEST authorizer: an IAM policy, or the error `Unauthorized` (API
/// Gateway's 401), or another error when the store is unreachable (fail closed: API
/// Gateway then refuses the call).
pub fn authorizer() -> ExitCode {
    run("authorizer", async {
        let auth = cold_start(Keys::Verify).await?;
        let routes = &RouteRoles::from_env()?;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerEvent>| async move {
            let _flush = metrics::FlushOnDrop;
            let decision = authorize(auth, routes, &event.payload).await;
            metrics::count(outcome_metric(&decision, &event.payload.method_arn));
            decision
        }))
        .await
    })
}

/// The Secrets Manager rotation function of the private signing key (its four steps, see
/// `rotation`): `JWT_ALGORITHM` (RS256, ES256 or EdDSA) says what keys to make, and
/// `JWT_PUBLIC_KEYS_ARN` which secret holds the public key set it keeps in step.
pub fn rotation() -> ExitCode {
    run("rotation", async {
        let algorithm = std::env::var(crate::config::ENV_ALGORITHM)
            .ok()
            .and_then(|name| crate::tokens::keys::algorithm_of(&name).ok())
            .ok_or("JWT_ALGORITHM must be RS256, ES256 or EdDSA for key rotation")?;
        let public_keys_secret = std::env::var(crate::config::ENV_PUBLIC_KEYS_ARN)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or("JWT_PUBLIC_KEYS_ARN is required: the secret the public key set is published in")?;
        let private_key_secret = std::env::var(crate::config::ENV_PRIVATE_KEY_ARN)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or("JWT_PRIVATE_KEY_ARN is required: the one secret this function rotates")?;
        let sdk = crate::aws::load_sdk_config().await?;
        let rotation: &'static crate::rotation::Rotation = Box::leak(Box::new(crate::rotation::Rotation {
            client: crate::aws::secretsmanager_client(&sdk),
            private_key_secret,
            algorithm,
            public_keys_secret,
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

/// argon2 needs 19 MiB per hash. The hasher keeps one such block (allocated at the cold
/// start, `PasswordHasher::prepare_memory`); a hash that finds it in use allocates its own.
/// glibc's dynamic mmap threshold would rise to the size of the first such block freed,
/// after which they come from (and stay in) the per-thread heaps: measured under the RIE,
/// before the hasher kept its memory, register's peak RSS was 216 MiB and login's 121 MiB.
/// A fixed threshold (which also turns the dynamic one off) maps every block of 1 MiB or
/// more on its own and unmaps it when freed: both peak at 26 MiB.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
