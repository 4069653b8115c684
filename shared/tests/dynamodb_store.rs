//! The DynamoDB store against a real DynamoDB API server.

mod common;

use std::sync::Arc;

use shared::store::{
    AccessState, CreateOutcome, FailedLogins, NameAttempt, PasswordChange, SessionRecord, SpendOutcome, Store,
    StoreError, Swapped, ThrottleKey, UserRecord,
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
        disabled: false,
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
async fn a_revoked_session_is_seen_by_one_consistent_read_and_expires_when_told() {
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
                sessions_valid_after_ms: None,
                disabled: false,
            })
        }
    );

    store.revoke_session(&sid, 1_900_000_500).await.unwrap();
    // Safe to repeat (a retried write changes nothing).
    store.revoke_session(&sid, 1_900_000_500).await.unwrap();
    let other_jti = uuid::Uuid::new_v4().to_string();
    let state = store.access_state(&other_jti, &sid, &u.username).await.unwrap();
    assert!(!state.token_revoked && state.session_revoked, "every token of the session is covered");
    let session_item = env.revoked_item(&format!("session#{sid}")).await.unwrap();
    assert_eq!(common::number(&session_item, "expires_at"), 1_900_000_500);

    // A spent refresh token id is a revoked token id to the same read.
    store.spend_refresh_token(&jti, 1_900_000_000, "spender").await.unwrap();
    assert!(store.access_state(&jti, &sid, &u.username).await.unwrap().token_revoked);
}

#[tokio::test]
async fn access_state_of_an_unknown_user_has_no_user() {
    let env = common::env().await;
    let state = env.store().access_state("j", "s", &common::unique_username("ghost")).await.unwrap();
    assert_eq!(state, AccessState { token_revoked: false, session_revoked: false, user: None });
}

#[tokio::test]
async fn a_refresh_token_is_spent_once_and_a_repeat_of_the_same_spend_is_not_reuse() {
    let env = common::env().await;
    let store = env.store();
    let jti = uuid::Uuid::new_v4().to_string();
    assert_eq!(store.spend_refresh_token(&jti, 1_900_000_000, "request-a").await.unwrap(), SpendOutcome::Spent);
    // The same request again (an SDK retry whose first answer was lost): still its own spend.
    assert_eq!(store.spend_refresh_token(&jti, 1_900_000_000, "request-a").await.unwrap(), SpendOutcome::Spent);
    assert_eq!(store.spend_refresh_token(&jti, 1_900_000_000, "request-b").await.unwrap(), SpendOutcome::AlreadySpent);
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
            let spender = uuid::Uuid::new_v4().to_string();
            tokio::spawn(async move { store.spend_refresh_token(&jti, 1_900_000_000, &spender).await.unwrap() })
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
    assert!(matches!(store.spend_refresh_token("j", 1, "s").await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn a_missing_table_is_a_fault_not_a_user_error() {
    let env = common::env().await;
    let store = shared::store::DynamoStore::new(env.client.clone(), "no-such-table", "no-such-table-either", "nor-this");
    assert!(matches!(store.get_user("alice").await, Err(StoreError::Internal(_))));
}

fn name_key(username: &str) -> ThrottleKey {
    ThrottleKey::Name { username: username.to_string() }
}

fn record(count: u32, expires_at: u64, version: &str) -> FailedLogins {
    FailedLogins { count, locked_until_ms: None, expires_at, version: version.to_string() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_names_attempts_are_taken_atomically_up_to_its_ceiling_once_per_attempt() {
    let env = common::env().await;
    let store = Arc::new(env.store());
    let u = user(&common::unique_username("fails"));
    store.create_user(&u).await.unwrap();
    let now = shared::auth::now_ms();
    let expires_at = now / 1000 + 600;
    let key = name_key(&u.username);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (store, key) = (store.clone(), key.clone());
            let attempt = format!("attempt-{i}");
            let fresh = record(1, expires_at, &attempt);
            tokio::spawn(async move { store.reserve_name_attempt(&key, &fresh, 6, now, &attempt).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let granted = outcomes.iter().filter(|o| matches!(o, NameAttempt::Granted { .. })).count();
    assert_eq!(granted, 6, "exactly the ceiling, however they race: {outcomes:?}");
    assert!(outcomes.contains(&NameAttempt::Full { until_ms: expires_at * 1000 }));
    let state = store.login_state(&u.username, "192.0.2.1").await.unwrap();
    assert_eq!(state.user, Some(u.clone()));
    assert_eq!(state.name_failures.as_ref().map(|f| f.count), Some(6));
    assert_eq!(state.client_failures, None, "the pair's counter is a record of its own");

    // A success gives one back; the same attempt repeated (a retry whose answer was lost,
    // the record untouched since) takes no second one.
    store.release_name_attempt(&key, expires_at).await.unwrap();
    let fresh = record(1, expires_at, "attempt-x");
    assert_eq!(
        store.reserve_name_attempt(&key, &fresh, 6, now, "attempt-x").await.unwrap(),
        NameAttempt::Granted { expires_at }
    );
    assert_eq!(
        store.reserve_name_attempt(&key, &fresh, 6, now, "attempt-x").await.unwrap(),
        NameAttempt::Granted { expires_at }
    );
    assert_eq!(store.login_state(&u.username, "x").await.unwrap().name_failures.unwrap().count, 6);
    // Giving back for another window changes nothing.
    store.release_name_attempt(&key, expires_at + 1).await.unwrap();
    assert_eq!(store.login_state(&u.username, "x").await.unwrap().name_failures.unwrap().count, 6);
    store.clear_login_failures(&key).await.unwrap();
    assert_eq!(store.login_state(&u.username, "192.0.2.1").await.unwrap().name_failures, None);
    assert!(store.get_user(&u.username).await.unwrap().is_some(), "a counter is not the user");
}

#[tokio::test]
async fn a_used_up_window_that_has_expired_starts_afresh() {
    let env = common::env().await;
    let store = env.store();
    let key = name_key(&common::unique_username("stale"));
    let now = shared::auth::now_ms();
    let past = now / 1000 - 10;
    for i in 0..3 {
        let attempt = format!("old-{i}");
        store.reserve_name_attempt(&key, &record(1, past, &attempt), 3, (past - 100) * 1000, &attempt).await.unwrap();
    }
    let fresh = record(1, now / 1000 + 600, "new");
    let after = store.reserve_name_attempt(&key, &fresh, 3, now, "new").await.unwrap();
    assert_eq!(after, NameAttempt::Granted { expires_at: now / 1000 + 600 });
}

#[tokio::test]
async fn a_swap_applies_only_over_the_state_it_saw_and_recognises_its_own_retry() {
    let env = common::env().await;
    let store = env.store();
    let name = common::unique_username("swap");
    let key = ThrottleKey::Client { username: name.clone(), client: "192.0.2.7".into() };
    let exp = shared::auth::now_ms() / 1000 + 600;
    let first = FailedLogins { locked_until_ms: Some(1_900_000_000_000), ..record(1, exp, "w1") };
    assert_eq!(store.swap_login_failures(&key, None, &first).await.unwrap(), Swapped::Done);
    // Repeating the same write (the SDK retried it): done, not a conflict.
    assert_eq!(store.swap_login_failures(&key, None, &first).await.unwrap(), Swapped::Done);
    // A writer that saw nothing, or an older version, loses and is told what is there.
    let stored = store.login_state(&name, "192.0.2.7").await.unwrap().client_failures.unwrap();
    assert_eq!(stored, first);
    assert_eq!(
        store.swap_login_failures(&key, None, &record(1, exp, "w2")).await.unwrap(),
        Swapped::Changed(Some(first.clone()))
    );
    assert_eq!(
        store.swap_login_failures(&key, Some("w0"), &record(2, exp, "w3")).await.unwrap(),
        Swapped::Changed(Some(first.clone()))
    );
    // Over the version it saw, it applies (and a lock can be lifted).
    let second = record(2, exp, "w4");
    assert_eq!(store.swap_login_failures(&key, Some("w1"), &second).await.unwrap(), Swapped::Done);
    assert_eq!(store.login_state(&name, "192.0.2.7").await.unwrap().client_failures, Some(second));
    // Deleted meanwhile: the writer is told there is nothing.
    store.clear_login_failures(&key).await.unwrap();
    assert_eq!(
        store.swap_login_failures(&key, Some("w4"), &record(3, exp, "w5")).await.unwrap(),
        Swapped::Changed(None)
    );
}

#[tokio::test]
async fn roles_change_only_over_the_roles_read_and_disabling_cuts_every_session_in_one_write() {
    let env = common::env().await;
    let store = env.store();
    let u = user(&common::unique_username("admin"));
    store.create_user(&u).await.unwrap();
    let (user_role, admin) = (vec!["user".to_string()], vec!["admin".to_string(), "user".to_string()]);
    assert!(store.replace_roles(&u.username, &user_role, &admin).await.unwrap());
    assert!(!store.replace_roles(&u.username, &user_role, &[]).await.unwrap(), "stale: the roles changed meanwhile");
    assert!(store.replace_roles(&u.username, &admin, &[]).await.unwrap(), "no roles at all is a state too");
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().roles, Vec::<String>::new());
    assert!(!store.replace_roles(&common::unique_username("ghost"), &[], &user_role).await.unwrap());

    assert!(store.set_disabled(&u.username, true, 1_763_800_000_500).await.unwrap());
    let got = store.get_user(&u.username).await.unwrap().unwrap();
    assert!(got.disabled);
    assert_eq!(got.sessions_valid_after_ms, Some(1_763_800_000_500));
    let access = store.access_state("j", "s", &u.username).await.unwrap().user.unwrap();
    assert!(access.disabled);
    // A later "log out everywhere" is never moved back by a disable.
    store.revoke_sessions_before(&u.username, 1_763_900_000_000).await.unwrap();
    assert!(store.set_disabled(&u.username, true, 1_763_800_000_900).await.unwrap());
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().sessions_valid_after_ms, Some(1_763_900_000_000));
    assert!(store.set_disabled(&u.username, false, 0).await.unwrap());
    assert!(!store.get_user(&u.username).await.unwrap().unwrap().disabled);
    assert!(!store.set_disabled(&common::unique_username("ghost"), true, 1).await.unwrap());
    assert!(env.user_item(&common::unique_username("ghost")).await.is_none());
}

fn session_row(user_id: &str, created_at: u64) -> SessionRecord {
    SessionRecord {
        user_id: user_id.to_string(),
        session_id: uuid::Uuid::now_v7().to_string(),
        created_at,
        last_used_at: created_at,
        expires_at: created_at + 86_400,
    }
}

#[tokio::test]
async fn sessions_list_newest_first_with_their_revocations_and_a_touch_never_creates_one() {
    let env = common::env().await;
    let store = env.store();
    let user_id = uuid::Uuid::new_v4().to_string();
    let rows: Vec<SessionRecord> = (0..3).map(|i| session_row(&user_id, 1_763_800_000 + i)).collect();
    for row in &rows {
        store.record_session(row).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    store.revoke_session(&rows[1].session_id, 1_763_900_000).await.unwrap();
    store.touch_session(&user_id, &rows[0].session_id, 1_763_800_100, 1_763_990_000).await.unwrap();

    let listed = store.list_sessions(&user_id).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|l| l.session.session_id.as_str()).collect();
    assert_eq!(ids, [rows[2].session_id.as_str(), rows[1].session_id.as_str(), rows[0].session_id.as_str()]);
    assert_eq!(listed.iter().map(|l| l.revoked).collect::<Vec<_>>(), [false, true, false]);
    let touched = &listed[2].session;
    assert_eq!((touched.created_at, touched.last_used_at, touched.expires_at), (1_763_800_000, 1_763_800_100, 1_763_990_000));

    // One row with its revocation, in one read; another user's id finds nothing.
    let one = store.session(&user_id, &rows[1].session_id).await.unwrap().unwrap();
    assert_eq!((one.session.session_id.as_str(), one.revoked), (rows[1].session_id.as_str(), true));
    assert!(!store.session(&user_id, &rows[2].session_id).await.unwrap().unwrap().revoked);
    assert!(store.session(&uuid::Uuid::new_v4().to_string(), &rows[2].session_id).await.unwrap().is_none());

    // A touch of a row that is not there (forgotten) does not bring it back.
    store.forget_session(&user_id, &rows[0].session_id).await.unwrap();
    store.touch_session(&user_id, &rows[0].session_id, 1_763_800_200, 1_763_990_000).await.unwrap();
    assert_eq!(store.list_sessions(&user_id).await.unwrap().len(), 2);
    assert!(store.list_sessions(&uuid::Uuid::new_v4().to_string()).await.unwrap().is_empty());
}

#[tokio::test]
async fn all_of_a_users_sessions_are_forgotten_however_many_and_no_one_elses() {
    let env = common::env().await;
    let store = env.store();
    let (user_id, other) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    // More than one BatchWriteItem's worth (25).
    for i in 0..60 {
        store.record_session(&session_row(&user_id, 1_763_800_000 + i)).await.unwrap();
    }
    store.record_session(&session_row(&other, 1_763_800_000)).await.unwrap();
    assert_eq!(store.list_sessions(&user_id).await.unwrap().len(), 60);
    store.forget_sessions(&user_id).await.unwrap();
    assert!(env.session_rows(&user_id).await.is_empty());
    assert_eq!(env.session_rows(&other).await.len(), 1);
    store.forget_sessions(&user_id).await.unwrap();
}

#[tokio::test]
async fn a_password_change_writes_only_over_the_hash_and_user_it_read_and_never_moves_the_cutoff_back() {
    let env = common::env().await;
    let store = env.store();
    let u = user(&common::unique_username("pwstore"));
    store.create_user(&u).await.unwrap();
    let stranger = uuid::Uuid::new_v4().to_string();
    let change = |user_id: &str, old: &str, at: u64| {
        let (store, name, user_id, old) = (env.store(), u.username.clone(), user_id.to_string(), old.to_string());
        async move { store.change_password(&name, &user_id, &old, "$argon2id$new", at).await.unwrap() }
    };
    assert_eq!(change(&stranger, &u.password_hash, 1_763_800_000_000).await, PasswordChange::Conflict);
    assert_eq!(change(&u.user_id, "$argon2id$other", 1_763_800_000_000).await, PasswordChange::Conflict);
    store.revoke_sessions_before(&u.username, 1_763_900_000_000).await.unwrap();
    assert_eq!(change(&u.user_id, &u.password_hash, 1_763_800_000_000).await, PasswordChange::Conflict);
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().password_hash, u.password_hash, "nothing written");

    assert_eq!(change(&u.user_id, &u.password_hash, 1_763_900_000_123).await, PasswordChange::Changed);
    let got = store.get_user(&u.username).await.unwrap().unwrap();
    assert_eq!((got.password_hash.as_str(), got.sessions_valid_after_ms), ("$argon2id$new", Some(1_763_900_000_123)));
    // The same write again (an SDK retry of an applied write) is recognised as done.
    assert_eq!(change(&u.user_id, &u.password_hash, 1_763_900_000_123).await, PasswordChange::Changed);
    // A disabled user's password does not change.
    store.set_disabled(&u.username, true, 1_763_900_000_200).await.unwrap();
    let disabled = store.change_password(&u.username, &u.user_id, "$argon2id$new", "$argon2id$newer", 1_763_900_000_300);
    assert_eq!(disabled.await.unwrap(), PasswordChange::Conflict);
    let ghost = common::unique_username("ghost");
    let absent = store.change_password(&ghost, &u.user_id, "x", "y", 1).await.unwrap();
    assert_eq!(absent, PasswordChange::Conflict);
    assert!(env.user_item(&ghost).await.is_none(), "never creates a user");
}

#[tokio::test]
async fn a_user_is_deleted_whole_and_only_by_its_own_id() {
    let env = common::env().await;
    let store = env.store();
    let u = user(&common::unique_username("erase"));
    store.create_user(&u).await.unwrap();
    let counters = [
        ThrottleKey::Name { username: u.username.clone() },
        ThrottleKey::Client { username: u.username.clone(), client: "192.0.2.1".into() },
    ];
    for key in &counters {
        store.swap_login_failures(key, None, &FailedLogins { count: 1, locked_until_ms: None, expires_at: 1_900_000_000, version: "w".into() }).await.unwrap();
    }
    let hash = &u.password_hash;
    assert!(!store.delete_user(&u.username, &uuid::Uuid::new_v4().to_string(), hash, &counters).await.unwrap());
    assert!(store.get_user(&u.username).await.unwrap().is_some(), "another id deletes nothing");
    assert!(env.user_item(&format!("login#{}", u.username)).await.is_some(), "nothing at all");
    assert!(!store.delete_user(&u.username, &u.user_id, "$argon2id$changed", &counters).await.unwrap());
    store.set_disabled(&u.username, true, 1).await.unwrap();
    assert!(!store.delete_user(&u.username, &u.user_id, hash, &counters).await.unwrap(), "disabled meanwhile");
    store.set_disabled(&u.username, false, 1).await.unwrap();
    assert!(store.get_user(&u.username).await.unwrap().is_some());

    assert!(store.delete_user(&u.username, &u.user_id, hash, &counters).await.unwrap());
    assert!(store.get_user(&u.username).await.unwrap().is_none());
    assert_eq!(store.username_for_id(&u.user_id).await.unwrap(), None);
    assert!(env.user_item(&format!("login#{}", u.username)).await.is_none());
    assert!(env.user_item(&format!("login#{}#192.0.2.1", u.username)).await.is_none());
    assert!(!store.delete_user(&u.username, &u.user_id, hash, &counters).await.unwrap(), "gone already");
    // The name is free again.
    assert_eq!(store.create_user(&user(&u.username)).await.unwrap(), CreateOutcome::Created);
}
