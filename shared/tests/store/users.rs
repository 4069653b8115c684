//! The user aggregate: creation, reads, the cutoff, roles, disabling, password changes,
//! deletion.

use std::sync::Arc;

use shared::store::{
    CreateOutcome, FailedLogins, ImportOutcome, PasswordChange, RevocationStore, ThrottleKey, ThrottleStore,
    UserProfile, UserStore,
};

use crate::{common, user};

#[tokio::test]
async fn a_created_user_reads_back_whole() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("read"));
    assert_eq!(store.create_user(&u).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.get_user(&u.username).await.unwrap(), Some(u.clone()));
    assert_eq!(store.username_for_id(&u.user_id).await.unwrap(), Some(u.username.clone()));
    assert_eq!(store.get_user(&common::unique_username("nobody")).await.unwrap(), None);
    assert_eq!(store.username_for_id(&uuid::Uuid::new_v4().to_string()).await.unwrap(), None);
}

#[tokio::test]
async fn a_users_profile_is_read_without_its_hash() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let mut u = user(&common::unique_username("profile"));
    u.roles = vec!["admin".into(), "user".into()];
    store.create_user(&u).await.unwrap();
    let profile = UserProfile {
        user_id: u.user_id.clone(),
        username: u.username.clone(),
        roles: u.roles.clone(),
        email: u.email.clone(),
        email_verified: false,
        created_at: u.created_at,
        disabled: false,
        password_scheme: None,
    };
    assert_eq!(store.user_profile(&u.username).await.unwrap(), Some(profile));
    assert_eq!(store.user_profile(&common::unique_username("nobody")).await.unwrap(), None);
}

#[tokio::test]
async fn an_imported_user_keeps_its_id_and_scheme_until_its_hash_is_replaced_and_imports_once() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let mut u = user(&common::unique_username("imported"));
    u.user_id = format!("legacy-{}", uuid::Uuid::new_v4().simple());
    u.password_hash = "$2b$04$FwGxZhUVWy7bd3/.PUu4j.2L1Al4pmhK45psy918E3WhTQZrv5VK.".into();
    u.email = Some(format!("{}@example.com", uuid::Uuid::new_v4().simple()));
    u.email_verified = true;
    u.email_verified_at_ms = Some(1_800_000_000_000);
    assert_eq!(store.import_user(&u, "bcrypt").await.unwrap(), ImportOutcome::Imported);
    assert_eq!(store.get_user(&u.username).await.unwrap(), Some(u.clone()));
    assert_eq!(store.username_for_id(&u.user_id).await.unwrap(), Some(u.username.clone()));
    assert_eq!(store.verified_owner(u.email.as_deref().unwrap()).await.unwrap(), Some(u.user_id.clone()));
    let profile = store.user_profile(&u.username).await.unwrap().unwrap();
    assert_eq!(profile.password_scheme.as_deref(), Some("bcrypt"));
    // Again (a retried request): the same user, nothing written.
    assert_eq!(store.import_user(&u, "bcrypt").await.unwrap(), ImportOutcome::AlreadyImported);
    // Another user with that name, that id or that verified address: nothing written.
    let mut other = user(&u.username);
    assert_eq!(store.import_user(&other, "argon2id").await.unwrap(), ImportOutcome::UsernameTaken);
    other.username = common::unique_username("clash");
    other.user_id = u.user_id.clone();
    assert_eq!(store.import_user(&other, "argon2id").await.unwrap(), ImportOutcome::IdTaken);
    other.user_id = uuid::Uuid::new_v4().to_string();
    (other.email, other.email_verified) = (u.email.clone(), true);
    assert_eq!(store.import_user(&other, "argon2id").await.unwrap(), ImportOutcome::EmailTaken);
    assert_eq!(store.get_user(&other.username).await.unwrap(), None, "all or nothing");
    assert_eq!(store.username_for_id(&other.user_id).await.unwrap(), None);
    // The upgrade at sign-in: argon2id from then on.
    let argon2 = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0b3RoZXJz$b3RoZXJoYXNob3RoZXJoYXNob3RoZXJoYXNob3RoZXI";
    store.replace_password_hash(&u.username, &u.password_hash, argon2).await.unwrap();
    assert_eq!(store.user_profile(&u.username).await.unwrap().unwrap().password_scheme, None);
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().password_hash, argon2);
}

#[tokio::test]
async fn a_taken_username_is_refused_and_the_first_user_is_untouched() {
    let Some(env) = common::env().await else { return };
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
    let Some(env) = common::env().await else { return };
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
async fn sessions_valid_after_only_moves_forward_and_never_creates_users() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("cutoff"));
    store.create_user(&u).await.unwrap();
    store.revoke_sessions_before(&u.username, 1_763_800_000_250).await.unwrap();
    store.revoke_sessions_before(&u.username, 1_763_800_000_100).await.unwrap();
    let got = store.get_user(&u.username).await.unwrap().unwrap();
    assert_eq!(got.sessions_valid_after_ms, Some(1_763_800_000_250));
    let state = store.access_state("s", &u.username).await.unwrap();
    assert_eq!(state.user.unwrap().sessions_valid_after_ms, Some(1_763_800_000_250));

    let ghost = common::unique_username("ghost");
    store.revoke_sessions_before(&ghost, 1_763_800_000_000).await.unwrap();
    assert!(env.user_item(&ghost).await.is_none(), "no half-user created");
}

#[tokio::test]
async fn a_password_hash_is_replaced_only_if_unchanged_meanwhile() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("rehash"));
    store.create_user(&u).await.unwrap();
    store.replace_password_hash(&u.username, "$argon2id$stale", "$argon2id$lost").await.unwrap();
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().password_hash, u.password_hash);
    store.replace_password_hash(&u.username, &u.password_hash, "$argon2id$new").await.unwrap();
    assert_eq!(store.get_user(&u.username).await.unwrap().unwrap().password_hash, "$argon2id$new");
}

#[tokio::test]
async fn roles_change_only_over_the_roles_read_and_disabling_cuts_every_session_in_one_write() {
    let Some(env) = common::env().await else { return };
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
    let access = store.access_state("s", &u.username).await.unwrap().user.unwrap();
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

#[tokio::test]
async fn a_password_change_writes_only_over_the_hash_and_user_it_read_and_never_moves_the_cutoff_back() {
    let Some(env) = common::env().await else { return };
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
    let disabled =
        store.change_password(&u.username, &u.user_id, "$argon2id$new", "$argon2id$newer", 1_763_900_000_300);
    assert_eq!(disabled.await.unwrap(), PasswordChange::Conflict);
    let ghost = common::unique_username("ghost");
    let absent = store.change_password(&ghost, &u.user_id, "x", "y", 1).await.unwrap();
    assert_eq!(absent, PasswordChange::Conflict);
    assert!(env.user_item(&ghost).await.is_none(), "never creates a user");
}

#[tokio::test]
async fn a_user_is_deleted_whole_and_only_by_its_own_id() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("erase"));
    store.create_user(&u).await.unwrap();
    let counters = [
        ThrottleKey::Name { username: u.username.clone() },
        ThrottleKey::Client { username: u.username.clone(), client: "192.0.2.1".into() },
    ];
    for key in &counters {
        store
            .swap_login_failures(
                key,
                None,
                &FailedLogins { count: 1, locked_until_ms: None, expires_at: 1_900_000_000, version: "w".into() },
            )
            .await
            .unwrap();
    }
    let hash = &u.password_hash;
    assert!(!store.delete_user(&u.username, &uuid::Uuid::new_v4().to_string(), hash, None, &counters).await.unwrap());
    assert!(store.get_user(&u.username).await.unwrap().is_some(), "another id deletes nothing");
    assert!(env.user_item(&format!("login#{}", u.username)).await.is_some(), "nothing at all");
    assert!(!store.delete_user(&u.username, &u.user_id, "$argon2id$changed", None, &counters).await.unwrap());
    store.set_disabled(&u.username, true, 1).await.unwrap();
    assert!(!store.delete_user(&u.username, &u.user_id, hash, None, &counters).await.unwrap(), "disabled meanwhile");
    store.set_disabled(&u.username, false, 1).await.unwrap();
    assert!(store.get_user(&u.username).await.unwrap().is_some());

    assert!(store.delete_user(&u.username, &u.user_id, hash, None, &counters).await.unwrap());
    assert!(store.get_user(&u.username).await.unwrap().is_none());
    assert_eq!(store.username_for_id(&u.user_id).await.unwrap(), None);
    assert!(env.user_item(&format!("login#{}", u.username)).await.is_none());
    assert!(env.user_item(&format!("login#{}#192.0.2.1", u.username)).await.is_none());
    assert!(!store.delete_user(&u.username, &u.user_id, hash, None, &counters).await.unwrap(), "gone already");
    // The id item stays as a tombstone naming nobody: the id is never a user's again (an
    // import or a migration bringing it back would revive the deleted user's tokens).
    let tombstone = env.user_item(&format!("id#{}", u.user_id)).await.unwrap();
    assert!(tombstone.contains_key("deleted_at") && !tombstone.contains_key("alias_of"));
    let mut again = user(&u.username);
    again.user_id = u.user_id.clone();
    assert_eq!(store.import_user(&again, "argon2id").await.unwrap(), ImportOutcome::IdTaken);
    // The name is free again.
    assert_eq!(store.create_user(&user(&u.username)).await.unwrap(), CreateOutcome::Created);
}
