//! The revocations aggregate: revoked token ids, spent refresh token ids and revoked
//! sessions. (A user's cutoff, "every session before this instant", is the user's:
//! `UserStore::revoke_sessions_before`.)

use async_trait::async_trait;

use super::{StoreError, UserAccess};

/// The answer of one consistent read over a token id, its session and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessState {
    pub token_revoked: bool,
    pub session_revoked: bool,
    /// `None`: no such user (deleted, or never existed).
    pub user: Option<UserAccess>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// This call spent the token: the caller may mint the next pair.
    Spent,
    /// The token had been spent (or revoked) before: reuse.
    AlreadySpent,
}

#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Revokes a session: every token carrying `sid` stops working at once. One write,
    /// safe to retry; the record may be forgotten at `expires_at` (epoch seconds).
    async fn revoke_session(&self, sid: &str, expires_at: u64) -> Result<(), StoreError>;

    /// One round trip, strongly consistent: is the token id revoked, is the session
    /// revoked, and the user's current state.
    ///
    /// Also reads the user aggregate (the user's access fields, in the same read).
    async fn access_state(&self, jti: &str, sid: &str, username: &str) -> Result<AccessState, StoreError>;

    /// Marks a refresh token spent with one conditional write. `spender` is this request's
    /// unique id: a retried write that had already been applied answers `Spent`, not
    /// `AlreadySpent` (which would be taken for theft).
    async fn spend_refresh_token(&self, jti: &str, expires_at: u64, spender: &str) -> Result<SpendOutcome, StoreError>;
}
