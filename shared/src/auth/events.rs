//! Security events: one structured log line per thing a security team watches for, all
//! with the same schema, so one CloudWatch Logs Insights query finds each
//! (docs/security.md, "Security events"). Never a password, hash or token: ids, the username and the
//! client's address only.
//!
//! Every line has the message `security event` (and the tracing target `security`, for
//! `RUST_LOG=security=…` filters) and the fields `event`, `outcome` (`success` or
//! `failure`), `user_id`, `username`, `client_ip`, `session_id` and `reason`: all always
//! present, empty where they do not apply. With `AWS_LAMBDA_LOG_FORMAT=JSON` (the
//! template's `LogFormat: JSON`) each is one JSON line: `{"level", "fields": {...}}`.

/// The events, by the stable name each is logged under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A login succeeded and started a session.
    LoginSucceeded,
    /// Wrong password, unknown or malformed username (not told apart, as in the answer).
    LoginFailed,
    /// A login, or a password check of the account routes, refused by the failed-login
    /// throttle (`reason`: `client`, `name` or `device`: which lock).
    LoginLocked,
    /// A spent refresh token came back: its session was revoked as stolen.
    RefreshReuseDetected,
    /// A spent refresh token came back from the client that spent it, within the grace
    /// window: answered with the same successor pair, the session kept.
    RefreshRetry,
    /// The password was changed (every earlier session revoked; `session_id`: the new one).
    PasswordChanged,
    /// A password change refused: wrong current password.
    PasswordChangeFailed,
    /// A signed-in user asked to change the email address (a verification mail to the new
    /// address, a notice to the old verified one).
    EmailChangeRequested,
    /// A change of address refused: wrong password.
    EmailChangeFailed,
    /// A new address replaced the old one (its verification link was used).
    EmailChanged,
    /// The user deleted their account.
    AccountDeleted,
    /// An account deletion refused: wrong password.
    AccountDeletionFailed,
    /// One session ended (`reason`: `logout`, or `ended_from_session_list`).
    SessionEnded,
    /// Logout everywhere: every session of the user that had started.
    AllSessionsEnded,
    /// An administrator changed a user's roles (`reason`: who, and the roles now).
    RolesChanged,
    /// An administrator disabled a user (every session revoked) or enabled one.
    UserDisabled,
    UserEnabled,
    /// An administrator imported a user with the hash it brought (`reason`: who, and the
    /// hash's scheme).
    UserImported,
    /// Multi-factor authentication was turned on (a set-up confirmed by a code).
    MfaEnabled,
    /// The user turned multi-factor authentication off (password and a code).
    MfaDisabled,
    /// A second-factor code refused (`reason`), or a multi-factor route's password check.
    MfaFailed,
    /// An administrator removed a user's factor (a lost phone): every session ended.
    MfaReset,
    /// A recovery code was used (it works no more).
    RecoveryCodeUsed,
    /// The user replaced their recovery codes.
    RecoveryCodesReplaced,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::LoginSucceeded => "login_succeeded",
            Kind::LoginFailed => "login_failed",
            Kind::LoginLocked => "login_locked",
            Kind::RefreshReuseDetected => "refresh_reuse_detected",
            Kind::RefreshRetry => "refresh_retry",
            Kind::PasswordChanged => "password_changed",
            Kind::PasswordChangeFailed => "password_change_failed",
            Kind::EmailChangeRequested => "email_change_requested",
            Kind::EmailChangeFailed => "email_change_failed",
            Kind::EmailChanged => "email_changed",
            Kind::AccountDeleted => "account_deleted",
            Kind::AccountDeletionFailed => "account_deletion_failed",
            Kind::SessionEnded => "session_ended",
            Kind::AllSessionsEnded => "all_sessions_ended",
            Kind::RolesChanged => "roles_changed",
            Kind::UserDisabled => "user_disabled",
            Kind::UserEnabled => "user_enabled",
            Kind::UserImported => "user_imported",
            Kind::MfaEnabled => "mfa_enabled",
            Kind::MfaDisabled => "mfa_disabled",
            Kind::MfaFailed => "mfa_failed",
            Kind::MfaReset => "mfa_reset",
            Kind::RecoveryCodeUsed => "recovery_code_used",
            Kind::RecoveryCodesReplaced => "recovery_codes_replaced",
        }
    }

    /// The metric this kind is counted in, if any (docs/operations.md, "Metrics").
    fn metric(self) -> Option<crate::metrics::Metric> {
        use crate::metrics::Metric;
        match self {
            Kind::LoginSucceeded => Some(Metric::LoginSucceeded),
            Kind::LoginFailed => Some(Metric::LoginFailed),
            Kind::LoginLocked => Some(Metric::LoginLocked),
            Kind::RefreshReuseDetected => Some(Metric::RefreshReuseDetected),
            _ => None,
        }
    }

    fn outcome(self) -> &'static str {
        match self {
            Kind::LoginSucceeded
            | Kind::RefreshRetry
            | Kind::PasswordChanged
            | Kind::EmailChangeRequested
            | Kind::EmailChanged
            | Kind::AccountDeleted
            | Kind::SessionEnded
            | Kind::AllSessionsEnded
            | Kind::RolesChanged
            | Kind::UserDisabled
            | Kind::UserEnabled
            | Kind::UserImported
            | Kind::MfaEnabled
            | Kind::MfaDisabled
            | Kind::MfaReset
            | Kind::RecoveryCodeUsed
            | Kind::RecoveryCodesReplaced => "success",
            Kind::LoginFailed
            | Kind::LoginLocked
            | Kind::RefreshReuseDetected
            | Kind::PasswordChangeFailed
            | Kind::EmailChangeFailed
            | Kind::AccountDeletionFailed
            | Kind::MfaFailed => "failure",
        }
    }
}

/// One event; fields that do not apply stay empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct Event<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub client_ip: &'a str,
    pub session_id: &'a str,
    pub reason: &'a str,
}

/// Logs `event` as `kind`: failures at `warn`, the rest at `info`; the kinds that are
/// also metrics are counted.
pub fn record(kind: Kind, event: Event<'_>) {
    if let Some(metric) = kind.metric() {
        crate::metrics::count(metric);
    }
    let Event { user_id, username, client_ip, session_id, reason } = event;
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                target: "security",
                event = kind.name(),
                outcome = kind.outcome(),
                user_id,
                username,
                client_ip,
                session_id,
                reason,
                "security event"
            )
        };
    }
    match kind.outcome() {
        "failure" => emit!(warn),
        _ => emit!(info),
    }
}
