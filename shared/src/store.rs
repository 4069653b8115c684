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
    /// Disabled by an administrator: no login, refresh or authorization until enabled.
    pub disabled: bool,
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
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// What the authorizer and refresh need to know about a user, read with the revocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccess {
    pub user_id: String,
    pub roles: Vec<String>,
    pub sessions_valid_after_ms: Option<u64>,
    pub disabled: bool,
}

/// The answer of one consistent read over a token id, its session and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessState {
    pub token_revoked: bool,
    pub session_revoked: bool,
    /// `None`: no such user (deleted, or never existed).
    pub user: Option<UserAccess>,
}

/// Which failed-login counter: one per (username, client) pair, and one per username
/// across every client (see `auth::throttle`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// A normalized username and a client key (`auth::throttle::client_key`).
    Client {
        username: String,
        client: String,
    },
    Name {
        username: String,
    },
}

/// A failed-login counter as stored. Expiry is the caller's to judge: a record whose
/// `expires_at` (epoch seconds) has passed is stale, whether or not TTL has deleted it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailedLogins {
    pub count: u32,
    /// Every attempt is refused until this instant (epoch milliseconds).
    pub locked_until_ms: Option<u64>,
    /// When the record may be forgotten (epoch seconds; the table's TTL attribute).
    pub expires_at: u64,
    /// The id of the write that produced this state: what a compare-and-set compares,
    /// and how a writer recognises its own write when the SDK retried it.
    pub version: String,
}

/// What login needs, read in one consistent round trip.
#[derive(Debug, Clone, Default)]
pub struct LoginState {
    pub user: Option<UserRecord>,
    /// This client's counter for the name, as stored (possibly stale).
    pub client_failures: Option<FailedLogins>,
    /// The name's counter across all clients, as stored (possibly stale).
    pub name_failures: Option<FailedLogins>,
}

/// The answer of `reserve_name_attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameAttempt {
    /// Taken, in the window that ends at `expires_at` (epoch seconds).
    Granted { expires_at: u64 },
    /// The window's attempts are used up until `until_ms` (epoch milliseconds).
    Full { until_ms: u64 },
}

/// The answer of a compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swapped {
    /// The new state is stored (by this call, or by an earlier attempt of it).
    Done,
    /// Someone else changed the record first: here is what is stored now.
    Changed(Option<FailedLogins>),
}

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

/// The answer of `change_password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    Changed,
    /// The hash, the user or the cutoff changed since they were read: nothing written.
    Conflict,
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

    /// One strongly consistent round trip: the user (if any) and both failed-login
    /// counters of (`username`, `client`), as stored.
    async fn login_state(&self, username: &str, client: &str) -> Result<LoginState, StoreError>;

    /// Compare-and-set: stores `next` (whose `version` is this write's unique id) only if
    /// the stored record is still the one of version `seen` (`None`: no record).
    /// Idempotent: a retried write that had already been applied answers `Done`.
    async fn swap_login_failures(
        &self,
        key: &ThrottleKey,
        seen: Option<&str>,
        next: &FailedLogins,
    ) -> Result<Swapped, StoreError>;

    /// Takes one of the `max` attempts a name has per window, atomically however many
    /// writers there are, before the password is verified. A missing or stale record (expired
    /// at `now_ms`) starts a new window from `fresh` (a count of 1). `attempt` is this
    /// request's unique id: a retried write that had already been applied takes no second
    /// attempt.
    async fn reserve_name_attempt(
        &self,
        key: &ThrottleKey,
        fresh: &FailedLogins,
        max: u32,
        now_ms: u64,
        attempt: &str,
    ) -> Result<NameAttempt, StoreError>;

    /// Gives back an attempt taken by `reserve_name_attempt` (the password was right), if
    /// the record is still the window of `window_expires_at`. Best effort.
    async fn release_name_attempt(&self, key: &ThrottleKey, window_expires_at: u64) -> Result<(), StoreError>;

    /// Forgets a counter (after a successful login).
    async fn clear_login_failures(&self, key: &ThrottleKey) -> Result<(), StoreError>;

    /// The username that belongs to an immutable user id (refresh tokens carry only `sub`).
    async fn username_for_id(&self, user_id: &str) -> Result<Option<String>, StoreError>;

    /// Replaces a password hash, only if it is still `old_hash` (a rehash after login must
    /// not overwrite a concurrent password change).
    async fn replace_password_hash(&self, username: &str, old_hash: &str, new_hash: &str) -> Result<(), StoreError>;

    /// Revokes a session: every token carrying `sid` stops working at once. One write,
    /// safe to retry; the record may be forgotten at `expires_at` (epoch seconds).
    async fn revoke_session(&self, sid: &str, expires_at: u64) -> Result<(), StoreError>;

    /// One round trip, strongly consistent: is the token id revoked, is the session
    /// revoked, and the user's current state.
    async fn access_state(&self, jti: &str, sid: &str, username: &str) -> Result<AccessState, StoreError>;

    /// Marks a refresh token spent with one conditional write. `spender` is this request's
    /// unique id: a retried write that had already been applied answers `Spent`, not
    /// `AlreadySpent` (which would be taken for theft).
    async fn spend_refresh_token(&self, jti: &str, expires_at: u64, spender: &str) -> Result<SpendOutcome, StoreError>;

    /// Revokes every session of the user that started before `at_ms` (epoch ms). Never
    /// moves the instant backwards.
    async fn revoke_sessions_before(&self, username: &str, at_ms: u64) -> Result<(), StoreError>;

    /// Compare-and-set of a user's roles: stores `new` only if the roles are still `old`
    /// (as read). `false`: changed meanwhile, or no such user.
    async fn replace_roles(&self, username: &str, old: &[String], new: &[String]) -> Result<bool, StoreError>;

    /// Disables or enables an existing user; disabling also revokes every session that
    /// started before `at_ms`, in the same write. `false`: no such user.
    async fn set_disabled(&self, username: &str, disabled: bool, at_ms: u64) -> Result<bool, StoreError>;

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
    async fn list_sessions(&self, user_id: &str) -> Result<Vec<ListedSession>, StoreError>;

    /// One listed session of the user, with whether it is revoked, in one consistent read.
    async fn session(&self, user_id: &str, session_id: &str) -> Result<Option<ListedSession>, StoreError>;

    /// Forgets one listed session (after revoking it). Safe to repeat.
    async fn forget_session(&self, user_id: &str, session_id: &str) -> Result<(), StoreError>;

    /// Forgets every listed session of a user (account deletion). Safe to repeat.
    async fn forget_sessions(&self, user_id: &str) -> Result<(), StoreError>;

    /// A password change in one conditional write: the new hash, and every session that
    /// started before `cutoff_ms` revoked, only if the user is still `user_id` with
    /// `old_hash`, not disabled, and no later cutoff exists. Idempotent: a retried write
    /// that had already been applied answers `Changed`.
    async fn change_password(
        &self,
        username: &str,
        user_id: &str,
        old_hash: &str,
        new_hash: &str,
        cutoff_ms: u64,
    ) -> Result<PasswordChange, StoreError>;

    /// Deletes a user at once: its item, its id item and the given failed-login counters,
    /// atomically, only if the name still belongs to `user_id`, with the `password_hash`
    /// that was verified, and is not disabled. `false`: it did not.
    async fn delete_user(
        &self,
        username: &str,
        user_id: &str,
        password_hash: &str,
        counters: &[ThrottleKey],
    ) -> Result<bool, StoreError>;
}

/// `list_sessions` reads at most this many sessions of one user (the newest).
pub const MAX_LISTED_SESSIONS: usize = 500;
