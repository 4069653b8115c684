//! What happens to a session after login: refresh (rotation, reuse detection, absolute
//! lifetime), logout, and the authorizer's check of an access token.

use uuid::Uuid;

use super::events::{self, Event, Kind};
use super::throttle;
use super::{Auth, Principal, now_ms};
use crate::error::AuthError;
use crate::metrics::{self, Metric};
use crate::store::{AccessState, Spend, SpendOutcome, Successor, UserAccess};
use crate::tokens::{Amr, IssuedPair, PairIds, Subject, TokenError};

/// What a spent marker records of the pair a refresh handed out.
fn successor_of(pair: &IssuedPair) -> Successor {
    let ids = pair.ids();
    Successor {
        access_jti: ids.access_jti,
        refresh_jti: ids.refresh_jti,
        iat: ids.iat,
        access_exp: ids.access_exp,
        refresh_exp: ids.refresh_exp,
        roles: pair.access.roles.clone(),
    }
}

fn ids_of(next: &Successor) -> PairIds {
    PairIds {
        access_jti: next.access_jti.clone(),
        refresh_jti: next.refresh_jti.clone(),
        iat: next.iat,
        access_exp: next.access_exp,
        refresh_exp: next.refresh_exp,
    }
}

/// When the session started (epoch ms). Session ids are UUIDv7: their embedded creation
/// time is what "log out everywhere" and the absolute lifetime are measured from.
pub(super) fn session_started_ms(sid: &str) -> Option<u64> {
    let (secs, nanos) = Uuid::parse_str(sid).ok()?.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

/// The user behind a token whose session is still alive: the session is not revoked, the
/// user still exists under the id the token names and is not disabled, and no "log out
/// everywhere" came after the session started. One rule for the authorizer and for refresh.
fn live_session_user(state: AccessState, sub: &str, sid: &str) -> Option<UserAccess> {
    if state.session_revoked {
        return None;
    }
    let user = state.user.filter(|u| u.user_id == sub && !u.disabled)?;
    (!session_predates_cutoff(sid, user.sessions_valid_after_ms)).then_some(user)
}

/// A session is dead once the user logged out everywhere after it started.
pub(super) fn session_predates_cutoff(sid: &str, valid_after_ms: Option<u64>) -> bool {
    match valid_after_ms {
        None => false,
        Some(cutoff) => session_started_ms(sid).is_none_or(|started| started < cutoff),
    }
}

impl Auth {
    /// The end of the session's absolute lifetime (epoch seconds); `None` for a session
    /// id that carries no start time (none of ours), which is treated as ended.
    pub(super) fn session_ends_at(&self, sid: &str) -> Option<u64> {
        Some(session_started_ms(sid)? / 1000 + self.session_max_lifetime_seconds)
    }

    /// Rotation: the presented refresh token is spent by one conditional write that also
    /// records the pair it is exchanged for, and that pair is handed out. A token spent
    /// before is treated as stolen (its whole session is revoked, the newest pair
    /// included) unless it comes back from the client that spent it within the grace
    /// window: a retry after a lost answer, or tabs refreshing together, which get that
    /// same pair again. A session past its absolute lifetime is over, whatever the token's
    /// own `exp`. `client_ip` is API Gateway's `sourceIp`, where known.
    pub async fn refresh(&self, refresh_token: &str, client_ip: Option<&str>) -> Result<IssuedPair, AuthError> {
        let claims = self.tokens.verify_refresh_reloading(refresh_token).await.map_err(|e| {
            tracing::info!(reason = %e, "refresh token refused");
            AuthError::InvalidGrant
        })?;
        if self.session_ends_at(&claims.sid).is_none_or(|end| now_ms() / 1000 >= end) {
            tracing::info!(sid = %claims.sid, "refresh refused: the session reached its absolute lifetime");
            return Err(AuthError::InvalidGrant);
        }
        let Some(username) = self.store.username_for_id(&claims.sub).await? else {
            return Err(AuthError::InvalidGrant);
        };
        let state = self.store.access_state(&claims.sid, &username).await?;
        let Some(user) = live_session_user(state, &claims.sub, &claims.sid) else {
            return Err(AuthError::InvalidGrant);
        };
        // Roles come from the store, not the old token: role changes apply at refresh.
        // The session's way in stays what it was: a refresh proves nothing new.
        let amr = Amr::of(&claims.amr);
        let pair = self.issue(&claims.sub, &username, &user.roles, &claims.sid, amr).await?;
        let client = throttle::client_key(client_ip);
        let spend = Spend {
            spender: Uuid::new_v4().to_string(),
            client: client.clone(),
            at_ms: now_ms(),
            successor: successor_of(&pair),
        };
        // The conditional write is the one authority on "spent": no read decides it. The
        // marker lasts as long as the token could still verify (exp plus the leeway).
        let marker_expiry = claims.exp + self.tokens.config().leeway_seconds;
        match self.store.spend_refresh_token(&claims.jti, marker_expiry, &spend).await? {
            SpendOutcome::Spent => {
                self.touch_session(&claims.sub, &claims.sid, &pair).await;
                metrics::count(Metric::RefreshSucceeded);
                Ok(pair)
            }
            SpendOutcome::AlreadySpent(Some(earlier)) if self.is_retry(&earlier, &client, spend.at_ms) => {
                let next = &earlier.successor;
                let subject = Subject { user_id: &claims.sub, username: &username, roles: &next.roles };
                let again =
                    self.tokens.sign_pair(subject, &claims.sid, amr, &ids_of(next)).map_err(|_| AuthError::Internal)?;
                let event = Event {
                    user_id: &claims.sub,
                    username: &username,
                    client_ip: client_ip.unwrap_or_default(),
                    session_id: &claims.sid,
                    reason: "spent_within_grace_by_same_client",
                };
                events::record(Kind::RefreshRetry, event);
                Ok(again)
            }
            SpendOutcome::AlreadySpent(_) => {
                self.revoke_stolen_session(&claims.sid, &claims.sub, client_ip.unwrap_or_default()).await?;
                Err(AuthError::InvalidGrant)
            }
        }
    }

    /// Whether a spent token presented again by `client` at `now_ms` is the spender's own
    /// retry: within the grace window, from the same known client.
    fn is_retry(&self, earlier: &Spend, client: &str, now_ms: u64) -> bool {
        let grace_ms = self.refresh_reuse_grace_seconds * 1000;
        grace_ms > 0
            && client != throttle::UNKNOWN_CLIENT
            && earlier.client == client
            && now_ms.saturating_sub(earlier.at_ms) <= grace_ms
    }

    /// Best effort, after the spend: the listing's "last used" moves on, and the row lives
    /// as long as the new refresh token. A failure here must not fail a refresh whose token
    /// is already spent (the client's retry would look like theft).
    async fn touch_session(&self, user_id: &str, sid: &str, pair: &IssuedPair) {
        let expires_at = pair.refresh.exp + self.tokens.config().leeway_seconds;
        if let Err(e) = self.store.touch_session(user_id, sid, now_ms() / 1000, expires_at).await {
            tracing::warn!(error = %e, sid, "session's last use not recorded");
        }
    }

    /// How long a session's revocation must be kept: no token of the session can still
    /// verify after the newest refresh token issued now would expire, plus the leeway.
    pub(super) fn session_expiry(&self) -> u64 {
        let cfg = self.tokens.config();
        now_ms() / 1000 + cfg.refresh_ttl_seconds + cfg.leeway_seconds
    }

    async fn revoke_stolen_session(&self, sid: &str, user_id: &str, client_ip: &str) -> Result<(), AuthError> {
        events::record(
            Kind::RefreshReuseDetected,
            Event {
                user_id,
                session_id: sid,
                client_ip,
                reason: "spent_refresh_token_presented",
                ..Default::default()
            },
        );
        self.store.revoke_session(sid, self.session_expiry()).await?;
        Ok(())
    }

    /// After a write that must end every session and that logins may race (a password
    /// change, a disable): the cutoff moves to now once more. A racing login took its
    /// session id before it read the user, and it read the user before that write landed,
    /// so its session started before this instant and is revoked too. Best effort: the
    /// write before it has already revoked every session that started before it was made.
    /// Returns the instant.
    pub(super) async fn cut_off_racing_logins(&self, username: &str) -> u64 {
        let at = now_ms();
        if let Err(e) = self.store.revoke_sessions_before(username, at).await {
            tracing::warn!(error = %e, username, "second sessions cutoff not written");
        }
        at
    }

    /// Revokes the caller's session (its access and refresh tokens stop working at once);
    /// with `all`, every session of the user that started before now, this one included.
    /// Either way one write that is safe to repeat, so a retried logout never half-applies.
    pub async fn logout(&self, principal: &Principal, all: bool) -> Result<(), AuthError> {
        let event = Event {
            user_id: &principal.user_id,
            username: &principal.username,
            session_id: &principal.sid,
            ..Default::default()
        };
        if all {
            self.store.revoke_sessions_before(&principal.username, now_ms()).await?;
            events::record(Kind::AllSessionsEnded, event);
        } else {
            self.store.revoke_session(&principal.sid, self.session_expiry()).await?;
            events::record(Kind::SessionEnded, Event { reason: "logout", ..event });
        }
        Ok(())
    }

    /// Verifies an access token and its revocation state (one store round trip), then
    /// checks that it holds every role in `required_roles`.
    pub async fn authorize(&self, access_token: &str, required_roles: &[String]) -> Result<Principal, AuthError> {
        let claims = self.tokens.verify_access_reloading(access_token).await.map_err(|e: TokenError| {
            tracing::info!(reason = %e, "access token refused");
            AuthError::InvalidToken
        })?;
        let state = self.store.access_state(&claims.sid, &claims.username).await?;
        let Some(user) = live_session_user(state, &claims.sub, &claims.sid) else {
            return Err(AuthError::InvalidToken);
        };
        // Roles take effect at once: a role counts only while the token carries it and the
        // user still holds it (read in the same round trip), so removing one needs no wait
        // for the token to expire. Routes behind the authorizer see the same set.
        let mut principal = Principal::from_claims(claims);
        principal.roles.retain(|r| user.roles.contains(r));
        principal.email = user.email;
        principal.email_verified = user.email_verified;
        if !required_roles.iter().all(|r| principal.roles.contains(r)) {
            return Err(AuthError::InsufficientScope);
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::new_session_id;

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
}
