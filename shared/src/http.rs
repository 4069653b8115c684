//! HTTP plumbing shared by the API functions: body limits, JSON and form parsing into
//! typed requests, and the contract's responses and error body.

use std::collections::HashMap;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AuthError;
use crate::tokens::IssuedPair;

pub mod browser;

pub use browser::Browser;

pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// An import's body: 100 users with their hashes do not fit in 8 KiB.
pub const MAX_IMPORT_BODY_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
}

fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

fn body_kind(req: &Request, allow_form: bool) -> Result<BodyKind, AuthError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" if allow_form => Ok(BodyKind::Form),
        _ if allow_form => Err(AuthError::InvalidRequest(
            "Content-Type must be application/json or application/x-www-form-urlencoded".into(),
        )),
        _ => Err(AuthError::InvalidRequest("Content-Type must be application/json".into())),
    }
}

/// Refuses a body over `limit` (the route's: `Route::max_body_bytes`), on any route (one
/// that reads no body too).
pub fn check_body_size(req: &Request, limit: usize) -> Result<(), AuthError> {
    limited_body(req, limit).map(|_| ())
}

fn limited_body(req: &Request, limit: usize) -> Result<&[u8], AuthError> {
    let bytes = body_bytes(req.body());
    if bytes.len() > limit {
        return Err(AuthError::PayloadTooLarge(limit));
    }
    Ok(bytes)
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Parses a JSON object. Going through `serde_json::Value` enforces serde_json's nesting
/// limit even inside fields the request type ignores, and lets arrays be refused (serde
/// would otherwise read `["alice","pw"]` as a struct).
fn parse_json_object(bytes: &[u8]) -> Result<JsonObject, AuthError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        let msg = if e.to_string().contains("recursion limit") {
            "body is nested too deeply"
        } else {
            "body is not valid JSON"
        };
        AuthError::InvalidRequest(msg.into())
    })?;
    match value {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err(AuthError::InvalidRequest("body must be a JSON object".into())),
    }
}

/// Reads a request type out of a parsed body. Messages name the problem but never echo a
/// value: a mistyped field could be a password.
fn typed<T: DeserializeOwned>(object: JsonObject) -> Result<T, AuthError> {
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        let text = e.to_string();
        let msg = match text.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            Some(field) => format!("missing field `{field}`"),
            None => "a field has the wrong type".to_string(),
        };
        AuthError::InvalidRequest(msg)
    })
}

/// The token request parameters this service reads: each may appear once (RFC 6749 §3.1).
const OAUTH_PARAMETERS: [&str; 5] = ["grant_type", "username", "password", "refresh_token", "device_token"];

/// Parses `application/x-www-form-urlencoded`. A parameter the service reads given twice
/// is refused (RFC 6749 §3.1), as is anything that is not valid UTF-8 after
/// percent-decoding; other parameters are ignored, repeated or not, like unknown JSON fields.
fn parse_form(bytes: &[u8]) -> Result<HashMap<String, String>, AuthError> {
    let text = std::str::from_utf8(bytes).map_err(|_| AuthError::InvalidRequest("body is not valid UTF-8".into()))?;
    let mut out = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| -> Result<String, AuthError> {
            let plus = s.replace('+', " ");
            percent_decode(&plus).ok_or_else(|| AuthError::InvalidRequest("body is not valid form encoding".into()))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if !OAUTH_PARAMETERS.contains(&k.as_str()) {
            continue;
        }
        if out.insert(k, v).is_some() {
            return Err(AuthError::InvalidRequest("a form parameter is repeated".into()));
        }
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses an OAuth 2.0 token request: a JSON object, or the form encoding, which is read
/// into the same object so both go through one typed parse. `grant_type` must be `grant`;
/// the form (RFC 6749) requires it, JSON may leave it out.
fn parse_grant<T: DeserializeOwned>(req: &Request, grant: &str) -> Result<T, AuthError> {
    let bytes = limited_body(req, MAX_BODY_BYTES)?;
    let (object, grant_required) = match body_kind(req, true)? {
        BodyKind::Json => (parse_json_object(bytes)?, false),
        BodyKind::Form => {
            (parse_form(bytes)?.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(), true)
        }
    };
    match object.get("grant_type") {
        None if !grant_required => {}
        None => return Err(AuthError::InvalidRequest("missing field `grant_type`".into())),
        Some(found) if found.as_str() == Some(grant) => {}
        Some(_) => {
            return Err(AuthError::InvalidRequest(format!("unsupported grant_type; this endpoint takes \"{grant}\"")));
        }
    }
    typed(object)
}

#[derive(serde::Deserialize)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A known-device credential from an earlier login (JSON clients; browsers send the
    /// `__Host-device` cookie).
    #[serde(default)]
    pub device_token: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

pub fn parse_register(req: &Request) -> Result<RegisterRequest, AuthError> {
    parse_json(req)
}

/// A JSON-only request body (`application/json`, at most 8 KiB) into `T`.
pub fn parse_json<T: DeserializeOwned>(req: &Request) -> Result<T, AuthError> {
    parse_json_up_to(req, MAX_BODY_BYTES)
}

/// `parse_json` with a route's own body limit.
pub fn parse_json_up_to<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<T, AuthError> {
    let bytes = limited_body(req, limit)?;
    body_kind(req, false)?;
    typed(parse_json_object(bytes)?)
}

/// JSON `{"username","password"}` or the OAuth 2.0 password grant form.
pub fn parse_login(req: &Request) -> Result<LoginRequest, AuthError> {
    parse_grant(req, "password")
}

/// JSON `{"refresh_token"}` or the OAuth 2.0 refresh_token grant form.
pub fn parse_refresh(req: &Request) -> Result<RefreshRequest, AuthError> {
    parse_grant(req, "refresh_token")
}

fn with_common_headers(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    // Token responses must not be cached (RFC 6749 §5.1); nothing here should be.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    res
}

pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut res = Response::new(Body::Text(text));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_common_headers(res)
}

/// 202 `{}`: taken, and what follows goes by mail. Always these bytes, so the answer tells
/// nothing about whether a mail went.
pub fn accepted() -> Response<Body> {
    json(202, &serde_json::json!({}))
}

pub fn no_content() -> Response<Body> {
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = StatusCode::NO_CONTENT;
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The contract's error response, with `Retry-After`, `WWW-Authenticate` and `Allow`
/// where due.
pub fn error(e: &AuthError) -> Response<Body> {
    let (status, _) = e.status_and_code();
    let mut res = json(status, &e.body());
    if let AuthError::MethodNotAllowed { allow } = e
        && let Ok(value) = HeaderValue::from_str(allow)
    {
        res.headers_mut().insert(header::ALLOW, value);
    }
    if let Some(secs) = e.retry_after() {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(challenge) = e.www_authenticate() {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    res
}

#[derive(Serialize)]
pub struct TokenBody<'a> {
    pub access_token: &'a str,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Absent in cookie mode: the refresh token is then only in the `HttpOnly` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    pub refresh_expires_in: u64,
    /// Login only: the known-device credential, also set as the `__Host-device` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<&'a str>,
}

impl<'a> TokenBody<'a> {
    pub fn new(pair: &'a IssuedPair) -> Self {
        TokenBody {
            access_token: &pair.access_token,
            token_type: "Bearer",
            expires_in: pair.access.exp - pair.access.iat,
            refresh_token: Some(&pair.refresh_token),
            refresh_expires_in: pair.refresh.exp - pair.refresh.iat,
            device_token: None,
        }
    }

    pub fn with_device_token(mut self, token: &'a str) -> Self {
        self.device_token = Some(token);
        self
    }

    /// The body of cookie mode: everything but the refresh token.
    pub fn without_refresh_token(mut self) -> Self {
        self.refresh_token = None;
        self
    }
}

/// Whether the request has a body at all (cookie-mode refresh sends none).
pub fn has_body(req: &Request) -> bool {
    !body_bytes(req.body()).is_empty()
}

/// Reads the access token of `Authorization: Bearer <token>` (RFC 6750 §2.1). The scheme
/// is case-insensitive; exactly one token, no other parameters.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return None;
    }
    Some(token)
}

#[cfg(test)]
mod tests;
