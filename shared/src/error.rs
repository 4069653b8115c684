//! The one domain error enum, and the one place it maps to HTTP status + `error` code.

use crate::store::StoreError;

/// Everything a use case can answer besides success. Descriptions are written for the
/// client: they never contain a secret, a hash, a token or an internal detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    InvalidPassword(String),
    #[error("username is already taken")]
    UsernameTaken,
    #[error("{0}")]
    InvalidEmail(String),
    /// A verified address another account holds.
    #[error("another account has verified this email address")]
    EmailTaken,
    /// An emailed one-time token that is unknown, expired, used or of another purpose:
    /// one answer for all, 400 (it is a bad request body, not a failed sign-in).
    #[error("the token is invalid, expired or already used")]
    OneTimeTokenRefused,
    /// The right password of an account whose address must be verified first.
    #[error("verify your email address first: open the link in the mail we sent")]
    EmailNotVerified,
    /// A route that must send mail, where no sender is configured.
    #[error("email is not configured for this service")]
    NotConfigured,
    /// A multi-factor route where no factor key is configured.
    #[error("multi-factor authentication is not configured for this service")]
    MfaNotConfigured,
    /// The right password of a user with a second factor: the second step's token, and no
    /// tokens yet.
    #[error("enter the code from your authenticator app (or a recovery code)")]
    MfaRequired { mfa_token: MfaToken },
    /// A set-up while a factor is on: turn it off first.
    #[error("multi-factor authentication is already on")]
    MfaAlreadyEnabled,
    /// A second-factor code that is wrong, used already or out of its time, on a signed-in
    /// route (400: a bad request body, not a failed sign-in).
    #[error("the code is wrong or was used already")]
    WrongCode,
    /// Login or refresh refused. One message for every cause, so a caller cannot tell an
    /// unknown user from a wrong password, or a spent refresh token from a forged one.
    #[error("the credentials are invalid")]
    InvalidGrant,
    #[error("too many failed attempts; try again later")]
    TooManyAttempts { retry_after_seconds: u64 },
    #[error("the access token is missing, invalid, expired or revoked")]
    InvalidToken,
    #[error("the access token does not grant the roles this route requires")]
    InsufficientScope,
    /// A cookie-authenticated request without `X-Requested-With`, or from an origin not
    /// allowed (CONTRACT.md, "Cookie mode"): refused before anything changes.
    #[error("cross-site request refused (csrf): send X-Requested-With from an allowed origin")]
    CsrfRejected,
    /// A sign-in route called by a page of an origin that is not allowed (CONTRACT.md,
    /// "Failed-login throttle"): a web page cannot make its visitors' browsers post
    /// credentials for it. Refused before anything else; clients that send no `Origin` are
    /// not concerned.
    #[error("cross-site request refused (csrf): this origin is not one of the allowed origins")]
    OriginRefused,
    /// A change the service refuses in the state it would leave (an administrator locking
    /// itself out of administration).
    #[error("{0}")]
    Conflict(String),
    /// No such thing for this caller (an unknown user, for an administrator).
    #[error("not found")]
    NotFound,
    /// The path exists, the method does not: `allow` lists the path's methods (the `Allow`
    /// header, RFC 9110 §15.5.6).
    #[error("this route does not take that method; it takes {allow}")]
    MethodNotAllowed { allow: String },
    /// The store is down, slow or throttling: fail closed and ask the client to retry.
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable { retry_after_seconds: u64 },
    /// A fault that is not the client's and not transient. Details go to the log only.
    #[error("internal error")]
    Internal,
    /// The store failed: unavailable (503, like `Unavailable`) or a deployment fault (500,
    /// like `Internal`). The detail is kept for the log line written where the response
    /// leaves ([`AuthError::report`]); the client sees only the generic description.
    #[error("{}", store_description(.0))]
    Store(StoreError),
}

/// The second step's token inside an error: in the answer's body, never in a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaToken(pub String);

impl std::fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaToken(<redacted>)")
    }
}

fn store_description(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(_) => {
            AuthError::Unavailable { retry_after_seconds: STORE_RETRY_AFTER_SECONDS }.to_string()
        }
        StoreError::Internal(_) => AuthError::Internal.to_string(),
    }
}

/// What a client is told to wait after a store outage: the SDK already retried.
const STORE_RETRY_AFTER_SECONDS: u64 = 1;

impl AuthError {
    /// HTTP status and the contract's `error` code.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            AuthError::InvalidRequest(_) => (400, "invalid_request"),
            AuthError::PayloadTooLarge(_) => (413, "invalid_request"),
            AuthError::InvalidUsername(_) => (400, "invalid_username"),
            AuthError::InvalidPassword(_) => (400, "invalid_password"),
            AuthError::UsernameTaken => (409, "username_taken"),
            AuthError::InvalidEmail(_) => (400, "invalid_email"),
            AuthError::EmailTaken => (409, "email_taken"),
            AuthError::OneTimeTokenRefused => (400, "invalid_grant"),
            AuthError::NotConfigured | AuthError::MfaNotConfigured => (501, "not_configured"),
            AuthError::MfaRequired { .. } => (403, "mfa_required"),
            AuthError::MfaAlreadyEnabled => (409, "mfa_already_enabled"),
            AuthError::WrongCode => (400, "invalid_grant"),
            AuthError::EmailNotVerified => (403, "email_not_verified"),
            AuthError::InvalidGrant => (401, "invalid_grant"),
            AuthError::TooManyAttempts { .. } => (429, "too_many_attempts"),
            AuthError::InvalidToken => (401, "invalid_token"),
            AuthError::InsufficientScope => (403, "insufficient_scope"),
            AuthError::CsrfRejected | AuthError::OriginRefused => (403, "invalid_request"),
            AuthError::Conflict(_) => (409, "invalid_request"),
            AuthError::NotFound => (404, "not_found"),
            AuthError::MethodNotAllowed { .. } => (405, "method_not_allowed"),
            AuthError::Unavailable { .. } => (503, "temporarily_unavailable"),
            AuthError::Internal | AuthError::Store(StoreError::Internal(_)) => (500, "server_error"),
            AuthError::Store(StoreError::Unavailable(_)) => (503, "temporarily_unavailable"),
        }
    }

    /// Seconds for a `Retry-After` header, where the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AuthError::TooManyAttempts { retry_after_seconds } | AuthError::Unavailable { retry_after_seconds } => {
                Some(*retry_after_seconds)
            }
            AuthError::Store(StoreError::Unavailable(_)) => Some(STORE_RETRY_AFTER_SECONDS),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` challenge RFC 6750 §3 asks for, where one applies.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            AuthError::InvalidToken => Some(r#"Bearer error="invalid_token""#),
            AuthError::InsufficientScope => Some(r#"Bearer error="insufficient_scope""#),
            _ => None,
        }
    }

    /// The contract's error body: `{"error", "error_description"}` (and `mfa_token` for
    /// `mfa_required`).
    pub fn body(&self) -> serde_json::Value {
        let (_, code) = self.status_and_code();
        let mut body = serde_json::json!({ "error": code, "error_description": self.to_string() });
        if let AuthError::MfaRequired { mfa_token } = self {
            body["mfa_token"] = serde_json::Value::String(mfa_token.0.clone());
        }
        body
    }
}

/// A plain conversion: `?` on a store call has no side effect. The fault is logged and
/// counted once, where the response (or the authorizer's decision) leaves: [`AuthError::report`].
impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e)
    }
}

impl AuthError {
    /// Logs a store fault with its detail (never sent to the client) and counts it in
    /// `StoreFaults`: once per failed request. Nothing for other errors.
    pub fn report(&self) {
        match self {
            AuthError::Store(StoreError::Unavailable(detail)) => {
                crate::metrics::count(crate::metrics::Metric::StoreFaults);
                tracing::warn!(%detail, "store unavailable");
            }
            AuthError::Store(StoreError::Internal(detail)) => {
                crate::metrics::count(crate::metrics::Metric::StoreFaults);
                tracing::error!(%detail, "store fault");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_the_contract() {
        let cases = [
            (AuthError::InvalidRequest("x".into()), 400, "invalid_request"),
            (AuthError::PayloadTooLarge(8192), 413, "invalid_request"),
            (AuthError::InvalidUsername("x".into()), 400, "invalid_username"),
            (AuthError::InvalidPassword("x".into()), 400, "invalid_password"),
            (AuthError::UsernameTaken, 409, "username_taken"),
            (AuthError::InvalidEmail("x".into()), 400, "invalid_email"),
            (AuthError::EmailTaken, 409, "email_taken"),
            (AuthError::OneTimeTokenRefused, 400, "invalid_grant"),
            (AuthError::NotConfigured, 501, "not_configured"),
            (AuthError::MfaNotConfigured, 501, "not_configured"),
            (AuthError::MfaAlreadyEnabled, 409, "mfa_already_enabled"),
            (AuthError::WrongCode, 400, "invalid_grant"),
            (AuthError::EmailNotVerified, 403, "email_not_verified"),
            (AuthError::InvalidGrant, 401, "invalid_grant"),
            (AuthError::TooManyAttempts { retry_after_seconds: 60 }, 429, "too_many_attempts"),
            (AuthError::InvalidToken, 401, "invalid_token"),
            (AuthError::InsufficientScope, 403, "insufficient_scope"),
            (AuthError::CsrfRejected, 403, "invalid_request"),
            (AuthError::OriginRefused, 403, "invalid_request"),
            (AuthError::Conflict("x".into()), 409, "invalid_request"),
            (AuthError::NotFound, 404, "not_found"),
            (AuthError::MethodNotAllowed { allow: "GET, OPTIONS".into() }, 405, "method_not_allowed"),
            (AuthError::Unavailable { retry_after_seconds: 1 }, 503, "temporarily_unavailable"),
            (AuthError::Internal, 500, "server_error"),
            (AuthError::Store(StoreError::Unavailable("timeout to 10.0.0.1".into())), 503, "temporarily_unavailable"),
            (AuthError::Store(StoreError::Internal("no table users".into())), 500, "server_error"),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status_and_code(), (status, code), "{e:?}");
            let body = e.body();
            assert_eq!(body["error"], code);
            assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
            assert_eq!(body.as_object().unwrap().len(), 2, "only the two contract fields");
            let text = body.to_string();
            assert!(!text.contains("10.0.0.1") && !text.contains("table"), "a store detail leaked: {text}");
        }
    }

    #[test]
    fn mfa_required_carries_its_token_in_the_body_and_nowhere_else() {
        let e = AuthError::MfaRequired { mfa_token: MfaToken("the-token".into()) };
        assert_eq!(e.status_and_code(), (403, "mfa_required"));
        let body = e.body();
        assert_eq!((body["error"].as_str(), body["mfa_token"].as_str()), (Some("mfa_required"), Some("the-token")));
        assert_eq!(body.as_object().unwrap().len(), 3);
        assert!(!format!("{e:?} {e}").contains("the-token"), "a log line never shows it");
    }

    #[test]
    fn retry_after_and_challenge_only_where_they_apply() {
        assert_eq!(AuthError::TooManyAttempts { retry_after_seconds: 30 }.retry_after(), Some(30));
        assert_eq!(AuthError::Unavailable { retry_after_seconds: 1 }.retry_after(), Some(1));
        assert_eq!(AuthError::Store(StoreError::Unavailable("x".into())).retry_after(), Some(1));
        assert_eq!(AuthError::Store(StoreError::Internal("x".into())).retry_after(), None);
        assert_eq!(AuthError::InvalidGrant.retry_after(), None);
        assert_eq!(AuthError::InvalidToken.www_authenticate(), Some(r#"Bearer error="invalid_token""#));
        assert_eq!(AuthError::InvalidGrant.www_authenticate(), None);
    }
}
