//! The outbox table: partition key `id`; one item per queued mail, deleted once sent;
//! `expires_at` (TTL) forgets one that never could be. Its stream starts the mailer.

use std::collections::HashMap;

use async_trait::async_trait;

use super::errors::{classify, condition_held};
use super::item::{Item, get_s, get_u64, n, s};
use super::{DynamoStore, mail_allowance_key};
use crate::store::{MailKind, OutboxStore, QueuedMail, StoreError};

/// A queued mail not sent within this long is given up (TTL): its links have expired.
pub(super) const OUTBOX_TTL_SECONDS: u64 = 3 * 86_400;

pub(super) fn mail_item(mail: &QueuedMail) -> Item {
    let mut item = HashMap::from([
        ("id".to_string(), s(&mail.id)),
        ("to".to_string(), s(&mail.to)),
        ("kind".to_string(), s(mail.kind.name())),
        ("username".to_string(), s(&mail.username)),
        ("queued_at_ms".to_string(), n(mail.queued_at_ms)),
        ("expires_at".to_string(), n(mail.queued_at_ms / 1000 + OUTBOX_TTL_SECONDS)),
    ]);
    if let Some(email) = &mail.email {
        item.insert("email".into(), s(email));
    }
    if let Some(token) = &mail.token {
        item.insert("token".into(), s(token));
    }
    if let Some(ttl) = mail.link_ttl_seconds {
        item.insert("link_ttl_seconds".into(), n(ttl));
    }
    item
}

/// The mail an outbox item holds; `None` for an item that is not one (skipped).
pub fn mail_from_item(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> Option<QueuedMail> {
    Some(QueuedMail {
        id: get_s(item, "id")?,
        to: get_s(item, "to")?,
        kind: MailKind::from_name(&get_s(item, "kind")?)?,
        username: get_s(item, "username")?,
        email: get_s(item, "email"),
        token: get_s(item, "token"),
        link_ttl_seconds: get_u64(item, "link_ttl_seconds"),
        queued_at_ms: get_u64(item, "queued_at_ms")?,
    })
}

impl DynamoStore {
    pub(super) fn outbox_table(&self) -> Result<&str, StoreError> {
        self.outbox_table.as_deref().ok_or_else(|| StoreError::Internal("no outbox table configured".into()))
    }
}

#[async_trait]
impl OutboxStore for DynamoStore {
    async fn queue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.outbox_table()?)
            .set_item(Some(mail_item(mail)))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn queued_mails(&self, limit: usize) -> Result<Vec<QueuedMail>, StoreError> {
        let mut mails = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.outbox_table()?)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            mails.extend(page.items().iter().filter_map(mail_from_item));
            start = page.last_evaluated_key().cloned();
            if start.is_none() || mails.len() >= limit {
                break;
            }
        }
        mails.sort_by_key(|m| m.queued_at_ms);
        mails.truncate(limit);
        Ok(mails)
    }

    /// One conditional update on a `mail#…` item of the users table: the same window
    /// (count below the cap, the last one long enough ago), else a new window. Each write
    /// is atomic; two that race both read the condition, and only one is applied.
    async fn take_mail_allowance(
        &self,
        key: &str,
        now_ms: u64,
        min_interval_ms: u64,
        max: u32,
        window_ms: u64,
    ) -> Result<bool, StoreError> {
        let update = || {
            self.client
                .update_item()
                .table_name(&self.users_table)
                .key("username", s(mail_allowance_key(key)))
                .expression_attribute_names("#last", "last_ms")
                .expression_attribute_names("#start", "day_start_ms")
                .expression_attribute_names("#count", "day_count")
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":exp", n((now_ms + window_ms) / 1000 + 1))
        };
        let same_day = update()
            .update_expression("SET #last = :now, #count = #count + :one, #exp = :exp")
            .condition_expression("#start > :day_ago AND #count < :max AND #last <= :recent")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":day_ago", n(now_ms.saturating_sub(window_ms)))
            .expression_attribute_values(":max", n(max))
            .expression_attribute_values(":recent", n(now_ms.saturating_sub(min_interval_ms)))
            .send()
            .await;
        if condition_held(same_day)? {
            return Ok(true);
        }
        let new_day = update()
            .update_expression("SET #last = :now, #start = :now, #count = :one, #exp = :exp")
            .condition_expression("attribute_not_exists(#start) OR #start <= :day_ago")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":day_ago", n(now_ms.saturating_sub(window_ms)))
            .send()
            .await;
        condition_held(new_day)
    }

    async fn claim_mail(&self, id: &str, now_ms: u64, lease_ms: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.outbox_table()?)
            .key("id", s(id))
            .update_expression("SET #lease = :until")
            .condition_expression("attribute_exists(id) AND (attribute_not_exists(#lease) OR #lease <= :now)")
            .expression_attribute_names("#lease", "claimed_until_ms")
            .expression_attribute_values(":until", n(now_ms + lease_ms))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        condition_held(result)
    }

    async fn release_mail(&self, id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.outbox_table()?)
            .key("id", s(id))
            .update_expression("REMOVE #lease")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#lease", "claimed_until_ms")
            .send()
            .await;
        condition_held(result).map(|_| ())
    }

    async fn forget_mail(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.outbox_table()?)
            .key("id", s(id))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}
