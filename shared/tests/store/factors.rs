//! Second factors: enrolment, a code's step accepted once (also at once), recovery codes
//! used once and replaced, removal only of the factor read.

use std::sync::Arc;

use shared::store::FactorStore;

use crate::common;

fn user_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn codes(tag: &str) -> Vec<String> {
    (0..10).map(|i| format!("{tag}{i:062}")).collect()
}

#[tokio::test]
async fn an_enrolment_is_pending_until_confirmed_and_then_cannot_be_restarted() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let id = user_id();
    assert_eq!(store.factor(&id).await.unwrap(), None);
    assert!(store.begin_enrolment(&id, "v1.first").await.unwrap());
    // Set up again before confirming: the new pending secret replaces the first.
    assert!(store.begin_enrolment(&id, "v1.second").await.unwrap());
    let factor = store.factor(&id).await.unwrap().unwrap();
    assert!(!factor.enabled() && factor.pending.as_deref() == Some("v1.second"));
    // Confirming what is no longer pending: nothing.
    assert!(!store.confirm_enrolment(&id, "v1.first", 100, &codes("a")).await.unwrap());
    assert!(store.confirm_enrolment(&id, "v1.second", 100, &codes("a")).await.unwrap());
    let factor = store.factor(&id).await.unwrap().unwrap();
    assert!(factor.enabled() && factor.pending.is_none());
    assert_eq!((factor.secret.as_deref(), factor.last_step), (Some("v1.second"), Some(100)));
    assert_eq!(factor.recovery_codes, codes("a"));
    // On: no new enrolment, no second confirmation.
    assert!(!store.begin_enrolment(&id, "v1.third").await.unwrap());
    assert!(!store.confirm_enrolment(&id, "v1.second", 101, &codes("b")).await.unwrap());
    // The Debug form shows no secret.
    assert!(!format!("{factor:?}").contains("v1.second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_is_accepted_once_even_by_uses_at_once_and_only_for_the_secret_read() {
    let Some(env) = common::env().await else { return };
    let store = Arc::new(env.store());
    let id = user_id();
    assert!(store.begin_enrolment(&id, "v1.s").await.unwrap());
    assert!(store.confirm_enrolment(&id, "v1.s", 100, &codes("a")).await.unwrap());
    assert!(!store.accept_step(&id, "v1.s", 100).await.unwrap(), "the enrolment's step");
    assert!(!store.accept_step(&id, "v1.other", 101).await.unwrap(), "another secret");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.accept_step(&id, "v1.s", 101).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for h in handles {
        accepted += h.await.unwrap() as usize;
    }
    assert_eq!(accepted, 1, "one code, one success");
    assert!(!store.accept_step(&id, "v1.s", 100).await.unwrap(), "an earlier step");
    assert!(store.accept_step(&id, "v1.s", 102).await.unwrap());
}

#[tokio::test]
async fn recovery_codes_work_once_and_replacing_them_kills_the_old_ones() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let id = user_id();
    let (old, new) = (codes("a"), codes("b"));
    assert!(!store.use_recovery_code(&id, &old[0]).await.unwrap(), "no factor");
    assert!(store.begin_enrolment(&id, "v1.s").await.unwrap());
    assert!(!store.use_recovery_code(&id, &old[0]).await.unwrap(), "not on yet");
    assert!(store.confirm_enrolment(&id, "v1.s", 100, &old).await.unwrap());
    assert!(store.use_recovery_code(&id, &old[0]).await.unwrap());
    assert!(!store.use_recovery_code(&id, &old[0]).await.unwrap(), "once");
    assert_eq!(store.factor(&id).await.unwrap().unwrap().recovery_codes.len(), 9);
    // New codes with a code's step: the step is used, the old codes are dead.
    assert!(!store.replace_recovery_codes(&id, "v1.s", 100, &new).await.unwrap(), "a used step");
    assert!(store.replace_recovery_codes(&id, "v1.s", 101, &new).await.unwrap());
    assert!(!store.use_recovery_code(&id, &old[1]).await.unwrap());
    assert!(store.use_recovery_code(&id, &new[1]).await.unwrap());
    assert!(!store.accept_step(&id, "v1.s", 101).await.unwrap());
}

#[tokio::test]
async fn a_factor_is_removed_only_as_read_or_by_a_reset() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let id = user_id();
    assert!(!store.remove_factor(&id, None).await.unwrap(), "nothing to remove");
    assert!(store.begin_enrolment(&id, "v1.s").await.unwrap());
    assert!(store.confirm_enrolment(&id, "v1.s", 100, &codes("a")).await.unwrap());
    assert!(!store.remove_factor(&id, Some("v1.other")).await.unwrap());
    assert!(store.factor(&id).await.unwrap().unwrap().enabled());
    assert!(store.remove_factor(&id, Some("v1.s")).await.unwrap());
    assert_eq!(store.factor(&id).await.unwrap(), None);
    // A reset removes whatever is there.
    assert!(store.begin_enrolment(&id, "v1.t").await.unwrap());
    assert!(store.confirm_enrolment(&id, "v1.t", 100, &codes("a")).await.unwrap());
    assert!(store.remove_factor(&id, None).await.unwrap());
    assert_eq!(store.factor(&id).await.unwrap(), None);
}

#[tokio::test]
async fn a_deleted_users_factor_goes_with_it() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = crate::user(&common::unique_username("factor"));
    shared::store::UserStore::create_user(&store, &u).await.unwrap();
    assert!(store.begin_enrolment(&u.user_id, "v1.sealed").await.unwrap());
    assert!(store.confirm_enrolment(&u.user_id, "v1.sealed", 7, &codes("d")).await.unwrap());
    let deleted = shared::store::UserStore::delete_user(&store, &u.username, &u.user_id, &u.password_hash, None, &[]);
    assert!(deleted.await.unwrap());
    assert_eq!(store.factor(&u.user_id).await.unwrap(), None);
}
