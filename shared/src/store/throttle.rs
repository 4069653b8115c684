//! The throttle aggregate: the failed-login counters (see `auth::throttle`).

use async_trait::async_trait;

use super::{StoreError, UserRecord};

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

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// One strongly consistent round trip: the user (if any) and both failed-login
    /// counters of (`username`, `client`), as stored.
    ///
    /// Also reads the user aggregate (the user's item, in the same read).
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
}
