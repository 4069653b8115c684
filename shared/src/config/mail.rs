//! Mail: where it comes from, where its links lead, the tables it goes through, and
//! whether addresses must be verified before sign-in.

use super::ConfigError;
use super::{
    DEFAULT_PASSWORD_RESET_TTL_SECONDS, ENV_APP_URL, ENV_EMAIL_FROM, ENV_OUTBOX_TABLE, ENV_PASSWORD_RESET_TTL,
    ENV_REQUIRE_VERIFIED_EMAIL, ENV_TOKENS_TABLE, Reader, err, web_url,
};

/// Where mail comes from and where its links lead, and the tables it goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The sender: an SES identity (`EmailFrom`).
    pub from: String,
    /// The web application's base URL the links open (`AppUrl`): never the request's Host.
    pub app_url: String,
    pub tokens_table: String,
    pub outbox_table: String,
    /// How long a password reset link lives (5 minutes to a day).
    pub reset_ttl_seconds: u64,
}

impl MailConfig {
    pub(crate) fn from_reader(r: &Reader<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(from) = r.optional(ENV_EMAIL_FROM) else { return Ok(None) };
        if from.chars().any(|c| c.is_whitespace() || c.is_control()) || from.matches('@').count() != 1 {
            return Err(err(ENV_EMAIL_FROM, "must be one address (an SES identity)"));
        }
        let app_url = r.required(ENV_APP_URL)?;
        if !web_url(&app_url) {
            return Err(err(ENV_APP_URL, "must be an https:// URL (http:// on loopback only)"));
        }
        Ok(Some(MailConfig {
            from,
            app_url,
            tokens_table: r.required(ENV_TOKENS_TABLE)?,
            outbox_table: r.required(ENV_OUTBOX_TABLE)?,
            reset_ttl_seconds: r.number(ENV_PASSWORD_RESET_TTL, DEFAULT_PASSWORD_RESET_TTL_SECONDS, 300, 86_400)?,
        }))
    }
}

/// `REQUIRE_VERIFIED_EMAIL`: `true` or `false` (the default); `true` needs a sender, or
/// nobody could ever sign in.
pub(super) fn require_verified_email(r: &Reader<'_>) -> Result<bool, ConfigError> {
    match r.optional(ENV_REQUIRE_VERIFIED_EMAIL).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") if r.optional(ENV_EMAIL_FROM).is_some() => Ok(true),
        Some("true") => Err(err(ENV_REQUIRE_VERIFIED_EMAIL, "needs EMAIL_FROM: the verification mail is the way in")),
        Some(other) => Err(err(ENV_REQUIRE_VERIFIED_EMAIL, format!("must be true or false, got {other:?}"))),
    }
}
