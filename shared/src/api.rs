//! The HTTP handlers behind API Gateway: request in, use case, contract response out.
//! Each Lambda function's `main` serves exactly one [`Route`] through [`handle`]; the local
//! API calls `handle` too. `handle` is also the one place CORS headers are added.

use std::collections::HashMap;

use lambda_http::http::{HeaderValue, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Auth, Principal};
use crate::error::AuthError;
use crate::http::{self, Browser, browser};
use crate::tokens::IssuedPair;

/// What a function (or a route of the local API) serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Register,
    Login,
    Refresh,
    Logout,
    Me,
    /// `OPTIONS` on any route: the CORS preflight, never behind the authorizer.
    Preflight,
    /// `/admin/users/{username}[/roles|/disable|/enable]`, behind the authorizer (role `admin`).
    Admin,
    /// The caller's account: `POST /auth/password`, `DELETE /auth/account`,
    /// `GET /auth/sessions`, `DELETE /auth/sessions/{id}`, behind the authorizer.
    Account,
    /// `GET /.well-known/jwks.json` and `GET /.well-known/openid-configuration`: public.
    Discovery,
}

impl Route {
    /// Whether the route runs a use case (and so needs configuration, store and keys).
    pub fn needs_auth(self) -> bool {
        !matches!(self, Route::Me | Route::Preflight)
    }

    /// Whether the route hashes or verifies passwords (its function prepares argon2's
    /// memory at its cold start).
    pub fn hashes_passwords(self) -> bool {
        matches!(self, Route::Register | Route::Login | Route::Account)
    }
}

/// Answers `req` on `route`. `auth` may be `None` only for routes that do not need it.
pub async fn handle(route: Route, auth: Option<&Auth>, browser: &Browser, req: Request) -> Response<Body> {
    let request_headers = req.headers().clone();
    if let (Some(auth), Some(RequestContext::ApiGatewayV1(ctx))) = (auth, req.request_context_ref())
        && auth.tokens().issuer().is_none()
    {
        // Where the issuer is the API's own URL, this request says which API that is.
        let region = std::env::var("AWS_REGION").unwrap_or_default();
        auth.tokens().learn_issuer(
            ctx.apiid.as_deref().unwrap_or_default(),
            &region,
            ctx.stage.as_deref().unwrap_or_default(),
        );
    }
    if let Some(auth) = auth
        && matches!(route, Route::Register | Route::Login | Route::Refresh | Route::Account)
        && auth.tokens().issuer().is_none()
    {
        // Nothing that signs runs (nor writes) before the issuer is known.
        tracing::error!("the issuer is not known yet: JWT_ISSUER is empty and no request of API_STAGE came");
        return browser.with_cors(&request_headers, http::error(&AuthError::Internal));
    }
    let response = match (route, auth) {
        (Route::Preflight, _) => return browser.preflight(&request_headers),
        (Route::Me, _) => me(req),
        (Route::Register, Some(auth)) => register(auth, browser, req).await,
        (Route::Login, Some(auth)) => login(auth, browser, req).await,
        (Route::Refresh, Some(auth)) => refresh(auth, browser, req).await,
        (Route::Logout, Some(auth)) => logout(auth, browser, req).await,
        (Route::Admin, Some(auth)) => admin(auth, req).await,
        (Route::Account, Some(auth)) => account(auth, browser, req).await,
        (Route::Discovery, Some(auth)) => {
            // A warm instance serves a rotation's keys within KEY_MAX_AGE.
            auth.tokens().keep_fresh().await;
            discovery(auth, &req)
        }
        (_, None) => {
            tracing::error!(?route, "route served without its use cases");
            http::error(&AuthError::Internal)
        }
    };
    browser.with_cors(&request_headers, response)
}

fn respond(result: Result<Response<Body>, AuthError>) -> Response<Body> {
    result.unwrap_or_else(|e| http::error(&e))
}

/// `?cookie=true`: the refresh token travels in an `HttpOnly` cookie, not in the body.
/// Every cookie-mode request passes the CSRF check first, not only those that present the
/// cookie: otherwise a forged form could sign the victim's browser into the attacker's
/// account (login CSRF), or swap its cookie.
fn cookie_mode(req: &Request, browser: &Browser) -> Result<bool, AuthError> {
    match req.query_string_parameters_ref().and_then(|q| q.first("cookie")) {
        None | Some("false") => Ok(false),
        Some("true") => browser.check_csrf(req.headers()).map(|()| true),
        Some(_) => Err(AuthError::InvalidRequest("`cookie` must be true or false".into())),
    }
}

fn set_cookie(mut res: Response<Body>, cookie: HeaderValue) -> Response<Body> {
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

/// A token response: in cookie mode the refresh token goes into the cookie, for as long as
/// it lives, and not into the body.
fn tokens_response(status: u16, pair: &IssuedPair, cookie: bool, browser: &Browser) -> Response<Body> {
    let body = http::TokenBody::new(pair);
    if !cookie {
        return http::json(status, &body);
    }
    let max_age = body.refresh_expires_in;
    set_cookie(http::json(status, &body.without_refresh_token()), browser.refresh_cookie(&pair.refresh_token, max_age))
}

async fn register(auth: &Auth, browser: &Browser, req: Request) -> Response<Body> {
    respond(
        async {
            let cookie = cookie_mode(&req, browser)?;
            let body = http::parse_register(&req)?;
            let r = auth.register(&body.username, &body.password, body.email.as_deref()).await?;
            let tokens = http::TokenBody::new(&r.tokens);
            let mut answer = json!({
                "user": r.user,
                "access_token": tokens.access_token,
                "token_type": tokens.token_type,
                "expires_in": tokens.expires_in,
            });
            if !cookie {
                answer["refresh_token"] = json!(tokens.refresh_token);
                return Ok(http::json(201, &answer));
            }
            let cookie = browser.refresh_cookie(&r.tokens.refresh_token, tokens.refresh_expires_in);
            Ok(set_cookie(http::json(201, &answer), cookie))
        }
        .await,
    )
}

async fn login(auth: &Auth, browser: &Browser, req: Request) -> Response<Body> {
    respond(
        async {
            let cookie = cookie_mode(&req, browser)?;
            let body = http::parse_login(&req)?;
            let pair = auth.login(&body.username, &body.password, source_ip(&req)).await?;
            Ok(tokens_response(200, &pair, cookie, browser))
        }
        .await,
    )
}

/// In cookie mode a refresh with no body authenticates with the cookie (after the CSRF
/// check), and a refused cookie is cleared.
async fn refresh(auth: &Auth, browser: &Browser, req: Request) -> Response<Body> {
    let mut from_cookie = false;
    let result = async {
        let cookie = cookie_mode(&req, browser)?;
        let token = if cookie && !http::has_body(&req) {
            from_cookie = true;
            browser::refresh_cookie_of(&req).ok_or(AuthError::InvalidGrant)?
        } else {
            http::parse_refresh(&req)?.refresh_token
        };
        let pair = auth.refresh(&token, source_ip(&req)).await?;
        Ok(tokens_response(200, &pair, cookie, browser))
    }
    .await;
    match result {
        Err(AuthError::InvalidGrant) if from_cookie => {
            set_cookie(http::error(&AuthError::InvalidGrant), browser.clearing_cookie())
        }
        other => respond(other),
    }
}

/// The caller's address as API Gateway saw it (`requestContext.identity.sourceIp`): the
/// TCP peer, never a header the client can set.
fn source_ip(req: &Request) -> Option<&str> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.as_deref(),
        _ => None,
    }
}

/// The principal the authorizer put into the request context. No context means the
/// route is not behind the authorizer: refuse rather than trust anything else.
pub fn principal(req: &Request) -> Result<Principal, AuthError> {
    let fields = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => &ctx.authorizer.fields,
        _ => return Err(AuthError::InvalidToken),
    };
    let ctx: HashMap<String, String> = fields
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect();
    Principal::from_context(&ctx).ok_or(AuthError::InvalidToken)
}

/// Revokes, and clears the refresh cookie in any case (a page in cookie mode is signed out
/// whether or not it asked with `?cookie=true`).
async fn logout(auth: &Auth, browser: &Browser, req: Request) -> Response<Body> {
    respond(
        async {
            let principal = principal(&req)?;
            cookie_mode(&req, browser)?;
            let all = match req.query_string_parameters_ref().and_then(|q| q.first("all")) {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err(AuthError::InvalidRequest("`all` must be true or false".into())),
            };
            auth.logout(&principal, all).await?;
            Ok(set_cookie(http::no_content(), browser.clearing_cookie()))
        }
        .await,
    )
}

#[derive(Deserialize)]
struct PasswordChangeBody {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

/// API Gateway's method and resource path (e.g. `/admin/users/{username}/roles`): what a
/// function serving several routes dispatches on.
fn method_and_resource(req: &Request) -> Result<(String, String), AuthError> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            Ok((ctx.http_method.as_str().to_string(), ctx.resource_path.clone().unwrap_or_default()))
        }
        _ => Err(AuthError::NotFound),
    }
}

fn path_parameter(req: &Request, name: &str) -> Result<String, AuthError> {
    req.path_parameters_ref().and_then(|p| p.first(name)).map(str::to_string).ok_or(AuthError::NotFound)
}

/// The caller's account and sessions. The password change answers with a pair (its
/// refresh token in the cookie in cookie mode); deleting the account clears the cookie,
/// as logout does.
async fn account(auth: &Auth, browser: &Browser, req: Request) -> Response<Body> {
    respond(
        async {
            let caller = principal(&req)?;
            let (method, resource) = method_and_resource(&req)?;
            match (method.as_str(), resource.as_str()) {
                ("POST", "/auth/password") => {
                    let cookie = cookie_mode(&req, browser)?;
                    let body: PasswordChangeBody = http::parse_json(&req)?;
                    let pair = auth
                        .change_password(&caller, &body.current_password, &body.new_password, source_ip(&req))
                        .await?;
                    Ok(tokens_response(200, &pair, cookie, browser))
                }
                ("DELETE", "/auth/account") => {
                    cookie_mode(&req, browser)?;
                    let body: PasswordBody = http::parse_json(&req)?;
                    auth.delete_account(&caller, &body.password, source_ip(&req)).await?;
                    Ok(set_cookie(http::no_content(), browser.clearing_cookie()))
                }
                ("GET", "/auth/sessions") => {
                    Ok(http::json(200, &json!({ "sessions": auth.list_sessions(&caller).await? })))
                }
                ("DELETE", "/auth/sessions/{id}") => {
                    auth.end_session(&caller, &path_parameter(&req, "id")?).await?;
                    Ok(http::no_content())
                }
                _ => Err(AuthError::NotFound),
            }
        }
        .await,
    )
}

#[derive(Deserialize)]
struct RoleChange {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// The administration routes, told apart by the route's resource path (API Gateway's
/// `resource`, e.g. `/admin/users/{username}/roles`) and method.
async fn admin(auth: &Auth, req: Request) -> Response<Body> {
    respond(
        async {
            let admin = principal(&req)?;
            // The authorizer required the role already; checked again where it matters.
            if !admin.roles.iter().any(|r| r == "admin") {
                return Err(AuthError::InsufficientScope);
            }
            let (method, resource) = method_and_resource(&req)?;
            let username = path_parameter(&req, "username")?;
            match (method.as_str(), resource.as_str()) {
                ("GET", "/admin/users/{username}") => Ok(http::json(200, &auth.admin_get_user(&username).await?)),
                ("POST", "/admin/users/{username}/roles") => {
                    let change: RoleChange = http::parse_json(&req)?;
                    let view = auth.admin_change_roles(&admin, &username, &change.add, &change.remove).await?;
                    Ok(http::json(200, &view))
                }
                ("POST", "/admin/users/{username}/disable") => {
                    auth.admin_set_disabled(&admin, &username, true).await?;
                    Ok(http::no_content())
                }
                ("POST", "/admin/users/{username}/enable") => {
                    auth.admin_set_disabled(&admin, &username, false).await?;
                    Ok(http::no_content())
                }
                _ => Err(AuthError::NotFound),
            }
        }
        .await,
    )
}

/// How long clients may cache the JWKS and the discovery document: short enough that a
/// rotation's new key is fetched well before it signs anything that matters.
const DISCOVERY_MAX_AGE_SECONDS: u32 = 300;

/// The public key set and the OpenID Provider metadata (issuer, where the keys and the
/// token endpoint are). Only public material: with HMAC the key set is empty.
fn discovery(auth: &Auth, req: &Request) -> Response<Body> {
    respond(method_and_resource(req).and_then(|(method, resource)| {
        let body = match (method.as_str(), resource.as_str()) {
            ("GET", "/.well-known/jwks.json") => serde_json::to_value(auth.tokens().jwks()).map_err(|_| AuthError::Internal)?,
            ("GET", "/.well-known/openid-configuration") => {
                let config = auth.tokens().config();
                let issuer = auth.tokens().issuer().unwrap_or_default();
                let base = public_base_url(issuer, req);
                let algorithm = format!("{:?}", config.algorithm);
                json!({
                    "issuer": issuer,
                    "jwks_uri": format!("{base}/.well-known/jwks.json"),
                    "token_endpoint": format!("{base}/auth/login"),
                    "grant_types_supported": ["password", "refresh_token"],
                    "response_types_supported": ["token"],
                    "subject_types_supported": ["public"],
                    "token_endpoint_auth_methods_supported": ["none"],
                    "id_token_signing_alg_values_supported": [algorithm],
                    "claims_supported": ["iss", "aud", "sub", "username", "roles", "iat", "nbf", "exp", "jti", "sid", "token_use"],
                })
            }
            _ => return Err(AuthError::NotFound),
        };
        let mut res = http::json(200, &body);
        let cache = format!("public, max-age={DISCOVERY_MAX_AGE_SECONDS}");
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache).map_err(|_| AuthError::Internal)?);
        Ok(res)
    }))
}

/// Where the API is, as clients reach it: the issuer when it is a URL (the deployed
/// case, OpenID's rule that the metadata lives under the issuer), else the request's own
/// host and stage (`http` on loopback, `https` anywhere else).
fn public_base_url(issuer: &str, req: &Request) -> String {
    if issuer.starts_with("https://") || issuer.starts_with("http://") {
        return issuer.trim_end_matches('/').to_string();
    }
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]") {
        "http"
    } else {
        "https"
    };
    // The stage (or base path) prefix: the path API Gateway saw, less the resource the
    // route matched (both routes here have no path parameters).
    let prefix = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            let full = ctx.path.clone().unwrap_or_default();
            let resource = ctx.resource_path.clone().unwrap_or_default();
            full.strip_suffix(resource.as_str()).map(str::to_string).unwrap_or_default()
        }
        _ => String::new(),
    };
    format!("{scheme}://{host}{prefix}")
}

fn me(req: Request) -> Response<Body> {
    respond(principal(&req).map(|p| {
        http::json(
            200,
            &json!({
                "id": p.user_id,
                "username": p.username,
                "roles": p.roles,
                "session_id": p.sid,
                "expires_at": p.exp,
            }),
        )
    }))
}
