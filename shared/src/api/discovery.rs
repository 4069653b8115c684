//! The public key set and the OpenID Provider metadata (issuer, where the keys and the
//! token endpoint are). Only public material: with HMAC the key set is empty.

use lambda_http::http::{HeaderValue, header};
use lambda_http::{Body, Response};
use serde_json::json;

use crate::auth::Auth;
use crate::error::AuthError;
use crate::http;
use crate::spec::PublicRoute;

/// How long clients may cache the JWKS and the discovery document: short enough that a
/// rotation's new key is fetched well before it signs anything that matters.
const DISCOVERY_MAX_AGE_SECONDS: u32 = 300;

pub(super) async fn handle(route: PublicRoute, auth: &Auth) -> Result<Response<Body>, AuthError> {
    // A warm instance serves a rotation's keys within KEY_MAX_AGE.
    auth.tokens().keep_fresh().await;
    let body = match route {
        PublicRoute::Jwks => serde_json::to_value(auth.tokens().jwks()).map_err(|_| AuthError::Internal)?,
        PublicRoute::OpenidConfiguration => {
            let config = auth.tokens().config();
            // The issuer is a URL (configured, or the API's own, learnt from a request of
            // its stage); the metadata hangs under it. Never a URL from the request's Host:
            // the answer is cached publicly.
            let issuer = auth.tokens().issuer().ok_or_else(super::issuer_unknown)?;
            let base = issuer.trim_end_matches('/');
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
                "claims_supported": ["iss", "aud", "sub", "username", "roles", "iat", "nbf", "exp", "jti", "sid", "token_use", "amr"],
            })
        }
        _ => return Err(AuthError::NotFound),
    };
    let mut res = http::json(200, &body);
    let cache = format!("public, max-age={DISCOVERY_MAX_AGE_SECONDS}");
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache).map_err(|_| AuthError::Internal)?);
    Ok(res)
}
