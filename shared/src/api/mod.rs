//! The HTTP handlers behind API Gateway: request in, use case, contract response out.
//!
//! The router finds the route API Gateway matched (method and resource path) in the
//! function's row of the table (`spec`): a public route's handler gets the
//! request, an authenticated route's handler also gets the caller the authorizer let
//! through, and cannot be called without one. Handlers return `Result<Response, AuthError>`;
//! errors become the contract's body, and CORS headers are added, in one place: here.
//!
//! Dispatch goes function by function (each arm names only that function's handlers), so a
//! binary links the handlers of its own routes and no others.

mod account;
mod admin;
mod discovery;
mod email;
mod request;
mod tokens;

use lambda_http::http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::auth::{Auth, Principal};
use crate::error::AuthError;
use crate::http::{self, Browser};
use crate::spec::{
    self, AuthenticatedRoute, FunctionSpec, HttpFunction, Keys, PublicRoute, Route, StatelessFunction, UseCaseFunction,
};

pub use request::caller;

/// Answers `req` for a function that runs use cases.
pub async fn handle(
    spec: &FunctionSpec,
    function: UseCaseFunction,
    auth: &Auth,
    browser: &Browser,
    req: Request,
) -> Response<Body> {
    let request_headers = req.headers().clone();
    learn_issuer(auth, &req);
    let result = match route_of(spec, &req) {
        Err(e) => Err(e),
        // Nothing in a function that signs runs (nor writes) before the issuer is known.
        Ok(_) if spec.keys == Keys::SignAndVerify && auth.tokens().issuer().is_none() => Err(issuer_unknown()),
        Ok(Route::Public(route)) => public(function, route, auth, browser, &req).await,
        Ok(Route::Authenticated(route)) => match caller(&req) {
            Ok(caller) => authenticated(function, route, auth, browser, caller, &req).await,
            Err(e) => Err(e),
        },
    };
    browser.with_cors(&request_headers, respond(result))
}

/// Answers `req` for a function that needs no use cases (no configuration, store or keys).
pub async fn handle_stateless(
    spec: &FunctionSpec,
    function: StatelessFunction,
    browser: &Browser,
    req: Request,
) -> Response<Body> {
    let request_headers = req.headers().clone();
    let result = match route_of(spec, &req) {
        // The preflight answer carries its own CORS headers.
        Ok(_) if function == StatelessFunction::Preflight && req.method() == Method::OPTIONS => {
            return browser.preflight(&request_headers);
        }
        Ok(_) if function == StatelessFunction::Preflight => Err(method_not_allowed(&req)),
        Ok(_) => caller(&req).map(|caller| me(&caller)),
        Err(e) => Err(e),
    };
    browser.with_cors(&request_headers, respond(result))
}

/// Answers `req` for any HTTP function, given the use cases (the local API has them all).
pub async fn handle_any(
    spec: &FunctionSpec,
    function: HttpFunction,
    auth: &Auth,
    browser: &Browser,
    req: Request,
) -> Response<Body> {
    match function {
        HttpFunction::UseCases(function) => handle(spec, function, auth, browser, req).await,
        HttpFunction::Stateless(function) => handle_stateless(spec, function, browser, req).await,
    }
}

/// The one place an error becomes the contract's body (a store fault is logged and
/// counted here, once per request).
fn respond(result: Result<Response<Body>, AuthError>) -> Response<Body> {
    result.unwrap_or_else(|e| {
        e.report();
        http::error(&e)
    })
}

/// The route API Gateway matched, if this function serves it.
/// A method no function takes on the request's path reached the preflight function (wired
/// as `ANY` there): 405 with the path's methods.
fn method_not_allowed(req: &Request) -> AuthError {
    let resource = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.resource_path.as_deref().unwrap_or_default(),
        _ => "",
    };
    match spec::allowed_methods(resource) {
        Some(allow) => AuthError::MethodNotAllowed { allow },
        None => AuthError::NotFound,
    }
}

fn route_of(spec: &FunctionSpec, req: &Request) -> Result<Route, AuthError> {
    let (method, resource) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            (ctx.http_method.as_str(), ctx.resource_path.as_deref().unwrap_or_default())
        }
        _ => return Err(AuthError::NotFound),
    };
    let route = spec.route(method, resource).ok_or(AuthError::NotFound)?;
    http::check_body_size(req, route.max_body_bytes())?;
    Ok(route)
}

/// The issuer is the API's own URL (JWT_ISSUER empty) and no request of its stage came yet:
/// nothing that names the issuer can answer.
fn issuer_unknown() -> AuthError {
    tracing::error!("the issuer is not known yet: JWT_ISSUER is empty and no request of API_STAGE came");
    AuthError::Internal
}

/// Where the issuer is the API's own URL, the request says which API that is.
fn learn_issuer(auth: &Auth, req: &Request) {
    if auth.tokens().issuer().is_some() {
        return;
    }
    if let Some(RequestContext::ApiGatewayV1(ctx)) = req.request_context_ref() {
        let tokens = auth.tokens();
        tokens.learn_issuer(
            ctx.apiid.as_deref().unwrap_or_default(),
            tokens.region(),
            ctx.stage.as_deref().unwrap_or_default(),
        );
    }
}

async fn public(
    function: UseCaseFunction,
    route: PublicRoute,
    auth: &Auth,
    browser: &Browser,
    req: &Request,
) -> Result<Response<Body>, AuthError> {
    use {PublicRoute as P, UseCaseFunction as F};
    match (function, route) {
        (F::Register, P::Register) => tokens::register(auth, browser, req).await,
        (F::Login, P::Login) => tokens::login(auth, browser, req).await,
        (F::Login, P::LoginMfa) => tokens::login_mfa(auth, browser, req).await,
        (F::Refresh, P::Refresh) => tokens::refresh(auth, browser, req).await,
        (F::Email, route) => email::handle(route, auth, browser, req).await,
        (F::Discovery, route) => discovery::handle(route, auth).await,
        _ => Err(AuthError::NotFound),
    }
}

async fn authenticated(
    function: UseCaseFunction,
    route: AuthenticatedRoute,
    auth: &Auth,
    browser: &Browser,
    caller: Principal,
    req: &Request,
) -> Result<Response<Body>, AuthError> {
    use {AuthenticatedRoute as A, UseCaseFunction as F};
    match (function, route) {
        (F::Logout, A::Logout) => tokens::logout(auth, browser, caller, req).await,
        (F::Account, route) => account::handle(route, auth, browser, caller, req).await,
        (F::Admin, route) => admin::handle(route, auth, caller, req).await,
        _ => Err(AuthError::NotFound),
    }
}

fn me(caller: &Principal) -> Response<Body> {
    http::json(
        200,
        &serde_json::json!({
            "id": caller.user_id,
            "username": caller.username,
            "roles": caller.roles,
            "session_id": caller.sid,
            "expires_at": caller.exp,
            "email": caller.email,
            "email_verified": caller.email_verified,
            "amr": caller.amr.values(),
        }),
    )
}

#[cfg(test)]
mod tests;
