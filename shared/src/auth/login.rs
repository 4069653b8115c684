//! Login, behind the failed-login throttle (rules in `throttle.rs`).

use uuid::Uuid;

use super::events::{self, Event, Kind};
use super::throttle::{self, Admission};
use super::{Auth, new_session_id, normalize_username, now_ms};
use crate::error::AuthError;
use crate::password::Verification;
use crate::store::{FailedLogins, NameAttempt, Swapped, ThrottleKey, UserRecord};
use crate::tokens::{Amr, DEVICE_TTL_SECONDS, DeviceClaims, IssuedPair, Subject};

/// A successful login: the session's first pair, and the device's renewed known-device
/// credential (`device_token`).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub tokens: IssuedPair,
    pub device_token: String,
    /// Seconds the device credential lives.
    pub device_expires_in: u64,
}

/// The client part of the throttle key of a known device: its own (username, device)
/// counter, so five wrong passwords lock that device wherever it connects from.
fn device_client(device: &DeviceClaims) -> String {
    format!("device:{}", device.jti)
}

/// Who `check_password` checks for: anyone (login), or the authenticated caller (the
/// account routes), and the event a refusal is logged as.
#[derive(Clone, Copy)]
pub(super) struct Reauth<'a> {
    pub expected_user_id: Option<&'a str>,
    pub failure: Kind,
    /// A verified known-device credential presented with a login (never with a re-check).
    pub device: Option<&'a DeviceClaims>,
}

fn too_many(until_ms: u64, now_ms: u64) -> AuthError {
    AuthError::TooManyAttempts { retry_after_seconds: throttle::retry_after_seconds(until_ms, now_ms) }
}

impl Auth {
    /// Every refusal is the same `InvalidGrant`, and an unknown or malformed username
    /// still costs one argon2 verification, so neither the answer nor its timing tells
    /// which usernames exist. The throttle is `check_password`'s. `client_ip` is API
    /// Gateway's `sourceIp`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<IssuedPair, AuthError> {
        Ok(self.login_with_device(username, password, client_ip, None).await?.tokens)
    }

    /// `login`, from a device that may present a known-device credential (`device_token`,
    /// or the `__Host-device` cookie). A valid one of this user lets the login past the
    /// name-wide ceiling, which anyone can fill for any name; the device's own counter
    /// and the (name, IP) pair still count. A forged, expired or another user's credential
    /// counts for nothing. Every success renews the device's credential.
    pub async fn login_with_device(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<&str>,
        device_token: Option<&str>,
    ) -> Result<SignedIn, AuthError> {
        // The session id, and with it the session's start, is taken before anything is
        // read: a password change, deletion or disable that lands while this login checks
        // the old password revokes the session it is about to open.
        let sid = new_session_id();
        let ip = client_ip.unwrap_or_default();
        let Ok(name) = normalize_username(username) else {
            // No such name can exist: nothing to count, but the same cost and answer.
            self.verify(password.to_string(), None).await?;
            events::record(
                Kind::LoginFailed,
                Event { client_ip: ip, reason: "malformed_username", ..Default::default() },
            );
            return Err(AuthError::InvalidGrant);
        };
        let device = device_token.and_then(|token| match self.tokens.verify_device(token) {
            Ok(claims) if claims.username == name => Some(claims),
            Ok(_) => None,
            Err(e) => {
                tracing::info!(reason = %e, "device credential refused");
                None
            }
        });
        let checked = Reauth { expected_user_id: None, failure: Kind::LoginFailed, device: device.as_ref() };
        let (user, needs_rehash) = self.check_password(&name, password, client_ip, checked).await?;
        if needs_rehash {
            self.upgrade_hash(&user, password).await;
        }
        // The right password of an account whose address is not proven yet: told so (the
        // password was right, so this tells nothing a guesser could use).
        if self.require_verified_email && !user.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        // A user with a second factor: the password was step one.
        if let Some(mfa_token) = self.second_step_token(&user, &sid).await? {
            tracing::info!(user_id = %user.user_id, "right password; the second factor is asked for");
            return Err(AuthError::MfaRequired { mfa_token });
        }
        let pair = self.open_session(&user, &sid, Amr::Password).await?;
        let known = device.filter(|d| d.sub == user.user_id);
        let reason = if known.is_some() { "known_device" } else { "" };
        let event = Event { user_id: &user.user_id, username: &name, client_ip: ip, session_id: &sid, reason };
        events::record(Kind::LoginSucceeded, event);
        self.signed_in(&user, pair, known)
    }

    /// A sign-in's answer: the session's pair, and the device's renewed known-device
    /// credential. The same device (`known`: a credential of this very user) keeps its id,
    /// and with it its counter, across renewals; any other gets a new one.
    pub(super) fn signed_in(
        &self,
        user: &UserRecord,
        pair: IssuedPair,
        known: Option<DeviceClaims>,
    ) -> Result<SignedIn, AuthError> {
        let device_id = known.map_or_else(|| Uuid::new_v4().to_string(), |d| d.jti);
        let subject = Subject { user_id: &user.user_id, username: &user.username, roles: &[] };
        let device_token =
            self.tokens.issue_device(subject, &device_id, now_ms() / 1000).map_err(|_| AuthError::Internal)?;
        Ok(SignedIn { tokens: pair, device_token, device_expires_in: DEVICE_TTL_SECONDS })
    }

    /// The password check behind the failed-login throttle, for login and for the account
    /// routes that ask for the password again. Before any hash is spent, both counters take
    /// the attempt in advance: this client's (name, IP) pair, and the name's across all
    /// clients; a success gives both back. Unknown names are counted exactly like real
    /// ones, and a disabled user (or, with `expected_user_id`, another user than the
    /// caller) is refused exactly like a wrong password, after the same work.
    pub(super) async fn check_password(
        &self,
        name: &str,
        password: &str,
        client_ip: Option<&str>,
        reauth: Reauth<'_>,
    ) -> Result<(UserRecord, bool), AuthError> {
        let event = Event { username: name, client_ip: client_ip.unwrap_or_default(), ..Default::default() };
        let locked = |reason| {
            move |e: AuthError| {
                if matches!(e, AuthError::TooManyAttempts { .. }) {
                    events::record(Kind::LoginLocked, Event { reason, ..event });
                }
                e
            }
        };
        let client = throttle::client_key(client_ip);
        let now = now_ms();
        let state = self.store.login_state(name, &client).await?;
        // A known device of this very user (the credential names the user's id: a name
        // deleted and taken again by someone else does not inherit it).
        let device = reauth.device.filter(|d| state.user.as_ref().is_some_and(|u| u.user_id == d.sub));
        // A caller re-checking its own password holds a live session already, and a known
        // device has signed in as this user before: only their own counters count. The
        // name-wide ceiling, which refuses everyone, the owner included, would let anyone
        // keep the owner from signing in, changing the password or deleting the account
        // exactly while the name is under attack.
        let name_wide = reauth.expected_user_id.is_none() && device.is_none();
        // A name whose window is used up is refused before anything is counted (so the
        // owner's own pair is not run down while the name is locked).
        if let Some(until) =
            throttle::name_full(&self.throttle, state.name_failures.as_ref(), now).filter(|_| name_wide)
        {
            return Err(locked("name")(too_many(until, now)));
        }
        let client_key = ThrottleKey::Client { username: name.to_string(), client };
        self.reserve_attempt(&client_key, state.client_failures, now).await.map_err(locked("client"))?;
        // The device's own counter, read by its first compare-and-set (not in `login_state`).
        let device_key = device.map(|d| ThrottleKey::Client { username: name.to_string(), client: device_client(d) });
        if let Some(key) = &device_key {
            self.reserve_attempt(key, None, now).await.map_err(locked("device"))?;
        }
        let name_window = match name_wide {
            true => Some(self.reserve_name_attempt(name, now).await.map_err(locked("name"))?),
            false => None,
        };

        let (user, verified) = match (state.user, &self.legacy) {
            // A login (not a re-check) of a name unknown here, with a directory to migrate
            // from: the old directory checks the password instead of the dummy hash.
            (None, Some(directory)) if reauth.expected_user_id.is_none() => {
                match self.migrate_from_legacy(directory.as_ref(), name, password).await? {
                    Some(user) => (Some(user), Verification::Valid { needs_rehash: false }),
                    None => (None, Verification::Invalid),
                }
            }
            (user, _) => {
                let phc = user.as_ref().map(|u| u.password_hash.clone());
                (user, self.verify(password.to_string(), phc).await?)
            }
        };
        match (user, verified) {
            (Some(user), Verification::Valid { needs_rehash })
                if !user.disabled && reauth.expected_user_id.is_none_or(|id| id == user.user_id) =>
            {
                self.forget_failures(&client_key).await;
                if let Some(key) = &device_key {
                    self.forget_failures(key).await;
                }
                if let Some(window) = name_window {
                    self.give_back_name_attempt(name, window).await;
                }
                Ok((user, needs_rehash))
            }
            _ => {
                events::record(reauth.failure, Event { reason: "invalid_credentials", ..event });
                Err(AuthError::InvalidGrant)
            }
        }
    }

    /// Counts this attempt against the (name, client) pair before the password is
    /// verified, by compare-and-set on the record read: of any number of simultaneous
    /// attempts, only as many as the threshold allows get through, and the one that
    /// reaches it sets the lock. Not recorded means not verified: a store fault here
    /// fails the attempt (closed).
    pub(super) async fn reserve_attempt(
        &self,
        key: &ThrottleKey,
        mut current: Option<FailedLogins>,
        now: u64,
    ) -> Result<(), AuthError> {
        let write_id = Uuid::new_v4().to_string();
        // Each lost race means another attempt of the pair was counted; after the
        // threshold's worth of them the pair is locked, so this loop is short.
        for _ in 0..=self.throttle.max_failures + 1 {
            let next = match throttle::admit(&self.throttle, current.as_ref(), now, &write_id) {
                Admission::Locked { until_ms } => return Err(too_many(until_ms, now)),
                Admission::Admit(next) => next,
            };
            let seen = current.as_ref().map(|c| c.version.as_str());
            match self.store.swap_login_failures(key, seen, &next).await? {
                Swapped::Done => {
                    if next.locked_until_ms.is_some() {
                        tracing::warn!(
                            ?key,
                            failures = next.count,
                            "failed logins of one client; its next attempts wait"
                        );
                    }
                    return Ok(());
                }
                Swapped::Changed(stored) => current = stored,
            }
        }
        // Still contended: that many other attempts of this pair are under way right now.
        Err(AuthError::TooManyAttempts { retry_after_seconds: 1 })
    }

    /// Takes one of the name's attempts for this window (all clients together) before the
    /// password is verified, atomically: of any number of simultaneous attempts from any
    /// number of addresses, at most `name_max_failures` per window are verified. Not
    /// recorded means not verified: a store fault fails the attempt (closed).
    async fn reserve_name_attempt(&self, name: &str, now: u64) -> Result<u64, AuthError> {
        let key = ThrottleKey::Name { username: name.to_string() };
        let write_id = Uuid::new_v4().to_string();
        let fresh = throttle::fresh_name_record(&self.throttle, now, &write_id);
        match self.store.reserve_name_attempt(&key, &fresh, self.throttle.name_max_failures, now, &write_id).await? {
            NameAttempt::Granted { expires_at } => Ok(expires_at),
            NameAttempt::Full { until_ms } => {
                tracing::warn!(username = %name, "failed logins for one name from many clients; the name waits");
                Err(too_many(until_ms, now))
            }
        }
    }

    /// Best effort: the login succeeded, so its attempt was no failure; a leftover one only
    /// brings the name's ceiling one nearer for this window.
    async fn give_back_name_attempt(&self, name: &str, window_expires_at: u64) {
        let key = ThrottleKey::Name { username: name.to_string() };
        if let Err(e) = self.store.release_name_attempt(&key, window_expires_at).await {
            tracing::warn!(error = %e, username = %name, "could not give back a name attempt");
        }
    }

    /// Best effort: the login succeeded; a leftover count only shortens the next grace.
    pub(super) async fn forget_failures(&self, key: &ThrottleKey) {
        if let Err(e) = self.store.clear_login_failures(key).await {
            tracing::warn!(error = %e, ?key, "could not reset failed logins");
        }
    }

    /// Best effort: a failed upgrade must not fail the login; it is retried next time.
    async fn upgrade_hash(&self, user: &UserRecord, password: &str) {
        match self.hash(password.to_string()).await {
            Ok(new_hash) => {
                if let Err(e) = self.store.replace_password_hash(&user.username, &user.password_hash, &new_hash).await {
                    tracing::warn!(error = %e, user_id = %user.user_id, "password hash upgrade failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "password rehash failed"),
        }
    }
}
