//! Administration (CONTRACT.md Part 2, "Administration"): read a user, change roles,
//! disable and enable; and (Part 3, "Importing users") create users with the password
//! hashes they bring. The routes require the `admin` role at the authorizer; changes take
//! effect at once because the authorizer reads roles and the disabled flag in its one
//! consistent round trip.

use super::events::{self, Event, Kind};
use super::{Auth, DEFAULT_ROLE, Principal, normalize_email, normalize_username, now_ms};
use crate::error::AuthError;
use crate::password::imported::{self, Scheme};
use crate::store::{ImportOutcome, UserProfile, UserRecord};

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
    /// `argon2id`, or the scheme of an imported hash until the user's next sign-in.
    pub password_scheme: &'static str,
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
            password_scheme: u
                .password_scheme
                .as_deref()
                .and_then(Scheme::from_name)
                .unwrap_or(Scheme::Argon2id)
                .name(),
        }
    }
}

/// At most this many roles a user: each travels in every token, and tokens have a size limit.
pub const MAX_ROLES: usize = 20;

/// `roles` as a user holds them: sorted, each once, at most `MAX_ROLES`.
fn role_set(mut roles: Vec<String>) -> Result<Vec<String>, AuthError> {
    roles.sort();
    roles.dedup();
    if roles.len() > MAX_ROLES {
        return Err(AuthError::InvalidRequest(format!("a user has at most {MAX_ROLES} roles")));
    }
    Ok(roles)
}

/// The role that opens the administration routes.
pub const ADMIN_ROLE: &str = "admin";

/// At most this many users an import request.
pub const MAX_IMPORT_USERS: usize = 100;

/// One user of an import request. No `Debug`: the hash never reaches a log line.
#[derive(Clone, serde::Deserialize)]
pub struct ImportedUser {
    pub username: String,
    pub password_hash: String,
    /// Kept as the user's `sub` (the application's foreign keys survive); else a new UUID.
    #[serde(default)]
    pub id: Option<ImportedId>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// An imported id as the exporting system wrote it: text, or a number (Django's and most
/// SQL tables' integer keys), kept as its decimal text.
#[derive(Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum ImportedId {
    Text(String),
    Number(u64),
}

impl ImportedId {
    fn into_text(self) -> String {
        match self {
            ImportedId::Text(text) => text,
            ImportedId::Number(n) => n.to_string(),
        }
    }
}

/// A user an import did not create, and why (the contract's error codes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub username: String,
    pub error: &'static str,
    pub error_description: String,
}

/// What an import did, user by user.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub imported: Vec<String>,
    pub skipped: Vec<Skipped>,
}

/// An imported id: what other systems use as ids (UUIDs, numbers, `auth0|…`), 1 to 128
/// characters, never `#` (the users table's key separator) nor spaces.
fn valid_imported_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'@' | b'|' | b'+' | b'='))
}

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
            let roles = role_set(roles)?;
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

    /// `POST /admin/users/import`: each user is created with the hash it brings (verified
    /// at its sign-in as its origin library does, then replaced by argon2id), or skipped
    /// with the reason: a name, id or verified address in use, a hash not recognised or
    /// over the cost limits, a malformed field. Idempotent: a user an earlier attempt
    /// imported (same name and id) is reported imported again, nothing is written twice.
    pub async fn admin_import_users(
        &self,
        admin: &Principal,
        users: Vec<ImportedUser>,
    ) -> Result<ImportReport, AuthError> {
        if users.len() > MAX_IMPORT_USERS {
            return Err(AuthError::InvalidRequest(format!("at most {MAX_IMPORT_USERS} users a request")));
        }
        let mut report = ImportReport::default();
        for user in users {
            let shown = user.username.clone();
            match self.import_one(admin, user).await? {
                Ok(username) => report.imported.push(username),
                Err((error, error_description)) => {
                    report.skipped.push(Skipped { username: shown, error, error_description })
                }
            }
        }
        Ok(report)
    }

    /// One user: `Ok(Ok(name))` imported, `Ok(Err((code, why)))` skipped; `Err` a fault
    /// (the request fails: what was imported stays, and a retry reports it imported).
    async fn import_one(
        &self,
        admin: &Principal,
        user: ImportedUser,
    ) -> Result<Result<String, (&'static str, String)>, AuthError> {
        let refused = |e: AuthError| {
            let (_, code) = e.status_and_code();
            (code, e.to_string())
        };
        let username = match normalize_username(&user.username) {
            Ok(name) => name,
            Err(e) => return Ok(Err(refused(e))),
        };
        let scheme = match imported::scheme_of(&user.password_hash) {
            Ok(scheme) => scheme,
            Err(why) => return Ok(Err(("unsupported_hash", why.0))),
        };
        let user_id = match user.id.map(ImportedId::into_text) {
            Some(id) if valid_imported_id(&id) => id,
            Some(_) => {
                return Ok(Err((
                    "invalid_request",
                    "an id is 1 to 128 letters, digits and - _ . : @ | + =".to_string(),
                )));
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let email = match user.email.as_deref().map(normalize_email).transpose() {
            Ok(email) => email,
            Err(e) => return Ok(Err(refused(e))),
        };
        let roles = user.roles.unwrap_or_else(|| vec![DEFAULT_ROLE.to_string()]);
        let roles = match roles.iter().try_for_each(|r| validate_role(r)).and_then(|()| role_set(roles)) {
            Ok(roles) => roles,
            Err(e) => return Ok(Err(refused(e))),
        };
        let record =
            UserRecord::new(user_id, username, user.password_hash, roles, email, user.email_verified, now_ms());
        let outcome = self.store.import_user(&record, scheme.name()).await?;
        let taken = |code: &'static str, what: &str| Ok(Err((code, format!("{what} is in use by another user"))));
        match outcome {
            ImportOutcome::Imported => {
                let reason = format!("by={} scheme={}", admin.username, scheme.name());
                events::record(
                    Kind::UserImported,
                    Event {
                        user_id: &record.user_id,
                        username: &record.username,
                        reason: &reason,
                        ..Default::default()
                    },
                );
                Ok(Ok(record.username))
            }
            ImportOutcome::AlreadyImported => Ok(Ok(record.username)),
            ImportOutcome::UsernameTaken => taken("username_taken", "the username"),
            ImportOutcome::IdTaken => taken("id_taken", "the id"),
            ImportOutcome::EmailTaken => taken("email_taken", "the verified address"),
        }
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
