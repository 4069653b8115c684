//! The REST API REQUEST authorizer. Answers an IAM policy, or fails with the message
//! `Unauthorized` (API Gateway's 401), or with another error when the store is
//! unreachable (fail closed: API Gateway then refuses the call).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::authorizer::{AuthorizerEvent, RouteRoles, authorize};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::bootstrap::init_logging();
    let auth = shared::bootstrap::auth_from_env().await?;
    let routes = RouteRoles::from_env()?;
    let (auth, routes) = (&auth, &routes);
    run(service_fn(
        move |event: LambdaEvent<AuthorizerEvent>| async move { authorize(auth, routes, &event.payload).await },
    ))
    .await
}
