//! Mail: what the service sends (address verification, password reset, notices), rendered
//! from the templates in `mail/templates/` (plain text and HTML), and how it is delivered.
//!
//! No request waits on a mail service: a request queues a [`Queued`] mail in the outbox
//! (with the state change it belongs to, where there is one) and answers. A deliverer
//! renders it with [`render`] and hands it to a [`Transport`]: Amazon SES deployed, the
//! local API's [`Mailbox`] under `make dev`. Links are built from the configured
//! application URL, never from a request.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a mail is for; each has its template pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// "Confirm this address": a link with a verification token.
    VerifyEmail,
    /// "Choose a new password": a link with a reset token.
    ResetPassword,
    /// Notice: the password was changed or reset.
    PasswordChanged,
    /// Notice to the old address: a change to another address was asked for.
    EmailChangeRequested,
}

impl MailKind {
    pub fn name(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::ResetPassword => "reset_password",
            MailKind::PasswordChanged => "password_changed",
            MailKind::EmailChangeRequested => "email_change_requested",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [MailKind::VerifyEmail, MailKind::ResetPassword, MailKind::PasswordChanged, MailKind::EmailChangeRequested]
            .into_iter()
            .find(|k| k.name() == name)
    }

    fn subject(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "Confirm your email address",
            MailKind::ResetPassword => "Reset your password",
            MailKind::PasswordChanged => "Your password was changed",
            MailKind::EmailChangeRequested => "A change of your email address was requested",
        }
    }

    fn templates(self) -> (&'static str, &'static str) {
        match self {
            MailKind::VerifyEmail => {
                (include_str!("mail/templates/verify_email.txt"), include_str!("mail/templates/verify_email.html"))
            }
            MailKind::ResetPassword => {
                (include_str!("mail/templates/reset_password.txt"), include_str!("mail/templates/reset_password.html"))
            }
            MailKind::PasswordChanged => (
                include_str!("mail/templates/password_changed.txt"),
                include_str!("mail/templates/password_changed.html"),
            ),
            MailKind::EmailChangeRequested => (
                include_str!("mail/templates/email_change_requested.txt"),
                include_str!("mail/templates/email_change_requested.html"),
            ),
        }
    }

    /// The application page a link of this kind opens, if it has one.
    fn page(self) -> Option<&'static str> {
        match self {
            MailKind::VerifyEmail => Some("/verify-email"),
            MailKind::ResetPassword => Some("/reset-password"),
            MailKind::PasswordChanged | MailKind::EmailChangeRequested => None,
        }
    }
}

/// A mail as the outbox holds it until it is delivered. `token` is the one-time token a
/// link carries (the token store keeps only its hash); the outbox item is deleted once
/// the mail is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    pub to: String,
    pub kind: MailKind,
    pub username: String,
    /// The address a verification confirms, or the new address a notice names.
    pub email: Option<String>,
    pub token: Option<String>,
    /// Epoch milliseconds.
    pub queued_at_ms: u64,
}

/// What rendering needs besides the mail: where the application's pages are, and how long
/// a reset link lives (it says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The web application's base URL (`AppUrl`), e.g. `https://app.example.com`.
    pub app_url: String,
    pub reset_ttl_seconds: u64,
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

pub fn render(mail: &Queued, settings: &MailSettings) -> Rendered {
    let link = match (mail.kind.page(), &mail.token) {
        (Some(page), Some(token)) => format!("{}{page}?token={token}", settings.app_url.trim_end_matches('/')),
        _ => String::new(),
    };
    let minutes = (settings.reset_ttl_seconds / 60).to_string();
    let email = mail.email.as_deref().unwrap_or(&mail.to);
    let values = [
        ("username", mail.username.as_str()),
        ("email", email),
        ("new_email", email),
        ("link", link.as_str()),
        ("minutes", minutes.as_str()),
    ];
    let (text, html) = mail.kind.templates();
    Rendered {
        to: mail.to.clone(),
        subject: mail.kind.subject().to_string(),
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
            sent_at: crate::auth::now_ms() / 1000,
        };
        self.messages.lock().map_err(|_| MailError::Unavailable("mailbox poisoned".into()))?.push(delivered);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(kind: MailKind) -> Queued {
        Queued {
            id: "m1".into(),
            to: "alice@example.com".into(),
            kind,
            username: "alice".into(),
            email: None,
            token: Some("tok_123-abc".into()),
            queued_at_ms: 1,
        }
    }

    const SETTINGS: fn() -> MailSettings =
        || MailSettings { app_url: "https://app.example.com/".into(), reset_ttl_seconds: 3600 };

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
    fn every_placeholder_is_filled_and_html_values_are_escaped() {
        for kind in
            [MailKind::VerifyEmail, MailKind::ResetPassword, MailKind::PasswordChanged, MailKind::EmailChangeRequested]
        {
            let mut mail = queued(kind);
            mail.email = Some("<b>x</b>&@example.com".into());
            let r = render(&mail, &SETTINGS());
            assert!(!r.text.contains('{') && !r.html.contains('{'), "{kind:?}");
            assert!(!r.html.contains("<b>x</b>&@"), "{kind:?}: {}", r.html);
            assert_eq!(MailKind::from_name(kind.name()), Some(kind));
        }
    }
}
