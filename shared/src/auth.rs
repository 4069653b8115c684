//! The use cases: register, login, refresh, logout, authorize. Each is a function over the
//! store trait, the token service and the password hasher; none knows about HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::config::LoginThrottleConfig;
use crate::error::AuthError;
use crate::password::{PasswordHasher, Verification, validate_new_password};
use crate::store::{AccessState, CreateOutcome, LoginState, Revocation, SpendOutcome, Store, UserAccess, UserRecord};
use crate::tokens::{AccessClaims, IssuedPair, Subject, TokenError, TokenService};

pub const DEFAULT_ROLE: &str = "user";
pub const MAX_EMAIL_CHARS: usize = 254;
/// A username's failed logins are forgotten this long after the last one (plus any lock).
pub const FAILED_LOGIN_MEMORY_SECONDS: u64 = 3600;

/// Username policy: ASCII only. Anything outside ASCII is rejected, never folded, so
/// fullwidth forms, the Kelvin sign or Cyrillic look-alikes cannot impersonate a name.
/// After ASCII lowercasing it must match `^[a-z0-9][a-z0-9._-]{2,31}$`.
pub fn normalize_username(raw: &str) -> Result<String, AuthError> {
    let invalid = || {
        AuthError::InvalidUsername(
            "username must be 3-32 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit".into(),
        )
    };
    if !raw.is_ascii() {
        return Err(invalid());
    }
    let name = raw.to_ascii_lowercase();
    let bytes = name.as_bytes();
    let ok = (3..=32).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(name) } else { Err(invalid()) }
}

fn validate_email(email: &str) -> Result<(), AuthError> {
    let bad = || AuthError::InvalidRequest("email is not a valid address".into());
    if email.chars().count() > MAX_EMAIL_CHARS || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(bad()),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Session ids are UUIDv7: their embedded creation time is what "log out everywhere"
/// compares against, so a session that refreshes after that instant still dies.
fn new_session_id() -> String {
    Uuid::now_v7().to_string()
}

fn session_started_ms(sid: &str) -> Option<u64> {
    let (secs, nanos) = Uuid::parse_str(sid).ok()?.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

/// The user behind a token whose session is still alive: the session is not revoked, the
/// user still exists under the id the token names, and no "log out everywhere" came
/// after the session started. One rule for the authorizer and for refresh.
fn live_session_user(state: AccessState, sub: &str, sid: &str) -> Option<UserAccess> {
    if state.session_revoked {
        return None;
    }
    let user = state.user.filter(|u| u.user_id == sub)?;
    (!session_predates_cutoff(sid, user.sessions_valid_after_ms)).then_some(user)
}

/// A session is dead once the user logged out everywhere after it started.
fn session_predates_cutoff(sid: &str, valid_after_ms: Option<u64>) -> bool {
    match valid_after_ms {
        None => false,
        Some(cutoff) => session_started_ms(sid).is_none_or(|started| started < cutoff),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublicUser {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub user: PublicUser,
    pub tokens: IssuedPair,
}

/// An authenticated caller, as the authorizer hands it to the routes behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub sid: String,
    pub jti: String,
    pub exp: u64,
}

impl Principal {
    pub fn from_claims(c: AccessClaims) -> Self {
        Principal { user_id: c.sub, username: c.username, roles: c.roles, sid: c.sid, jti: c.jti, exp: c.exp }
    }

    /// The authorizer context of the contract: `sub`, `username`, `roles` (comma-joined),
    /// `sid`, `jti`, `exp`.
    pub fn to_context(&self) -> HashMap<String, String> {
        HashMap::from([
            ("sub".into(), self.user_id.clone()),
            ("username".into(), self.username.clone()),
            ("roles".into(), self.roles.join(",")),
            ("sid".into(), self.sid.clone()),
            ("jti".into(), self.jti.clone()),
            ("exp".into(), self.exp.to_string()),
        ])
    }

    pub fn from_context(ctx: &HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| ctx.get(k).cloned();
        Some(Principal {
            user_id: get("sub")?,
            username: get("username")?,
            roles: get("roles")?.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect(),
            sid: get("sid")?,
            jti: get("jti")?,
            exp: get("exp")?.parse().ok()?,
        })
    }
}

#[derive(Clone)]
pub struct Auth {
    store: Arc<dyn Store>,
    tokens: Arc<TokenService>,
    passwords: Arc<PasswordHasher>,
    throttle: LoginThrottleConfig,
}

/// How long logins stay locked after `failures` consecutive failures: nothing below the
/// threshold, then the base lock, doubling with each further failure, capped.
pub fn lock_seconds(throttle: &LoginThrottleConfig, failures: u32) -> Option<u64> {
    let beyond = failures.checked_sub(throttle.max_failures)?;
    let factor = 1u64.checked_shl(beyond.min(32)).unwrap_or(u64::MAX);
    Some(throttle.base_lock_seconds.saturating_mul(factor).min(throttle.max_lock_seconds))
}

impl Auth {
    pub fn new(store: Arc<dyn Store>, tokens: Arc<TokenService>, passwords: Arc<PasswordHasher>) -> Self {
        Auth { store, tokens, passwords, throttle: LoginThrottleConfig::default() }
    }

    pub fn with_login_throttle(mut self, throttle: LoginThrottleConfig) -> Self {
        self.throttle = throttle;
        self
    }

    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    pub fn passwords(&self) -> &PasswordHasher {
        &self.passwords
    }

    fn issue(&self, user_id: &str, username: &str, roles: &[String], sid: &str) -> Result<IssuedPair, AuthError> {
        let now = now_ms() / 1000;
        self.tokens.issue_pair(Subject { user_id, username, roles }, sid, now).map_err(|_| AuthError::Internal)
    }

    /// argon2 is CPU-bound for tens of milliseconds: run it off the async workers.
    async fn hash(&self, password: String) -> Result<String, AuthError> {
        let hasher = self.passwords.clone();
        Ok(tokio::task::spawn_blocking(move || hasher.hash(&password)).await.map_err(|_| AuthError::Internal)??)
    }

    async fn verify(&self, password: String, phc: Option<String>) -> Result<Verification, AuthError> {
        let hasher = self.passwords.clone();
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => hasher.verify(&password, &phc).map_err(AuthError::from),
            None => {
                hasher.verify_dummy(&password);
                Ok(Verification::Invalid)
            }
        })
        .await
        .map_err(|_| AuthError::Internal)?
    }

    pub async fn register(&self, username: &str, password: &str, email: Option<&str>) -> Result<Registered, AuthError> {
        let username = normalize_username(username)?;
        validate_new_password(password, &username)?;
        if let Some(email) = email {
            validate_email(email)?;
        }
        let password_hash = self.hash(password.to_string()).await?;
        let user = UserRecord {
            user_id: Uuid::new_v4().to_string(),
            username,
            password_hash,
            roles: vec![DEFAULT_ROLE.to_string()],
            email: email.map(str::to_string),
            created_at: now_ms() / 1000,
            sessions_valid_after_ms: None,
        };
        match self.store.create_user(&user).await? {
            CreateOutcome::UsernameTaken => Err(AuthError::UsernameTaken),
            CreateOutcome::Created => {
                let tokens = self.issue(&user.user_id, &user.username, &user.roles, &new_session_id())?;
                Ok(Registered {
                    user: PublicUser { id: user.user_id, username: user.username, roles: user.roles },
                    tokens,
                })
            }
        }
    }

    /// Every refusal is the same `InvalidGrant`, and an unknown or malformed username
    /// still costs one argon2 verification, so neither the answer nor its timing tells
    /// which usernames exist. Failures are counted per normalized username, existing or
    /// not; past the threshold every attempt, even with the right password, is refused
    /// with `TooManyAttempts` until the lock ends, without spending a hash.
    pub async fn login(&self, username: &str, password: &str) -> Result<IssuedPair, AuthError> {
        let now = now_ms();
        let name = normalize_username(username).ok();
        let state = match &name {
            Some(name) => self.store.login_state(name, now).await?,
            None => LoginState::default(),
        };
        if let Some(until) = state.failures.locked_until_ms.filter(|&until| until > now) {
            return Err(AuthError::TooManyAttempts { retry_after_seconds: (until - now).div_ceil(1000) });
        }
        let phc = state.user.as_ref().map(|u| u.password_hash.clone());
        match (state.user, self.verify(password.to_string(), phc).await?) {
            (Some(user), Verification::Valid { needs_rehash }) => {
                if state.failures != Default::default() {
                    self.forget_login_failures(&user.username).await;
                }
                if needs_rehash {
                    self.upgrade_hash(&user, password).await;
                }
                self.issue(&user.user_id, &user.username, &user.roles, &new_session_id())
            }
            _ => {
                if let Some(name) = &name {
                    self.count_login_failure(name, now).await?;
                }
                Err(AuthError::InvalidGrant)
            }
        }
    }

    /// Counts a failure and locks logins once there are too many. Not recorded means not
    /// throttled: a store fault here fails the attempt (closed).
    async fn count_login_failure(&self, username: &str, now: u64) -> Result<(), AuthError> {
        let expires_at = now / 1000 + FAILED_LOGIN_MEMORY_SECONDS + self.throttle.max_lock_seconds;
        let failures = self.store.record_login_failure(username, now, expires_at).await?;
        if let Some(lock) = lock_seconds(&self.throttle, failures) {
            tracing::warn!(%username, failures, lock_seconds = lock, "repeated failed logins; locking logins");
            self.store.lock_logins(username, now + lock * 1000, expires_at).await?;
        }
        Ok(())
    }

    /// Best effort: the login succeeded; a leftover count only shortens the next grace.
    async fn forget_login_failures(&self, username: &str) {
        if let Err(e) = self.store.clear_login_failures(username).await {
            tracing::warn!(error = %e, %username, "could not reset failed logins");
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

    /// Rotation: the presented refresh token is spent by one conditional write and a new
    /// pair is minted in the same session. A token that was spent before is treated as
    /// stolen: its whole session is revoked, including the newest pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<IssuedPair, AuthError> {
        let claims = self.tokens.verify_refresh(refresh_token).map_err(|e| {
            tracing::info!(reason = %e, "refresh token refused");
            AuthError::InvalidGrant
        })?;
        let Some(username) = self.store.username_for_id(&claims.sub).await? else {
            return Err(AuthError::InvalidGrant);
        };
        let state = self.store.access_state(&claims.jti, &claims.sid, &username).await?;
        let Some(user) = live_session_user(state, &claims.sub, &claims.sid) else {
            return Err(AuthError::InvalidGrant);
        };
        // The conditional write is the one authority on "spent": no read decides it.
        match self.store.spend_refresh_token(&claims.jti, claims.exp).await? {
            SpendOutcome::AlreadySpent => {
                self.revoke_stolen_session(&claims.sid, &claims.sub).await?;
                Err(AuthError::InvalidGrant)
            }
            // Roles come from the store, not the old token: role changes apply at refresh.
            SpendOutcome::Spent => self.issue(&claims.sub, &username, &user.roles, &claims.sid),
        }
    }

    fn session_expiry(&self) -> u64 {
        // No token of a session can outlive the newest refresh token issued in it.
        let cfg = self.tokens.config();
        now_ms() / 1000 + cfg.refresh_ttl_seconds + cfg.leeway_seconds
    }

    async fn revoke_stolen_session(&self, sid: &str, user_id: &str) -> Result<(), AuthError> {
        tracing::warn!(%user_id, %sid, "spent refresh token presented again; revoking its session");
        self.store.revoke(&[Revocation::Session { sid: sid.to_string(), expires_at: self.session_expiry() }]).await?;
        Ok(())
    }

    /// Revokes the caller's session (its access and refresh tokens stop working at once);
    /// with `all`, every session of the user that started before now.
    pub async fn logout(&self, principal: &Principal, all: bool) -> Result<(), AuthError> {
        if all {
            self.store.revoke_sessions_before(&principal.username, now_ms()).await?;
        }
        self.store
            .revoke(&[
                Revocation::Token { jti: principal.jti.clone(), expires_at: principal.exp },
                Revocation::Session { sid: principal.sid.clone(), expires_at: self.session_expiry() },
            ])
            .await?;
        Ok(())
    }

    /// Verifies an access token and its revocation state (one store round trip), then
    /// checks that it holds every role in `required_roles`.
    pub async fn authorize(&self, access_token: &str, required_roles: &[String]) -> Result<Principal, AuthError> {
        let claims = self.tokens.verify_access(access_token).map_err(|e: TokenError| {
            tracing::info!(reason = %e, "access token refused");
            AuthError::InvalidToken
        })?;
        let state = self.store.access_state(&claims.jti, &claims.sid, &claims.username).await?;
        if state.token_revoked || live_session_user(state, &claims.sub, &claims.sid).is_none() {
            return Err(AuthError::InvalidToken);
        }
        if !required_roles.iter().all(|r| claims.roles.contains(r)) {
            return Err(AuthError::InsufficientScope);
        }
        Ok(Principal::from_claims(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_lock_after_five_failures_doubling_up_to_fifteen_minutes() {
        let t = LoginThrottleConfig::default();
        assert_eq!((t.max_failures, t.base_lock_seconds, t.max_lock_seconds), (5, 30, 900));
        let locks: Vec<Option<u64>> = (0..=12).map(|n| lock_seconds(&t, n)).collect();
        assert_eq!(&locks[..5], &[None; 5]);
        assert_eq!(&locks[5..], &[30, 60, 120, 240, 480, 900, 900, 900].map(Some));
        assert_eq!(lock_seconds(&t, u32::MAX), Some(900), "no overflow");
    }

    #[test]
    fn usernames_are_lowercased_and_must_match_the_pattern() {
        assert_eq!(normalize_username("Alice").unwrap(), "alice");
        assert_eq!(normalize_username("a.b_c-9").unwrap(), "a.b_c-9");
        assert_eq!(normalize_username(&"a".repeat(32)).unwrap(), "a".repeat(32));
        for bad in [
            "ab",
            "",
            &"a".repeat(33),
            ".alice",
            "_alice",
            "-alice",
            "al ice",
            "alice!",
            "al@ce",
            "id#x",
            " alice",
            "alice\n",
        ] {
            assert_eq!(normalize_username(bad).unwrap_err().status_and_code().1, "invalid_username", "{bad:?}");
        }
    }

    #[test]
    fn non_ascii_usernames_are_rejected_not_folded() {
        // Fullwidth "ａｌｉｃｅ", Kelvin sign (lowercases to ASCII 'k'), Cyrillic 'а',
        // dotless/dotted i: all refused rather than mapped onto an ASCII name.
        for bad in ["ａｌｉｃｅ", "\u{212A}evin", "\u{0430}lice", "al\u{0131}ce", "AL\u{0130}CE", "alice\u{200B}"]
        {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_get_a_shape_check() {
        assert!(validate_email("alice@example.com").is_ok());
        for bad in ["alice", "@example.com", "alice@", "alice@example", "a b@example.com", "alice@.com", "a@b@c.com"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_ids_carry_their_start_time() {
        let before = now_ms();
        let sid = new_session_id();
        let after = now_ms();
        let started = session_started_ms(&sid).unwrap();
        assert!(before <= started && started <= after);
        assert!(!session_predates_cutoff(&sid, None));
        assert!(!session_predates_cutoff(&sid, Some(started)));
        assert!(session_predates_cutoff(&sid, Some(started + 1)));
        // A session id we cannot date is treated as old once a cutoff exists.
        assert!(session_predates_cutoff("not-a-uuid", Some(1)));
        assert!(session_predates_cutoff(&Uuid::new_v4().to_string(), Some(1)));
    }

    #[test]
    fn principal_context_round_trips() {
        let p = Principal {
            user_id: "u".into(),
            username: "alice".into(),
            roles: vec!["user".into(), "admin".into()],
            sid: "s".into(),
            jti: "j".into(),
            exp: 42,
        };
        let ctx = p.to_context();
        assert_eq!(ctx["roles"], "user,admin");
        assert_eq!(ctx["exp"], "42");
        assert_eq!(Principal::from_context(&ctx), Some(p));
    }
}
