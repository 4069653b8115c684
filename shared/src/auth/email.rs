//! Email addresses (CONTRACT.md Part 3, "Email address and verification"): a registration
//! with an address queues its verification mail in the same write, a signed-in user may
//! ask for another address (which replaces the old one once verified, and the old address
//! is told), and a verification proves the address and claims it for the account, once.

use uuid::Uuid;

use super::events::{self, Event, Kind};
use super::login::Reauth;
use super::{Auth, Principal, normalize_email, now_ms};
use crate::error::AuthError;
use crate::store::{MailKind, Mailed, OneTimeToken, QueuedMail, TokenPurpose, UserRecord, UserRef, VerifyOutcome};
use crate::tokens::one_time::{new_token, token_hash};

pub use crate::config::VERIFY_TTL_SECONDS;
/// A resent verification: at most one a minute and five a day per account.
const RESEND_INTERVAL_MS: u64 = 60_000;
const RESENDS_PER_DAY: u32 = 5;
const DAY_MS: u64 = 86_400_000;
/// A verification that found the user's address changed under it reads it again this many
/// times (each loser of a race between two verifications of one user).
const ADDRESS_RACE_RETRIES: usize = 3;

/// The address a verification proved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub email: String,
    pub email_verified: bool,
}

/// A mail whose link carries a new one-time token of `purpose` for `user`, living
/// `ttl_seconds` (the mail says so); `email`: the address a verification confirms.
pub(super) fn link_mail(
    user: &UserRef,
    purpose: TokenPurpose,
    kind: MailKind,
    to: &str,
    email: Option<&str>,
    ttl_seconds: u64,
) -> Result<Mailed, AuthError> {
    let token = new_token().ok_or(AuthError::Internal)?;
    let now = now_ms();
    Ok(Mailed {
        token: OneTimeToken {
            hash: token_hash(&token),
            purpose,
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            email: email.map(str::to_string),
            session_id: None,
            created_at_ms: now,
            expires_at: now / 1000 + ttl_seconds,
        },
        mail: QueuedMail {
            id: Uuid::new_v4().to_string(),
            to: to.to_string(),
            kind,
            username: user.username.clone(),
            email: email.map(str::to_string),
            token: Some(token),
            link_ttl_seconds: Some(ttl_seconds),
            queued_at_ms: now,
        },
        notice: None,
    })
}

/// A notice (no link) to `to` about `username`'s account; `email`: the new address it names.
pub(super) fn notice(kind: MailKind, to: &str, username: &str, email: Option<&str>) -> QueuedMail {
    QueuedMail {
        id: Uuid::new_v4().to_string(),
        to: to.to_string(),
        kind,
        username: username.to_string(),
        email: email.map(str::to_string),
        token: None,
        link_ttl_seconds: None,
        queued_at_ms: now_ms(),
    }
}

impl Auth {
    /// Best effort, after a change to an account: a notice of `kind` to its verified address
    /// (nothing without one, or without mail). The change is made: a notice that cannot be
    /// queued is logged, never the request's failure.
    pub(super) async fn send_notice(
        &self,
        kind: MailKind,
        verified_email: Option<&str>,
        username: &str,
        user_id: &str,
    ) {
        let Some(to) = verified_email.filter(|_| self.mail_enabled) else { return };
        match self.store.queue_mail(&notice(kind, to, username, None)).await {
            Ok(()) => crate::metrics::count(crate::metrics::Metric::MailQueued),
            Err(e) => tracing::warn!(error = %e, user_id, notice = kind.name(), "notice not queued"),
        }
    }

    /// The stored one-time token `token` names, if it is of one of `purposes` and not
    /// expired: one answer, 400 `invalid_grant`, for unknown, malformed, expired and
    /// other-purpose tokens alike (used ones are gone). Mail must be configured (else 501).
    pub(super) async fn usable_token(&self, token: &str, purposes: &[TokenPurpose]) -> Result<OneTimeToken, AuthError> {
        if !self.mail_enabled {
            return Err(AuthError::NotConfigured);
        }
        let refused = || AuthError::OneTimeTokenRefused;
        if token.is_empty() || token.len() > 256 {
            return Err(refused());
        }
        let stored = self.store.one_time_token(&token_hash(token)).await?.ok_or_else(refused)?;
        if !purposes.contains(&stored.purpose) || stored.expires_at <= now_ms() / 1000 {
            return Err(refused());
        }
        Ok(stored)
    }

    /// A verification of `email` for `user` (`purpose`: its first address, or a change),
    /// and the mail that carries it.
    pub(super) fn verification(&self, user: &UserRef, email: &str, purpose: TokenPurpose) -> Result<Mailed, AuthError> {
        link_mail(user, purpose, MailKind::VerifyEmail, email, Some(email), VERIFY_TTL_SECONDS)
    }

    /// Stores a token and queues its mail (and its notice, if any), counted as queued.
    pub(super) async fn queue_mailed(&self, mailed: &Mailed) -> Result<(), AuthError> {
        self.store.issue_token(mailed).await?;
        for _ in std::iter::once(&mailed.mail).chain(&mailed.notice) {
            crate::metrics::count(crate::metrics::Metric::MailQueued);
        }
        Ok(())
    }

    /// `POST /auth/email/resend`: a fresh verification mail to every account that holds
    /// `email` unverified, each within its allowance (one a minute, five a day). The
    /// answer is the same whether or not any account does (the route's caller learns
    /// nothing about who has which address); a malformed address is 400 `invalid_email`.
    pub async fn resend_verification(&self, email: &str) -> Result<(), AuthError> {
        if !self.mail_enabled {
            return Err(AuthError::NotConfigured);
        }
        let email = super::normalize_email(email)?;
        for user in self.store.users_with_unverified_email(&email).await? {
            let allowance = format!("verify#{}", user.user_id);
            let taken = self
                .store
                .take_mail_allowance(&allowance, now_ms(), RESEND_INTERVAL_MS, RESENDS_PER_DAY, DAY_MS)
                .await?;
            if !taken {
                tracing::info!(user_id = %user.user_id, "verification not resent: the account's allowance is used up");
                continue;
            }
            self.queue_mailed(&self.verification(&user, &email, TokenPurpose::VerifyEmail)?).await?;
        }
        Ok(())
    }

    /// `POST /auth/email`: after the password is checked again (a wrong one counts like a
    /// failed login, for the caller's own pair only), a verification mail to `email`; the
    /// account keeps its address until that link is used, and its verified address (if
    /// any) is told in the same write. An address that is already another account's
    /// verified one is 409 `email_taken` (the verification would be refused anyway);
    /// the account's own verified address asks for nothing. The mails count against the
    /// allowance of resent verifications (one a minute, five a day): beyond it the answer
    /// is the same and no mail goes, so a stolen session cannot mail-bomb an address.
    pub async fn request_email_change(
        &self,
        caller: &Principal,
        email: &str,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<(), AuthError> {
        if !self.mail_enabled {
            return Err(AuthError::NotConfigured);
        }
        let email = normalize_email(email)?;
        let reauth = Reauth { expected_user_id: Some(&caller.user_id), failure: Kind::EmailChangeFailed, device: None };
        let (user, _) = self.check_password(&caller.username, password, client_ip, reauth).await?;
        let verified = user.email.as_deref().filter(|_| user.email_verified);
        if verified == Some(email.as_str()) {
            return Ok(());
        }
        if self.store.verified_owner(&email).await?.is_some_and(|owner| owner != user.user_id) {
            return Err(AuthError::EmailTaken);
        }
        // The links of earlier changes die now, whether or not this one gets its mail (a
        // mistyped address must not keep a way into the account).
        let mut mailed = self.verification(&UserRef::from(&user), &email, TokenPurpose::ChangeEmail)?;
        if !self.store.mark_email_change(&user.username, &user.user_id, mailed.token.created_at_ms).await? {
            return Err(AuthError::InvalidToken);
        }
        let allowance = format!("verify#{}", user.user_id);
        if !self.store.take_mail_allowance(&allowance, now_ms(), RESEND_INTERVAL_MS, RESENDS_PER_DAY, DAY_MS).await? {
            tracing::info!(user_id = %user.user_id, "change of address not mailed: the account's allowance is used up");
            return Ok(());
        }
        mailed.notice =
            verified.map(|old| notice(MailKind::EmailChangeRequested, old, &user.username, Some(email.as_str())));
        self.queue_mailed(&mailed).await?;
        let event = Event {
            user_id: &user.user_id,
            username: &user.username,
            client_ip: client_ip.unwrap_or_default(),
            session_id: &caller.sid,
            reason: "",
        };
        events::record(Kind::EmailChangeRequested, event);
        Ok(())
    }

    /// `POST /auth/email/verify`: the token of a verification mail proves its address,
    /// which becomes the account's verified address (releasing the one it replaces),
    /// unless another account verified it first (409 `email_taken`). Unknown, expired,
    /// used and other-purpose tokens are all the same 400 `invalid_grant`, and so is a
    /// link that an event since it was mailed has killed: a later verification (of any
    /// address of the account), or, for a change of address, a password change, a reset
    /// or "log out everywhere" (what a user does who finds a change they did not ask for).
    pub async fn verify_email(&self, token: &str) -> Result<Verified, AuthError> {
        let refused = || AuthError::OneTimeTokenRefused;
        let stored = self.usable_token(token, &[TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail]).await?;
        let email = stored.email.clone().ok_or_else(refused)?;
        for _ in 0..ADDRESS_RACE_RETRIES {
            // A disabled account proves and claims nothing until enabled.
            let user =
                self.store.get_user(&stored.username).await?.filter(|u| u.user_id == stored.user_id && !u.disabled);
            let user = user.filter(|u| link_still_good(&stored, u)).ok_or_else(refused)?;
            let previous = user.email.as_deref().filter(|_| user.email_verified);
            match self.store.verify_email(&stored, previous, now_ms()).await? {
                VerifyOutcome::Verified => {
                    tracing::info!(user_id = %stored.user_id, "email address verified");
                    if stored.purpose == TokenPurpose::ChangeEmail {
                        let event = Event { user_id: &user.user_id, username: &user.username, ..Default::default() };
                        events::record(Kind::EmailChanged, event);
                    }
                    return Ok(Verified { email, email_verified: true });
                }
                VerifyOutcome::EmailTaken => return Err(AuthError::EmailTaken),
                VerifyOutcome::TokenGone => return Err(refused()),
                VerifyOutcome::UserChanged => continue,
            }
        }
        Err(AuthError::Unavailable { retry_after_seconds: 1 })
    }
}

/// A link mailed before the account's latest verification, or (for a change of address)
/// before its sessions cutoff or a later change request, no longer works.
pub(super) fn link_still_good(token: &OneTimeToken, user: &UserRecord) -> bool {
    let before = |at: Option<u64>| at.is_some_and(|at| token.created_at_ms < at);
    if before(user.email_verified_at_ms) {
        return false;
    }
    if token.purpose == TokenPurpose::ChangeEmail && before(user.email_change_requested_at_ms) {
        return false;
    }
    !(token.purpose != TokenPurpose::VerifyEmail && before(user.sessions_valid_after_ms))
}
