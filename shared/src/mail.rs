//! Mail: what the service sends (address verification, password reset, notices), rendered
//! from the templates in `mail/templates/` (plain text and HTML), and how it is delivered.
//!
//! No request waits on a mail service: a request queues a [`QueuedMail`] in the outbox
//! (with the state change it belongs to, where there is one) and answers. A deliverer
//! renders it with [`render`] and hands it to a [`Transport`]: Amazon SES deployed, the
//! local API's [`Mailbox`] under `make dev`. Links are built from the configured
//! application URL, never from a request.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;

pub use crate::store::{MailKind, QueuedMail};

fn subject(kind: MailKind) -> &'static str {
    match kind {
        MailKind::VerifyEmail => "Confirm your email address",
        MailKind::ResetPassword => "Reset your password",
        MailKind::PasswordChanged => "Your password was changed",
        MailKind::EmailChangeRequested => "A change of your email address was requested",
        MailKind::MfaDisabled => "Two-step sign-in was turned off",
        MailKind::MfaEnabled => "Two-step sign-in was turned on",
        MailKind::RecoveryCodesReplaced => "New recovery codes were made",
    }
}

fn templates(kind: MailKind) -> (&'static str, &'static str) {
    match kind {
        MailKind::VerifyEmail => {
            (include_str!("mail/templates/verify_email.txt"), include_str!("mail/templates/verify_email.html"))
        }
        MailKind::ResetPassword => {
            (include_str!("mail/templates/reset_password.txt"), include_str!("mail/templates/reset_password.html"))
        }
        MailKind::PasswordChanged => {
            (include_str!("mail/templates/password_changed.txt"), include_str!("mail/templates/password_changed.html"))
        }
        MailKind::EmailChangeRequested => (
            include_str!("mail/templates/email_change_requested.txt"),
            include_str!("mail/templates/email_change_requested.html"),
        ),
        MailKind::MfaDisabled => {
            (include_str!("mail/templates/mfa_disabled.txt"), include_str!("mail/templates/mfa_disabled.html"))
        }
        MailKind::MfaEnabled => {
            (include_str!("mail/templates/mfa_enabled.txt"), include_str!("mail/templates/mfa_enabled.html"))
        }
        MailKind::RecoveryCodesReplaced => (
            include_str!("mail/templates/recovery_codes_replaced.txt"),
            include_str!("mail/templates/recovery_codes_replaced.html"),
        ),
    }
}

/// The application page a link of this kind opens, if it has one.
fn page(kind: MailKind) -> Option<&'static str> {
    match kind {
        MailKind::VerifyEmail => Some("/verify-email"),
        MailKind::ResetPassword => Some("/reset-password"),
        MailKind::PasswordChanged
        | MailKind::EmailChangeRequested
        | MailKind::MfaDisabled
        | MailKind::MfaEnabled
        | MailKind::RecoveryCodesReplaced => None,
    }
}

/// What rendering needs besides the mail: where the application's pages are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The web application's base URL (`AppUrl`), e.g. `https://app.example.com`.
    pub app_url: String,
}

impl From<&crate::config::MailConfig> for MailSettings {
    fn from(mail: &crate::config::MailConfig) -> Self {
        MailSettings { app_url: mail.app_url.clone() }
    }
}

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn escape_html(value: &str) -> String {
    value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn fill(template: &str, values: &[(&str, &str)], escape: bool) -> String {
    values.iter().fold(template.to_string(), |text, (name, value)| {
        let value = if escape { escape_html(value) } else { value.to_string() };
        text.replace(&format!("{{{name}}}"), &value)
    })
}

/// A link's lifetime as a mail says it: "24 hours", "60 minutes".
fn lifetime(seconds: u64) -> String {
    match seconds {
        s if s >= 2 * 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{} minutes", s / 60),
    }
}

pub fn render(mail: &QueuedMail, settings: &MailSettings) -> Rendered {
    let link = match (page(mail.kind), &mail.token) {
        (Some(page), Some(token)) => format!("{}{page}?token={token}", settings.app_url.trim_end_matches('/')),
        _ => String::new(),
    };
    // A mail queued before lifetimes travelled with it says the default.
    let default_ttl = match mail.kind {
        MailKind::VerifyEmail => crate::config::VERIFY_TTL_SECONDS,
        _ => crate::config::DEFAULT_PASSWORD_RESET_TTL_SECONDS,
    };
    let lifetime = lifetime(mail.link_ttl_seconds.unwrap_or(default_ttl));
    let email = mail.email.as_deref().unwrap_or(&mail.to);
    let values = [
        ("username", mail.username.as_str()),
        ("email", email),
        ("new_email", email),
        ("link", link.as_str()),
        ("lifetime", lifetime.as_str()),
    ];
    let (text, html) = templates(mail.kind);
    Rendered {
        to: mail.to.clone(),
        subject: subject(mail.kind).to_string(),
        text: fill(text, &values, false),
        html: fill(html, &values, true),
    }
}

/// Why a mail was not sent (it stays queued and is tried again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("mail service unavailable: {0}")]
    Unavailable(String),
    #[error("mail refused: {0}")]
    Refused(String),
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, mail: &Rendered) -> Result<(), MailError>;
}

/// A delivered mail as the local mailbox shows it (`GET /local/mail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// Epoch seconds.
    pub sent_at: u64,
}

/// The local API's mailbox: mail "sent" under `make dev` lands here, oldest first.
#[derive(Debug, Default)]
pub struct Mailbox {
    messages: Mutex<Vec<Delivered>>,
}

impl Mailbox {
    pub fn messages(&self) -> Vec<Delivered> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Transport for Mailbox {
    async fn send(&self, mail: &Rendered) -> Result<(), MailError> {
        let delivered = Delivered {
            to: vec![mail.to.clone()],
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            sent_at: crate::clock::now_ms() / 1000,
        };
        self.messages.lock().map_err(|_| MailError::Unavailable("mailbox poisoned".into()))?.push(delivered);
        Ok(())
    }
}

/// A deliverer holds a mail this long while it sends it; one that stopped midway lets
/// the next round take it.
const CLAIM_LEASE_MS: u64 = 60_000;

/// What a round of delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    /// Refused for good by the mail service (a bad address): dropped, not retried.
    pub refused: usize,
}

/// Why a round of delivery stopped early: the mails left stay queued for the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Mail(MailError),
}

/// Sends what the outbox holds, oldest first, at most `limit`: each is claimed (so that no
/// other deliverer sends it too), rendered, handed to `transport` and then forgotten. A
/// mail service that is down stops the round with an error and leaves the rest queued (to
/// be given up only by the outbox's TTL); a mail it refuses for good is dropped.
pub async fn deliver_queued(
    outbox: &dyn crate::store::OutboxStore,
    transport: &dyn Transport,
    settings: &MailSettings,
    limit: usize,
) -> Result<Delivery, DeliveryError> {
    let mut done = Delivery::default();
    for mail in outbox.queued_mails(limit).await? {
        if !outbox.claim_mail(&mail.id, crate::clock::now_ms(), CLAIM_LEASE_MS).await? {
            continue;
        }
        match transport.send(&render(&mail, settings)).await {
            // Forgotten after sending: a crash in between sends it twice, never not at all.
            Ok(()) => {
                crate::metrics::count(crate::metrics::Metric::MailSent);
                done.sent += 1;
            }
            Err(MailError::Refused(reason)) => {
                crate::metrics::count(crate::metrics::Metric::MailRefused);
                tracing::warn!(%reason, mail_id = %mail.id, kind = mail.kind.name(), "mail refused by the mail service; dropped");
                done.refused += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, mail_id = %mail.id, kind = mail.kind.name(), "mail not sent; it stays queued");
                if let Err(release) = outbox.release_mail(&mail.id).await {
                    tracing::warn!(error = %release, mail_id = %mail.id, "claim not given back; it lapses");
                }
                return Err(DeliveryError::Mail(e));
            }
        }
        outbox.forget_mail(&mail.id).await?;
    }
    Ok(done)
}

/// Amazon SES (API v2): the deployed transport, from the configured sender.
pub struct Ses {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl Ses {
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        Ses { client, from: from.into() }
    }
}

#[async_trait]
impl Transport for Ses {
    async fn send(&self, mail: &Rendered) -> Result<(), MailError> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content = |data: &str| Content::builder().data(data).charset("UTF-8").build();
        let message = Message::builder()
            .subject(content(&mail.subject).map_err(|e| MailError::Refused(e.to_string()))?)
            .body(
                Body::builder()
                    .text(content(&mail.text).map_err(|e| MailError::Refused(e.to_string()))?)
                    .html(content(&mail.html).map_err(|e| MailError::Refused(e.to_string()))?)
                    .build(),
            )
            .build();
        let result = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                use aws_sdk_sesv2::error::ProvideErrorMetadata;
                // Refused for good: the message or the address (retrying changes nothing).
                // Anything else (throttling, the service down, timeouts) is tried again.
                let code = e.as_service_error().and_then(|se| se.code()).unwrap_or_default().to_string();
                match code.as_str() {
                    "MessageRejected" | "BadRequestException" | "MailFromDomainNotVerifiedException" => {
                        Err(MailError::Refused(code))
                    }
                    _ => Err(MailError::Unavailable(aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(kind: MailKind) -> QueuedMail {
        QueuedMail {
            id: "m1".into(),
            to: "alice@example.com".into(),
            kind,
            username: "alice".into(),
            email: None,
            token: Some("tok_123-abc".into()),
            link_ttl_seconds: Some(match kind {
                MailKind::VerifyEmail => 86_400,
                _ => 3600,
            }),
            queued_at_ms: 1,
        }
    }

    const SETTINGS: fn() -> MailSettings = || MailSettings { app_url: "https://app.example.com/".into() };

    #[test]
    fn links_come_from_the_app_url_and_carry_the_token() {
        let verify = render(&queued(MailKind::VerifyEmail), &SETTINGS());
        assert!(verify.text.contains("https://app.example.com/verify-email?token=tok_123-abc\n"), "{}", verify.text);
        assert!(verify.html.contains(r#"href="https://app.example.com/verify-email?token=tok_123-abc""#));
        assert!(verify.text.contains("alice@example.com") && verify.text.contains("24 hours"));
        let reset = render(&queued(MailKind::ResetPassword), &SETTINGS());
        assert!(reset.text.contains("https://app.example.com/reset-password?token=tok_123-abc"));
        assert!(reset.text.contains("60 minutes") && reset.text.contains("If you did not ask"));
        assert_eq!(reset.subject, "Reset your password");
        // Notices carry no link.
        let notice = render(&queued(MailKind::PasswordChanged), &SETTINGS());
        assert!(!notice.text.contains("token") && !notice.text.contains('{'), "{}", notice.text);
    }

    #[test]
    fn a_link_says_how_long_it_lives_as_decided_when_it_was_queued() {
        let mut reset = queued(MailKind::ResetPassword);
        for (seconds, said) in [(900, "15 minutes"), (3600, "60 minutes"), (7200, "2 hours"), (86_400, "24 hours")] {
            reset.link_ttl_seconds = Some(seconds);
            let r = render(&reset, &SETTINGS());
            assert!(r.text.contains(&format!("for {said}.")) && r.html.contains(&format!("for {said}.")), "{}", r.text);
        }
        reset.link_ttl_seconds = None;
        assert!(render(&reset, &SETTINGS()).text.contains("for 60 minutes."));
    }

    #[test]
    fn every_placeholder_is_filled_and_html_values_are_escaped() {
        for kind in MailKind::ALL {
            let mut mail = queued(kind);
            mail.email = Some("<b>x</b>&@example.com".into());
            let r = render(&mail, &SETTINGS());
            assert!(!r.text.contains('{') && !r.html.contains('{'), "{kind:?}");
            assert!(!r.html.contains("<b>x</b>&@"), "{kind:?}: {}", r.html);
            assert_eq!(MailKind::from_name(kind.name()), Some(kind));
        }
    }
}
