//! The use cases: register (here), login (`login.rs`, with the throttle's rules in
//! `throttle.rs`), refresh, logout, authorize (`session.rs`), the caller's account and
//! sessions (`account.rs`) and administration (`admin.rs`). Each is a function over
//! the store trait, the token service and the password hasher; none knows about HTTP.

pub mod account;
pub mod admin;
pub mod email;
pub mod events;
pub mod legacy;
mod login;
pub mod mfa;
pub use login::SignedIn;
pub mod reset;
mod session;
pub mod throttle;

pub use throttle::{FAILED_LOGIN_MEMORY_SECONDS, lock_seconds};

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::config::{
    DEFAULT_PASSWORD_RESET_TTL_SECONDS, DEFAULT_REFRESH_REUSE_GRACE_SECONDS, DEFAULT_SESSION_MAX_LIFETIME_SECONDS,
    LoginThrottleConfig, MailConfig,
};
use crate::error::AuthError;
use crate::password::{PasswordHasher, Verification, validate_new_password};
use crate::store::{CreateOutcome, SessionRecord, Store, StoreError, TokenPurpose, UserRecord, UserRef};
use crate::tokens::{AccessClaims, Amr, IssuedPair, Subject, TokenService};

pub const DEFAULT_ROLE: &str = "user";
pub const MAX_EMAIL_CHARS: usize = 254;

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

/// An email address as stored and compared: trimmed and lower-cased, then checked for
/// shape only (one `@`, a dotted domain, no spaces or control characters, at most 254
/// characters); whether it receives mail is for a verification mail to prove.
pub fn normalize_email(raw: &str) -> Result<String, AuthError> {
    let bad = || AuthError::InvalidEmail("email must be one address: name@domain.tld, at most 254 characters".into());
    let email = raw.trim().to_lowercase();
    if email.chars().count() > MAX_EMAIL_CHARS || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => Err(bad()),
    }
}

pub use crate::clock::now_ms;

/// Session ids are UUIDv7: their embedded creation time is what "log out everywhere"
/// compares against, so a session that refreshes after that instant still dies.
fn new_session_id() -> String {
    Uuid::now_v7().to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublicUser {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

fn public_user(user: UserRecord) -> PublicUser {
    PublicUser {
        id: user.user_id,
        username: user.username,
        roles: user.roles,
        email: user.email,
        email_verified: user.email_verified,
    }
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
    /// The user's address and whether it is verified, as the authorizer read them.
    pub email: Option<String>,
    pub email_verified: bool,
    /// How the session's user proved who they are (RFC 8176).
    pub amr: Amr,
}

impl Principal {
    pub fn from_claims(c: AccessClaims) -> Self {
        Principal {
            amr: Amr::of(&c.amr),
            user_id: c.sub,
            username: c.username,
            roles: c.roles,
            sid: c.sid,
            jti: c.jti,
            exp: c.exp,
            email: None,
            email_verified: false,
        }
    }

    /// The authorizer context of the contract: `sub`, `username`, `roles` (comma-joined),
    /// `sid`, `jti`, `exp`; and `email` (empty for none), `email_verified` and `amr`
    /// (comma-joined).
    pub fn to_context(&self) -> HashMap<String, String> {
        HashMap::from([
            ("sub".into(), self.user_id.clone()),
            ("username".into(), self.username.clone()),
            ("roles".into(), self.roles.join(",")),
            ("sid".into(), self.sid.clone()),
            ("jti".into(), self.jti.clone()),
            ("exp".into(), self.exp.to_string()),
            ("email".into(), self.email.clone().unwrap_or_default()),
            ("email_verified".into(), self.email_verified.to_string()),
            ("amr".into(), self.amr.values().join(",")),
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
            email: get("email").filter(|e| !e.is_empty()),
            email_verified: get("email_verified").as_deref() == Some("true"),
            amr: Amr::of(&get("amr").unwrap_or_default().split(',').map(str::to_string).collect::<Vec<_>>()),
        })
    }
}

#[derive(Clone)]
pub struct Auth {
    store: Arc<dyn Store>,
    tokens: Arc<TokenService>,
    passwords: Arc<PasswordHasher>,
    throttle: LoginThrottleConfig,
    session_max_lifetime_seconds: u64,
    refresh_reuse_grace_seconds: u64,
    /// Mail is configured (a sender, the tables): the routes that send mail work.
    mail_enabled: bool,
    /// How long a password reset link lives.
    reset_ttl_seconds: u64,
    /// Addresses are verified before sign-in (`RequireVerifiedEmail`).
    require_verified_email: bool,
    /// The directory a login of a name unknown here migrates the user from.
    legacy: Option<Arc<dyn legacy::LegacyDirectory>>,
    /// The key that opens factor secrets (the functions that verify codes).
    factor_key: Option<Arc<crate::mfa::sealed::FactorKey>>,
}

impl Auth {
    pub fn new(store: Arc<dyn Store>, tokens: Arc<TokenService>, passwords: Arc<PasswordHasher>) -> Self {
        Auth {
            store,
            tokens,
            passwords,
            throttle: LoginThrottleConfig::default(),
            session_max_lifetime_seconds: DEFAULT_SESSION_MAX_LIFETIME_SECONDS,
            refresh_reuse_grace_seconds: DEFAULT_REFRESH_REUSE_GRACE_SECONDS,
            mail_enabled: false,
            reset_ttl_seconds: DEFAULT_PASSWORD_RESET_TTL_SECONDS,
            require_verified_email: false,
            legacy: None,
            factor_key: None,
        }
    }

    /// A login of a name unknown here asks `directory`, and migrates the user on success.
    pub fn with_legacy_directory(mut self, directory: Option<Arc<dyn legacy::LegacyDirectory>>) -> Self {
        self.legacy = directory;
        self
    }

    pub fn with_login_throttle(mut self, throttle: LoginThrottleConfig) -> Self {
        self.throttle = throttle;
        self
    }

    /// Sessions end this long after they started, however often they are refreshed.
    pub fn with_session_max_lifetime(mut self, seconds: u64) -> Self {
        self.session_max_lifetime_seconds = seconds;
        self
    }

    /// A spent refresh token presented again by the client that spent it, this soon after,
    /// gets the same successor pair instead of ending the session (0: never).
    pub fn with_refresh_reuse_grace(mut self, seconds: u64) -> Self {
        self.refresh_reuse_grace_seconds = seconds;
        self
    }

    /// Mail is configured: registration with an address queues its verification mail, and
    /// the email routes work (else they answer 501 `not_configured`).
    pub fn with_mail(mut self, mail: Option<&MailConfig>) -> Self {
        self.mail_enabled = mail.is_some();
        if let Some(mail) = mail {
            self.reset_ttl_seconds = mail.reset_ttl_seconds;
        }
        self
    }

    /// Registration asks for an address and opens no session; login refuses the right
    /// password of an unverified account (403 `email_not_verified`).
    pub fn with_required_verification(mut self, required: bool) -> Self {
        self.require_verified_email = required;
        self
    }

    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    pub fn passwords(&self) -> &PasswordHasher {
        &self.passwords
    }

    /// A pair in session `sid`; neither token outlives the session's absolute lifetime.
    async fn issue(
        &self,
        user_id: &str,
        username: &str,
        roles: &[String],
        sid: &str,
        amr: Amr,
    ) -> Result<IssuedPair, AuthError> {
        // A rotation's new key signs once this instance has read it (see KEY_MAX_AGE).
        self.tokens.keep_fresh().await;
        let now = now_ms() / 1000;
        let session_end = self.session_ends_at(sid).ok_or(AuthError::Internal)?;
        let subject = Subject { user_id, username, roles };
        self.tokens.issue_pair_until(subject, sid, amr, now, session_end).map_err(|e| match e {
            // The session's lifetime ran out between the check and now (a refresh at the edge).
            crate::tokens::TokenError::Expired => AuthError::InvalidGrant,
            _ => AuthError::Internal,
        })
    }

    /// Starts session `sid` for `user`: its first pair, and its row in the sessions table
    /// (so the user can list and end it). The row is written before the pair is handed out:
    /// a session the user could not see is not handed out.
    async fn open_session(&self, user: &UserRecord, sid: &str, amr: Amr) -> Result<IssuedPair, AuthError> {
        let pair = self.issue(&user.user_id, &user.username, &user.roles, sid, amr).await?;
        self.open_session_row(user, sid, &pair).await?;
        Ok(pair)
    }

    /// The sessions-table row of a session whose first pair is `pair`; it lives as long as
    /// the pair's refresh token could be used. A `StoreError`, not yet an `AuthError`: the
    /// callers that go on without the row must not count a failed request (`StoreFaults`).
    async fn open_session_row(&self, user: &UserRecord, sid: &str, pair: &IssuedPair) -> Result<(), StoreError> {
        let now = now_ms() / 1000;
        let row = SessionRecord {
            user_id: user.user_id.clone(),
            session_id: sid.to_string(),
            created_at: now,
            last_used_at: now,
            expires_at: pair.refresh.exp + self.tokens.config().leeway_seconds,
        };
        self.store.record_session(&row).await
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

    /// Creates the user and signs it in (its first session). Where addresses must be
    /// verified first (`with_required_verification`), the API calls
    /// [`Auth::register_for_verification`] instead.
    pub async fn register(&self, username: &str, password: &str, email: Option<&str>) -> Result<Registered, AuthError> {
        let user = self.create_user(username, password, email).await?;
        // The user exists now: a lost session row must not turn a retried sign-up into
        // `username_taken`, so here the row is best effort (the session works, and "log out
        // everywhere" or a password change still ends it).
        let sid = new_session_id();
        let tokens = self.issue(&user.user_id, &user.username, &user.roles, &sid, Amr::Password).await?;
        if let Err(e) = self.open_session_row(&user, &sid, &tokens).await {
            tracing::warn!(error = %e, user_id = %user.user_id, "session of a new user not listed");
        }
        Ok(Registered { user: public_user(user), tokens })
    }

    /// Creates the user without signing it in: an address is required, and its
    /// verification mail is the way in (`RequireVerifiedEmail`).
    pub async fn register_for_verification(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
    ) -> Result<PublicUser, AuthError> {
        if email.is_none() {
            return Err(AuthError::InvalidEmail("an email address is required: it is verified before sign-in".into()));
        }
        Ok(public_user(self.create_user(username, password, email).await?))
    }

    /// Addresses must be verified before sign-in.
    pub fn requires_verified_email(&self) -> bool {
        self.require_verified_email
    }

    async fn create_user(&self, username: &str, password: &str, email: Option<&str>) -> Result<UserRecord, AuthError> {
        let username = normalize_username(username)?;
        validate_new_password(password, &username)?;
        let email = email.map(normalize_email).transpose()?;
        let password_hash = self.hash(password.to_string()).await?;
        let roles = vec![DEFAULT_ROLE.to_string()];
        let user = UserRecord::new(Uuid::new_v4().to_string(), username, password_hash, roles, email, false, now_ms());
        // With mail, the address's verification mail is queued in the same write.
        let mailed = match (&user.email, self.mail_enabled) {
            (Some(email), true) => Some(self.verification(&UserRef::from(&user), email, TokenPurpose::VerifyEmail)?),
            _ => None,
        };
        match self.store.create_user_mailed(&user, mailed.as_ref()).await? {
            CreateOutcome::UsernameTaken => Err(AuthError::UsernameTaken),
            CreateOutcome::EmailTaken => Err(AuthError::EmailTaken),
            CreateOutcome::Created => {
                if mailed.is_some() {
                    crate::metrics::count(crate::metrics::Metric::MailQueued);
                }
                Ok(user)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn emails_are_trimmed_lower_cased_and_shape_checked() {
        assert_eq!(normalize_email("alice@example.com").unwrap(), "alice@example.com");
        assert_eq!(normalize_email("  Alice@Example.COM \n").unwrap(), "alice@example.com");
        let longest = format!("{}@example.com", "a".repeat(242));
        assert_eq!(normalize_email(&longest).unwrap().len(), 254);
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@.com",
            "alice@example.com.",
            "alice@example..com",
            "a@b@c.com",
            "alice@exa\u{7}mple.com",
            &format!("{}@example.com", "a".repeat(243)),
        ] {
            assert_eq!(normalize_email(bad).unwrap_err().status_and_code(), (400, "invalid_email"), "{bad}");
        }
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
            email: Some("alice@example.com".into()),
            email_verified: true,
            amr: Amr::MultiFactor,
        };
        let ctx = p.to_context();
        assert_eq!(ctx["roles"], "user,admin");
        assert_eq!(ctx["exp"], "42");
        assert_eq!(ctx["amr"], "pwd,otp,mfa");
        assert_eq!(Principal::from_context(&ctx), Some(p));
    }
}
