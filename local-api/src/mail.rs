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

pub struct LocalMail {
    mailbox: Arc<Mailbox>,
}

impl LocalMail {
    /// Starts delivering `outbox` (mail as `mail` configures it) into a new mailbox.
    pub fn start(mail: &shared::config::MailConfig, outbox: DynamoStore) -> Self {
        let settings = MailSettings::from(mail);
        let mailbox = Arc::new(Mailbox::default());
        let transport = mailbox.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = deliver_queued(&outbox, transport.as_ref(), &settings, 100).await {
                    tracing::warn!(error = %e, "local mail: the outbox could not be read");
                }
                tokio::time::sleep(POLL).await;
            }
        });
        LocalMail { mailbox }
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
