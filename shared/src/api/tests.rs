//! The recorded events of `events/` (the ones `sam local invoke` uses) fed through the real
//! router, for the answers that need no store: the caller from the authorizer's context,
//! the preflight, discovery, the CSRF refusals and routes a function does not serve. The
//! store-backed routes are tested end to end in `tests/` (local API and Lambda RIE).

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use serde_json::Value;

use super::*;
use crate::config::{ApiConfig, Argon2Config, TokenConfig};
use crate::password::PasswordHasher;
use crate::spec::{self, FunctionSpec};
use crate::store::DynamoStore;
use crate::tokens::TokenService;

const ORIGIN: &str = "http://127.0.0.1:3001";

fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("an events/ file")).expect("JSON")
}

fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway proxy event")
}

fn browser() -> Browser {
    Browser::from_values(Some(ORIGIN.into()), None).expect("browser config")
}

/// Use cases over a store nobody listens to: every test here must answer before a store call.
fn auth() -> Auth {
    auth_over(tokens("https://auth.example.com", ApiConfig::default()))
}

fn auth_over(tokens: TokenService) -> Auth {
    let sdk = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"))
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(sdk), "users", "revoked", "sessions");
    let passwords = PasswordHasher::new(Argon2Config::default()).expect("argon2 parameters");
    Auth::new(Arc::new(store), Arc::new(tokens), Arc::new(passwords))
}

fn tokens(issuer: &str, api: ApiConfig) -> TokenService {
    let config = TokenConfig {
        issuer: issuer.into(),
        audience: "example-api".into(),
        algorithm: jsonwebtoken::Algorithm::HS256,
        key_id: "k1".into(),
        access_ttl_seconds: 900,
        refresh_ttl_seconds: 86_400,
        leeway_seconds: 5,
    };
    TokenService::from_secret(config, b"fixture-test-secret-0123456789abcdef").for_api(api)
}

async fn serve(spec: &'static FunctionSpec, event: &Value) -> Response<Body> {
    serve_with(spec, &auth(), event).await
}

async fn serve_with(spec: &'static FunctionSpec, auth: &Auth, event: &Value) -> Response<Body> {
    let browser = browser();
    let spec::Event::Http(function) = spec.event else { panic!("{} is not an HTTP function", spec.name) };
    handle_any(spec, function, auth, &browser, request(event)).await
}

fn json(res: &Response<Body>) -> Value {
    match res.body() {
        Body::Text(t) => serde_json::from_str(t).expect("a JSON body"),
        Body::Binary(b) => serde_json::from_slice(b).expect("a JSON body"),
        Body::Empty => Value::Null,
        _ => panic!("unexpected body"),
    }
}

fn header<'a>(res: &'a Response<Body>, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

fn error_code(res: &Response<Body>) -> (u16, String) {
    (res.status().as_u16(), json(res)["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn me_answers_from_the_authorizer_context() {
    let res = serve(&spec::ME, &event("me")).await;
    assert_eq!(res.status(), 200);
    let body = json(&res);
    assert_eq!(body["username"], "sam-demo-user");
    assert_eq!(body["id"], "8f14e45f-ceea-467f-a0e6-8e2a3f1c9b7d");
    assert_eq!(body["roles"], serde_json::json!(["user"]));
    assert_eq!(body["session_id"], "019a9c4e-0000-7000-8000-000000000000");
    assert_eq!(body["expires_at"], 1763800900);
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
}

#[tokio::test]
async fn an_authenticated_route_without_the_authorizer_context_is_401() {
    for (name, spec) in
        [("me", &spec::ME), ("account", &spec::ACCOUNT), ("admin", &spec::ADMIN), ("logout", &spec::LOGOUT)]
    {
        let mut e = event(name);
        e["requestContext"].as_object_mut().unwrap().remove("authorizer");
        let res = serve(spec, &e).await;
        assert_eq!(error_code(&res), (401, "invalid_token".into()), "{name}");
        assert_eq!(header(&res, "www-authenticate"), Some(r#"Bearer error="invalid_token""#), "{name}");
    }
}

#[tokio::test]
async fn the_preflight_answers_allowed_origins_only() {
    let res = serve(&spec::PREFLIGHT, &event("preflight")).await;
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&res, "access-control-allow-credentials"), Some("true"));
    assert!(header(&res, "access-control-allow-methods").is_some_and(|m| m.contains("POST")));

    let mut other = event("preflight");
    other["headers"]["Origin"] = "https://evil.example".into();
    other["multiValueHeaders"]["Origin"] = serde_json::json!(["https://evil.example"]);
    let res = serve(&spec::PREFLIGHT, &other).await;
    assert_eq!(res.status(), 204);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "access-control-allow-methods"), None);
}

#[tokio::test]
async fn a_method_the_path_does_not_take_is_405_with_the_paths_methods() {
    for (method, path, allow) in [
        ("GET", "/auth/login", "OPTIONS, POST"),
        ("DELETE", "/auth/me", "GET, OPTIONS"),
        ("PATCH", "/auth/sessions/{id}", "DELETE, OPTIONS"),
        ("POST", "/admin/users/{username}", "GET, OPTIONS"),
        ("HEAD", "/.well-known/jwks.json", "GET, OPTIONS"),
    ] {
        let mut e = event("preflight");
        e["httpMethod"] = method.into();
        e["requestContext"]["httpMethod"] = method.into();
        e["resource"] = path.into();
        e["requestContext"]["resourcePath"] = path.into();
        let res = serve(&spec::PREFLIGHT, &e).await;
        assert_eq!(error_code(&res), (405, "method_not_allowed".into()), "{method} {path}");
        assert_eq!(header(&res, "allow"), Some(allow), "{method} {path}");
        // A browser reads it: CORS as on every answer.
        assert_eq!(header(&res, "access-control-allow-origin"), Some(ORIGIN));
    }
}

#[tokio::test]
async fn discovery_serves_the_key_set_and_the_metadata() {
    let res = serve(&spec::DISCOVERY, &event("discovery")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(&res)["keys"], serde_json::json!([]), "HS256: the secret is never published");
    assert_eq!(header(&res, "cache-control"), Some("public, max-age=300"));

    let mut e = event("discovery");
    e["resource"] = "/.well-known/openid-configuration".into();
    e["path"] = "/.well-known/openid-configuration".into();
    e["requestContext"]["resourcePath"] = "/.well-known/openid-configuration".into();
    e["requestContext"]["path"] = "/v1/.well-known/openid-configuration".into();
    // A forged Host names nothing in the answer (which is cached publicly).
    e["headers"]["Host"] = "evil.example".into();
    e["multiValueHeaders"]["Host"] = serde_json::json!(["evil.example"]);
    let res = serve(&spec::DISCOVERY, &e).await;
    assert_eq!(res.status(), 200);
    let body = json(&res);
    assert_eq!(body["issuer"], "https://auth.example.com");
    assert_eq!(body["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
    assert_eq!(body["id_token_signing_alg_values_supported"], serde_json::json!(["HS256"]));
    assert!(!body.to_string().contains("evil.example"), "{body}");
}

fn cookie_mode(mut e: Value, extra_headers: &[(&str, &str)]) -> Value {
    e["queryStringParameters"] = serde_json::json!({ "cookie": "true" });
    e["multiValueQueryStringParameters"] = serde_json::json!({ "cookie": ["true"] });
    for (k, v) in extra_headers {
        e["headers"][*k] = (*v).into();
        e["multiValueHeaders"][*k] = serde_json::json!([v]);
    }
    e
}

#[tokio::test]
async fn cookie_mode_requests_that_fail_the_csrf_check_are_refused_before_anything_else() {
    type Case = (&'static str, &'static FunctionSpec, &'static [(&'static str, &'static str)]);
    let cases: [Case; 5] = [
        ("login", &spec::LOGIN, &[]),
        ("register", &spec::REGISTER, &[("Origin", ORIGIN)]),
        ("refresh", &spec::REFRESH, &[]),
        ("refresh", &spec::REFRESH, &[("Origin", ORIGIN)]),
        ("logout", &spec::LOGOUT, &[("Origin", "https://evil.example")]),
    ];
    for (name, spec, headers) in cases {
        // The store is unreachable: an answer other than 403 would mean it was tried.
        let res = serve(spec, &cookie_mode(event(name), headers)).await;
        assert_eq!(error_code(&res), (403, "invalid_request".into()), "{name} {headers:?}");
        assert!(json(&res)["error_description"].as_str().unwrap().contains("csrf"), "{name}");
    }
}

#[tokio::test]
async fn the_sign_in_routes_refuse_an_origin_that_is_not_allowed_before_anything_else() {
    for (name, spec) in [("login", &spec::LOGIN), ("register", &spec::REGISTER), ("refresh", &spec::REFRESH)] {
        for origin in ["https://evil.example", "null", "HTTP://127.0.0.1:3001"] {
            // The store is unreachable: an answer other than 403 would mean it was tried.
            let mut e = event(name);
            e["headers"]["Origin"] = origin.into();
            e["multiValueHeaders"]["Origin"] = serde_json::json!([origin]);
            let res = serve(spec, &e).await;
            assert_eq!(error_code(&res), (403, "invalid_request".into()), "{name} {origin}");
            assert!(json(&res)["error_description"].as_str().unwrap().contains("origin"), "{name}");
        }
        // An allowed origin passes the check (and then fails on its missing body here).
        let mut e = event(name);
        e["headers"]["Origin"] = ORIGIN.into();
        e["body"] = Value::Null;
        assert_eq!(serve(spec, &e).await.status(), 400, "{name}");
    }
    // Routes behind the authorizer are not concerned (their callers hold a session).
    let mut e = event("me");
    e["headers"]["Origin"] = "https://evil.example".into();
    assert_eq!(serve(&spec::ME, &e).await.status(), 200);
}

#[tokio::test]
async fn a_route_the_function_does_not_serve_is_404() {
    let mut unknown = event("account");
    unknown["requestContext"]["resourcePath"] = "/auth/nothing-here".into();
    let mut wrong_method = event("account");
    wrong_method["requestContext"]["httpMethod"] = "PUT".into();
    wrong_method["httpMethod"] = "PUT".into();
    for (spec, e) in [
        (&spec::ACCOUNT, unknown),
        (&spec::ACCOUNT, wrong_method),
        // Another function's route: the admin function does not serve the account's.
        (&spec::ADMIN, event("account")),
        (&spec::DISCOVERY, event("me")),
    ] {
        let res = serve(spec, &e).await;
        assert_eq!(
            error_code(&res),
            (404, "not_found".into()),
            "{} {}",
            spec.name,
            e["requestContext"]["resourcePath"]
        );
    }
}

#[tokio::test]
async fn a_function_that_signs_waits_for_the_issuer_and_one_that_does_not_answers() {
    // JWT_ISSUER empty: the issuer is the API's URL, learnt from a request of API_STAGE.
    // The events' stage is v1; expecting another, nothing is learnt and nothing signs.
    let us_east_1 = |stage: &str| ApiConfig { region: "us-east-1".into(), stage: Some(stage.into()) };
    let waiting = auth_over(tokens("", us_east_1("prod")));
    for (name, spec) in [("login", &spec::LOGIN), ("register", &spec::REGISTER), ("refresh", &spec::REFRESH)] {
        let res = serve_with(spec, &waiting, &event(name)).await;
        assert_eq!(error_code(&res), (500, "server_error".into()), "{name}");
    }
    assert_eq!(waiting.tokens().issuer(), None);
    assert_eq!(serve_with(&spec::DISCOVERY, &waiting, &event("discovery")).await.status(), 200);

    // A request of its own stage teaches it; then the handler answers (here: the missing body).
    let learning = auth_over(tokens("", us_east_1("v1")));
    let mut no_body = event("login");
    no_body["body"] = Value::Null;
    assert_eq!(error_code(&serve_with(&spec::LOGIN, &learning, &no_body).await).0, 400);
    assert_eq!(learning.tokens().issuer(), Some("https://abc123.execute-api.us-east-1.amazonaws.com/v1"));
}

#[tokio::test]
async fn a_function_of_one_route_serves_it_wherever_it_is_wired() {
    let mut e = event("me");
    e["requestContext"]["resourcePath"] = "/admin/whoami".into();
    let res = serve(&spec::ME, &e).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(&res)["username"], "sam-demo-user");
}

#[tokio::test]
async fn every_route_of_the_table_reaches_a_handler() {
    // Without a caller, an authenticated route is 401 and a public one gets past routing
    // (here: refused for its missing or bad body, or answered): never the router's 404.
    for function in spec::FUNCTIONS {
        for route in function.routes {
            let path = if route.path == "*" { "/auth/login" } else { route.path };
            let mut e = event("discovery");
            e["httpMethod"] = route.method.into();
            e["resource"] = path.into();
            e["requestContext"]["httpMethod"] = route.method.into();
            e["requestContext"]["resourcePath"] = path.into();
            e["pathParameters"] = serde_json::json!({ "username": "alice", "id": "s-1" });
            let res = serve(function, &e).await;
            let status = res.status().as_u16();
            match route.route.caller() {
                spec::Caller::Authenticated => assert_eq!(status, 401, "{} {}", route.method, route.path),
                spec::Caller::Public => {
                    assert!(status != 404 && status != 401, "{} {}: {status}", route.method, route.path)
                }
            }
        }
    }
}
