//! POST /auth/register: a thin entry point over `shared::api::register`.

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::bootstrap::init_logging();
    // Cold start: config, AWS clients and keys, once.
    let auth = shared::bootstrap::auth_from_env().await?;
    let auth = &auth;
    run(service_fn(move |req: Request| async move { Ok::<_, Error>(shared::api::register(auth, req).await) })).await
}
