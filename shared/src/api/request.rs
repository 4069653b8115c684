//! What the handlers read from a request and add to a response, beyond the body parsers
//! of `http`: the caller, the client's address, cookie mode, path parameters.

use std::collections::HashMap;

use lambda_http::http::{HeaderValue, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::auth::Principal;
use crate::error::AuthError;
use crate::http::{self, Browser};
use crate::tokens::IssuedPair;

/// The caller the authorizer put into the request context. No context means the route is
/// not behind the authorizer: refuse rather than trust anything else.
pub fn caller(req: &Request) -> Result<Principal, AuthError> {
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

/// The caller's address as API Gateway saw it (`requestContext.identity.sourceIp`): the
/// TCP peer, never a header the client can set.
pub(super) fn source_ip(req: &Request) -> Option<&str> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.as_deref(),
        _ => None,
    }
}

/// A path parameter of the matched resource (`{username}`, `{id}`).
pub(super) fn path_parameter(req: &Request, name: &str) -> Result<String, AuthError> {
    req.path_parameters_ref().and_then(|p| p.first(name)).map(str::to_string).ok_or(AuthError::NotFound)
}

/// A `true`/`false` query parameter (absent: false).
pub(super) fn flag(req: &Request, name: &str) -> Result<bool, AuthError> {
    match req.query_string_parameters_ref().and_then(|q| q.first(name)) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(AuthError::InvalidRequest(format!("`{name}` must be true or false"))),
    }
}

/// `?cookie=true`: the refresh token travels in an `HttpOnly` cookie, not in the body.
/// Every cookie-mode request passes the CSRF check first, not only those that present the
/// cookie: otherwise a forged form could sign the victim's browser into the attacker's
/// account (login CSRF), or swap its cookie.
pub(super) fn cookie_mode(req: &Request, browser: &Browser) -> Result<bool, AuthError> {
    let cookie = flag(req, "cookie")?;
    if cookie {
        browser.check_csrf(req.headers())?;
    }
    Ok(cookie)
}

pub(super) fn set_cookie(mut res: Response<Body>, cookie: HeaderValue) -> Response<Body> {
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

/// A token response: in cookie mode the refresh token goes into the cookie, for as long as
/// it lives, and not into the body.
pub(super) fn tokens_response(status: u16, pair: &IssuedPair, cookie: bool, browser: &Browser) -> Response<Body> {
    body_response(status, http::TokenBody::new(pair), cookie, browser)
}

/// `tokens_response` of a body that says more than the pair (login's `device_token`).
pub(super) fn body_response(status: u16, body: http::TokenBody<'_>, cookie: bool, browser: &Browser) -> Response<Body> {
    match (cookie, body.refresh_token) {
        (true, Some(token)) => {
            let set = browser.refresh_cookie(token, body.refresh_expires_in);
            set_cookie(http::json(status, &body.without_refresh_token()), set)
        }
        _ => http::json(status, &body),
    }
}
