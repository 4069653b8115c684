//! Storage behind narrow traits: the use cases never see DynamoDB.
//!
//! One trait per aggregate, each in its own file with its record types: [`UserStore`]
//! (`users.rs`), [`ThrottleStore`] (`throttle.rs`), [`RevocationStore`]
//! (`revocations.rs`) and [`SessionStore`] (`sessions.rs`). A method that touches more
//! than one aggregate in one request lives with the one it is mainly about, and its doc
//! comment says what else it touches. [`Store`] is all of them: what the use cases hold
//! (`Arc<dyn Store>`). The DynamoDB adapter is laid out the same way (`dynamodb/`, one
//! `impl XStore for DynamoStore` per file).
//!
//! Part 3's aggregates: [`OneTimeTokenStore`] (`one_time.rs`, emailed tokens),
//! [`OutboxStore`] (`outbox.rs`, queued mail) and [`FactorStore`] (`factors.rs`, second
//! factors).

pub mod dynamodb;
mod factors;
mod one_time;
mod outbox;
mod revocations;
mod sessions;
mod throttle;
mod users;

pub use dynamodb::DynamoStore;
pub use factors::{Factor, FactorStore};
pub use one_time::{Mailed, OneTimeToken, OneTimeTokenStore, TokenPurpose, VerifyOutcome};
pub use outbox::{MailKind, OutboxStore, QueuedMail};
pub use revocations::{AccessState, RevocationStore, Spend, SpendOutcome, Successor};
pub use sessions::{ListedSession, MAX_LISTED_SESSIONS, SessionRecord, SessionStore};
pub use throttle::{FailedLogins, LoginState, NameAttempt, Swapped, ThrottleKey, ThrottleStore};
pub use users::{
    CreateOutcome, ImportOutcome, PasswordChange, UserAccess, UserProfile, UserRecord, UserRef, UserStore,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, throttled: transient, retryable by the client.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (missing table, bad request): a deployment fault.
    #[error("store fault: {0}")]
    Internal(String),
}

/// Every aggregate's store: what the use cases hold. Implemented by whatever implements
/// all of the aggregate traits (blanket impl below); methods are called through it as
/// through any of them.
pub trait Store:
    UserStore + ThrottleStore + RevocationStore + SessionStore + OneTimeTokenStore + OutboxStore + FactorStore + Send + Sync
{
}

impl<T> Store for T where
    T: UserStore
        + ThrottleStore
        + RevocationStore
        + SessionStore
        + OneTimeTokenStore
        + OutboxStore
        + FactorStore
        + Send
        + Sync
        + ?Sized
{
}
