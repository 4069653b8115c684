//! Multi-factor authentication (CONTRACT.md Part 3): a TOTP factor enrolled, confirmed,
//! turned off or reset; recovery codes; and a login's second step.
//!
//! OWASP ASVS 5 chapter 6's rules hold here: a code works once (the last accepted step is
//! stored by a compare-and-set), lives at most its step and one either side, recovery
//! codes are stored hashed and work once, turning the factor off takes the password and a
//! code, and nothing but the factor's owner turning it off (or an administrator's reset)
//! does: a password reset leaves it on.

use std::sync::Arc;

use super::events::{self, Event, Kind};
use super::login::{Reauth, SignedIn};
use super::session::session_predates_cutoff;
use super::throttle;
use super::{Auth, Principal, now_ms};
use crate::error::{AuthError, MfaToken};
use crate::mfa::sealed::FactorKey;
use crate::mfa::{recovery, totp};
use crate::store::{Factor, FailedLogins, MailKind, OneTimeToken, ThrottleKey, TokenPurpose, UserRecord};
use crate::tokens::Amr;
use crate::tokens::one_time::{new_token, token_hash};

/// The client part of the failed-login throttle's key that counts a user's wrong codes
/// from every address together (`login#<name>#second-factor`). A right password never
/// clears it, only a right code does: knowing the password buys no more guesses than the
/// throttle's five, then a lock that doubles to 15 minutes (a few guesses an hour).
const SECOND_FACTOR_CLIENT: &str = "second-factor";

/// An `mfa_token` lives this long (the contract's 5 minutes).
pub const MFA_TOKEN_TTL_SECONDS: u64 = 300;
/// The wrong codes an `mfa_token` survives: the next one ends it (sign in again).
pub const MFA_TOKEN_MAX_WRONG_CODES: u32 = 5;

/// A set-up's answer: the secret as an authenticator app takes it, typed or scanned.
#[derive(Clone, serde::Serialize)]
pub struct Enrolment {
    /// Base32, as apps take it typed in.
    pub secret: String,
    pub otpauth_uri: String,
}

/// What a second step (or a removal) presents: a code of the app, or a recovery code.
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    Code(&'a str),
    RecoveryCode(&'a str),
}

// The secret and the codes never reach a log line.
impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(<redacted>)")
    }
}

impl std::fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proof::Code(_) => "Code(<redacted>)",
            Proof::RecoveryCode(_) => "RecoveryCode(<redacted>)",
        })
    }
}

impl<'a> Proof<'a> {
    /// A code as typed: six digits are the app's, anything else a recovery code.
    pub fn of(code: &'a str) -> Self {
        let code = code.trim();
        if code.len() == totp::DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            Proof::Code(code)
        } else {
            Proof::RecoveryCode(code)
        }
    }
}

/// The factor of `user_id`, on: its secret, opened.
struct Opened {
    factor: Factor,
    sealed: String,
    secret: zeroize::Zeroizing<Vec<u8>>,
}

impl Auth {
    /// The key that opens factor secrets: only the functions that verify codes hold it.
    pub fn with_factor_key(mut self, key: Option<Arc<FactorKey>>) -> Self {
        self.factor_key = key;
        self
    }

    fn factor_key(&self) -> Result<&FactorKey, AuthError> {
        self.factor_key.as_deref().ok_or(AuthError::MfaNotConfigured)
    }

    /// `user_id`'s factor if it is on, with its secret opened.
    async fn opened_factor(&self, user_id: &str) -> Result<Option<Opened>, AuthError> {
        let Some(factor) = self.store.factor(user_id).await? else { return Ok(None) };
        let Some(sealed) = factor.secret.clone() else { return Ok(None) };
        let secret = self.factor_key()?.open(&sealed, user_id).map_err(|e| {
            // Another key than the one it was sealed under (MFA_KEY changed), or an item
            // copied from another user: nobody can use this factor; never a way around it.
            tracing::error!(error = %e, user_id, "a factor secret that does not open");
            AuthError::Internal
        })?;
        Ok(Some(Opened { factor, sealed, secret: zeroize::Zeroizing::new(secret) }))
    }

    /// Accepts `proof` for an opened factor, once: a code's step by compare-and-set, or a
    /// recovery code used up. `false`: wrong, used already, or out of its time.
    async fn accept(&self, opened: &Opened, proof: Proof<'_>, username: &str) -> Result<bool, AuthError> {
        let user_id = opened.factor.user_id.as_str();
        match proof {
            Proof::Code(code) => {
                let now = now_ms() / 1000;
                let Some(step) = totp::accepted_step(&opened.secret, code, now, opened.factor.last_step) else {
                    return Ok(false);
                };
                Ok(self.store.accept_step(user_id, &opened.sealed, step).await?)
            }
            Proof::RecoveryCode(code) => {
                let Some(hash) = recovery::code_hash(self.factor_key()?, code) else { return Ok(false) };
                let used = self.store.use_recovery_code(user_id, &hash).await?;
                if used {
                    let event = Event { user_id, username, ..Default::default() };
                    events::record(Kind::RecoveryCodeUsed, event);
                }
                Ok(used)
            }
        }
    }

    /// `accept`, behind the user's second-factor counter: the attempt is counted before the
    /// code is checked (refused while the counter is locked: 429), and forgotten when the
    /// code is right.
    async fn accept_counted(&self, opened: &Opened, proof: Proof<'_>, username: &str) -> Result<bool, AuthError> {
        let key = self.reserve_code_attempt(&opened.factor.user_id, username).await?;
        let accepted = self.accept(opened, proof, username).await?;
        if accepted {
            self.forget_failures(&key).await;
        }
        Ok(accepted)
    }

    /// Counts an attempt at a code against the user's second-factor counter, before the code
    /// is checked: refused (429, and a `login_locked` event) while the counter is locked.
    /// The key, to forget the count with once the code was right.
    async fn reserve_code_attempt(&self, user_id: &str, username: &str) -> Result<ThrottleKey, AuthError> {
        let key = second_factor_key(username);
        let locked = Event { user_id, username, reason: "second_factor", ..Default::default() };
        self.reserve_attempt_or_record(&key, None, locked).await?;
        Ok(key)
    }

    /// `reserve_attempt`, and a `login_locked` event (`locked`) when the counter refuses it.
    async fn reserve_attempt_or_record(
        &self,
        key: &ThrottleKey,
        current: Option<FailedLogins>,
        locked: Event<'_>,
    ) -> Result<(), AuthError> {
        self.reserve_attempt(key, current, now_ms()).await.inspect_err(|e| {
            if matches!(e, AuthError::TooManyAttempts { .. }) {
                events::record(Kind::LoginLocked, locked);
            }
        })
    }

    /// Starts an enrolment: a new secret, pending until a code of it confirms it. The
    /// password is checked again, behind the caller's own (name, IP) pair only.
    pub async fn mfa_setup(
        &self,
        caller: &Principal,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<Enrolment, AuthError> {
        let key = self.factor_key()?;
        let reauth = Reauth { expected_user_id: Some(&caller.user_id), failure: Kind::MfaFailed, device: None };
        let (user, _) = self.check_password(&caller.username, password, client_ip, reauth).await?;
        if self.store.factor(&user.user_id).await?.is_some_and(|f| f.enabled()) {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        let secret = zeroize::Zeroizing::new(totp::new_secret().ok_or(AuthError::Internal)?);
        let sealed = key.seal(secret.as_ref(), &user.user_id).map_err(|_| AuthError::Internal)?;
        if !self.store.begin_enrolment(&user.user_id, &sealed).await? {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        let issuer = self.otp_issuer();
        Ok(Enrolment {
            secret: totp::base32(secret.as_ref()),
            otpauth_uri: totp::otpauth_uri(&issuer, &user.username, secret.as_ref()),
        })
    }

    /// The name authenticator apps list the account under: the issuer's host name (no
    /// port: a `:` would end the label's issuer part).
    fn otp_issuer(&self) -> String {
        let issuer: &str = self.tokens.issuer().unwrap_or_default();
        let authority = issuer.split("://").nth(1).unwrap_or(issuer).split('/').next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        if host.is_empty() { "auth".to_string() } else { host.to_string() }
    }

    /// Turns the factor on with a code of the pending secret: ten recovery codes, shown
    /// this once (only their hashes are kept).
    pub async fn mfa_confirm(&self, caller: &Principal, code: &str) -> Result<Vec<String>, AuthError> {
        let key = self.factor_key()?;
        let factor = self.store.factor(&caller.user_id).await?;
        if factor.as_ref().is_some_and(Factor::enabled) {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        let Some(pending) = factor.and_then(|f| f.pending) else {
            return Err(AuthError::InvalidRequest("no set-up to confirm: call /auth/mfa/totp/setup first".into()));
        };
        let secret = zeroize::Zeroizing::new(key.open(&pending, &caller.user_id).map_err(|_| AuthError::Internal)?);
        // A stolen session must not guess the code of a set-up in progress either.
        let counter = self.reserve_code_attempt(&caller.user_id, &caller.username).await?;
        let Some(step) = totp::accepted_step(&secret, code, now_ms() / 1000, None) else {
            events::record(Kind::MfaFailed, Event { reason: "wrong_code", ..caller_event(caller) });
            return Err(AuthError::WrongCode);
        };
        let codes = recovery::new_codes().ok_or(AuthError::Internal)?;
        let hashes = hashes_of(key, &codes)?;
        if !self.store.confirm_enrolment(&caller.user_id, &pending, step, &hashes).await? {
            // Another set-up or confirmation landed meanwhile.
            return Err(AuthError::WrongCode);
        }
        self.forget_failures(&counter).await;
        events::record(Kind::MfaEnabled, caller_event(caller));
        self.notify_factor_change(caller, MailKind::MfaEnabled).await;
        Ok(codes)
    }

    /// Ten new recovery codes for a code of the app; the old ones stop working.
    pub async fn mfa_new_recovery_codes(&self, caller: &Principal, code: &str) -> Result<Vec<String>, AuthError> {
        let Some(opened) = self.opened_factor(&caller.user_id).await? else {
            return Err(AuthError::InvalidRequest("multi-factor authentication is not on".into()));
        };
        // A stolen session must not guess its way to new recovery codes: counted as at login.
        let key = self.reserve_code_attempt(&caller.user_id, &caller.username).await?;
        let now = now_ms() / 1000;
        let Some(step) = totp::accepted_step(&opened.secret, code, now, opened.factor.last_step) else {
            events::record(Kind::MfaFailed, Event { reason: "wrong_code", ..caller_event(caller) });
            return Err(AuthError::WrongCode);
        };
        let codes = recovery::new_codes().ok_or(AuthError::Internal)?;
        let replaced = self
            .store
            .replace_recovery_codes(&caller.user_id, &opened.sealed, step, &hashes_of(self.factor_key()?, &codes)?)
            .await?;
        if !replaced {
            return Err(AuthError::WrongCode);
        }
        self.forget_failures(&key).await;
        events::record(Kind::RecoveryCodesReplaced, caller_event(caller));
        self.notify_factor_change(caller, MailKind::RecoveryCodesReplaced).await;
        Ok(codes)
    }

    /// Turns the factor off: the password and a code (of the app, or a recovery code).
    pub async fn mfa_disable(
        &self,
        caller: &Principal,
        password: &str,
        proof: Proof<'_>,
        client_ip: Option<&str>,
    ) -> Result<(), AuthError> {
        self.factor_key()?;
        let reauth = Reauth { expected_user_id: Some(&caller.user_id), failure: Kind::MfaFailed, device: None };
        let (user, _) = self.check_password(&caller.username, password, client_ip, reauth).await?;
        let Some(opened) = self.opened_factor(&user.user_id).await? else {
            return Err(AuthError::InvalidRequest("multi-factor authentication is not on".into()));
        };
        if !self.accept_counted(&opened, proof, &user.username).await? {
            events::record(Kind::MfaFailed, Event { reason: "wrong_code", ..caller_event(caller) });
            return Err(AuthError::WrongCode);
        }
        if !self.store.remove_factor(&user.user_id, Some(&opened.sealed)).await? {
            return Err(AuthError::WrongCode);
        }
        events::record(Kind::MfaDisabled, caller_event(caller));
        let verified = user.email.as_deref().filter(|_| user.email_verified);
        self.send_notice(MailKind::MfaDisabled, verified, &user.username, &user.user_id).await;
        Ok(())
    }

    /// A lost phone: an administrator removes `username`'s factor and ends every session
    /// (whoever holds the phone may have signed in with it). 404 for an unknown name.
    pub async fn admin_reset_mfa(&self, admin: &Principal, username: &str) -> Result<(), AuthError> {
        let name = super::normalize_username(username).map_err(|_| AuthError::NotFound)?;
        let user = self.store.user_profile(&name).await?.ok_or(AuthError::NotFound)?;
        let removed = self.store.remove_factor(&user.user_id, None).await?;
        self.store.revoke_sessions_before(&user.username, now_ms()).await?;
        let reason = format!("by={}{}", admin.username, if removed { "" } else { " factor=none" });
        let event = Event { user_id: &user.user_id, username: &user.username, reason: &reason, ..Default::default() };
        events::record(Kind::MfaReset, event);
        if removed && user.email_verified {
            self.send_notice(MailKind::MfaDisabled, user.email.as_deref(), &user.username, &user.user_id).await;
        }
        Ok(())
    }

    /// After a right password: where the user has a factor, no session yet but the second
    /// step's token, bound to the user and to the session `sid` the login took.
    pub(super) async fn second_step_token(&self, user: &UserRecord, sid: &str) -> Result<Option<MfaToken>, AuthError> {
        let Some(factor) = self.store.factor(&user.user_id).await? else { return Ok(None) };
        if !factor.enabled() {
            return Ok(None);
        }
        if self.factor_key.is_none() {
            // A factor this function cannot check: never a way in without it.
            tracing::error!(user_id = %user.user_id, "a user with a second factor, and no MFA_KEY to check it");
            return Err(AuthError::MfaNotConfigured);
        }
        let token = new_token().ok_or(AuthError::Internal)?;
        let now = now_ms();
        let stored = OneTimeToken {
            hash: mfa_token_key(&token),
            purpose: TokenPurpose::MfaLogin,
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            email: None,
            session_id: Some(sid.to_string()),
            created_at_ms: now,
            expires_at: now / 1000 + MFA_TOKEN_TTL_SECONDS,
        };
        self.store.put_token(&stored).await?;
        Ok(Some(MfaToken(token)))
    }

    /// A login's second step: the `mfa_token` of a right password, and a code of the app
    /// or a recovery code. Wrong codes count against the token (it dies at the fifth) and
    /// against the failed-login throttle's (name, IP) pair, as wrong passwords do. Every
    /// refusal is 401 `invalid_grant`, whatever its cause.
    pub async fn login_second_step(
        &self,
        mfa_token: &str,
        proof: Proof<'_>,
        client_ip: Option<&str>,
        device_token: Option<&str>,
    ) -> Result<SignedIn, AuthError> {
        self.factor_key()?;
        let hash = mfa_token_key(mfa_token);
        let now = now_ms();
        let stored = self
            .store
            .one_time_token(&hash)
            .await?
            .filter(|t| t.purpose == TokenPurpose::MfaLogin && t.expires_at > now / 1000 && t.session_id.is_some());
        let Some(stored) = stored else {
            tracing::info!("mfa_token refused: unknown, used, expired or of another purpose");
            return Err(AuthError::InvalidGrant);
        };
        let sid = stored.session_id.clone().unwrap_or_default();
        let client = throttle::client_key(client_ip);
        let state = self.store.login_state(&stored.username, &client).await?;
        // The user the password was checked for, still: not deleted (or its name taken
        // again), not disabled, and no password change or "log out everywhere" since.
        let user = state
            .user
            .filter(|u| u.user_id == stored.user_id && !u.disabled)
            .filter(|u| !session_predates_cutoff(&sid, u.sessions_valid_after_ms));
        let Some(user) = user else {
            self.store.forget_token(&hash).await?;
            return Err(AuthError::InvalidGrant);
        };
        let ip = client_ip.unwrap_or_default();
        let event = Event { user_id: &user.user_id, username: &user.username, client_ip: ip, ..Default::default() };
        let client_key = ThrottleKey::Client { username: user.username.clone(), client };
        self.reserve_attempt_or_record(&client_key, state.client_failures, Event { reason: "client", ..event }).await?;
        let accepted = match self.opened_factor(&user.user_id).await? {
            Some(opened) => self.accept_counted(&opened, proof, &user.username).await?,
            // Turned off, or reset, since the password: sign in again.
            None => false,
        };
        if !accepted {
            let alive = self.store.count_wrong_code(&hash, MFA_TOKEN_MAX_WRONG_CODES).await?;
            let reason = if alive { "wrong_code" } else { "wrong_code_token_ended" };
            events::record(Kind::MfaFailed, Event { reason, ..event });
            return Err(AuthError::InvalidGrant);
        }
        // One session per token: of two right codes at once, one signs in.
        if !self.store.spend_token(&hash, MFA_TOKEN_MAX_WRONG_CODES).await? {
            return Err(AuthError::InvalidGrant);
        }
        self.forget_failures(&client_key).await;
        let pair = self.open_session(&user, &sid, Amr::MultiFactor).await?;
        let reason = match proof {
            Proof::Code(_) => "second_factor",
            Proof::RecoveryCode(_) => "recovery_code",
        };
        events::record(Kind::LoginSucceeded, Event { session_id: &sid, reason, ..event });
        let known = device_token.and_then(|t| self.tokens.verify_device(t).ok()).filter(|d| d.sub == user.user_id);
        self.signed_in(&user, pair, known)
    }

    /// Best effort: a notice of a change to the caller's second factor (turned on, new
    /// recovery codes) to the verified address the authorizer read, so that a stolen session
    /// cannot change it unseen.
    async fn notify_factor_change(&self, caller: &Principal, kind: MailKind) {
        let verified = caller.email.as_deref().filter(|_| caller.email_verified);
        self.send_notice(kind, verified, &caller.username, &caller.user_id).await;
    }
}

/// Where an `mfa_token` is stored: its SHA-256, under a prefix of its own, so that the login
/// function's grant on the one-time tokens table reaches these items and no mailed token.
fn mfa_token_key(token: &str) -> String {
    format!("{MFA_TOKEN_PREFIX}{}", token_hash(token))
}

pub const MFA_TOKEN_PREFIX: &str = "mfa#";

fn second_factor_key(username: &str) -> ThrottleKey {
    ThrottleKey::Client { username: username.to_string(), client: SECOND_FACTOR_CLIENT.to_string() }
}

fn hashes_of(key: &FactorKey, codes: &[String]) -> Result<Vec<String>, AuthError> {
    codes.iter().map(|c| recovery::code_hash(key, c).ok_or(AuthError::Internal)).collect()
}

fn caller_event(caller: &Principal) -> Event<'_> {
    Event { user_id: &caller.user_id, username: &caller.username, session_id: &caller.sid, ..Default::default() }
}
