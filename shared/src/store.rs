//! Storage behind a narrow trait: the use cases never see DynamoDB.

use async_trait::async_trait;

pub mod dynamodb;

pub use dynamodb::DynamoStore;

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Immutable id, the JWT `sub` (UUID).
    pub user_id: String,
    /// Normalized (lowercase) username, the table's key.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub roles: Vec<String>,
    pub email: Option<String>,
    pub created_at: u64,
    /// Sessions that started before this instant (epoch milliseconds) are revoked.
    pub sessions_valid_after_ms: Option<u64>,
}

impl std::fmt::Debug for UserRecord {
    // The hash is a secret: it never reaches a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("roles", &self.roles)
            .field("created_at", &self.created_at)
            .field("sessions_valid_after_ms", &self.sessions_valid_after_ms)
            .finish_non_exhaustive()
    }
}

/// What the authorizer and refresh need to know about a user, read with the revocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccess {
    pub user_id: String,
    pub roles: Vec<String>,
    pub sessions_valid_after_ms: Option<u64>,
}

/// The answer of one consistent read over a token id, its session and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessState {
    pub token_revoked: bool,
    pub session_revoked: bool,
    /// `None`: no such user (deleted, or never existed).
    pub user: Option<UserAccess>,
}

/// Something to revoke until `expires_at` (epoch seconds), after which it would have
/// expired anyway and DynamoDB TTL may delete the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Token { jti: String, expires_at: u64 },
    Session { sid: String, expires_at: u64 },
}

/// Consecutive failed logins for one normalized username, whether or not such a user
/// exists (so the throttle cannot tell who exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailedLogins {
    pub count: u32,
    /// Every attempt is refused until this instant (epoch milliseconds).
    pub locked_until_ms: Option<u64>,
}

/// What login needs, read in one consistent round trip.
#[derive(Debug, Clone, Default)]
pub struct LoginState {
    pub user: Option<UserRecord>,
    pub failures: FailedLogins,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    UsernameTaken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// This call spent the token: the caller may mint the next pair.
    Spent,
    /// The token had been spent (or revoked) before: reuse.
    AlreadySpent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, throttled: transient, retryable by the client.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (missing table, bad request): a deployment fault.
    #[error("store fault: {0}")]
    Internal(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Creates the user if the username is free. Race-free: exactly one of any number of
    /// concurrent creations of one username wins.
    async fn create_user(&self, user: &UserRecord) -> Result<CreateOutcome, StoreError>;

    /// Strongly consistent read by normalized username.
    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// One strongly consistent round trip: the user (if any) and the username's failed
    /// logins. A failure record whose expiry (epoch seconds) has passed counts as none,
    /// whether or not TTL has deleted it yet.
    async fn login_state(&self, username: &str, now_ms: u64) -> Result<LoginState, StoreError>;

    /// Counts one more failed login for `username`, atomically; the record is forgotten
    /// at `expires_at` (epoch seconds). Returns the count including this failure.
    async fn record_login_failure(&self, username: &str, now_ms: u64, expires_at: u64) -> Result<u32, StoreError>;

    /// Refuses logins for `username` until `until_ms`; never shortens a longer lock.
    async fn lock_logins(&self, username: &str, until_ms: u64, expires_at: u64) -> Result<(), StoreError>;

    /// Forgets the failed logins of `username` (after a successful login).
    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError>;

    /// The username that belongs to an immutable user id (refresh tokens carry only `sub`).
    async fn username_for_id(&self, user_id: &str) -> Result<Option<String>, StoreError>;

    /// Replaces a password hash, only if it is still `old_hash` (a rehash after login must
    /// not overwrite a concurrent password change).
    async fn replace_password_hash(&self, username: &str, old_hash: &str, new_hash: &str) -> Result<(), StoreError>;

    /// Records revocations; all of them or an error.
    async fn revoke(&self, revocations: &[Revocation]) -> Result<(), StoreError>;

    /// One round trip, strongly consistent: is the token id revoked, is the session
    /// revoked, and the user's current state.
    async fn access_state(&self, jti: &str, sid: &str, username: &str) -> Result<AccessState, StoreError>;

    /// Marks a refresh token spent with one conditional write.
    async fn spend_refresh_token(&self, jti: &str, expires_at: u64) -> Result<SpendOutcome, StoreError>;

    /// Revokes every session of the user that started before `at_ms` (epoch ms). Never
    /// moves the instant backwards.
    async fn revoke_sessions_before(&self, username: &str, at_ms: u64) -> Result<(), StoreError>;
}
