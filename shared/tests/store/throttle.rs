//! The throttle aggregate: failed-login counters, attempts per name, compare-and-set.

use std::sync::Arc;

use shared::store::{FailedLogins, NameAttempt, Swapped, ThrottleKey, ThrottleStore, UserStore};

use crate::{common, user};

fn name_key(username: &str) -> ThrottleKey {
    ThrottleKey::Name { username: username.to_string() }
}

fn record(count: u32, expires_at: u64, version: &str) -> FailedLogins {
    FailedLogins { count, locked_until_ms: None, expires_at, version: version.to_string() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_names_attempts_are_taken_atomically_up_to_its_ceiling_once_per_attempt() {
    let Some(env) = common::env().await else { return };
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
    let Some(env) = common::env().await else { return };
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
    let Some(env) = common::env().await else { return };
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
