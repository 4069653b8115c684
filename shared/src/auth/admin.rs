//! Administration (CONTRACT.md Part 2, "Administration"): read a user, change roles,
//! disable and enable. The routes require the `admin` role at the authorizer; changes take
//! effect at once because the authorizer reads roles and the disabled flag in its one
//! consistent round trip.

use super::events::{self, Event, Kind};
use super::{Auth, Principal, normalize_username, now_ms};
use crate::error::AuthError;
use crate::store::UserProfile;

/// A role name: `^[a-z][a-z0-9_-]{0,31}$`.
pub fn validate_role(role: &str) -> Result<(), AuthError> {
    let b = role.as_bytes();
    let ok = (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'));
    if ok { Ok(()) } else { Err(AuthError::InvalidRequest("role names must match ^[a-z][a-z0-9_-]{0,31}$".into())) }
}

/// What an administrator sees of a user: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminView {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: u64,
}

impl From<UserProfile> for AdminView {
    fn from(u: UserProfile) -> Self {
        AdminView {
            id: u.user_id,
            username: u.username,
            roles: u.roles,
            email: u.email,
            email_verified: u.email_verified,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// At most this many roles a user: each travels in every token, and tokens have a size limit.
pub const MAX_ROLES: usize = 20;

/// The role that opens the administration routes.
pub const ADMIN_ROLE: &str = "admin";

/// Role changes race each other; a compare-and-set that lost is tried again this often.
const ROLE_CHANGE_TRIES: usize = 5;

impl Auth {
    /// Read without the password hash: the admin function may not read it (its IAM
    /// policy holds its reads to these attributes).
    async fn existing_user(&self, username: &str) -> Result<UserProfile, AuthError> {
        // A name that cannot exist is simply not found.
        let name = normalize_username(username).map_err(|_| AuthError::NotFound)?;
        self.store.user_profile(&name).await?.ok_or(AuthError::NotFound)
    }

    pub async fn admin_get_user(&self, username: &str) -> Result<AdminView, AuthError> {
        Ok(self.existing_user(username).await?.into())
    }

    /// Adds and removes roles (a role in both lists is refused); the result is the user.
    pub async fn admin_change_roles(
        &self,
        admin: &Principal,
        username: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<AdminView, AuthError> {
        for role in add.iter().chain(remove) {
            validate_role(role)?;
        }
        if add.iter().any(|r| remove.contains(r)) {
            return Err(AuthError::InvalidRequest("a role cannot be both added and removed".into()));
        }
        for _ in 0..ROLE_CHANGE_TRIES {
            let mut user = self.existing_user(username).await?;
            if user.user_id == admin.user_id && remove.iter().any(|r| r == ADMIN_ROLE) {
                // Else the last administrator could leave nobody able to administer.
                return Err(AuthError::Conflict("an administrator cannot remove its own admin role".into()));
            }
            let mut roles: Vec<String> = user.roles.iter().filter(|r| !remove.contains(r)).cloned().collect();
            roles.extend(add.iter().filter(|r| !user.roles.contains(r)).cloned());
            roles.sort();
            roles.dedup();
            if roles.len() > MAX_ROLES {
                return Err(AuthError::InvalidRequest(format!("a user has at most {MAX_ROLES} roles")));
            }
            if self.store.replace_roles(&user.username, &user.roles, &roles).await? {
                let reason = format!("by={} roles={}", admin.username, roles.join(","));
                events::record(
                    Kind::RolesChanged,
                    Event { user_id: &user.user_id, username: &user.username, reason: &reason, ..Default::default() },
                );
                user.roles = roles;
                return Ok(user.into());
            }
        }
        Err(AuthError::Unavailable { retry_after_seconds: 1 })
    }

    /// Disabling revokes every session at once and refuses login (as a wrong password
    /// does) until enabled; enabling lets the user log in again (old sessions stay dead).
    pub async fn admin_set_disabled(&self, admin: &Principal, username: &str, disabled: bool) -> Result<(), AuthError> {
        let user = self.existing_user(username).await?;
        if disabled && user.user_id == admin.user_id {
            return Err(AuthError::Conflict("an administrator cannot disable itself".into()));
        }
        if !self.store.set_disabled(&user.username, disabled, now_ms()).await? {
            return Err(AuthError::NotFound);
        }
        if disabled {
            self.cut_off_racing_logins(&user.username).await;
        }
        let reason = format!("by={}", admin.username);
        let kind = if disabled { Kind::UserDisabled } else { Kind::UserEnabled };
        events::record(
            kind,
            Event { user_id: &user.user_id, username: &user.username, reason: &reason, ..Default::default() },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_follow_the_contract() {
        for ok in ["admin", "a", "support-tier_2", &format!("r{}", "x".repeat(31))] {
            assert!(validate_role(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Admin", "1admin", "-x", "a b", "admin!", &format!("r{}", "x".repeat(32))] {
            assert_eq!(validate_role(bad).unwrap_err().status_and_code(), (400, "invalid_request"), "{bad}");
        }
    }
}
