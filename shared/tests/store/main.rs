//! The DynamoDB store against a real DynamoDB API server, one module per aggregate
//! (`users`, `throttle`, `revocations`, `sessions`, `one_time`, `outbox`, `factors`) and one for the adapter's error
//! classification (`errors`). One test binary: each costs a link.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod factors;
mod one_time;
mod outbox;
mod revocations;
mod sessions;
mod throttle;
mod users;

use shared::store::UserRecord;

fn user(username: &str) -> UserRecord {
    UserRecord {
        user_id: uuid::Uuid::new_v4().to_string(),
        username: username.to_string(),
        password_hash:
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
        roles: vec!["user".into()],
        email: Some("someone@example.com".into()),
        email_verified: false,
        email_verified_at_ms: None,
        email_change_requested_at_ms: None,
        created_at: 1_763_800_000,
        sessions_valid_after_ms: None,
        disabled: false,
    }
}
