//! The public key set and the OpenID Provider metadata (issuer, where the keys and the
//! token endpoint are). Only public material: with HMAC the key set is empty.

use lambda_http::http::{HeaderValue, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::auth::Auth;
use crate::error::AuthError;
use crate::http;
use crate::spec::PublicRoute;

/// How long clients may cache the JWKS and the discovery document: short enough that a
/// rotation's new key is fetched well before it signs anything that matters.
const DISCOVERY_MAX_AGE_SECONDS: u32 = 300;

pub(super) async fn handle(route: PublicRoute, auth: &Auth, req: &Request) -> Result<Response<Body>, AuthError> {
    // A warm instance serves a rotation's keys within KEY_MAX_AGE.
    auth.tokens().keep_fresh().await;
    let body = match route {
        PublicRoute::Jwks => serde_json::to_value(auth.tokens().jwks()).map_err(|_| AuthError::Internal)?,
        PublicRoute::OpenidConfiguration => {
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
