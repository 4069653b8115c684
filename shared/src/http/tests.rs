use super::*;

fn req(content_type: Option<&str>, body: &str) -> Request {
    let mut b = lambda_http::http::Request::builder().method("POST").uri("/auth/login");
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Body::Text(body.to_string())).unwrap()
}

fn code(e: AuthError) -> (u16, &'static str) {
    e.status_and_code()
}

#[test]
fn login_accepts_json_and_the_password_grant_form() {
    let j = parse_login(&req(Some("application/json"), r#"{"username":"alice","password":"pw","extra":1}"#)).unwrap();
    assert_eq!((j.username.as_str(), j.password.as_str()), ("alice", "pw"));
    let f = parse_login(&req(
        Some("application/x-www-form-urlencoded; charset=utf-8"),
        "grant_type=password&username=alice&password=p%C3%A9+w%26",
    ))
    .unwrap();
    assert_eq!((f.username.as_str(), f.password.as_str()), ("alice", "pé w&"));
}

#[test]
fn refresh_accepts_json_and_the_refresh_token_grant_form() {
    let j = parse_refresh(&req(Some("application/json"), r#"{"refresh_token":"abc"}"#)).unwrap();
    assert_eq!(j.refresh_token, "abc");
    let f =
        parse_refresh(&req(Some("application/x-www-form-urlencoded"), "grant_type=refresh_token&refresh_token=abc"))
            .unwrap();
    assert_eq!(f.refresh_token, "abc");
}

#[test]
fn wrong_or_missing_grant_type_is_invalid_request() {
    let form = Some("application/x-www-form-urlencoded");
    for body in ["username=a&password=b", "grant_type=client_credentials&username=a&password=b"] {
        assert_eq!(code(parse_login(&req(form, body)).err().unwrap()), (400, "invalid_request"), "{body}");
    }
    assert!(parse_refresh(&req(form, "grant_type=password&refresh_token=x")).is_err());
    assert!(
        parse_login(&req(Some("application/json"), r#"{"username":"a","password":"b","grant_type":"refresh_token"}"#))
            .is_err()
    );
}

#[test]
fn malformed_bodies_are_invalid_request_without_echoing_values() {
    let json = Some("application/json");
    let cases = [
        (json, "{", "body is not valid JSON"),
        (json, "", "body is not valid JSON"),
        (json, r#"{"username":"alice"}"#, "missing field `password`"),
        (json, r#"{"username":"alice","password":12345678}"#, "a field has the wrong type"),
        (json, r#"["alice","pw"]"#, "body must be a JSON object"),
        (Some("text/plain"), r#"{"username":"a","password":"b"}"#, "Content-Type"),
        (None, r#"{"username":"a","password":"b"}"#, "Content-Type"),
        (Some("application/x-www-form-urlencoded"), "grant_type=password&username=a", "missing field `password`"),
        (Some("application/x-www-form-urlencoded"), "grant_type=password&username=a&password=%ZZ", "form encoding"),
        (Some("application/x-www-form-urlencoded"), "grant_type=password&username=a&password=%FF", "form encoding"),
        (Some("application/x-www-form-urlencoded"), "grant_type=password&username=a&password=b&password=c", "repeated"),
    ];
    for (ct, body, needle) in cases {
        let e = parse_login(&req(ct, body)).err().unwrap_or_else(|| panic!("{body} accepted"));
        assert_eq!(code(e.clone()), (400, "invalid_request"), "{body}");
        assert!(e.to_string().contains(needle), "{body}: {e}");
        assert!(!e.to_string().contains("12345678"));
    }
}

#[test]
fn only_the_parameters_read_must_be_unique_in_a_form() {
    let form = Some("application/x-www-form-urlencoded");
    let ok = parse_login(&req(form, "x=1&x=2&scope=a&scope=b&grant_type=password&username=alice&password=pw")).unwrap();
    assert_eq!((ok.username.as_str(), ok.password.as_str()), ("alice", "pw"));
    for repeated in [
        "grant_type=password&username=a&username=b&password=c",
        "grant_type=password&grant_type=password&username=a&password=b",
    ] {
        let e = parse_login(&req(form, repeated)).err().unwrap();
        assert!(e.to_string().contains("repeated"), "{repeated}: {e}");
    }
}

#[test]
fn a_body_over_the_limit_is_refused_on_any_route() {
    assert!(check_body_size(&req(None, &"x".repeat(MAX_BODY_BYTES)), MAX_BODY_BYTES).is_ok());
    assert_eq!(
        check_body_size(&req(None, &"x".repeat(MAX_BODY_BYTES + 1)), MAX_BODY_BYTES).unwrap_err(),
        AuthError::PayloadTooLarge(MAX_BODY_BYTES)
    );
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let body = format!(r#"{{"username":"a","password":"b","x":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let body = if body.len() > MAX_BODY_BYTES { body[..MAX_BODY_BYTES].to_string() } else { body };
    assert!(parse_login(&req(Some("application/json"), &body)).is_err());
    let nested = format!(r#"{{"username":"a","password":"b","x":{}{}}}"#, "[".repeat(1000), "]".repeat(1000));
    assert_eq!(code(parse_login(&req(Some("application/json"), &nested)).err().unwrap()), (400, "invalid_request"));
}

#[test]
fn bodies_over_8_kib_are_413() {
    let big = format!(r#"{{"username":"a","password":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    assert_eq!(code(parse_login(&req(Some("application/json"), &big)).err().unwrap()), (413, "invalid_request"));
    assert_eq!(code(parse_register(&req(Some("application/json"), &big)).err().unwrap()), (413, "invalid_request"));
    let fits = format!(r#"{{"username":"a","password":"{}"}}"#, "x".repeat(MAX_BODY_BYTES - 40));
    assert!(parse_login(&req(Some("application/json"), &fits)).is_ok());
}

#[test]
fn register_takes_json_only_with_optional_email() {
    let r = parse_register(&req(Some("application/json"), r#"{"username":"a","password":"b"}"#)).unwrap();
    assert_eq!(r.email, None);
    let r =
        parse_register(&req(Some("application/json"), r#"{"username":"a","password":"b","email":"a@b.co"}"#)).unwrap();
    assert_eq!(r.email.as_deref(), Some("a@b.co"));
    assert!(parse_register(&req(Some("application/x-www-form-urlencoded"), "username=a&password=b")).is_err());
}

#[test]
fn error_responses_have_the_contract_shape_and_headers() {
    let res = error(&AuthError::InvalidToken);
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
    assert_eq!(res.headers()["content-type"], "application/json; charset=utf-8");
    let body: serde_json::Value = serde_json::from_slice(body_bytes(res.body())).unwrap();
    assert_eq!(body["error"], "invalid_token");

    let res = error(&AuthError::TooManyAttempts { retry_after_seconds: 42 });
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "42");
    let res = error(&AuthError::Unavailable { retry_after_seconds: 1 });
    assert_eq!((res.status().as_u16(), res.headers()["retry-after"].to_str().unwrap()), (503, "1"));
}

#[test]
fn bearer_header_variants() {
    assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Some("abc.def.ghi"));
    assert_eq!(bearer_token(Some("bearer abc")), Some("abc"), "scheme is case-insensitive");
    assert_eq!(bearer_token(Some("BEARER   abc  ")), Some("abc"), "extra spaces around the token");
    for bad in [
        None,
        Some(""),
        Some("abc"),
        Some("Bearer"),
        Some("Bearer "),
        Some("Basic abc"),
        Some("Bearer a b"),
        Some("Bearer a,Bearer b"),
    ] {
        assert_eq!(bearer_token(bad), None, "{bad:?}");
    }
}
