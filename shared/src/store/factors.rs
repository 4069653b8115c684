//! Second factors: one item per user that has (or is enrolling) a TOTP factor. The
//! secret is stored sealed (`crate::mfa::sealed`), the recovery codes only hashed; the
//! last accepted step makes each code work once, by a compare-and-set.

use async_trait::async_trait;

use super::StoreError;

/// A user's factor as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub user_id: String,
    /// The confirmed secret, sealed: multi-factor is on.
    pub secret: Option<String>,
    /// A secret being enrolled (set up, not yet confirmed by a code), sealed.
    pub pending: Option<String>,
    /// The last TOTP step accepted: a code of it or an earlier step is refused.
    pub last_step: Option<u64>,
    /// SHA-256 hashes of the unused recovery codes.
    pub recovery_codes: Vec<String>,
}

impl Factor {
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }
}

impl std::fmt::Debug for Factor {
    // Sealed or not, secrets and code hashes stay out of log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("user_id", &self.user_id)
            .field("enabled", &self.enabled())
            .field("pending", &self.pending.is_some())
            .field("last_step", &self.last_step)
            .field("recovery_codes", &self.recovery_codes.len())
            .finish()
    }
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    /// The user's factor, strongly consistent.
    async fn factor(&self, user_id: &str) -> Result<Option<Factor>, StoreError>;

    /// Starts (or restarts) an enrolment with `pending` (sealed). `false`: a factor is on.
    async fn begin_enrolment(&self, user_id: &str, pending: &str) -> Result<bool, StoreError>;

    /// Turns the factor on: the pending secret (still `pending`, as read) becomes the
    /// secret, `step` the last accepted step, `recovery_codes` the codes. `false`: the
    /// enrolment changed meanwhile, or a factor is on already.
    async fn confirm_enrolment(
        &self,
        user_id: &str,
        pending: &str,
        step: u64,
        recovery_codes: &[String],
    ) -> Result<bool, StoreError>;

    /// Accepts the code of `step` once: `true` only if the factor is still the secret
    /// `secret` (as read) and no step at or after `step` was accepted before. Of two uses
    /// of one code at once, one gets `true`.
    async fn accept_step(&self, user_id: &str, secret: &str, step: u64) -> Result<bool, StoreError>;

    /// Uses up one recovery code (its hash): `true` only if it was there.
    async fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> Result<bool, StoreError>;

    /// Replaces every recovery code, with a code of `step` accepted in the same write (as
    /// `accept_step`). `false`: the step was used, or the factor changed.
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        secret: &str,
        step: u64,
        recovery_codes: &[String],
    ) -> Result<bool, StoreError>;

    /// Removes the factor: with `secret`, only if it is still that one (`false` if not);
    /// without, whatever it is (an administrator's reset; `false`: there was none).
    async fn remove_factor(&self, user_id: &str, secret: Option<&str>) -> Result<bool, StoreError>;
}
