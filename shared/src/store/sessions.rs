//! The sessions aggregate: the listing of a user's sessions. Listing only: whether a
//! session is alive is decided by the revocations and the user's cutoff.

use async_trait::async_trait;

use super::StoreError;

/// A session as listed (sessions table): written at login, touched at refresh. Listing
/// only: whether a session is alive is decided by the revocations and the user's cutoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: String,
    pub session_id: String,
    /// Epoch seconds.
    pub created_at: u64,
    /// Epoch seconds: the session's login or latest refresh.
    pub last_used_at: u64,
    /// When nothing can refresh the session any more (epoch seconds; the table's TTL).
    pub expires_at: u64,
}

/// A listed session and whether a `session#` revocation exists for it (one read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    pub session: SessionRecord,
    pub revoked: bool,
}

/// `list_sessions` reads at most this many sessions of one user (the newest).
pub const MAX_LISTED_SESSIONS: usize = 500;

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new session for listing (sessions table). Safe to repeat.
    async fn record_session(&self, session: &SessionRecord) -> Result<(), StoreError>;

    /// Moves a listed session's `last_used_at` and `expires_at` (a refresh). Never creates
    /// a row: a session not listed (or forgotten by an account deletion) stays so.
    async fn touch_session(
        &self,
        user_id: &str,
        session_id: &str,
        last_used_at: u64,
        expires_at: u64,
    ) -> Result<(), StoreError>;

    /// The user's listed sessions, newest first (at most `MAX_LISTED_SESSIONS`), each
    /// with whether it is revoked: strongly consistent reads.
    ///
    /// Also reads the revocations aggregate (the `session#` revocations).
    async fn list_sessions(&self, user_id: &str) -> Result<Vec<ListedSession>, StoreError>;

    /// One listed session of the user, with whether it is revoked, in one consistent read.
    ///
    /// Also reads the revocations aggregate (the session's revocation, in the same read).
    async fn session(&self, user_id: &str, session_id: &str) -> Result<Option<ListedSession>, StoreError>;

    /// Forgets one listed session (after revoking it). Safe to repeat.
    async fn forget_session(&self, user_id: &str, session_id: &str) -> Result<(), StoreError>;

    /// Forgets every listed session of a user (account deletion). Safe to repeat.
    async fn forget_sessions(&self, user_id: &str) -> Result<(), StoreError>;
}
