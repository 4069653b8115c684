//! Property tests: token verification and request parsing take any input without
//! panicking, and accept nothing they should not. Case counts are fixed, so the run is
//! bounded; `PROPTEST_CASES` raises them for a longer local run.

mod common;

use lambda_http::{Body, Request};
use proptest::prelude::*;
use shared::error::AuthError;
use shared::http::{bearer_token, parse_login, parse_refresh, parse_register};
use shared::tokens::{IssuedPair, Subject, TokenService};

fn service() -> TokenService {
    TokenService::from_secret(common::token_config(), common::SECRET)
}

fn issued(service: &TokenService) -> IssuedPair {
    let roles = vec!["user".to_string()];
    let subject = Subject { user_id: "8f14e45f-ceea-467f-a0e6-8e2a3f1c9b7d", username: "alice", roles: &roles };
    let now = shared::auth::now_ms() / 1000;
    service.issue_pair(subject, "019a9c4e-0000-7000-8000-000000000000", now).unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() }
}

fn request(content_type: &str, body: Vec<u8>) -> Request {
    lambda_http::http::Request::builder().header("content-type", content_type).body(Body::Binary(body)).unwrap()
}

/// Parsing fails only as the contract says: 400 `invalid_request` or 413.
fn refused_as_the_contract_says(e: &AuthError) -> bool {
    matches!(e.status_and_code(), (400, "invalid_request") | (413, "invalid_request"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_string_is_refused_as_a_token_without_panicking(token in ".{0,600}") {
        let s = service();
        prop_assert!(s.verify_access(&token).is_err());
        prop_assert!(s.verify_refresh(&token).is_err());
    }

    #[test]
    fn any_three_part_token_of_base64_noise_is_refused(parts in proptest::collection::vec("[A-Za-z0-9_-]{0,300}", 3)) {
        let token = parts.join(".");
        prop_assert!(service().verify_access(&token).is_err());
    }

    #[test]
    fn a_mutated_token_is_refused_or_means_exactly_the_same(
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        refresh in any::<bool>(),
    ) {
        let s = service();
        let pair = issued(&s);
        let original = if refresh { &pair.refresh_token } else { &pair.access_token };
        let mut bytes = original.clone().into_bytes();
        let at = index.index(bytes.len());
        bytes[at] = byte;
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        if refresh {
            if let Ok(claims) = s.verify_refresh(&mutated) {
                prop_assert_eq!(claims, pair.refresh.clone());
            }
        } else if let Ok(claims) = s.verify_access(&mutated) {
            prop_assert_eq!(claims, pair.access.clone());
        }
    }

    #[test]
    fn a_truncated_or_extended_token_is_refused(cut in 1usize..40, extra in "[A-Za-z0-9_.=-]{1,20}") {
        let s = service();
        let pair = issued(&s);
        let token = &pair.access_token;
        prop_assert!(s.verify_access(&token[..token.len() - cut.min(token.len())]).is_err());
        let extended = format!("{token}{extra}");
        prop_assert!(s.verify_access(&extended).is_err());
    }

    #[test]
    fn request_parsing_takes_any_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..10_000),
        content_type in prop::sample::select(vec![
            "application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded",
            "text/plain", "", "multipart/form-data; boundary=x",
        ]),
    ) {
        for result in [
            parse_register(&request(content_type, body.clone())).err(),
            parse_login(&request(content_type, body.clone())).err(),
            parse_refresh(&request(content_type, body.clone())).err(),
        ] {
            if let Some(e) = result {
                prop_assert!(refused_as_the_contract_says(&e), "{e:?}");
            }
        }
    }

    #[test]
    fn json_shaped_bodies_parse_or_are_refused_as_invalid_requests(
        username in proptest::option::of(".{0,40}"),
        password in proptest::option::of(".{0,40}"),
        noise in "[\\[\\]{}\",:0-9a-z \\\\]{0,200}",
    ) {
        let mut body = serde_json::Map::new();
        if let Some(u) = &username { body.insert("username".into(), u.clone().into()); }
        if let Some(p) = &password { body.insert("password".into(), p.clone().into()); }
        body.insert("noise".into(), noise.clone().into());
        let json = serde_json::Value::Object(body).to_string();
        match parse_login(&request("application/json", json.into_bytes())) {
            Ok(parsed) => {
                prop_assert_eq!(Some(parsed.username), username);
                prop_assert_eq!(Some(parsed.password), password);
            }
            Err(e) => prop_assert!(username.is_none() || password.is_none(), "{e:?}"),
        }
        // The noise alone as a body: never a panic.
        if let Err(e) = parse_login(&request("application/json", noise.into_bytes())) {
            prop_assert!(refused_as_the_contract_says(&e));
        }
    }

    #[test]
    fn bearer_parsing_yields_one_clean_token_or_nothing(header in ".{0,200}") {
        if let Some(token) = bearer_token(Some(&header)) {
            prop_assert!(!token.is_empty());
            prop_assert!(!token.chars().any(char::is_whitespace));
            prop_assert!(header.trim_start()[..6].eq_ignore_ascii_case("bearer"));
        }
    }
}
