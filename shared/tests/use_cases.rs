//! The use cases end to end over the DynamoDB store (a real DynamoDB API server).

mod common;

use std::sync::Arc;

use shared::auth::Principal;
use shared::config::Argon2Config;
use shared::error::AuthError;
use shared::password::PasswordHasher;
use shared::store::{FailedLogins, RevocationStore, Spend, Successor, ThrottleKey, ThrottleStore, UserStore};

const PASSWORD: &str = "correct horse battery";
/// The caller's address, as API Gateway's `sourceIp` gives it.
const CLIENT: Option<&str> = Some("192.0.2.1");
/// The token config's clock leeway (common::token_config).
const LEEWAY: u64 = 5;

fn principal(auth: &shared::Auth, access_token: &str) -> Principal {
    Principal::from_claims(auth.tokens().verify_access(access_token).unwrap())
}

async fn registered(auth: &shared::Auth, prefix: &str) -> (String, shared::auth::Registered) {
    let name = common::unique_username(prefix);
    let r = auth.register(&name, PASSWORD, Some("someone@example.com")).await.unwrap();
    (name, r)
}

#[tokio::test]
async fn register_stores_an_argon2id_hash_and_returns_working_tokens() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let name = common::unique_username("Reg").replace("reg", "Reg");
    let r = auth.register(&name, PASSWORD, None).await.unwrap();
    assert_eq!(r.user.username, name.to_lowercase(), "stored normalized");
    assert_eq!(r.user.roles, vec!["user".to_string()]);
    assert_eq!(r.tokens.access.sub, r.user.id);

    let item = env.user_item(&name.to_lowercase()).await.unwrap();
    let hash = item["password_hash"].as_s().unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains(PASSWORD));

    let p = auth.authorize(&r.tokens.access_token, &[]).await.unwrap();
    assert_eq!((p.user_id.as_str(), p.username.as_str()), (r.user.id.as_str(), r.user.username.as_str()));
}

#[tokio::test]
async fn a_username_differing_only_in_case_is_taken() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, _) = registered(&auth, "case").await;
    let err = auth.register(&name.to_uppercase(), "another password", None).await.unwrap_err();
    assert_eq!(err, AuthError::UsernameTaken);
    assert_eq!(err.status_and_code(), (409, "username_taken"));
    // The original password still works; the loser changed nothing.
    assert!(auth.login(&name, PASSWORD, CLIENT).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_registrations_of_one_name_have_exactly_one_winner() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let name = common::unique_username("race");
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let (auth, name) = (auth.clone(), name.clone());
            // Mixed letter case: all normalize to one name.
            let name = if i % 2 == 0 { name.to_uppercase() } else { name };
            tokio::spawn(async move { auth.register(&name, &format!("password number {i}"), None).await })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e, AuthError::UsernameTaken),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn bad_registration_input_is_refused_and_changes_nothing() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let name = common::unique_username("bad");
    let cases = [
        (name.as_str(), "short", None, "invalid_password"),
        (name.as_str(), name.as_str(), None, "invalid_password"),
        ("ｆｕｌｌｗｉｄｔｈ", PASSWORD, None, "invalid_username"),
        ("x", PASSWORD, None, "invalid_username"),
        (name.as_str(), PASSWORD, Some("not-an-email"), "invalid_email"),
    ];
    for (u, p, e, code) in cases {
        assert_eq!(auth.register(u, p, e).await.unwrap_err().status_and_code().1, code, "{u} {p}");
    }
    assert!(env.user_item(&name).await.is_none());
}

#[tokio::test]
async fn login_refuses_unknown_users_and_wrong_passwords_identically() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "login").await;

    let pair = auth.login(&name.to_uppercase(), PASSWORD, CLIENT).await.unwrap();
    assert_eq!(pair.access.sub, r.user.id);
    assert_ne!(pair.access.sid, r.tokens.access.sid, "each login is a new session");

    let wrong = auth.login(&name, "wrong password", CLIENT).await.unwrap_err();
    let unknown = auth.login(&common::unique_username("nobody"), PASSWORD, CLIENT).await.unwrap_err();
    let malformed = auth.login("ｎｏ", PASSWORD, CLIENT).await.unwrap_err();
    assert_eq!(wrong, AuthError::InvalidGrant);
    assert_eq!(unknown, wrong);
    assert_eq!(malformed, wrong);
    assert_eq!(unknown.body(), wrong.body(), "byte-for-byte the same body");
}

#[tokio::test]
async fn an_unknown_user_costs_one_real_argon2_verification() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, _) = registered(&auth, "timing").await;
    let before = auth.passwords().verifications();
    let _ = auth.login(&common::unique_username("nobody"), PASSWORD, CLIENT).await;
    assert_eq!(auth.passwords().verifications(), before + 1);
    let _ = auth.login(&name, "wrong password", CLIENT).await;
    assert_eq!(auth.passwords().verifications(), before + 2);
}

#[tokio::test]
async fn login_upgrades_a_weak_hash() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let weak = PasswordHasher::new(Argon2Config { memory_kib: 8_192, iterations: 1, parallelism: 1 }).unwrap();
    let name = common::unique_username("upgrade");
    let user = shared::store::UserRecord {
        user_id: uuid::Uuid::new_v4().to_string(),
        username: name.clone(),
        password_hash: weak.hash(PASSWORD).unwrap(),
        roles: vec!["user".into()],
        email: None,
        email_verified: false,
        email_verified_at_ms: None,
        email_change_requested_at_ms: None,
        created_at: 0,
        sessions_valid_after_ms: None,
        disabled: false,
    };
    env.store().create_user(&user).await.unwrap();
    auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    let hash = env.store().get_user(&name).await.unwrap().unwrap().password_hash;
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(auth.login(&name, PASSWORD, CLIENT).await.is_ok(), "the new hash verifies");
}

#[tokio::test]
async fn refresh_rotates_and_the_spent_marker_lasts_as_long_as_the_token_could_verify() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (_, r) = registered(&auth, "rotate").await;
    let next = auth.refresh(&r.tokens.refresh_token, None).await.unwrap();
    assert_eq!(next.access.sid, r.tokens.access.sid, "same session");
    assert_ne!(next.refresh.jti, r.tokens.refresh.jti);
    assert!(auth.authorize(&next.access_token, &[]).await.is_ok());
    let spent = env.revoked_item(&r.tokens.refresh.jti).await.unwrap();
    // Until exp + leeway: a marker gone at exp would let the token verify (within the
    // leeway) as never spent.
    assert_eq!(common::number(&spent, "expires_at"), r.tokens.refresh.exp + LEEWAY);
    // The next one rotates too.
    assert!(auth.refresh(&next.refresh_token, None).await.is_ok());
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "theft").await;
    let other_session = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    let newest = auth.refresh(&r.tokens.refresh_token, None).await.unwrap();

    assert_eq!(auth.refresh(&r.tokens.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    // The newest pair of that session is dead too...
    assert_eq!(auth.authorize(&newest.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&newest.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert_eq!(auth.authorize(&r.tokens.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    // ...while another session of the same user is untouched.
    assert!(auth.authorize(&other_session.access_token, &[]).await.is_ok());
    assert!(auth.refresh(&other_session.refresh_token, None).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_refreshes_of_one_token_have_exactly_one_winner() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (_, r) = registered(&auth, "conc").await;
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (auth, token) = (auth.clone(), r.tokens.refresh_token.clone());
            tokio::spawn(async move { auth.refresh(&token, None).await })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e, AuthError::InvalidGrant),
        }
    }
    assert_eq!(ok, 1, "exactly one refresh spends the token");
}

/// The ids and times of a pair: what "the same pair" means (signatures may differ).
fn ids(pair: &shared::tokens::IssuedPair) -> (shared::tokens::AccessClaims, shared::tokens::RefreshClaims) {
    (pair.access.clone(), pair.refresh.clone())
}

#[tokio::test]
async fn a_refresh_repeated_by_its_client_within_the_grace_gets_the_same_pair_and_keeps_the_session() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth().with_refresh_reuse_grace(10);
    let (_, r) = registered(&auth, "retry").await;
    let first = auth.refresh(&r.tokens.refresh_token, CLIENT).await.unwrap();
    // The answer was lost; the client sends the same token again.
    let again = auth.refresh(&r.tokens.refresh_token, CLIENT).await.unwrap();
    assert_eq!(ids(&again), ids(&first), "the same claims and ids, signed again");
    assert!(auth.tokens().verify_access(&again.access_token).is_ok());
    // The session lives on: both copies of the pair work, and the chain goes on from it.
    assert!(auth.authorize(&again.access_token, &[]).await.is_ok());
    assert!(auth.authorize(&r.tokens.access_token, &[]).await.is_ok());
    let next = auth.refresh(&again.refresh_token, CLIENT).await.unwrap();
    assert!(auth.authorize(&next.access_token, &[]).await.is_ok());
    assert!(env.revoked_item(&format!("session#{}", r.tokens.access.sid)).await.is_none());
}

#[tokio::test]
async fn a_spent_refresh_token_from_another_address_within_the_grace_revokes_the_session() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth().with_refresh_reuse_grace(10);
    let (_, r) = registered(&auth, "elsewhere").await;
    let first = auth.refresh(&r.tokens.refresh_token, CLIENT).await.unwrap();
    let err = auth.refresh(&r.tokens.refresh_token, Some("198.51.100.7")).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidGrant);
    assert_eq!(auth.authorize(&first.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    // And an unknown address is never the spender's.
    let (_, r) = registered(&auth, "noaddr").await;
    auth.refresh(&r.tokens.refresh_token, None).await.unwrap();
    assert_eq!(auth.refresh(&r.tokens.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
}

#[tokio::test]
async fn a_spent_refresh_token_after_the_grace_or_with_no_grace_revokes_the_session() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth().with_refresh_reuse_grace(10);
    let (_, r) = registered(&auth, "late").await;
    // Spent eleven seconds ago by this very client (the marker written as a spend would).
    let eleven_seconds_ago = shared::auth::now_ms() - 11_000;
    let spend = Spend {
        spender: "an-earlier-request".into(),
        client: "192.0.2.1".into(),
        at_ms: eleven_seconds_ago,
        successor: Successor {
            access_jti: "a".into(),
            refresh_jti: "b".into(),
            iat: eleven_seconds_ago / 1000,
            access_exp: eleven_seconds_ago / 1000 + 900,
            refresh_exp: eleven_seconds_ago / 1000 + 86_400,
            roles: vec!["user".into()],
        },
    };
    env.store().spend_refresh_token(&r.tokens.refresh.jti, r.tokens.refresh.exp + LEEWAY, &spend).await.unwrap();
    assert_eq!(auth.refresh(&r.tokens.refresh_token, CLIENT).await.unwrap_err(), AuthError::InvalidGrant);
    assert_eq!(auth.authorize(&r.tokens.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);

    let auth = env.auth().with_refresh_reuse_grace(0);
    let (_, r) = registered(&auth, "nograce").await;
    let first = auth.refresh(&r.tokens.refresh_token, CLIENT).await.unwrap();
    assert_eq!(auth.refresh(&r.tokens.refresh_token, CLIENT).await.unwrap_err(), AuthError::InvalidGrant);
    assert_eq!(auth.authorize(&first.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tabs_refreshing_one_token_together_all_get_the_same_pair() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth().with_refresh_reuse_grace(10);
    let (_, r) = registered(&auth, "tabs").await;
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (auth, token) = (auth.clone(), r.tokens.refresh_token.clone());
            tokio::spawn(async move { auth.refresh(&token, CLIENT).await.unwrap() })
        })
        .collect();
    let mut pairs = Vec::new();
    for h in handles {
        pairs.push(ids(&h.await.unwrap()));
    }
    assert!(pairs.iter().all(|p| *p == pairs[0]), "one successor pair for every tab");
    assert_ne!(pairs[0].1.jti, r.tokens.refresh.jti);
    assert!(env.revoked_item(&format!("session#{}", r.tokens.access.sid)).await.is_none(), "session live");
}

#[tokio::test]
async fn tokens_are_only_accepted_for_their_own_use() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (_, r) = registered(&auth, "use").await;
    assert_eq!(auth.refresh(&r.tokens.access_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert_eq!(auth.authorize(&r.tokens.refresh_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh("garbage", None).await.unwrap_err(), AuthError::InvalidGrant);
    assert_eq!(auth.authorize("garbage", &[]).await.unwrap_err(), AuthError::InvalidToken);
}

#[tokio::test]
async fn logout_revokes_its_session_at_once_and_leaves_others_alone() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "logout").await;
    let other = auth.login(&name, PASSWORD, CLIENT).await.unwrap();

    auth.logout(&principal(&auth, &r.tokens.access_token), false).await.unwrap();
    assert_eq!(auth.authorize(&r.tokens.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&r.tokens.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert!(auth.authorize(&other.access_token, &[]).await.is_ok());
    assert!(auth.refresh(&other.refresh_token, None).await.is_ok());

    // One write: the session item, which covers every token of the session until the
    // last of them could still verify.
    assert!(env.revoked_item(&r.tokens.access.jti).await.is_none(), "no second, per-token item");
    let session = env.revoked_item(&format!("session#{}", r.tokens.access.sid)).await.unwrap();
    assert!(common::number(&session, "expires_at") >= r.tokens.refresh.exp + LEEWAY, "outlives every token");
}

#[tokio::test]
async fn logout_all_revokes_every_earlier_session_but_not_the_next_login() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "all").await;
    let second = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    let refreshed = auth.refresh(&second.refresh_token, None).await.unwrap();

    auth.logout(&principal(&auth, &r.tokens.access_token), true).await.unwrap();
    for access in [&r.tokens.access_token, &second.access_token, &refreshed.access_token] {
        assert_eq!(auth.authorize(access, &[]).await.unwrap_err(), AuthError::InvalidToken);
    }
    for refresh in [&r.tokens.refresh_token, &refreshed.refresh_token] {
        assert_eq!(auth.refresh(refresh, None).await.unwrap_err(), AuthError::InvalidGrant);
    }
    // Logging in again right away (same second) works.
    let again = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    assert!(auth.authorize(&again.access_token, &[]).await.is_ok());
    assert!(auth.refresh(&again.refresh_token, None).await.is_ok());
}

#[tokio::test]
async fn a_refresh_racing_logout_all_cannot_outlive_it() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (_, r) = registered(&auth, "race-all").await;
    let store = Arc::new(env.store());
    // Logout-all lands, then a pair minted from the old session (as a refresh that read
    // state just before would) must still be refused.
    store.revoke_sessions_before(&r.user.username, shared::auth::now_ms() + 1).await.unwrap();
    let roles = vec!["user".to_string()];
    let late = auth
        .tokens()
        .issue_pair(
            shared::tokens::Subject { user_id: &r.user.id, username: &r.user.username, roles: &roles },
            &r.tokens.access.sid,
            shared::auth::now_ms() / 1000,
        )
        .unwrap();
    assert_eq!(auth.authorize(&late.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&late.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
}

#[tokio::test]
async fn routes_can_require_roles() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (_, r) = registered(&auth, "roles").await;
    assert!(auth.authorize(&r.tokens.access_token, &["user".to_string()]).await.is_ok());
    let err = auth.authorize(&r.tokens.access_token, &["admin".to_string()]).await.unwrap_err();
    assert_eq!(err, AuthError::InsufficientScope);
    assert_eq!(err.status_and_code(), (403, "insufficient_scope"));
}

#[tokio::test]
async fn a_role_counts_only_while_the_token_carries_it_and_the_user_still_holds_it() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "demote").await;
    let set_roles = |roles: &'static [&'static str]| {
        let (client, table, name) = (env.client.clone(), env.users_table.clone(), name.clone());
        async move {
            let roles = aws_sdk_dynamodb::types::AttributeValue::Ss(roles.iter().map(|r| r.to_string()).collect());
            client
                .update_item()
                .table_name(table)
                .key("username", aws_sdk_dynamodb::types::AttributeValue::S(name))
                .update_expression("SET #r = :r")
                .expression_attribute_names("#r", "roles")
                .expression_attribute_values(":r", roles)
                .send()
                .await
                .unwrap();
        }
    };
    let admin = ["admin".to_string()];
    set_roles(&["admin", "user"]).await;
    // Granted after the token was issued: not in the token, so not yet.
    assert_eq!(auth.authorize(&r.tokens.access_token, &admin).await.unwrap_err(), AuthError::InsufficientScope);
    let promoted = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    assert_eq!(auth.authorize(&promoted.access_token, &admin).await.unwrap().roles, vec!["admin", "user"]);
    // Taken away: at once, though the token still says admin.
    set_roles(&["user"]).await;
    assert_eq!(auth.authorize(&promoted.access_token, &admin).await.unwrap_err(), AuthError::InsufficientScope);
    assert_eq!(auth.authorize(&promoted.access_token, &[]).await.unwrap().roles, vec!["user"]);
}

#[tokio::test]
async fn a_store_outage_fails_closed() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "outage").await;
    let auth_down = common::auth_over(env.unreachable_store().await);

    // What the client gets: 503 `temporarily_unavailable` with a Retry-After, and a body
    // that says nothing of the store.
    let unavailable = |e: AuthError| {
        let body = e.body().to_string();
        assert!(!body.contains("127.0.0.1") && !body.contains("dispatch"), "{body}");
        e.status_and_code() == (503, "temporarily_unavailable") && e.retry_after() == Some(1)
    };
    assert!(unavailable(auth_down.authorize(&r.tokens.access_token, &[]).await.unwrap_err()), "authorizer denies");
    assert!(unavailable(auth_down.login(&name, PASSWORD, CLIENT).await.unwrap_err()));
    assert!(unavailable(auth_down.refresh(&r.tokens.refresh_token, None).await.unwrap_err()));
    assert!(unavailable(auth_down.register(&common::unique_username("new"), PASSWORD, None).await.unwrap_err()));
    assert!(unavailable(auth_down.logout(&principal(&auth, &r.tokens.access_token), false).await.unwrap_err()));
    // Nothing leaks into the client-facing body.
    let body = AuthError::Unavailable { retry_after_seconds: 1 }.body().to_string();
    assert!(!body.contains("127.0.0.1") && !body.contains("dispatch"), "{body}");
}

/// Throttled auth with a one-second base lock, so back-off is observable in a test.
fn quick_throttle(env: &common::Env) -> shared::Auth {
    let throttle = shared::config::LoginThrottleConfig { base_lock_seconds: 1, ..Default::default() };
    env.auth().with_login_throttle(throttle)
}

async fn fail_logins(auth: &shared::Auth, name: &str, times: usize) {
    for _ in 0..times {
        assert_eq!(auth.login(name, "wrong password", CLIENT).await.unwrap_err(), AuthError::InvalidGrant);
    }
}

fn retry_after(e: AuthError) -> u64 {
    match e {
        AuthError::TooManyAttempts { retry_after_seconds } => retry_after_seconds,
        other => panic!("expected too_many_attempts, got {other:?}"),
    }
}

#[tokio::test]
async fn five_failed_logins_lock_the_name_even_for_the_right_password_and_back_off_exponentially() {
    let Some(env) = common::env().await else { return };
    let auth = quick_throttle(&env);
    let (name, _) = registered(&auth, "lock").await;
    fail_logins(&auth, &name, 5).await;

    let hashes_before = auth.passwords().verifications();
    let e = auth.login(&name, PASSWORD, CLIENT).await.unwrap_err();
    assert_eq!(e.status_and_code(), (429, "too_many_attempts"));
    assert_eq!(retry_after(e), 1);
    assert_eq!(auth.passwords().verifications(), hashes_before, "a locked attempt spends no hash");

    // The lock ends; one more failure doubles it: 2 s from when that attempt was counted
    // (read from the store: under a loaded test run the failed attempt's own hash can take
    // a good part of those 2 s, which the next answer's Retry-After then no longer shows).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let counted_from = shared::auth::now_ms();
    fail_logins(&auth, &name, 1).await;
    let counted_by = shared::auth::now_ms();
    let client = shared::auth::throttle::client_key(CLIENT);
    let stored = env.store().login_state(&name, &client).await.unwrap().client_failures.unwrap();
    let locked_until = stored.locked_until_ms.expect("locked");
    assert!(
        (counted_from + 2000..=counted_by + 2000).contains(&locked_until),
        "a 2 s lock from the attempt: {counted_from}..{counted_by} -> {locked_until}"
    );
    let asked_from = shared::auth::now_ms();
    let answer = retry_after(auth.login(&name, PASSWORD, CLIENT).await.unwrap_err());
    let asked_by = shared::auth::now_ms();
    // The seconds left of that lock when the refused attempt was judged, rounded up.
    let left = |at: u64| locked_until.saturating_sub(at).div_ceil(1000);
    assert!((left(asked_by)..=left(asked_from)).contains(&answer), "Retry-After {answer}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(auth.login(&name, PASSWORD, CLIENT).await.is_ok(), "the right password works once the lock ends");

    // The success reset the count: four more failures do not lock.
    fail_logins(&auth, &name, 4).await;
    assert!(auth.login(&name, PASSWORD, CLIENT).await.is_ok());
}

#[tokio::test]
async fn unknown_usernames_are_throttled_exactly_like_real_ones() {
    let Some(env) = common::env().await else { return };
    let auth = quick_throttle(&env);
    let (real, _) = registered(&auth, "thr").await;
    let unknown = common::unique_username("ghost");
    for name in [&real, &unknown] {
        fail_logins(&auth, name, 5).await;
    }
    let (a, b) = (
        auth.login(&real, "wrong password", CLIENT).await.unwrap_err(),
        auth.login(&unknown, "x", CLIENT).await.unwrap_err(),
    );
    assert_eq!(a, b);
    assert_eq!(a.body(), b.body());
    assert_eq!(a.status_and_code(), (429, "too_many_attempts"));
}

#[tokio::test]
async fn the_throttle_counts_by_normalized_name_and_expires_through_ttl() {
    let Some(env) = common::env().await else { return };
    let auth = quick_throttle(&env);
    let (name, _) = registered(&auth, "norm").await;
    fail_logins(&auth, &name.to_uppercase(), 5).await;
    assert_eq!(auth.login(&name, PASSWORD, CLIENT).await.unwrap_err().status_and_code(), (429, "too_many_attempts"));

    let now = shared::auth::now_ms() / 1000;
    let pair = env.user_item(&format!("login#{name}#192.0.2.1")).await.expect("the pair's record");
    let bound = shared::auth::FAILED_LOGIN_MEMORY_SECONDS + shared::config::LOGIN_MAX_LOCK_SECONDS;
    let expires_at = common::number(&pair, "expires_at");
    assert!(expires_at > now && expires_at <= now + bound, "{expires_at} within {bound}s");
    let whole_name = env.user_item(&format!("login#{name}")).await.expect("the name's record");
    assert_eq!(common::number(&whole_name, "failures"), 5);
    let expires_at = common::number(&whole_name, "expires_at");
    assert!(expires_at > now && expires_at <= now + 900, "one window: {expires_at}");
    // The user item itself never expires.
    assert!(!env.user_item(&name).await.unwrap().contains_key("expires_at"));
}

#[tokio::test]
async fn a_stale_failure_record_that_ttl_has_not_yet_deleted_counts_as_none() {
    let Some(env) = common::env().await else { return };
    let auth = quick_throttle(&env);
    let store = env.store();
    let (name, _) = registered(&auth, "stale").await;
    let past = shared::auth::now_ms() / 1000 - 10;
    // Ten failures and a long lock on both counters, all expired but still stored.
    let stale = FailedLogins {
        count: 10,
        locked_until_ms: Some((past + 3600) * 1000),
        expires_at: past,
        version: "old".into(),
    };
    let pair = ThrottleKey::Client { username: name.clone(), client: "192.0.2.1".into() };
    store.swap_login_failures(&pair, None, &stale).await.unwrap();
    store.swap_login_failures(&ThrottleKey::Name { username: name.clone() }, None, &stale).await.unwrap();
    assert!(auth.login(&name, PASSWORD, CLIENT).await.is_ok());
    fail_logins(&auth, &name, 4).await;
    assert!(auth.login(&name, PASSWORD, CLIENT).await.is_ok(), "counting started afresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_wrong_passwords_from_one_client_get_at_most_five_verifications() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, _) = registered(&auth, "burst").await;
    let hashes_before = auth.passwords().verifications();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (auth, name) = (auth.clone(), name.clone());
            tokio::spawn(async move { auth.login(&name, "wrong password", CLIENT).await.unwrap_err() })
        })
        .collect();
    let (mut refused, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            AuthError::InvalidGrant => refused += 1,
            AuthError::TooManyAttempts { .. } => throttled += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused <= 5, "{refused} attempts were verified, {throttled} throttled");
    assert_eq!(refused + throttled, 20);
    assert!(auth.passwords().verifications() - hashes_before <= 5, "no more than five hashes spent");
    // And the pair is locked now, even for the right password.
    assert!(matches!(auth.login(&name, PASSWORD, CLIENT).await, Err(AuthError::TooManyAttempts { .. })));
}

#[tokio::test]
async fn a_locked_out_guesser_does_not_lock_out_the_owner_on_another_address() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, _) = registered(&auth, "victim").await;
    let attacker = Some("198.51.100.66");
    for _ in 0..5 {
        assert_eq!(auth.login(&name, "guess", attacker).await.unwrap_err(), AuthError::InvalidGrant);
    }
    assert!(matches!(auth.login(&name, PASSWORD, attacker).await, Err(AuthError::TooManyAttempts { .. })));
    // The owner, elsewhere, logs in; and so does anyone on another IPv6 /64.
    assert!(auth.login(&name, PASSWORD, Some("203.0.113.9")).await.is_ok());
    assert!(auth.login(&name, PASSWORD, Some("2001:db8:0:1::5")).await.is_ok());
    // The guesser's lock is not lifted by the owner's success.
    assert!(matches!(auth.login(&name, PASSWORD, attacker).await, Err(AuthError::TooManyAttempts { .. })));
}

#[tokio::test]
async fn guessing_spread_over_many_addresses_locks_the_name_for_everyone() {
    let Some(env) = common::env().await else { return };
    let throttle = shared::config::LoginThrottleConfig { name_max_failures: 6, ..Default::default() };
    let auth = env.auth().with_login_throttle(throttle);
    let (name, _) = registered(&auth, "spread").await;
    // Successes give their attempt back: the owner logging in often is not a guesser.
    for _ in 0..8 {
        assert!(auth.login(&name, PASSWORD, CLIENT).await.is_ok());
    }
    // Three addresses, two guesses each: no pair reaches five, the name reaches six.
    for i in 1..=3 {
        let ip = format!("198.51.100.{i}");
        for _ in 0..2 {
            assert_eq!(auth.login(&name, "guess", Some(&ip)).await.unwrap_err(), AuthError::InvalidGrant);
        }
    }
    let hashes_before = auth.passwords().verifications();
    let locked = auth.login(&name, PASSWORD, Some("203.0.113.9")).await.unwrap_err();
    let wait = retry_after(locked);
    assert!((800..=900).contains(&wait), "the name waits for its window to end: {wait}");
    assert_eq!(auth.passwords().verifications(), hashes_before, "without spending a hash");
    // Other names are not affected.
    let (other, _) = registered(&auth, "bystander").await;
    assert!(auth.login(&other, PASSWORD, Some("198.51.100.1")).await.is_ok());
}

/// Fills the name-wide ceiling of `name` (six attempts) from three addresses, none of
/// which reaches its own pair's lock.
async fn fill_the_names_ceiling(auth: &shared::Auth, name: &str) {
    for i in 1..=3 {
        let ip = format!("198.51.100.{i}");
        for _ in 0..2 {
            assert_eq!(auth.login(name, "guess", Some(&ip)).await.unwrap_err(), AuthError::InvalidGrant);
        }
    }
    assert!(matches!(auth.login(name, PASSWORD, CLIENT).await, Err(AuthError::TooManyAttempts { .. })));
}

#[tokio::test]
async fn a_known_device_of_the_user_signs_in_while_the_name_is_locked_for_everyone_else() {
    let Some(env) = common::env().await else { return };
    let throttle = shared::config::LoginThrottleConfig { name_max_failures: 6, ..Default::default() };
    let auth = env.auth().with_login_throttle(throttle);
    let (name, _) = registered(&auth, "device").await;
    let (other, _) = registered(&auth, "device-other").await;
    let device = auth.login_with_device(&name, PASSWORD, CLIENT, None).await.unwrap();
    let other_device = auth.login_with_device(&other, PASSWORD, CLIENT, None).await.unwrap();
    let claims = auth.tokens().verify_device(&device.device_token).unwrap();
    assert!(device.device_expires_in >= 30 * 86_400);
    // Not a token for anything else.
    assert!(auth.authorize(&device.device_token, &[]).await.is_err());
    assert!(auth.refresh(&device.device_token, CLIENT).await.is_err());

    fill_the_names_ceiling(&auth, &name).await;
    // Another user's device, a forged one, or none: refused by the ceiling like everyone.
    let forged = format!("{}x", device.device_token);
    for presented in [Some(other_device.device_token.as_str()), Some(forged.as_str()), Some("garbage"), None] {
        let refused = auth.login_with_device(&name, PASSWORD, CLIENT, presented).await.unwrap_err();
        assert!(matches!(refused, AuthError::TooManyAttempts { .. }), "{refused:?}");
    }
    // The owner's own device: in, from any address, and its credential renewed with the
    // same device id.
    let renewed =
        auth.login_with_device(&name, PASSWORD, Some("203.0.113.50"), Some(&device.device_token)).await.unwrap();
    assert!(auth.authorize(&renewed.tokens.access_token, &[]).await.is_ok());
    assert_eq!(auth.tokens().verify_device(&renewed.device_token).unwrap().jti, claims.jti);
    // A wrong password from the device is still a failure.
    let wrong = auth.login_with_device(&name, "guess", CLIENT, Some(&device.device_token)).await.unwrap_err();
    assert_eq!(wrong, AuthError::InvalidGrant);
}

#[tokio::test]
async fn five_wrong_passwords_from_a_known_device_lock_that_device_wherever_it_connects_from() {
    let Some(env) = common::env().await else { return };
    let throttle = shared::config::LoginThrottleConfig { name_max_failures: 6, ..Default::default() };
    let auth = env.auth().with_login_throttle(throttle);
    let (name, _) = registered(&auth, "stolen-device").await;
    let device = auth.login_with_device(&name, PASSWORD, CLIENT, None).await.unwrap().device_token;
    fill_the_names_ceiling(&auth, &name).await;
    // A stolen device credential guessing from a new address each time: five, then locked.
    let hashes_before = auth.passwords().verifications();
    for i in 0..5 {
        let ip = format!("203.0.113.{}", 100 + i);
        let wrong = auth.login_with_device(&name, "guess", Some(&ip), Some(&device)).await.unwrap_err();
        assert_eq!(wrong, AuthError::InvalidGrant);
    }
    let locked = auth.login_with_device(&name, PASSWORD, Some("203.0.113.200"), Some(&device)).await.unwrap_err();
    assert!(matches!(locked, AuthError::TooManyAttempts { .. }), "{locked:?}");
    assert_eq!(auth.passwords().verifications(), hashes_before + 5, "the locked device spent no hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_guesses_from_many_addresses_get_no_more_than_the_names_ceiling_verified() {
    let Some(env) = common::env().await else { return };
    let throttle = shared::config::LoginThrottleConfig { name_max_failures: 6, ..Default::default() };
    let auth = env.auth().with_login_throttle(throttle);
    let (name, _) = registered(&auth, "swarm").await;
    let hashes_before = auth.passwords().verifications();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (auth, name) = (auth.clone(), name.clone());
            tokio::spawn(async move { auth.login(&name, "guess", Some(&format!("198.51.100.{}", 100 + i))).await })
        })
        .collect();
    let mut verified = 0;
    for t in tasks {
        match t.await.unwrap().unwrap_err() {
            AuthError::InvalidGrant => verified += 1,
            AuthError::TooManyAttempts { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(verified <= 6, "{verified} guesses verified");
    assert!(auth.passwords().verifications() - hashes_before <= 6);
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth().with_session_max_lifetime(3);
    let (_, r) = registered(&auth, "lifetime").await;
    let started = r.tokens.access.iat;
    // No token of the session is issued to outlive it.
    assert!(r.tokens.refresh.exp <= started + 4, "refresh exp {} capped", r.tokens.refresh.exp);
    let next = auth.refresh(&r.tokens.refresh_token, None).await.unwrap();
    assert!(next.refresh.exp <= started + 4);
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    // The token itself still verifies (within the clock leeway); the session is over.
    assert!(auth.tokens().verify_refresh(&next.refresh_token).is_ok());
    assert_eq!(auth.refresh(&next.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
}

#[tokio::test]
async fn a_disabled_user_is_out_at_once_and_refused_like_a_wrong_password_until_enabled() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "disable").await;
    let (admin_name, _) = registered(&auth, "boss").await;
    let admin = Principal {
        user_id: "admin-id".into(),
        username: admin_name,
        roles: vec!["admin".into()],
        sid: "s".into(),
        jti: "j".into(),
        exp: 0,
        email: None,
        email_verified: false,
        amr: shared::tokens::Amr::Password,
    };
    let other = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    auth.admin_set_disabled(&admin, &name, true).await.unwrap();
    assert!(auth.admin_get_user(&name).await.unwrap().disabled);
    for access in [&r.tokens.access_token, &other.access_token] {
        assert_eq!(auth.authorize(access, &[]).await.unwrap_err(), AuthError::InvalidToken);
    }
    assert_eq!(auth.refresh(&other.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    let refused = auth.login(&name, PASSWORD, CLIENT).await.unwrap_err();
    let wrong = auth.login(&common::unique_username("nobody"), PASSWORD, CLIENT).await.unwrap_err();
    assert_eq!((refused.status_and_code(), refused.body()), (wrong.status_and_code(), wrong.body()));

    auth.admin_set_disabled(&admin, &name, false).await.unwrap();
    let back = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    assert!(auth.authorize(&back.access_token, &[]).await.is_ok());
    // The sessions from before the disable stay dead.
    assert_eq!(auth.authorize(&other.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.admin_get_user("no-such-user-x").await.unwrap_err(), AuthError::NotFound);
    assert_eq!(auth.admin_set_disabled(&admin, "no-such-user-x", true).await.unwrap_err(), AuthError::NotFound);

    let view = auth.admin_change_roles(&admin, &name, &["support".into()], &[]).await.unwrap();
    assert_eq!(view.roles, vec!["support", "user"]);
    let view = auth.admin_change_roles(&admin, &name, &[], &["user".into()]).await.unwrap();
    assert_eq!(view.roles, vec!["support"]);
    let bad = auth.admin_change_roles(&admin, &name, &["Admin!".into()], &[]).await.unwrap_err();
    assert_eq!(bad.status_and_code(), (400, "invalid_request"));
    let both = auth.admin_change_roles(&admin, &name, &["x".into()], &["x".into()]).await.unwrap_err();
    assert_eq!(both.status_and_code(), (400, "invalid_request"));
}

// --- The caller's account and sessions ---------------------------------------------------

#[tokio::test]
async fn sessions_are_listed_newest_first_and_one_can_be_ended_at_once() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "list").await;
    let second = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    let third = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    let caller = principal(&auth, &second.access_token);

    let listed = auth.list_sessions(&caller).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [third.access.sid.as_str(), second.access.sid.as_str(), r.tokens.access.sid.as_str()]);
    assert_eq!(listed.iter().filter(|s| s.current).map(|s| s.id.as_str()).collect::<Vec<_>>(), [caller.sid.as_str()]);

    // A refresh moves "last used"; a logout takes the session off the list.
    let before = listed[2].last_used_at;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refreshed = auth.refresh(&r.tokens.refresh_token, None).await.unwrap();
    let listed = auth.list_sessions(&caller).await.unwrap();
    assert!(listed[2].last_used_at > before, "{listed:?}");
    auth.logout(&principal(&auth, &third.access_token), false).await.unwrap();
    assert_eq!(auth.list_sessions(&caller).await.unwrap().len(), 2);

    // Ending the first session: its tokens stop at once, the caller's do not.
    auth.end_session(&caller, &r.tokens.access.sid).await.unwrap();
    assert_eq!(auth.authorize(&refreshed.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&refreshed.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert!(auth.authorize(&second.access_token, &[]).await.is_ok());
    let ids: Vec<String> = auth.list_sessions(&caller).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, [second.access.sid.clone()]);
    // Ended already, someone else's, or nonsense: not found, and nothing changes.
    let (_, stranger) = registered(&auth, "stranger").await;
    for id in [r.tokens.access.sid.as_str(), stranger.tokens.access.sid.as_str(), "nonsense"] {
        assert_eq!(auth.end_session(&caller, id).await.unwrap_err(), AuthError::NotFound, "{id}");
    }
    assert!(auth.authorize(&stranger.tokens.access_token, &[]).await.is_ok());
}

#[tokio::test]
async fn a_password_change_revokes_every_earlier_session_and_continues_in_a_new_one() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "pw").await;
    let other = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    let caller = principal(&auth, &r.tokens.access_token);

    let wrong = auth.change_password(&caller, "not the password", "a brand new password", CLIENT).await;
    assert_eq!(wrong.unwrap_err(), AuthError::InvalidGrant);
    let short = auth.change_password(&caller, PASSWORD, "short", CLIENT).await.unwrap_err();
    assert_eq!(short.status_and_code(), (400, "invalid_password"));
    let same_as_name = auth.change_password(&caller, PASSWORD, &name, CLIENT).await.unwrap_err();
    assert_eq!(same_as_name.status_and_code(), (400, "invalid_password"));
    assert!(auth.authorize(&other.access_token, &[]).await.is_ok(), "refusals change nothing");

    let fresh = auth.change_password(&caller, PASSWORD, "a brand new password", CLIENT).await.unwrap();
    assert_ne!(fresh.access.sid, caller.sid, "a new session");
    for access in [&r.tokens.access_token, &other.access_token] {
        assert_eq!(auth.authorize(access, &[]).await.unwrap_err(), AuthError::InvalidToken);
    }
    for refresh in [&r.tokens.refresh_token, &other.refresh_token] {
        assert_eq!(auth.refresh(refresh, None).await.unwrap_err(), AuthError::InvalidGrant);
    }
    let now = principal(&auth, &fresh.access_token);
    assert!(auth.authorize(&fresh.access_token, &[]).await.is_ok());
    let listed = auth.list_sessions(&now).await.unwrap();
    assert_eq!((listed.len(), listed[0].current, listed[0].id.as_str()), (1, true, fresh.access.sid.as_str()));
    assert!(auth.refresh(&fresh.refresh_token, None).await.is_ok());
    assert_eq!(auth.login(&name, PASSWORD, CLIENT).await.unwrap_err(), AuthError::InvalidGrant);
    assert!(auth.login(&name, "a brand new password", CLIENT).await.is_ok());
}

#[tokio::test]
async fn a_wrong_current_password_counts_in_the_login_throttle() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "pwthrottle").await;
    let caller = principal(&auth, &r.tokens.access_token);
    for _ in 0..5 {
        let e = auth.change_password(&caller, "not the password", "a brand new password", CLIENT).await;
        assert_eq!(e.unwrap_err(), AuthError::InvalidGrant);
    }
    let locked = auth.change_password(&caller, PASSWORD, "a brand new password", CLIENT).await.unwrap_err();
    assert!(matches!(locked, AuthError::TooManyAttempts { .. }), "{locked:?}");
    assert!(matches!(auth.login(&name, PASSWORD, CLIENT).await.unwrap_err(), AuthError::TooManyAttempts { .. }));
    assert!(matches!(
        auth.delete_account(&caller, PASSWORD, CLIENT).await.unwrap_err(),
        AuthError::TooManyAttempts { .. }
    ));
}

#[tokio::test]
async fn a_deleted_account_is_gone_at_once_and_its_name_is_free_for_a_stranger() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "erase").await;
    let other = auth.login(&name, PASSWORD, CLIENT).await.unwrap();
    auth.login(&name, "not the password", CLIENT).await.unwrap_err();
    let caller = principal(&auth, &r.tokens.access_token);

    assert_eq!(auth.delete_account(&caller, "not the password", CLIENT).await.unwrap_err(), AuthError::InvalidGrant);
    assert!(auth.authorize(&other.access_token, &[]).await.is_ok(), "a refusal changes nothing");
    auth.delete_account(&caller, PASSWORD, CLIENT).await.unwrap();

    let user_id = &r.user.id;
    assert!(env.user_item(&name).await.is_none());
    // The id item stays as a tombstone that names nobody (the id is never a user's again).
    let tombstone = env.user_item(&format!("id#{user_id}")).await.unwrap();
    assert!(tombstone.contains_key("deleted_at") && !tombstone.contains_key("alias_of"), "{tombstone:?}");
    assert!(env.user_item(&format!("login#{name}")).await.is_none());
    assert!(env.session_rows(user_id).await.is_empty());
    for access in [&r.tokens.access_token, &other.access_token] {
        assert_eq!(auth.authorize(access, &[]).await.unwrap_err(), AuthError::InvalidToken);
    }
    assert_eq!(auth.refresh(&other.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert_eq!(auth.login(&name, PASSWORD, CLIENT).await.unwrap_err(), AuthError::InvalidGrant);

    // Someone else takes the name: the old tokens, which name it, stay dead.
    let newcomer = auth.register(&name, "the newcomer's password", None).await.unwrap();
    assert_ne!(&newcomer.user.id, user_id);
    assert_eq!(auth.authorize(&other.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&other.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert_eq!(auth.delete_account(&caller, PASSWORD, CLIENT).await.unwrap_err(), AuthError::InvalidGrant);
    assert!(auth.authorize(&newcomer.tokens.access_token, &[]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_racing_a_deletion_leave_no_usable_token() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "eraserace").await;
    let caller = principal(&auth, &r.tokens.access_token);
    let logins: Vec<_> = (0..3)
        .map(|i| {
            let (auth, name) = (auth.clone(), name.clone());
            let client = format!("192.0.2.{}", 10 + i);
            tokio::spawn(async move { auth.login(&name, PASSWORD, Some(&client)).await })
        })
        .collect();
    auth.delete_account(&caller, PASSWORD, CLIENT).await.unwrap();
    // Real concurrency: whether any login read the user before the deletion landed is up
    // to the scheduler. `a_login_that_read_the_user_before_its_deletion_landed_gets_tokens_of_nobody`
    // forces that interleaving; here each login is one of the two outcomes, exactly.
    for login in logins {
        match login.await.unwrap() {
            Ok(pair) => {
                assert_eq!(auth.authorize(&pair.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
                assert_eq!(auth.refresh(&pair.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
            }
            Err(e) => assert_eq!(e, AuthError::InvalidGrant),
        }
    }
}

/// The racing login stopped right after its one read of the user (`login_state`), with
/// the password still the one it presents: whatever lands meanwhile is what it races.
const RACER: &str = "192.0.2.77";

fn held_login(
    auth: &shared::Auth,
    name: &str,
) -> tokio::task::JoinHandle<Result<shared::tokens::IssuedPair, AuthError>> {
    let (auth, name) = (auth.clone(), name.to_string());
    tokio::spawn(async move { auth.login(&name, PASSWORD, Some(RACER)).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_that_read_the_user_before_its_deletion_landed_gets_tokens_of_nobody() {
    let Some(env) = common::env().await else { return };
    let (auth, hold) = env.held_auth(common::HoldPoint::LoginState { client: RACER.into() });
    let (name, r) = registered(&auth, "eraseheld").await;
    let caller = principal(&auth, &r.tokens.access_token);
    let login = held_login(&auth, &name);
    hold.reached().await;
    // The login has read the user and its hash; the deletion runs to its end meanwhile.
    auth.delete_account(&caller, PASSWORD, CLIENT).await.unwrap();
    assert!(env.user_item(&name).await.is_none(), "the deletion landed while the login was held");
    hold.release();
    // The race happened: the login verified the password against the user it had read.
    let pair = login.await.unwrap().expect("the held login succeeds with what it read");
    assert_eq!(pair.access.sub, r.user.id);
    // And it got tokens of nobody.
    assert_eq!(auth.authorize(&pair.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&pair.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    // Nor do they come alive for whoever takes the name next.
    let newcomer = auth.register(&name, "the newcomer's password", None).await.unwrap();
    assert_eq!(auth.authorize(&pair.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&pair.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert!(auth.authorize(&newcomer.tokens.access_token, &[]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_with_the_old_password_racing_a_password_change_leave_no_usable_token() {
    let Some(env) = common::env().await else { return };
    let auth = env.auth();
    let (name, r) = registered(&auth, "pwrace").await;
    let caller = principal(&auth, &r.tokens.access_token);
    let logins: Vec<_> = (0..6)
        .map(|i| {
            let (auth, name) = (auth.clone(), name.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(15 * i)).await;
                auth.login(&name, PASSWORD, Some(&format!("192.0.2.{}", 40 + i))).await
            })
        })
        .collect();
    let fresh = auth.change_password(&caller, PASSWORD, "a brand new password", CLIENT).await.unwrap();
    // Real concurrency: whether any login checked the old password before the change
    // landed is up to the scheduler.
    // `a_login_that_read_the_old_password_before_the_change_landed_opens_no_lasting_session`
    // forces that interleaving; here each login is one of the two outcomes, exactly.
    for login in logins {
        match login.await.unwrap() {
            Ok(pair) => {
                assert_eq!(auth.authorize(&pair.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
                assert_eq!(auth.refresh(&pair.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
            }
            Err(e) => assert_eq!(e, AuthError::InvalidGrant),
        }
    }
    assert!(auth.authorize(&fresh.access_token, &[]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_that_read_the_old_password_before_the_change_landed_opens_no_lasting_session() {
    let Some(env) = common::env().await else { return };
    let (auth, hold) = env.held_auth(common::HoldPoint::LoginState { client: RACER.into() });
    let (name, r) = registered(&auth, "pwheld").await;
    let caller = principal(&auth, &r.tokens.access_token);
    let old_hash = env.user_item(&name).await.unwrap()["password_hash"].clone();
    let login = held_login(&auth, &name);
    hold.reached().await;
    // The login holds the old hash, which the old password verifies against; the change
    // runs to its end meanwhile.
    let fresh = auth.change_password(&caller, PASSWORD, "a brand new password", CLIENT).await.unwrap();
    assert_ne!(env.user_item(&name).await.unwrap()["password_hash"], old_hash, "the change landed while held");
    hold.release();
    // The race happened: the old password was accepted after the change had landed...
    let pair = login.await.unwrap().expect("the held login succeeds with the hash it read");
    // ...and the session it opened is over: it started before the change's cutoff.
    assert_eq!(auth.authorize(&pair.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&pair.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    assert!(auth.authorize(&fresh.access_token, &[]).await.is_ok());
    assert!(auth.refresh(&fresh.refresh_token, None).await.is_ok());
    assert_eq!(auth.login(&name, PASSWORD, CLIENT).await.unwrap_err(), AuthError::InvalidGrant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_that_minted_its_pair_before_a_disable_landed_hands_out_dead_tokens() {
    let Some(env) = common::env().await else { return };
    let (auth, hold) = env.held_auth(common::HoldPoint::RecordSession);
    // Registered through a store without the hold: registration lists its session too,
    // and would be the call held.
    let (name, _) = registered(&env.auth(), "disableheld").await;
    let admin = Principal {
        user_id: "admin-id".into(),
        username: "some-admin".into(),
        roles: vec!["admin".into()],
        sid: "s".into(),
        jti: "j".into(),
        exp: 0,
        email: None,
        email_verified: false,
        amr: shared::tokens::Amr::Password,
    };
    let login = held_login(&auth, &name);
    hold.reached().await;
    // The login verified the password of a user that was not disabled, and minted its
    // pair; the disable lands before the pair is handed out.
    auth.admin_set_disabled(&admin, &name, true).await.unwrap();
    assert!(auth.admin_get_user(&name).await.unwrap().disabled, "the disable landed while the login was held");
    hold.release();
    // The race happened: the login hands out the pair it minted before the disable...
    let pair = login.await.unwrap().expect("the held login had verified the password");
    // ...and that pair is dead.
    assert_eq!(auth.authorize(&pair.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&pair.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
    // Enabled again, the pair stays dead: the disable's cutoff came after its session began.
    auth.admin_set_disabled(&admin, &name, false).await.unwrap();
    assert_eq!(auth.authorize(&pair.access_token, &[]).await.unwrap_err(), AuthError::InvalidToken);
    assert_eq!(auth.refresh(&pair.refresh_token, None).await.unwrap_err(), AuthError::InvalidGrant);
}
