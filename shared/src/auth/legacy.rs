//! Lazy migration from another user directory (CONTRACT.md Part 3, "Importing users";
//! Cognito cannot export password hashes): a login for a name unknown here asks the old
//! directory whether the password is right; if it is, the user is created here with an
//! argon2id hash of the password just proven, keeping the old directory's id, and signs in
//! as usual. From then on the old directory is never asked about that user again.

use async_trait::async_trait;

use super::events::{self, Event, Kind};
use super::{Auth, DEFAULT_ROLE, normalize_email, now_ms};
use crate::error::AuthError;
use crate::store::{ImportOutcome, UserRecord};

/// A user the old directory signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyUser {
    /// Its id there, kept as `sub` here.
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

#[async_trait]
pub trait LegacyDirectory: Send + Sync {
    /// The user, if `password` is its password there; `None` for a wrong password, an
    /// unknown name, or a user that cannot sign in there as is (a temporary password, a
    /// challenge). A fault of the directory is `Unavailable` (the login fails closed).
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<LegacyUser>, AuthError>;
}

impl Auth {
    /// The user `name` created here from the old directory, if the password is right there.
    pub(super) async fn migrate_from_legacy(
        &self,
        directory: &dyn LegacyDirectory,
        name: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, AuthError> {
        let Some(found) = directory.authenticate(name, password).await? else { return Ok(None) };
        let password_hash = self.hash(password.to_string()).await?;
        // An address the old directory holds but this service cannot read is left out.
        let email = found.email.as_deref().and_then(|e| normalize_email(e).ok());
        let roles = vec![DEFAULT_ROLE.to_string()];
        let mut user =
            UserRecord::new(found.sub, name.to_string(), password_hash, roles, email, found.email_verified, now_ms());
        let mut outcome = self.store.import_user(&user, "argon2id").await?;
        if outcome == ImportOutcome::EmailTaken {
            // Another account here verified that address first: it comes unverified.
            (user.email_verified, user.email_verified_at_ms) = (false, None);
            outcome = self.store.import_user(&user, "argon2id").await?;
        }
        match outcome {
            ImportOutcome::Imported => {
                let event = Event {
                    user_id: &user.user_id,
                    username: &user.username,
                    reason: "by=legacy_directory scheme=argon2id",
                    ..Default::default()
                };
                events::record(Kind::UserImported, event);
                Ok(Some(user))
            }
            // A concurrent login of the same user migrated it first: the same user.
            ImportOutcome::AlreadyImported => {
                Ok(self.store.get_user(name).await?.filter(|u| u.user_id == user.user_id))
            }
            ImportOutcome::UsernameTaken | ImportOutcome::IdTaken | ImportOutcome::EmailTaken => {
                // Someone registered the name here meanwhile, or the old id is another
                // user's here: this login is refused like a wrong password.
                tracing::warn!(?outcome, "a user of the old directory could not be created here");
                Ok(None)
            }
        }
    }
}
