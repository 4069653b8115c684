//! The local mailbox (`make dev`): mail the service queues is delivered here by the same
//! deliverer as deployed (`shared::mail::deliver_queued`), with the mailbox as its transport
//! instead of Amazon SES, and read at `GET /local/mail` (local API only, like `/docs`).

use std::sync::Arc;
use std::time::Duration;

use shared::mail::{MailSettings, Mailbox, deliver_queued};
use shared::store::DynamoStore;

use crate::gateway::Answer;

pub const MAIL_PATH: &str = "/local/mail";
/// How often the outbox is looked at: mail arrives within about this long.
const POLL: Duration = Duration::from_millis(200);
/// A reset link's lifetime as the mail states it (the contract's default).
const RESET_TTL_SECONDS: u64 = 3600;

pub struct LocalMail {
    mailbox: Arc<Mailbox>,
}

impl LocalMail {
    /// Starts delivering the outbox into a new mailbox, if mail is configured.
    pub async fn start(config: &shared::config::Config) -> Result<Option<Self>, String> {
        let Some(mail) = &config.mail else { return Ok(None) };
        let sdk = shared::aws::load_sdk_config().await.map_err(|e| e.to_string())?;
        let store = DynamoStore::new(
            shared::aws::dynamodb_client(&sdk),
            &config.users_table,
            &config.revoked_tokens_table,
            &config.sessions_table,
        )
        .with_mail_tables(&mail.tokens_table, &mail.outbox_table);
        let settings = MailSettings { app_url: mail.app_url.clone(), reset_ttl_seconds: RESET_TTL_SECONDS };
        let mailbox = Arc::new(Mailbox::default());
        let transport = mailbox.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = deliver_queued(&store, transport.as_ref(), &settings, 100).await {
                    tracing::warn!(error = %e, "local mail: the outbox could not be read");
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Ok(Some(LocalMail { mailbox }))
    }

    /// `GET /local/mail`: every delivered mail, oldest first.
    pub fn answer(&self, method: &str, path: &str) -> Option<Answer> {
        if method != "GET" || path != MAIL_PATH {
            return None;
        }
        let body = serde_json::json!({ "messages": self.mailbox.messages() });
        Some(Answer {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: body.to_string().into_bytes(),
        })
    }
}
