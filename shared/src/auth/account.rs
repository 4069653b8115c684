//! The caller's own account (CONTRACT.md Part 2, "Account"): change the password, delete
//! the account, list the live sessions and end one. The caller is the authorizer's
//! principal; the two routes that change the account ask for the password again, behind
//! the same failed-login throttle as login.

use std::time::Duration;

use super::events::{self, Event, Kind};
use super::login::Reauth;
use super::session::{session_predates_cutoff, session_started_ms};
use super::{Auth, Principal, new_session_id, now_ms, throttle};
use crate::error::AuthError;
use crate::password::validate_new_password;
use crate::store::{ListedSession, PasswordChange, ThrottleKey, UserRecord};
use crate::tokens::IssuedPair;

/// A live session as the caller sees it (`GET /auth/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionView {
    pub id: String,
    /// Epoch seconds.
    pub created_at: u64,
    /// Epoch seconds: its login or latest refresh.
    pub last_used_at: u64,
    /// The session of the token that asked.
    pub current: bool,
}

impl Auth {
    /// Checks the current password (a wrong one counts in the throttle like a failed
    /// login), then in one write stores the new hash and revokes every session that started
    /// before now, this one included; once that has landed, the cutoff moves to now again,
    /// which also ends a login that checked the old password meanwhile. The caller continues
    /// in a new session with a fresh pair. So no token issued before the change (nor one a
    /// racing refresh or login mints) works afterwards.
    pub async fn change_password(
        &self,
        caller: &Principal,
        current_password: &str,
        new_password: &str,
        client_ip: Option<&str>,
    ) -> Result<IssuedPair, AuthError> {
        validate_new_password(new_password, &caller.username)?;
        let reauth =
            Reauth { expected_user_id: Some(&caller.user_id), failure: Kind::PasswordChangeFailed, device: None };
        let (user, _) = self.check_password(&caller.username, current_password, client_ip, reauth).await?;
        let new_hash = self.hash(new_password.to_string()).await?;
        let cutoff = now_ms();
        let changed =
            self.store.change_password(&user.username, &user.user_id, &user.password_hash, &new_hash, cutoff).await?;
        if changed == PasswordChange::Conflict {
            // Another change (of the password, or a later "log out everywhere") landed
            // between the read and this write: nothing was written; the client may retry.
            tracing::warn!(user_id = %user.user_id, "password change lost a race; nothing written");
            return Err(AuthError::Unavailable { retry_after_seconds: 1 });
        }
        let second_cutoff = self.cut_off_racing_logins(&user.username).await;
        let sid = session_id_from(cutoff.max(second_cutoff)).await;
        // The caller's session proved what it proved (a second factor, say), and the
        // password again: the new session keeps that.
        let pair = self.issue(&user.user_id, &user.username, &user.roles, &sid, caller.amr).await?;
        if let Err(e) = self.open_session_row(&user, &sid, &pair).await {
            // The password is changed already: the pair is still the caller's to have.
            tracing::warn!(error = %e, user_id = %user.user_id, "session after a password change not listed");
        }
        let event = Event {
            user_id: &user.user_id,
            username: &user.username,
            client_ip: client_ip.unwrap_or_default(),
            session_id: &sid,
            reason: "",
        };
        events::record(Kind::PasswordChanged, event);
        self.notify_password_changed(&user).await;
        Ok(pair)
    }

    /// Checks the password, then deletes the user item, its id item and its failed-login
    /// counters in one transaction: from then on no token of the user works (the
    /// authorizer and refresh find no user under its id), and the name is free. The
    /// listed sessions go next; whatever a racing login adds expires through TTL.
    pub async fn delete_account(
        &self,
        caller: &Principal,
        password: &str,
        client_ip: Option<&str>,
    ) -> Result<(), AuthError> {
        let reauth =
            Reauth { expected_user_id: Some(&caller.user_id), failure: Kind::AccountDeletionFailed, device: None };
        let (user, _) = self.check_password(&caller.username, password, client_ip, reauth).await?;
        let counters = [
            ThrottleKey::Name { username: user.username.clone() },
            ThrottleKey::Client { username: user.username.clone(), client: throttle::client_key(client_ip) },
        ];
        let verified_email = user.email.as_deref().filter(|_| user.email_verified);
        if !self
            .store
            .delete_user(&user.username, &user.user_id, &user.password_hash, verified_email, &counters)
            .await?
        {
            // Changed since the password was checked: deleted already by a concurrent
            // request, the password changed, the user disabled, or its address verified or
            // changed meanwhile. Nothing was deleted.
            return Err(AuthError::InvalidGrant);
        }
        if let Err(e) = self.store.forget_sessions(&user.user_id).await {
            tracing::warn!(error = %e, user_id = %user.user_id, "sessions of a deleted user left to expire");
        }
        let event = Event {
            user_id: &user.user_id,
            username: &user.username,
            client_ip: client_ip.unwrap_or_default(),
            session_id: &caller.sid,
            reason: "",
        };
        events::record(Kind::AccountDeleted, event);
        Ok(())
    }

    /// The caller's live sessions, newest first: listed, not revoked, not cut off by a
    /// "log out everywhere" (or password change, or disable), within their idle and
    /// absolute lifetimes.
    pub async fn list_sessions(&self, caller: &Principal) -> Result<Vec<SessionView>, AuthError> {
        let user = self.caller(caller).await?;
        let now = now_ms() / 1000;
        let listed = self.store.list_sessions(&user.user_id).await?;
        Ok(listed
            .into_iter()
            .filter(|l| self.is_live(l, &user, now))
            .map(|l| SessionView {
                current: l.session.session_id == caller.sid,
                id: l.session.session_id,
                created_at: l.session.created_at,
                last_used_at: l.session.last_used_at,
            })
            .collect())
    }

    /// Ends one of the caller's live sessions ("log out that device"): its tokens stop at
    /// once. Anything that is not one of them is `NotFound`, whoever's it is.
    pub async fn end_session(&self, caller: &Principal, session_id: &str) -> Result<(), AuthError> {
        // Session ids are UUIDs: anything else names no session, and never reaches the
        // store (an over-long key would be a store fault, not a 404).
        if uuid::Uuid::try_parse(session_id).is_err() {
            return Err(AuthError::NotFound);
        }
        let user = self.caller(caller).await?;
        let listed = self.store.session(&user.user_id, session_id).await?;
        if !listed.is_some_and(|l| self.is_live(&l, &user, now_ms() / 1000)) {
            return Err(AuthError::NotFound);
        }
        self.store.revoke_session(session_id, self.session_expiry()).await?;
        if let Err(e) = self.store.forget_session(&caller.user_id, session_id).await {
            tracing::warn!(error = %e, session_id, "ended session still listed until it expires");
        }
        let event = Event {
            user_id: &caller.user_id,
            username: &caller.username,
            session_id,
            reason: "ended_from_session_list",
            ..Default::default()
        };
        events::record(Kind::SessionEnded, event);
        Ok(())
    }

    /// A listed session is alive when it is not revoked, no "log out everywhere" (or
    /// password change, or disable) came after it started, and it is within its refresh
    /// and absolute lifetimes.
    fn is_live(&self, listed: &ListedSession, user: &UserRecord, now: u64) -> bool {
        let sid = &listed.session.session_id;
        !listed.revoked
            && listed.session.expires_at > now
            && !session_predates_cutoff(sid, user.sessions_valid_after_ms)
            && self.session_ends_at(sid).is_some_and(|end| end > now)
    }

    /// The caller's user as stored now; gone, replaced or disabled is an invalid token.
    async fn caller(&self, caller: &Principal) -> Result<UserRecord, AuthError> {
        let user = self.store.get_user(&caller.username).await?;
        user.filter(|u| u.user_id == caller.user_id && !u.disabled).ok_or(AuthError::InvalidToken)
    }
}

/// A new session id that starts no earlier than `cutoff_ms`, so the session a password
/// change opens is not itself cut off (the clock may step back between two readings).
async fn session_id_from(cutoff_ms: u64) -> String {
    loop {
        let sid = new_session_id();
        if session_started_ms(&sid).is_some_and(|started| started >= cutoff_ms) {
            return sid;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
