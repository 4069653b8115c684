//! The DynamoDB store against a real DynamoDB API server.

mod common;

use std::sync::Arc;

use shared::store::{
    AccessState, CreateOutcome, FailedLogins, Revocation, SpendOutcome, Store, StoreError, UserRecord,
};

fn user(username: &str) -> UserRecord {
    UserRecord {
        user_id: uuid::Uuid::new_v4().to_string(),
        username: username.to_string(),
        password_hash:
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
        roles: vec!["user".into()],
        email: Some("someone@example.com".into()),
        created_at: 1_763_800_000,
        sessions_valid_after_ms: None,
    }
}

#[tokio::test]
async fn a_created_user_reads_back_whole() {
    let env = common::env().await;
    let store = env.store();
    let u = user(&common::unique_username("read"));
    assert_eq!(store.create_user(&u).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.get_user(&u.username).await.unwrap(), Some(u.clone()));
    assert_eq!(store.username_for_id(&u.user_id).await.unwrap(), Some(u.username.clone()));
    assert_eq!(store.get_user(&common::unique_username("nobody")).await.unwrap(), None);
    assert_eq!(store.username_for_id(&uuid::Uuid::new_v4().to_string()).await.unwrap(), None);
}

#[tokio::test]
async fn a_taken_username_is_refused_and_the_first_user_is_untouched() {
    let env = common::env().await;
    let store = env.store();
    let first = user(&common::unique_username("dup"));
    let mut second = user(&first.username);
    second.password_hash =
        "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0b3RoZXJz$b3RoZXJoYXNob3RoZXJoYXNob3RoZXJoYXNob3RoZXI".into();
    assert_eq!(store.create_user(&first).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.create_user(&second).await.unwrap(), CreateOutcome::UsernameTaken);
    assert_eq!(store.get_user(&first.username).await.unwrap(), Some(first));
    // The loser's id item was not written either (the transaction is all or nothing).
    assert_eq!(store.username_for_id(&second.user_id).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_creations_of_one_username_have_exactly_one_winner() {
    let env = common::env().await;
    let store = Arc::new(env.store());
    let name = common::unique_username("race");
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            let u = user(&name);
            tokio::spawn(async move { (store.create_user(&u).await.unwrap(), u.user_id) })
        })
        .collect();
    let mut winners = Vec::new();
    for h in handles {
        let (outcome, id) = h.await.unwrap();
        if outcome == CreateOutcome::Created {
            winners.push(id);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creation wins");
    assert_eq!(store.get_user(&name).await.unwrap().unwrap().user_id, winners[0]);
}

#[tokio::test]
async fn revocations_are_seen_by_one_consistent_read_and_expire_when_the_token_would() {
    let env = common::env().await;
    let store = env.store();
    let u = user(&common::unique_username("revoke"));
    store.create_user(&u).await.unwrap();
    let (jti, sid) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::now_v7().to_string());

    let clean = store.access_state(&jti, &sid, &u.username).await.unwrap();
    assert_eq!(
        clean,
        AccessState {
            token_revoked: false,
            session_revoked: false,
            user: Some(shared::store::UserAccess {
                user_id: u.user_id.clone(),
                roles: u.roles.clone(),
                sessions_valid_after_ms: None
            })
        }
    );

    store.revoke(&[Revocation::Token { jti: jti.clone(), expires_at: 1_900_000_000 }]).await.unwrap();
    let state = store.access_state(&jti, &sid, &u.username).await.unwrap();
    assert!(state.token_revoked && !state.session_revoked);
    assert_eq!(common::number(&env.revoked_item(&jti).await.unwrap(), "expires_at"), 1_900_000_000);

    store.revoke(&[Revocation::Session { sid: sid.clone(), expires_at: 1_900_000_500 }]).await.unwrap();
    let other_jti = uuid::Uuid::new_v4().to_string();
    let state = store.access_state(&other_jti, &sid, &u.username).await.unwrap();
    assert!(!state.token_revoked && state.session_revoked, "every token of the session is covered");
    let session_item = env.revoked_item(&format!("session#{sid}")).await.unwrap();
    assert_eq!(common::number(&session_item, "expires_at"), 1_900_000_500);
}

#[tokio::test]
async fn access_state_of_an_unknown_user_has_no_user() {
    let env = common::env().await;
    let state = env.store().access_state("j", "s", &common::unique_username("ghost")).await.unwrap();
    assert_eq!(state, AccessState { token_revoked: false, session_revoked: false, user: None });
}

#[tokio::test]
async fn a_refresh_token_is_spent_once() {
    let env = common::env().await;
    let store = env.store();
    let jti = uuid::Uuid::new_v4().to_string();
    assert_eq!(store.spend_refresh_token(&jti, 1_900_000_000).await.unwrap(), SpendOutcome::Spent);
    assert_eq!(store.spend_refresh_token(&jti, 1_900_000_000).await.unwrap(), SpendOutcome::AlreadySpent);
    assert_eq!(common::number(&env.revoked_item(&jti).await.unwrap(), "expires_at"), 1_900_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_spends_of_one_refresh_token_have_exactly_one_winner() {
    let env = common::env().await;
    let store = Arc::new(env.store());
    let jti = uuid::Uuid::new_v4().to_string();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (store, jti) = (store.clone(), jti.clone());
            tokio::spawn(async move { store.spend_refresh_token(&jti, 1_900_000_000).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for h in handles {
        spent += (h.await.unwrap() == SpendOutcome::Spent) as usize;
    }
    assert_eq!(spent, 1);
}

#[tokio::test]
async fn sessions_valid_after_only_moves_forward_and_never_creates_users() {
    let env = common::env().await;
    let store = env.store();
    let u = user(&common::unique_username("cutoff"));
    store.create_user(&u).await.unwrap();
    store.revoke_sessions_before(&u.username, 1_763_800_000_250).await.unwrap();
    store.revoke_sessions_before(&u.username, 1_763_800_000_100).await.unwrap();
    let got = store.get_user(&u.username).await.unwrap().unwrap();
    assert_eq!(got.sessions_valid_after_ms, Some(1_763_800_000_250));
    let state = store.access_state("j", "s", &u.username).await.unwrap();
    assert_eq!(state.user.unwrap().sessions_valid_after_ms, Some(1_763_800_000_250));

    let ghost = common::unique_username("ghost");
    store.revoke_sessions_before(&ghost, 1_763_800_000_000).await.unwrap();
    assert!(env.user_item(&ghost).await.is_none(), "no half-user created");
}

#[tokio::test]
async fn a_password_hash_is_replaced_only_if_unchanged_meanwhile() {
    let env = common::env().await;
    let store = env.store();
    let u = user(&common::unique_username("rehash"));
    store.create_user(&u).await.unwrap();
    store.replace_password_hash(&u.username, "$argon2id$stale", "$argon2id$lost").await.unwrap();
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().password_hash, u.password_hash);
    store.replace_password_hash(&u.username, &u.password_hash, "$argon2id$new").await.unwrap();
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().password_hash, "$argon2id$new");
}

#[tokio::test]
async fn an_unreachable_store_is_reported_as_unavailable() {
    // A port nothing listens on: connection refused, retried, then a clean error.
    let store = common::env().await.unreachable_store().await;
    assert!(matches!(store.get_user("alice").await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.access_state("j", "s", "alice").await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.spend_refresh_token("j", 1).await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn a_missing_table_is_a_fault_not_a_user_error() {
    let env = common::env().await;
    let store = shared::store::DynamoStore::new(env.client.clone(), "no-such-table", "no-such-table-either");
    assert!(matches!(store.get_user("alice").await, Err(StoreError::Internal(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_count_atomically_and_read_back_with_the_user_in_one_call() {
    let env = common::env().await;
    let store = Arc::new(env.store());
    let u = user(&common::unique_username("fails"));
    store.create_user(&u).await.unwrap();
    let now = shared::auth::now_ms();
    let expires_at = now / 1000 + 600;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, name) = (store.clone(), u.username.clone());
            tokio::spawn(async move { store.record_login_failure(&name, now, expires_at).await.unwrap() })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort();
    assert_eq!(counts, (1..=10).collect::<Vec<u32>>(), "no failure lost to a race");

    let state = store.login_state(&u.username, now).await.unwrap();
    assert_eq!(state.user, Some(u.clone()));
    assert_eq!(state.failures, FailedLogins { count: 10, locked_until_ms: None });

    // A lock never shortens; clearing forgets everything.
    store.lock_logins(&u.username, now + 60_000, expires_at).await.unwrap();
    store.lock_logins(&u.username, now + 5_000, expires_at).await.unwrap();
    assert_eq!(store.login_state(&u.username, now).await.unwrap().failures.locked_until_ms, Some(now + 60_000));
    store.clear_login_failures(&u.username).await.unwrap();
    assert_eq!(store.login_state(&u.username, now).await.unwrap().failures, FailedLogins::default());
    // A name nobody registered has a state too: no user, and its own count.
    let ghost = common::unique_username("ghost");
    store.record_login_failure(&ghost, now, expires_at).await.unwrap();
    let state = store.login_state(&ghost, now).await.unwrap();
    assert!(state.user.is_none());
    assert_eq!(state.failures.count, 1);
    assert!(store.get_user(&ghost).await.unwrap().is_none(), "a failure record is not a user");
}
