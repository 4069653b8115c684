//! The user aggregate: one user (its name, id, hash, roles, the disabled flag and the
//! sessions cutoff) and the id → name alias.

use async_trait::async_trait;

use super::{Mailed, StoreError, ThrottleKey};

/// Which user: its name (the key) and its immutable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub username: String,
    pub user_id: String,
}

/// A user as administration reads it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    pub user_id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    /// Epoch seconds.
    pub created_at: u64,
    pub disabled: bool,
    /// The scheme of an imported hash not replaced yet (`bcrypt`, ...); `None`: argon2id.
    pub password_scheme: Option<String>,
}

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
    /// The address was proven by a verification mail (and is then this account's alone).
    pub email_verified: bool,
    /// When an address was last verified (epoch milliseconds): links mailed before then
    /// (to the address it may have replaced) no longer work.
    pub email_verified_at_ms: Option<u64>,
    /// When a change of address was last asked for (epoch milliseconds): an earlier
    /// change's link (to an address the user may have mistyped) no longer works.
    pub email_change_requested_at_ms: Option<u64>,
    pub created_at: u64,
    /// Sessions that started before this instant (epoch milliseconds) are revoked.
    pub sessions_valid_after_ms: Option<u64>,
    /// Disabled by an administrator: no login, refresh or authorization until enabled.
    pub disabled: bool,
}

impl From<&UserRecord> for UserRef {
    fn from(user: &UserRecord) -> Self {
        UserRef { username: user.username.clone(), user_id: user.user_id.clone() }
    }
}

impl UserRecord {
    /// A user created now, enabled, with no sessions yet; its address verified now when
    /// `email_verified` (and there is one).
    pub fn new(
        user_id: String,
        username: String,
        password_hash: String,
        roles: Vec<String>,
        email: Option<String>,
        email_verified: bool,
        now_ms: u64,
    ) -> Self {
        let verified = email_verified && email.is_some();
        UserRecord {
            user_id,
            username,
            password_hash,
            roles,
            email,
            email_verified: verified,
            email_verified_at_ms: verified.then_some(now_ms),
            email_change_requested_at_ms: None,
            created_at: now_ms / 1000,
            sessions_valid_after_ms: None,
            disabled: false,
        }
    }
}

impl std::fmt::Debug for UserRecord {
    // The hash is a secret: it never reaches a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("roles", &self.roles)
            .field("email_verified", &self.email_verified)
            .field("email_verified_at_ms", &self.email_verified_at_ms)
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
    /// What `GET /auth/me` shows, read in the same round trip.
    pub email: Option<String>,
    pub email_verified: bool,
}

/// The answer of `change_password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    Changed,
    /// The hash, the user or the cutoff changed since they were read: nothing written.
    Conflict,
}

/// The answer of `import_user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported,
    /// The name is this very user's already (same id): an earlier attempt imported it.
    AlreadyImported,
    UsernameTaken,
    IdTaken,
    EmailTaken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    UsernameTaken,
    /// The address is another account's verified address (checked in the same
    /// transaction): nothing written.
    EmailTaken,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user if the username is free. Race-free: exactly one of any number of
    /// concurrent creations of one username wins.
    async fn create_user(&self, user: &UserRecord) -> Result<CreateOutcome, StoreError> {
        self.create_user_mailed(user, None).await
    }

    /// `create_user`, and in the same transaction a one-time token and its mail (the
    /// address's verification): both or neither.
    ///
    /// Also writes the one-time tokens and the outbox.
    async fn create_user_mailed(&self, user: &UserRecord, mailed: Option<&Mailed>) -> Result<CreateOutcome, StoreError>;

    /// Creates an imported user (its id kept, its hash as brought, `password_scheme`
    /// recorded unless argon2id), its id item and, for a verified address, its claim, in
    /// one transaction: nothing when the name, the id or the verified address is taken.
    async fn import_user(&self, user: &UserRecord, password_scheme: &str) -> Result<ImportOutcome, StoreError>;

    /// Strongly consistent read by normalized username.
    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The id of the account whose verified address is `email` (its `email#` claim),
    /// strongly consistent.
    async fn verified_owner(&self, email: &str) -> Result<Option<String>, StoreError>;

    /// The accounts whose address is `email` and not verified (an eventually consistent
    /// index: a resent verification may miss a registration of the last second).
    async fn users_with_unverified_email(&self, email: &str) -> Result<Vec<UserRef>, StoreError>;

    /// A user without its password hash or email, read consistently with a projection:
    /// what administration may read (its IAM policy allows no other attribute).
    async fn user_profile(&self, username: &str) -> Result<Option<UserProfile>, StoreError>;

    /// The username that belongs to an immutable user id (refresh tokens carry only `sub`).
    async fn username_for_id(&self, user_id: &str) -> Result<Option<String>, StoreError>;

    /// Replaces a password hash, only if it is still `old_hash` (a rehash after login must
    /// not overwrite a concurrent password change). The hash is argon2id from then on.
    async fn replace_password_hash(&self, username: &str, old_hash: &str, new_hash: &str) -> Result<(), StoreError>;

    /// Revokes every session of the user that started before `at_ms` (epoch ms). Never
    /// moves the instant backwards.
    ///
    /// A revocation, but of the user's own cutoff (`sessions_valid_after_ms`, which
    /// `set_disabled` and `change_password` move too), not of the revocations aggregate.
    async fn revoke_sessions_before(&self, username: &str, at_ms: u64) -> Result<(), StoreError>;

    /// Records that a change of address was asked for at `at_ms` (`email_change_requested_at`):
    /// the links of earlier changes stop working. `false`: no such user (or another id).
    async fn mark_email_change(&self, username: &str, user_id: &str, at_ms: u64) -> Result<bool, StoreError>;

    /// Compare-and-set of a user's roles: stores `new` only if the roles are still `old`
    /// (as read). `false`: changed meanwhile, or no such user.
    async fn replace_roles(&self, username: &str, old: &[String], new: &[String]) -> Result<bool, StoreError>;

    /// Disables or enables an existing user; disabling also revokes every session that
    /// started before `at_ms`, in the same write. `false`: no such user.
    async fn set_disabled(&self, username: &str, disabled: bool, at_ms: u64) -> Result<bool, StoreError>;

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

    /// Deletes a user at once: its item, its id item (kept as a tombstone that names no
    /// user, so the id is never given to another user), the claim of its verified address
    /// (`verified_email`, as read with the user: the address is free again) and the given
    /// failed-login counters, atomically, only if the name still belongs to `user_id`, with
    /// the `password_hash` that was verified and that verified address, and is not
    /// disabled. `false`: it did not.
    ///
    /// Also touches the throttle aggregate (the `counters`, in the same transaction); the
    /// user's listed sessions are the caller's to forget (`SessionStore::forget_sessions`).
    async fn delete_user(
        &self,
        username: &str,
        user_id: &str,
        password_hash: &str,
        verified_email: Option<&str>,
        counters: &[ThrottleKey],
    ) -> Result<bool, StoreError>;
}
