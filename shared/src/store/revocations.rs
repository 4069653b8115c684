//! The revocations aggregate: revoked token ids, spent refresh token ids and revoked
//! sessions. (A user's cutoff, "every session before this instant", is the user's:
//! `UserStore::revoke_sessions_before`.)

use async_trait::async_trait;

use super::{StoreError, UserAccess};

/// The answer of one consistent read over a session and its user. (No single token is
/// revoked on its own: logout, theft and every cutoff end sessions, and a spent refresh
/// token is told by its spend's conditional write, so no token id is read.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessState {
    pub session_revoked: bool,
    /// `None`: no such user (deleted, or never existed).
    pub user: Option<UserAccess>,
}

/// The spending of a refresh token, as its marker records it: enough to answer the same
/// client's retry with the very pair the spend was given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spend {
    /// The spending request's unique id: a retried write that had already been applied
    /// answers `Spent`, not `AlreadySpent` (which would be taken for theft).
    pub spender: String,
    /// The spending client's key (`auth::throttle::client_key`).
    pub client: String,
    /// Epoch milliseconds.
    pub at_ms: u64,
    /// The pair the spend handed out.
    pub successor: Successor,
}

/// What a pair is besides its subject and session: its ids, times and roles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Successor {
    pub access_jti: String,
    pub refresh_jti: String,
    /// Epoch seconds.
    pub iat: u64,
    pub access_exp: u64,
    pub refresh_exp: u64,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendOutcome {
    /// This call spent the token: the caller may mint the next pair.
    Spent,
    /// The token had been spent (or revoked) before: reuse, unless it is the same client
    /// retrying within the grace window. The earlier spend as recorded, if it is one
    /// (`None`: a marker that records no spend).
    AlreadySpent(Option<Spend>),
}

#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Revokes a session: every token carrying `sid` stops working at once. One write,
    /// safe to retry; the record may be forgotten at `expires_at` (epoch seconds).
    async fn revoke_session(&self, sid: &str, expires_at: u64) -> Result<(), StoreError>;

    /// One round trip, strongly consistent: is the session revoked, and the user's
    /// current state.
    ///
    /// Also reads the user aggregate (the user's access fields, in the same read).
    async fn access_state(&self, sid: &str, username: &str) -> Result<AccessState, StoreError>;

    /// Marks a refresh token spent, recording `spend`, with one conditional write; the
    /// marker may be forgotten at `expires_at` (epoch seconds).
    async fn spend_refresh_token(&self, jti: &str, expires_at: u64, spend: &Spend) -> Result<SpendOutcome, StoreError>;
}
