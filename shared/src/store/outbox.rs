//! The mail outbox: mails queued by requests, until a deliverer has sent them. A request
//! never waits on the mail service: it queues (with the state change the mail belongs to,
//! in one transaction, where there is one) and answers; the mailer sends and then forgets.

use async_trait::async_trait;

use super::StoreError;

/// What a mail is for; each has its template pair (`crate::mail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// "Confirm this address": a link with a verification token.
    VerifyEmail,
    /// "Choose a new password": a link with a reset token.
    ResetPassword,
    /// Notice: the password was changed or reset.
    PasswordChanged,
    /// Notice to the old address: a change to another address was asked for.
    EmailChangeRequested,
    /// Notice: two-step sign-in was turned off (by the user, or reset by an administrator).
    MfaDisabled,
    /// Notice: two-step sign-in was turned on.
    MfaEnabled,
    /// Notice: new recovery codes were made (the old ones no longer work).
    RecoveryCodesReplaced,
}

impl MailKind {
    pub const ALL: [MailKind; 7] = [
        MailKind::VerifyEmail,
        MailKind::ResetPassword,
        MailKind::PasswordChanged,
        MailKind::EmailChangeRequested,
        MailKind::MfaDisabled,
        MailKind::MfaEnabled,
        MailKind::RecoveryCodesReplaced,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::ResetPassword => "reset_password",
            MailKind::PasswordChanged => "password_changed",
            MailKind::EmailChangeRequested => "email_change_requested",
            MailKind::MfaDisabled => "mfa_disabled",
            MailKind::MfaEnabled => "mfa_enabled",
            MailKind::RecoveryCodesReplaced => "recovery_codes_replaced",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A mail as the outbox holds it until it is sent. `token` is the one-time token its link
/// carries (the token store keeps only the token's hash): the item is deleted once sent,
/// and expires through TTL if it never is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: String,
    pub to: String,
    pub kind: MailKind,
    pub username: String,
    /// The address a verification confirms, or the new address a notice names.
    pub email: Option<String>,
    pub token: Option<String>,
    /// How long the link's token lives (the mail says so): decided with the token, so the
    /// mail tells the truth whoever sends it.
    pub link_ttl_seconds: Option<u64>,
    /// Epoch milliseconds.
    pub queued_at_ms: u64,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues one mail on its own (a notice, a resent verification).
    async fn queue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError>;

    /// Mails still queued, at most `limit`, oldest first as far as a scan tells (the
    /// local deliverer, and the sweep that retries what the stream's deliveries gave up on).
    async fn queued_mails(&self, limit: usize) -> Result<Vec<QueuedMail>, StoreError>;

    /// Takes a queued mail for sending until `now_ms + lease_ms`, atomically: `false` if
    /// another deliverer holds it (or it is gone), so that two deliverers at once (the
    /// stream's and the sweep's) never both send it.
    async fn claim_mail(&self, id: &str, now_ms: u64, lease_ms: u64) -> Result<bool, StoreError>;

    /// Gives back a claim whose mail could not be sent, so the next round (a stream
    /// retry, the sweep) sends it without waiting for the lease to run out. Best effort.
    async fn release_mail(&self, id: &str) -> Result<(), StoreError>;

    /// Forgets a sent mail. Safe to repeat.
    async fn forget_mail(&self, id: &str) -> Result<(), StoreError>;

    /// Takes one mail of `key`'s allowance at `now_ms`, atomically: `false` (nothing
    /// taken) within `min_interval_ms` of the last one, or once `max` were taken in the
    /// window of `window_ms` that started with the first of them.
    async fn take_mail_allowance(
        &self,
        key: &str,
        now_ms: u64,
        min_interval_ms: u64,
        max: u32,
        window_ms: u64,
    ) -> Result<bool, StoreError>;
}
