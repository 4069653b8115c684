//! The sessions aggregate: the listing of a user's sessions.

use shared::store::{RevocationStore, SessionRecord, SessionStore};

use crate::common;

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
    let Some(env) = common::env().await else { return };
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
    assert_eq!(
        (touched.created_at, touched.last_used_at, touched.expires_at),
        (1_763_800_000, 1_763_800_100, 1_763_990_000)
    );

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
    let Some(env) = common::env().await else { return };
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
