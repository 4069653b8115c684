//! A forgotten password (CONTRACT.md Part 3, "Password reset"; OWASP's Forgot Password
//! cheat sheet): a reset link goes only to a verified address, the answer tells nobody
//! whether an account matched, and using the link ends every session.

use std::time::{Duration, Instant};

use super::email::{link_mail, link_still_good};
use super::events::{self, Event, Kind};
use super::{Auth, normalize_email, normalize_username, now_ms};
use crate::error::AuthError;
use crate::password::validate_new_password;
use crate::store::{MailKind, PasswordChange, ThrottleKey, TokenPurpose, UserRecord, UserRef};

/// At most three reset mails per account an hour.
const RESETS_PER_HOUR: u32 = 3;
const HOUR_MS: u64 = 3_600_000;
/// Every forgot-password answer takes at least this long, whether or not an account
/// matched and a mail was queued: the time tells nothing either.
const FORGOT_FLOOR: Duration = Duration::from_millis(250);

impl Auth {
    /// `POST /auth/password/forgot`: a reset mail to the account's verified address, if
    /// an account matches `email` or `username` and has one (within its allowance). The
    /// caller learns nothing: the same answer, and about the same time, either way.
    pub async fn forgot_password(&self, email: Option<&str>, username: Option<&str>) -> Result<(), AuthError> {
        if !self.mail_enabled {
            return Err(AuthError::NotConfigured);
        }
        let email = email.map(normalize_email).transpose()?;
        let started = Instant::now();
        let queued = self.queue_reset(email.as_deref(), username).await;
        tokio::time::sleep(FORGOT_FLOOR.saturating_sub(started.elapsed())).await;
        queued
    }

    async fn queue_reset(&self, email: Option<&str>, username: Option<&str>) -> Result<(), AuthError> {
        let user = match (email, username) {
            (Some(email), _) => match self.store.verified_owner(email).await? {
                Some(user_id) => self.user_by_id(&user_id).await?,
                None => None,
            },
            (None, Some(name)) => match normalize_username(name) {
                Ok(name) => self.store.get_user(&name).await?,
                Err(_) => None,
            },
            (None, None) => return Err(AuthError::InvalidRequest("send `email` or `username`".into())),
        };
        // Only to a verified address, of an account that may sign in.
        let Some((user, to)) =
            user.filter(|u| u.email_verified && !u.disabled).and_then(|u| u.email.clone().map(|to| (u, to)))
        else {
            return Ok(());
        };
        let allowance = format!("reset#{}", user.user_id);
        if !self.store.take_mail_allowance(&allowance, now_ms(), 0, RESETS_PER_HOUR, HOUR_MS).await? {
            tracing::info!(user_id = %user.user_id, "reset mail not sent: the account's allowance is used up");
            return Ok(());
        }
        let (who, ttl) = (UserRef::from(&user), self.reset_ttl_seconds);
        let mailed = link_mail(&who, TokenPurpose::ResetPassword, MailKind::ResetPassword, &to, None, ttl)?;
        self.queue_mailed(&mailed).await?;
        Ok(())
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, AuthError> {
        let Some(name) = self.store.username_for_id(user_id).await? else { return Ok(None) };
        Ok(self.store.get_user(&name).await?.filter(|u| u.user_id == user_id))
    }

    /// `POST /auth/password/reset`: the link's token sets a new password. Every session
    /// of the user ends, every other reset link of the user dies with them (a link older
    /// than the sessions cutoff is refused), the name's failed-login lock is lifted, and a
    /// notice goes to the address. No tokens are issued: the user signs in.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client_ip: Option<&str>,
    ) -> Result<(), AuthError> {
        let refused = || AuthError::OneTimeTokenRefused;
        let stored = self.usable_token(token, &[TokenPurpose::ResetPassword]).await?;
        let user = self.store.get_user(&stored.username).await?.filter(|u| u.user_id == stored.user_id && !u.disabled);
        // A password change, a reset or "log out everywhere" since the link was made, or a
        // new address verified (the link went to the old one).
        let user = user.filter(|u| link_still_good(&stored, u)).ok_or_else(refused)?;
        validate_new_password(new_password, &user.username)?;
        let new_hash = self.hash(new_password.to_string()).await?;
        let cutoff = now_ms();
        // Conditional on the hash read: of two uses of one link at once, one wins.
        let changed =
            self.store.change_password(&user.username, &user.user_id, &user.password_hash, &new_hash, cutoff).await?;
        if changed == PasswordChange::Conflict {
            return Err(refused());
        }
        self.cut_off_racing_logins(&user.username).await;
        if let Err(e) = self.store.forget_token(&stored.hash).await {
            // Dead anyway: it predates the cutoff just written.
            tracing::warn!(error = %e, user_id = %user.user_id, "used reset token not forgotten");
        }
        if let Err(e) = self.store.clear_login_failures(&ThrottleKey::Name { username: user.username.clone() }).await {
            tracing::warn!(error = %e, user_id = %user.user_id, "the name's failed-login lock not lifted");
        }
        self.notify_password_changed(&user).await;
        let event = Event {
            user_id: &user.user_id,
            username: &user.username,
            client_ip: client_ip.unwrap_or_default(),
            reason: "reset",
            ..Default::default()
        };
        events::record(Kind::PasswordChanged, event);
        Ok(())
    }

    /// Best effort, after the change: a "your password was changed" notice to the verified
    /// address.
    pub(super) async fn notify_password_changed(&self, user: &UserRecord) {
        let verified = user.email.as_deref().filter(|_| user.email_verified);
        self.send_notice(MailKind::PasswordChanged, verified, &user.username, &user.user_id).await;
    }
}
