//! The revocations aggregate: revoked sessions, spent refresh tokens, and the one read
//! over them and the user.

use std::sync::Arc;

use shared::store::{AccessState, RevocationStore, Spend, SpendOutcome, Successor, UserStore};

use crate::{common, user};

#[tokio::test]
async fn a_revoked_session_is_seen_by_one_consistent_read_and_expires_when_told() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("revoke"));
    store.create_user(&u).await.unwrap();
    let sid = uuid::Uuid::now_v7().to_string();

    let clean = store.access_state(&sid, &u.username).await.unwrap();
    assert_eq!(
        clean,
        AccessState {
            session_revoked: false,
            user: Some(shared::store::UserAccess {
                user_id: u.user_id.clone(),
                roles: u.roles.clone(),
                sessions_valid_after_ms: None,
                disabled: false,
                email: u.email.clone(),
                email_verified: false,
            })
        }
    );

    store.revoke_session(&sid, 1_900_000_500).await.unwrap();
    // Safe to repeat (a retried write changes nothing).
    store.revoke_session(&sid, 1_900_000_500).await.unwrap();
    let state = store.access_state(&sid, &u.username).await.unwrap();
    assert!(state.session_revoked, "every token of the session is covered");
    let session_item = env.revoked_item(&format!("session#{sid}")).await.unwrap();
    assert_eq!(common::number(&session_item, "expires_at"), 1_900_000_500);
    // Another session of the user is not.
    assert!(!store.access_state(&uuid::Uuid::now_v7().to_string(), &u.username).await.unwrap().session_revoked);
}

#[tokio::test]
async fn access_state_of_an_unknown_user_has_no_user() {
    let Some(env) = common::env().await else { return };
    let state = env.store().access_state("s", &common::unique_username("ghost")).await.unwrap();
    assert_eq!(state, AccessState { session_revoked: false, user: None });
}

#[tokio::test]
async fn a_refresh_token_is_spent_once_and_a_repeat_of_the_same_spend_is_not_reuse() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let jti = uuid::Uuid::new_v4().to_string();
    let first = spend("request-a");
    assert_eq!(store.spend_refresh_token(&jti, 1_900_000_000, &first).await.unwrap(), SpendOutcome::Spent);
    // The same request again (an SDK retry whose first answer was lost): still its own spend.
    assert_eq!(store.spend_refresh_token(&jti, 1_900_000_000, &first).await.unwrap(), SpendOutcome::Spent);
    // Another request is told of the first spend, whole: who, from where, when, which pair.
    let again = store.spend_refresh_token(&jti, 1_900_000_000, &spend("request-b")).await.unwrap();
    assert_eq!(again, SpendOutcome::AlreadySpent(Some(first)));
    assert_eq!(common::number(&env.revoked_item(&jti).await.unwrap(), "expires_at"), 1_900_000_000);
}

#[tokio::test]
async fn a_marker_that_records_no_spend_is_reuse_without_one() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let jti = uuid::Uuid::new_v4().to_string();
    // As written before markers recorded their spend.
    env.put_revoked_item(&jti, &[("kind", "spent"), ("spender", "request-a")]).await;
    let again = store.spend_refresh_token(&jti, 1_900_000_000, &spend("request-b")).await.unwrap();
    assert_eq!(again, SpendOutcome::AlreadySpent(None));
}

/// A spend by request `spender`, with every field set, so a round trip that loses one fails.
fn spend(spender: &str) -> Spend {
    Spend {
        spender: spender.to_string(),
        client: "203.0.113.9".to_string(),
        at_ms: 1_800_000_000_123,
        successor: Successor {
            access_jti: uuid::Uuid::new_v4().to_string(),
            refresh_jti: uuid::Uuid::new_v4().to_string(),
            iat: 1_800_000_000,
            access_exp: 1_800_000_900,
            refresh_exp: 1_802_592_000,
            // Not sorted: the order the tokens carry is kept.
            roles: vec!["user".to_string(), "admin".to_string()],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_spends_of_one_refresh_token_have_exactly_one_winner() {
    let Some(env) = common::env().await else { return };
    let store = Arc::new(env.store());
    let jti = uuid::Uuid::new_v4().to_string();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (store, jti) = (store.clone(), jti.clone());
            let spend = spend(&uuid::Uuid::new_v4().to_string());
            tokio::spawn(async move { store.spend_refresh_token(&jti, 1_900_000_000, &spend).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for h in handles {
        spent += (h.await.unwrap() == SpendOutcome::Spent) as usize;
    }
    assert_eq!(spent, 1);
}
