//! The HTTP handlers behind API Gateway: request in, use case, contract response out.
//! Each Lambda function's `main` calls exactly one of these; the local API calls them too.

use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::auth::{Auth, Principal};
use crate::error::AuthError;
use crate::http;

fn respond(result: Result<Response<Body>, AuthError>) -> Response<Body> {
    result.unwrap_or_else(|e| http::error(&e))
}

pub async fn register(auth: &Auth, req: Request) -> Response<Body> {
    respond(
        async {
            let body = http::parse_register(&req)?;
            let r = auth.register(&body.username, &body.password, body.email.as_deref()).await?;
            let tokens = http::TokenBody::new(&r.tokens);
            Ok(http::json(
                201,
                &json!({
                    "user": r.user,
                    "access_token": tokens.access_token,
                    "refresh_token": tokens.refresh_token,
                    "token_type": tokens.token_type,
                    "expires_in": tokens.expires_in,
                }),
            ))
        }
        .await,
    )
}

pub async fn login(auth: &Auth, req: Request) -> Response<Body> {
    respond(
        async {
            let body = http::parse_login(&req)?;
            let pair = auth.login(&body.username, &body.password, source_ip(&req)).await?;
            Ok(http::json(200, &http::TokenBody::new(&pair)))
        }
        .await,
    )
}

pub async fn refresh(auth: &Auth, req: Request) -> Response<Body> {
    respond(
        async {
            let body = http::parse_refresh(&req)?;
            let pair = auth.refresh(&body.refresh_token).await?;
            Ok(http::json(200, &http::TokenBody::new(&pair)))
        }
        .await,
    )
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

pub async fn logout(auth: &Auth, req: Request) -> Response<Body> {
    respond(
        async {
            let principal = principal(&req)?;
            let all = match req.query_string_parameters_ref().and_then(|q| q.first("all")) {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err(AuthError::InvalidRequest("`all` must be true or false".into())),
            };
            auth.logout(&principal, all).await?;
            Ok(http::no_content())
        }
        .await,
    )
}

pub fn me(req: Request) -> Response<Body> {
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
