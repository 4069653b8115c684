//! The token routes: register, login, refresh (public) and logout (the caller's).

use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::request::{body_response, cookie_mode, flag, set_cookie, source_ip, tokens_response};
use crate::auth::mfa::Proof;
use crate::auth::{Auth, Principal};
use crate::error::AuthError;
use crate::http::{self, Browser, browser};

pub(super) async fn register(auth: &Auth, browser: &Browser, req: &Request) -> Result<Response<Body>, AuthError> {
    browser.check_origin(req.headers())?;
    let cookie = cookie_mode(req, browser)?;
    let body = http::parse_register(req)?;
    if auth.requires_verified_email() {
        // No session before the address is proven: the user, and the mail on its way.
        let user = auth.register_for_verification(&body.username, &body.password, body.email.as_deref()).await?;
        return Ok(http::json(201, &json!({ "user": user })));
    }
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

pub(super) async fn login(auth: &Auth, browser: &Browser, req: &Request) -> Result<Response<Body>, AuthError> {
    browser.check_origin(req.headers())?;
    let cookie = cookie_mode(req, browser)?;
    let body = http::parse_login(req)?;
    // A known-device credential from the body (JSON clients) or else the cookie; a cookie
    // that came twice is not trusted (it then only counts for nothing, as a forged one).
    let device = body.device_token.or_else(|| browser::cookie_of(req, browser::DEVICE_COOKIE).ok().flatten());
    let signed_in = auth.login_with_device(&body.username, &body.password, source_ip(req), device.as_deref()).await?;
    let answer = http::TokenBody::new(&signed_in.tokens).with_device_token(&signed_in.device_token);
    let res = body_response(200, answer, cookie, browser);
    Ok(set_cookie(res, browser.device_cookie(&signed_in.device_token, signed_in.device_expires_in)))
}

/// The second step's body: the `mfa_token` and exactly one of a code of the app or a
/// recovery code.
#[derive(serde::Deserialize)]
struct SecondStep {
    mfa_token: String,
    code: Option<String>,
    recovery_code: Option<String>,
    device_token: Option<String>,
}

/// A multi-factor login's second step: answered as login is (cookie mode, the device
/// credential).
pub(super) async fn login_mfa(auth: &Auth, browser: &Browser, req: &Request) -> Result<Response<Body>, AuthError> {
    browser.check_origin(req.headers())?;
    let cookie = cookie_mode(req, browser)?;
    let body: SecondStep = http::parse_json(req)?;
    let proof = match (&body.code, &body.recovery_code) {
        (Some(code), None) => Proof::Code(code.trim()),
        (None, Some(code)) => Proof::RecoveryCode(code),
        _ => return Err(AuthError::InvalidRequest("send the mfa_token with a code or a recovery_code".into())),
    };
    let device = body.device_token.or_else(|| browser::cookie_of(req, browser::DEVICE_COOKIE).ok().flatten());
    let signed_in = auth.login_second_step(&body.mfa_token, proof, source_ip(req), device.as_deref()).await?;
    let answer = http::TokenBody::new(&signed_in.tokens).with_device_token(&signed_in.device_token);
    let res = body_response(200, answer, cookie, browser);
    Ok(set_cookie(res, browser.device_cookie(&signed_in.device_token, signed_in.device_expires_in)))
}

/// In cookie mode a refresh with no body authenticates with the cookie (after the CSRF
/// check), and a refused cookie is cleared.
pub(super) async fn refresh(auth: &Auth, browser: &Browser, req: &Request) -> Result<Response<Body>, AuthError> {
    browser.check_origin(req.headers())?;
    let cookie = cookie_mode(req, browser)?;
    if cookie && !http::has_body(req) {
        // No cookie, or more than one (one planted beside ours): refused, and cleared.
        let refreshed = match browser::cookie_of(req, browser::REFRESH_COOKIE) {
            Ok(Some(token)) => auth.refresh(&token, source_ip(req)).await,
            Ok(None) | Err(browser::RepeatedCookie) => Err(AuthError::InvalidGrant),
        };
        return match refreshed {
            Ok(pair) => Ok(tokens_response(200, &pair, cookie, browser)),
            Err(AuthError::InvalidGrant) => {
                Ok(set_cookie(http::error(&AuthError::InvalidGrant), browser.clearing_cookie()))
            }
            Err(e) => Err(e),
        };
    }
    let token = http::parse_refresh(req)?.refresh_token;
    let pair = auth.refresh(&token, source_ip(req)).await?;
    Ok(tokens_response(200, &pair, cookie, browser))
}

/// Revokes, and clears the refresh cookie in any case (a page in cookie mode is signed out
/// whether or not it asked with `?cookie=true`).
pub(super) async fn logout(
    auth: &Auth,
    browser: &Browser,
    caller: Principal,
    req: &Request,
) -> Result<Response<Body>, AuthError> {
    cookie_mode(req, browser)?;
    let all = flag(req, "all")?;
    auth.logout(&caller, all).await?;
    Ok(set_cookie(http::no_content(), browser.clearing_cookie()))
}
