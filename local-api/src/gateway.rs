//! What API Gateway (REST API, Lambda proxy integration) does with one call, done locally:
//! find the route, run the REQUEST authorizer in front of protected routes and evaluate
//! its policy, hand the function the same proxy event API Gateway would (authorizer
//! context included), and answer the gateway's own errors with the template's
//! GatewayResponses. The wiring (routes, gateway responses) is read from template.yaml by
//! `scripts/local_api.py`; nothing about routes is written here.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use lambda_http::Body;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::Auth;
use shared::authorizer::{AccessRules, AuthorizerError, AuthorizerEvent, authorize, policy_allows};
use shared::http::Browser;
use shared::spec::{self, Event, FunctionSpec, HttpFunction};

/// API Gateway's own payload limit (10 MB); the functions enforce the contract's 8 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

// The fake account and API id in method ARNs; only their shape matters to the authorizer.
const REGION: &str = "local";
const ACCOUNT: &str = "000000000000";
const API_ID: &str = "local";

#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The route's function (its `BuildProperties.Binary`): its row of the table of functions.
    #[serde(deserialize_with = "http_function")]
    pub function: (&'static FunctionSpec, HttpFunction),
    /// Behind the REQUEST authorizer.
    pub authorizer: bool,
}

/// A function name of the wiring: one of the table's HTTP functions.
fn http_function<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(&'static FunctionSpec, HttpFunction), D::Error> {
    let name = String::deserialize(d)?;
    match spec::by_name(&name) {
        Some(f @ FunctionSpec { event: Event::Http(function), .. }) => Ok((f, *function)),
        _ => Err(serde::de::Error::custom(format!("{name:?} is not an HTTP function of shared/src/spec.rs"))),
    }
}

/// One of the template's `GatewayResponses`, its quoting already removed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GatewayResponse {
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Wiring {
    pub stage: String,
    pub routes: Vec<Route>,
    #[serde(default)]
    pub gateway_responses: HashMap<String, GatewayResponse>,
}

/// A call as it arrived over HTTP.
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub source_ip: String,
}

/// What goes back over HTTP.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Gateway {
    wiring: Wiring,
    auth: Auth,
    browser: Browser,
    rules: AccessRules,
}

impl Gateway {
    pub fn new(wiring: Wiring, auth: Auth, browser: Browser, rules: AccessRules) -> Result<Self, String> {
        // A protected route the authorizer does not know would be denied on every call:
        // refuse to start rather than serve a route nobody can use.
        for route in wiring.routes.iter().filter(|r| r.authorizer) {
            let key = format!("{} {}", route.method, route.path);
            if !rules.routes.0.contains_key(&key) {
                return Err(format!("protected route {key:?} is missing from ROUTE_ROLES"));
            }
        }
        Ok(Gateway { wiring, auth, browser, rules })
    }

    pub fn stage(&self) -> &str {
        &self.wiring.stage
    }

    pub async fn handle(&self, call: Call) -> Answer {
        // As API Gateway: the route of this method on the path, else the path's ANY route.
        let on_path = |method: &str| {
            self.wiring
                .routes
                .iter()
                .filter(|r| r.method == method)
                .find_map(|r| match_path(&r.path, &call.path).map(|params| (r, params)))
        };
        let found = on_path(&call.method).or_else(|| on_path("ANY"));
        let Some((route, path_parameters)) = found else {
            // API Gateway's answer for an unknown method or path.
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", 403);
        };
        let mut context = None;
        if route.authorizer {
            // As API Gateway: the actual path, not the resource's `{parameter}` template.
            let method_arn = format!(
                "arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{}/{}{}",
                self.stage(),
                route.method,
                call.path
            );
            let event = AuthorizerEvent { method_arn: method_arn.clone(), headers: Some(last_values(&call.headers)) };
            match authorize(&self.auth, &self.rules, &event).await {
                Err(AuthorizerError::Unauthorized) => return self.gateway_response("UNAUTHORIZED", 401),
                Err(AuthorizerError::Unavailable) => return self.gateway_response("AUTHORIZER_FAILURE", 500),
                Ok(answer) if !policy_allows(&answer.policy_document, &method_arn) => {
                    let mut denied = self.gateway_response("ACCESS_DENIED", 403);
                    denied.body = with_authorizer_context(&denied.body, &answer.context);
                    return denied;
                }
                Ok(answer) => {
                    let mut fields: BTreeMap<String, String> = answer.context;
                    fields.insert("principalId".into(), answer.principal_id);
                    context = Some(fields);
                }
            }
        }
        let request = match self.proxy_request(route, &call, context, path_parameters) {
            Ok(r) => r,
            Err(_) => return self.gateway_response("BAD_REQUEST_BODY", 400),
        };
        let (spec, function) = route.function;
        let response = shared::api::handle_any(spec, function, &self.auth, &self.browser, request).await;
        let (parts, body) = response.into_parts();
        let headers = parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = match body {
            Body::Text(t) => t.into_bytes(),
            Body::Binary(b) => b,
            _ => Vec::new(),
        };
        Answer { status: parts.status.as_u16(), headers, body }
    }

    /// The REST API proxy event API Gateway would send for this call, turned into the
    /// request the function's handler gets, by lambda_http's own conversion.
    fn proxy_request(
        &self,
        route: &Route,
        call: &Call,
        authorizer: Option<BTreeMap<String, String>>,
        path_parameters: BTreeMap<String, String>,
    ) -> Result<lambda_http::Request, serde_json::Error> {
        let mut multi_headers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &call.headers {
            multi_headers.entry(k).or_default().push(v);
        }
        let query: Vec<(String, String)> =
            call.query.as_deref().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
        let mut multi_query: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &query {
            multi_query.entry(k).or_default().push(v);
        }
        let single_query: BTreeMap<&str, &str> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (body, base64) = match (call.body.is_empty(), std::str::from_utf8(&call.body)) {
            (true, _) => (Value::Null, false),
            (false, Ok(text)) => (Value::String(text.to_string()), false),
            (false, Err(_)) => (Value::String(base64::engine::general_purpose::STANDARD.encode(&call.body)), true),
        };
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut request_context = json!({
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "stage": self.stage(),
            "resourcePath": route.path,
            // The request's method, also where the route is `ANY`.
            "httpMethod": call.method,
            // The path the client asked for: the local API serves without the stage in
            // front (as a custom domain does), so there is no stage prefix to report.
            "path": call.path,
            "requestId": uuid::Uuid::new_v4().to_string(),
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": now_ms,
            "identity": {"sourceIp": call.source_ip},
        });
        if let Some(fields) = authorizer {
            request_context["authorizer"] = json!(fields);
        }
        let event = json!({
            "resource": route.path,
            "path": call.path,
            "httpMethod": call.method,
            "headers": last_values(&call.headers),
            "multiValueHeaders": multi_headers,
            "queryStringParameters": if query.is_empty() { Value::Null } else { json!(single_query) },
            "multiValueQueryStringParameters": if query.is_empty() { Value::Null } else { json!(multi_query) },
            "pathParameters": if path_parameters.is_empty() { Value::Null } else { json!(path_parameters) },
            "stageVariables": null,
            "requestContext": request_context,
            "body": body,
            "isBase64Encoded": base64,
        });
        let event: lambda_http::request::LambdaRequest = serde_json::from_value(event)?;
        Ok(event.into())
    }

    /// One of API Gateway's own answers, as the template configures it: the type's own
    /// settings, else DEFAULT_4XX / DEFAULT_5XX, else API Gateway's built-in message.
    pub fn gateway_response(&self, kind: &str, default_status: u16) -> Answer {
        let fallback = if default_status >= 500 { "DEFAULT_5XX" } else { "DEFAULT_4XX" };
        let responses = &self.wiring.gateway_responses;
        let own = responses.get(kind).cloned().unwrap_or_default();
        let default = responses.get(fallback).cloned().unwrap_or_default();
        let status = own.status.unwrap_or(default_status);
        let mut headers = default.headers;
        headers.extend(own.headers);
        let body = own.body.or(default.body).unwrap_or_else(|| json!({"message": kind}).to_string());
        let mut headers: Vec<(String, String)> = headers.into_iter().collect();
        headers.push(("content-type".into(), "application/json".into()));
        Answer { status, headers, body: body.into_bytes() }
    }
}

/// As API Gateway fills a gateway response's template: each `$context.authorizer.<key>`
/// becomes that key of the authorizer's context (empty when it has none). The template is
/// not VTL: nothing else is evaluated.
fn with_authorizer_context(body: &[u8], context: &BTreeMap<String, String>) -> Vec<u8> {
    const PREFIX: &str = "$context.authorizer.";
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at]);
        let after = &rest[at + PREFIX.len()..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        out.push_str(context.get(&after[..end]).map_or("", String::as_str));
        rest = &after[end..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// Matches a request path against a route's resource path, whose `{name}` segments match
/// any one non-empty segment (as API Gateway's path parameters do): the parameters, or
/// `None` when it does not match.
fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let (template, path): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    if template.len() != path.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (t, p) in template.iter().zip(&path) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !p.is_empty() => {
                params.insert(name.to_string(), p.to_string());
            }
            Some(_) => return None,
            None if t == p => {}
            None => return None,
        }
    }
    Some(params)
}

/// Header map with one value per name, the last one, as in API Gateway's `headers`.
fn last_values(headers: &[(String, String)]) -> BTreeMap<String, String> {
    headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
