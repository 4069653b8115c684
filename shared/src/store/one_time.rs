//! One-time tokens: the tokens a mail's link carries (address verification, a change of
//! address, password reset). Each is stored only as the SHA-256 of the token, bound to one
//! purpose, one user and (for a verification or a change) one address, used at most once
//! (a conditional write) and forgotten through TTL.

use async_trait::async_trait;

use super::{QueuedMail, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// The address given at registration (or registration's address again).
    VerifyEmail,
    /// A new address a signed-in user asked for: it replaces the old one once verified.
    ChangeEmail,
    ResetPassword,
    /// A multi-factor login's second step (`mfa_token`): the password was right.
    MfaLogin,
}

impl TokenPurpose {
    pub fn name(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ChangeEmail => "change_email",
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::MfaLogin => "mfa_login",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail, TokenPurpose::ResetPassword, TokenPurpose::MfaLogin]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// Hex SHA-256 of the token: the key. The token itself is never stored here.
    pub hash: String,
    pub purpose: TokenPurpose,
    pub user_id: String,
    pub username: String,
    /// The address a verification (or change) token confirms.
    pub email: Option<String>,
    /// The session an `mfa_token` opens: its id was taken when the password was checked,
    /// so a password change or "log out everywhere" since then ends it.
    pub session_id: Option<String>,
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
    /// A notice queued in the same write (a change of address tells the old address).
    pub notice: Option<QueuedMail>,
}

/// The answer of [`OneTimeTokenStore::verify_email`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified,
    /// Used meanwhile: nothing written.
    TokenGone,
    /// The user is not as read: its verified address changed (another verification
    /// landed meanwhile), or it is gone or replaced. Nothing written; read it again.
    UserChanged,
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

    /// Stores a token that no mail carries (an `mfa_token`: it is the answer's).
    async fn put_token(&self, token: &OneTimeToken) -> Result<(), StoreError>;

    /// Uses up the token under `hash`: `true` only for the one caller that found it there,
    /// with fewer than `max` wrong codes counted against it.
    async fn spend_token(&self, hash: &str, max: u32) -> Result<bool, StoreError>;

    /// Counts a wrong code against the token under `hash`; at the `max`th it is gone.
    /// `false`: the token is gone (now, or before).
    async fn count_wrong_code(&self, hash: &str, max: u32) -> Result<bool, StoreError>;

    /// The token stored under `hash`, strongly consistent, whatever its expiry.
    async fn one_time_token(&self, hash: &str) -> Result<Option<OneTimeToken>, StoreError>;

    /// Verifies the address of a verification (or change) token, in one transaction: the
    /// token is used up (it must still be there), the address is claimed for the token's
    /// user (an `email#<address>` item that must be absent or already the user's), the
    /// user's item gets that address, verified, at `at_ms` (it must still be the token's
    /// user, with `previous` as its verified address: `None` for none), and the claim of
    /// `previous`, if it is another address, is released.
    ///
    /// Also writes the user aggregate.
    async fn verify_email(
        &self,
        token: &OneTimeToken,
        previous: Option<&str>,
        at_ms: u64,
    ) -> Result<VerifyOutcome, StoreError>;
}
