//! Email addresses (CONTRACT.md Part 3, "Email address and verification"): a registration
//! with an address queues its verification mail in the same write, and a verification
//! proves the address and claims it for the account, once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use super::{Auth, now_ms};
use crate::error::AuthError;
use crate::store::{MailKind, Mailed, OneTimeToken, QueuedMail, TokenPurpose, UserRef, VerifyOutcome};

/// A verification link lives this long (the contract's 24 hours).
pub const VERIFY_TTL_SECONDS: u64 = 24 * 3600;
/// A resent verification: at most one a minute and five a day per account.
const RESEND_INTERVAL_MS: u64 = 60_000;
const RESENDS_PER_DAY: u32 = 5;
const DAY_MS: u64 = 86_400_000;

/// The address a verification proved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub email: String,
    pub email_verified: bool,
}

/// A new one-time token: 256 random bits, base64url. Only its hash is stored.
pub(super) fn new_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| AuthError::Internal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What the token store keys a token by: hex SHA-256.
pub(crate) fn token_hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Auth {
    /// The stored one-time token `token` names, if it is of `purpose` and not expired: one
    /// answer, 400 `invalid_grant`, for unknown, malformed, expired and other-purpose
    /// tokens alike (used ones are gone). Mail must be configured (else 501).
    pub(super) async fn usable_token(&self, token: &str, purpose: TokenPurpose) -> Result<OneTimeToken, AuthError> {
        if !self.mail_enabled {
            return Err(AuthError::NotConfigured);
        }
        let refused = || AuthError::OneTimeTokenRefused;
        if token.is_empty() || token.len() > 256 {
            return Err(refused());
        }
        let stored = self.store.one_time_token(&token_hash(token)).await?.ok_or_else(refused)?;
        if stored.purpose != purpose || stored.expires_at <= now_ms() / 1000 {
            return Err(refused());
        }
        Ok(stored)
    }

    /// A verification of `email` for `user`, and the mail that carries it.
    pub(super) fn verification(&self, user: &UserRef, email: &str) -> Result<Mailed, AuthError> {
        let token = new_token()?;
        let now = now_ms();
        Ok(Mailed {
            token: OneTimeToken {
                hash: token_hash(&token),
                purpose: TokenPurpose::VerifyEmail,
                user_id: user.user_id.clone(),
                username: user.username.clone(),
                email: Some(email.to_string()),
                created_at_ms: now,
                expires_at: now / 1000 + VERIFY_TTL_SECONDS,
            },
            mail: QueuedMail {
                id: Uuid::new_v4().to_string(),
                to: email.to_string(),
                kind: MailKind::VerifyEmail,
                username: user.username.clone(),
                email: Some(email.to_string()),
                token: Some(token),
                queued_at_ms: now,
            },
        })
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
            self.store.issue_token(&self.verification(&user, &email)?).await?;
        }
        Ok(())
    }

    /// `POST /auth/email/verify`: the token of a verification mail proves its address,
    /// which becomes the account's verified address, unless another account verified it
    /// first (409 `email_taken`). Unknown, expired, used and other-purpose tokens are all
    /// the same 400 `invalid_grant`.
    pub async fn verify_email(&self, token: &str) -> Result<Verified, AuthError> {
        let refused = || AuthError::OneTimeTokenRefused;
        let stored = self.usable_token(token, TokenPurpose::VerifyEmail).await?;
        let email = stored.email.clone().ok_or_else(refused)?;
        match self.store.verify_email(&stored).await? {
            VerifyOutcome::Verified => {
                tracing::info!(user_id = %stored.user_id, "email address verified");
                Ok(Verified { email, email_verified: true })
            }
            VerifyOutcome::EmailTaken => Err(AuthError::EmailTaken),
            VerifyOutcome::TokenGone => Err(refused()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_and_stored_only_hashed() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        let hash = token_hash(&a);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&a));
        // SHA-256 of "abc" (FIPS 180-2's example).
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
