//! The REST API REQUEST authorizer: token in, IAM policy (or "Unauthorized") out.
//!
//! The policy depends only on the token, never on the route being called, so API
//! Gateway's result cache (keyed by the Authorization header) can reuse it for any
//! route: it allows every protected route whose roles the token holds and denies the
//! rest. A cached answer therefore never locks a user out of a route they may use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::error::AuthError;
use crate::http::bearer_token;
use crate::metrics::Metric;

use crate::auth::admin::ADMIN_ROLE;
pub use crate::config::{AccessRules, RouteRoles};
use crate::tokens::Amr;

/// The context keys API Gateway's 403 (`ACCESS_DENIED` in template.yaml) reads its body
/// from: a gateway response cannot run code, but it can name the authorizer's context.
pub const DENY_ERROR: &str = "deny_error";
pub const DENY_DESCRIPTION: &str = "deny_description";

/// The part of API Gateway's REQUEST authorizer event this authorizer reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent {
    pub method_arn: String,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

impl AuthorizerEvent {
    fn authorization(&self) -> Option<&str> {
        // Header names are case-insensitive; two different spellings is ambiguous: refuse.
        let mut found = self.headers.as_ref()?.iter().filter(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        let first = found.next()?;
        if found.next().is_some() { None } else { Some(first.1.as_str()) }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub principal_id: String,
    pub policy_document: PolicyDocument,
    pub context: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub action: &'static str,
    pub effect: &'static str,
    pub resource: Vec<String>,
}

/// Why there is no policy. API Gateway maps a function error whose message is exactly
/// `Unauthorized` to 401; any other error is an authorizer failure (mapped to 503 by
/// the template's gateway responses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("authorizer temporarily unavailable")]
    Unavailable,
}

/// `arn:aws:execute-api:region:account:api-id/stage` of a method ARN.
fn api_stage_arn(method_arn: &str) -> Option<&str> {
    let mut slash = method_arn.match_indices('/').map(|(i, _)| i);
    let _api_end = slash.next()?;
    let stage_end = slash.next()?;
    Some(&method_arn[..stage_end])
}

/// The region, API id and stage of `arn:aws:execute-api:{region}:{account}:{api}/{stage}`.
fn api_of(api_stage_arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = api_stage_arn.splitn(6, ':');
    let region = parts.nth(3)?;
    let (api_id, stage) = parts.nth(1)?.split_once('/')?;
    Some((region, api_id, stage))
}

/// A route's method ARN pattern; a path parameter (`{username}`) matches any value, as
/// the method ARN API Gateway sends carries the actual path.
fn route_arn(base: &str, route: &str) -> String {
    let (method, path) = route.split_once(' ').unwrap_or(("*", "/*"));
    let path: Vec<&str> = path
        .split('/')
        .map(|segment| if segment.starts_with('{') && segment.ends_with('}') { "*" } else { segment })
        .collect();
    format!("{base}/{method}{}", path.join("/"))
}

/// The policy of the caller `event` names: every protected route whose roles the token
/// holds is allowed, and, where `rules.admin_requires_mfa`, a route that requires `admin`
/// only with a second factor in the token's `amr`. The rest is denied, and the context
/// says why (`DENY_ERROR`): `insufficient_user_authentication` (RFC 9470) when only the
/// second factor is missing, else `insufficient_scope`.
pub async fn authorize(
    auth: &Auth,
    rules: &AccessRules,
    event: &AuthorizerEvent,
) -> Result<AuthorizerResponse, AuthorizerError> {
    let base = api_stage_arn(&event.method_arn).ok_or(AuthorizerError::Unauthorized)?;
    if let Some((region, api_id, stage)) = api_of(base) {
        auth.tokens().learn_issuer(api_id, region, stage);
    }
    let token = bearer_token(event.authorization()).ok_or(AuthorizerError::Unauthorized)?;
    let principal = match auth.authorize(token, &[]).await {
        Ok(p) => p,
        Err(e @ (AuthError::Unavailable { .. } | AuthError::Internal | AuthError::Store(_))) => {
            // The decision that leaves: a store fault is logged and counted here, once.
            e.report();
            return Err(AuthorizerError::Unavailable);
        }
        Err(_) => return Err(AuthorizerError::Unauthorized),
    };
    let (mut allow, mut deny) = (Vec::new(), Vec::new());
    let (mut short_of_roles, mut short_of_factor) = (false, false);
    for (route, required) in &rules.routes.0 {
        let has_roles = required.iter().all(|r| principal.roles.contains(r));
        let needs_factor = rules.admin_requires_mfa && required.iter().any(|r| r == ADMIN_ROLE);
        let permitted = has_roles && (!needs_factor || principal.amr == Amr::MultiFactor);
        short_of_roles |= !has_roles;
        short_of_factor |= has_roles && !permitted;
        (if permitted { &mut allow } else { &mut deny }).push(route_arn(base, route));
    }
    let mut context: BTreeMap<String, String> = principal.to_context().into_iter().collect();
    let (error, description) = if short_of_factor && !short_of_roles {
        ("insufficient_user_authentication", "this route requires a sign-in with a second factor")
    } else {
        ("insufficient_scope", "the access token does not grant the roles this route requires")
    };
    context.insert(DENY_ERROR.into(), error.into());
    context.insert(DENY_DESCRIPTION.into(), description.into());
    let mut statement = Vec::new();
    if !allow.is_empty() {
        statement.push(Statement { action: "execute-api:Invoke", effect: "Allow", resource: allow });
    }
    if !deny.is_empty() {
        statement.push(Statement { action: "execute-api:Invoke", effect: "Deny", resource: deny });
    }
    Ok(AuthorizerResponse {
        principal_id: principal.user_id.clone(),
        policy_document: PolicyDocument { version: "2012-10-17", statement },
        context,
    })
}

/// The metric a decision counts in: allowed if its policy lets `method_arn` through,
/// denied if not (401, or 403 for a missing role), unavailable if it could not decide.
pub fn outcome_metric(decision: &Result<AuthorizerResponse, AuthorizerError>, method_arn: &str) -> Metric {
    match decision {
        Ok(response) if policy_allows(&response.policy_document, method_arn) => Metric::AuthorizerAllowed,
        Ok(_) | Err(AuthorizerError::Unauthorized) => Metric::AuthorizerDenied,
        Err(AuthorizerError::Unavailable) => Metric::AuthorizerUnavailable,
    }
}

/// Evaluates a policy the way API Gateway does for one call: an explicit Deny wins, then
/// an Allow must match. For a local stand-in of API Gateway, and for tests.
pub fn policy_allows(policy: &PolicyDocument, method_arn: &str) -> bool {
    let matches = |s: &Statement| s.resource.iter().any(|r| arn_matches(r, method_arn));
    let denied = policy.statement.iter().any(|s| s.effect == "Deny" && matches(s));
    !denied && policy.statement.iter().any(|s| s.effect == "Allow" && matches(s))
}

/// IAM-style match where `*` stands for any run of characters.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == arn;
    }
    let mut rest = arn;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else { return false };
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/auth/me";

    #[test]
    fn api_stage_arn_is_the_prefix_before_the_method() {
        assert_eq!(api_stage_arn(ARN), Some("arn:aws:execute-api:eu-west-1:123456789012:abc123/prod"));
        assert_eq!(api_stage_arn("garbage"), None);
        assert_eq!(api_of(api_stage_arn(ARN).unwrap()), Some(("eu-west-1", "abc123", "prod")));
        assert_eq!(api_of("garbage"), None);
    }

    #[test]
    fn policy_evaluation_follows_iam_rules() {
        let base = api_stage_arn(ARN).unwrap();
        let policy = PolicyDocument {
            version: "2012-10-17",
            statement: vec![
                Statement {
                    action: "execute-api:Invoke",
                    effect: "Allow",
                    resource: vec![route_arn(base, "GET /auth/me")],
                },
                Statement {
                    action: "execute-api:Invoke",
                    effect: "Deny",
                    resource: vec![route_arn(base, "GET /admin/ping")],
                },
            ],
        };
        assert!(policy_allows(&policy, ARN));
        assert!(!policy_allows(&policy, &format!("{base}/GET/admin/ping")));
        assert!(!policy_allows(&policy, &format!("{base}/POST/auth/logout")), "not allowed = denied");
        assert!(arn_matches("arn:x/prod/*/*", "arn:x/prod/GET/auth/me"));
        let admin = route_arn(base, "POST /admin/users/{username}/roles");
        assert_eq!(admin, format!("{base}/POST/admin/users/*/roles"));
        assert!(arn_matches(&admin, &format!("{base}/POST/admin/users/alice/roles")));
        assert!(!arn_matches(&admin, &format!("{base}/POST/admin/users/alice/disable")));
        assert!(!arn_matches("arn:x/prod/GET/*", "arn:x/prod/POST/auth/me"));
    }

    #[test]
    fn decisions_count_as_allowed_denied_or_unavailable() {
        let base = api_stage_arn(ARN).unwrap();
        let allow_me = |effect| AuthorizerResponse {
            principal_id: "u".into(),
            policy_document: PolicyDocument {
                version: "2012-10-17",
                statement: vec![Statement {
                    action: "execute-api:Invoke",
                    effect,
                    resource: vec![route_arn(base, "GET /auth/me")],
                }],
            },
            context: BTreeMap::new(),
        };
        assert_eq!(outcome_metric(&Ok(allow_me("Allow")), ARN), Metric::AuthorizerAllowed);
        assert_eq!(outcome_metric(&Ok(allow_me("Deny")), ARN), Metric::AuthorizerDenied, "a role missing: 403");
        assert_eq!(outcome_metric(&Err(AuthorizerError::Unauthorized), ARN), Metric::AuthorizerDenied);
        assert_eq!(outcome_metric(&Err(AuthorizerError::Unavailable), ARN), Metric::AuthorizerUnavailable);
    }

    #[test]
    fn route_roles_parse_and_refuse_nonsense() {
        let r = RouteRoles::parse(r#"{"GET /auth/me": [], "GET /admin/ping": ["admin"]}"#).unwrap();
        assert_eq!(r.0["GET /admin/ping"], vec!["admin".to_string()]);
        assert!(RouteRoles::parse(r#"{"auth/me": []}"#).is_err());
        assert!(RouteRoles::parse("[]").is_err());
    }

    #[test]
    fn the_authorization_header_is_found_in_any_case_but_not_twice() {
        let ev = |h: &[(&str, &str)]| AuthorizerEvent {
            method_arn: ARN.into(),
            headers: Some(h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        };
        assert_eq!(ev(&[("authorization", "Bearer x")]).authorization(), Some("Bearer x"));
        assert_eq!(ev(&[("Authorization", "Bearer x")]).authorization(), Some("Bearer x"));
        assert_eq!(ev(&[("Authorization", "Bearer x"), ("authorization", "Bearer y")]).authorization(), None);
        assert_eq!(ev(&[]).authorization(), None);
    }
}

impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        // API Gateway matches the message exactly: "Unauthorized" becomes a 401.
        lambda_runtime::Diagnostic { error_type: format!("{e:?}"), error_message: e.to_string() }
    }
}
