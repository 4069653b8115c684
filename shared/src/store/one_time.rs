//! One-time tokens: the tokens a mail's link carries (address verification, password
//! reset). Each is stored only as the SHA-256 of the token, bound to one purpose, one user
//! and (for a verification) one address, used at most once (a conditional write) and
//! forgotten through TTL.

use async_trait::async_trait;

use super::{QueuedMail, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    pub fn name(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [TokenPurpose::VerifyEmail, TokenPurpose::ResetPassword].into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// Hex SHA-256 of the token: the key. The token itself is never stored here.
    pub hash: String,
    pub purpose: TokenPurpose,
    pub user_id: String,
    pub username: String,
    /// The address a verification token confirms.
    pub email: Option<String>,
    /// Epoch milliseconds.
    pub created_at_ms: u64,
    /// Epoch seconds: refused from then on (and forgotten through TTL).
    pub expires_at: u64,
}

/// A one-time token and the mail that carries it, written together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailed {
    pub token: OneTimeToken,
    pub mail: QueuedMail,
}

/// The answer of [`OneTimeTokenStore::verify_email`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified,
    /// Used meanwhile, or the user is gone or holds another address now: nothing written.
    TokenGone,
    /// Another account has verified this address: nothing written.
    EmailTaken,
}

#[async_trait]
pub trait OneTimeTokenStore: Send + Sync {
    /// Stores a token and queues its mail, in one transaction.
    ///
    /// Also writes the outbox.
    async fn issue_token(&self, mailed: &Mailed) -> Result<(), StoreError>;

    /// Forgets a used token. Safe to repeat.
    async fn forget_token(&self, hash: &str) -> Result<(), StoreError>;

    /// The token stored under `hash`, strongly consistent, whatever its expiry.
    async fn one_time_token(&self, hash: &str) -> Result<Option<OneTimeToken>, StoreError>;

    /// Verifies the address of a verification token, in one transaction: the token is
    /// used up (it must still be there), the address is claimed for the token's user (an
    /// `email#<address>` item that must be absent or already the user's), and the user's
    /// item gets that address, verified (it must still be the token's user).
    ///
    /// Also writes the user aggregate.
    async fn verify_email(&self, token: &OneTimeToken) -> Result<VerifyOutcome, StoreError>;
}
