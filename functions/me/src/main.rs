//! GET /auth/me: a sample protected backend. It reads only what the authorizer put into
//! the request context; it needs no configuration, keys or database.

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::bootstrap::init_logging();
    run(service_fn(|req: Request| async move { Ok::<_, Error>(shared::api::me(req)) })).await
}
