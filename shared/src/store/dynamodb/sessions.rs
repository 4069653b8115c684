//! The sessions table: one row per session (partition `user_id`, sort `session_id`), for
//! listing. Revocation stays where the authorizer reads it (`session#` items and the
//! user's cutoff), so a row's presence never makes a session alive.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, WriteRequest};

use super::errors::{build_err, classify, condition_held};
use super::item::{Item, get_s, get_u64, n, s};
use super::{BATCH_RETRIES, DynamoStore, backoff, session_key};
use crate::store::{ListedSession, MAX_LISTED_SESSIONS, SessionRecord, SessionStore, StoreError};

/// BatchGetItem reads at most 100 keys, BatchWriteItem writes at most 25 items.
const BATCH_GET_MAX: usize = 100;
const BATCH_WRITE_MAX: usize = 25;

fn session_from_item(item: &Item) -> Option<SessionRecord> {
    Some(SessionRecord {
        user_id: get_s(item, "user_id")?,
        session_id: get_s(item, "session_id")?,
        created_at: get_u64(item, "created_at").unwrap_or(0),
        last_used_at: get_u64(item, "last_used_at").unwrap_or(0),
        expires_at: get_u64(item, "expires_at").unwrap_or(0),
    })
}

fn row_key(user_id: &str, session_id: &str) -> Item {
    HashMap::from([("user_id".to_string(), s(user_id)), ("session_id".to_string(), s(session_id))])
}

impl DynamoStore {
    /// A consistent query of one user's rows.
    fn user_rows(&self, user_id: &str) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.sessions_table)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", "user_id")
            .expression_attribute_values(":u", s(user_id))
            .consistent_read(true)
    }

    async fn batch_delete(&self, keys: &[Item]) -> Result<(), StoreError> {
        let mut requests = keys
            .iter()
            .map(|key| {
                let delete = DeleteRequest::builder().set_key(Some(key.clone())).build().map_err(build_err)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for attempt in 0..=BATCH_RETRIES {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt as u32 - 1)).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.sessions_table, requests)
                .send()
                .await
                .map_err(classify)?;
            requests = out.unprocessed_items.unwrap_or_default().remove(&self.sessions_table).unwrap_or_default();
        }
        if requests.is_empty() { Ok(()) } else { Err(StoreError::Unavailable("deletes left unprocessed".into())) }
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn record_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut item = row_key(&session.user_id, &session.session_id);
        item.insert("created_at".into(), n(session.created_at));
        item.insert("last_used_at".into(), n(session.last_used_at));
        item.insert("expires_at".into(), n(session.expires_at));
        self.client
            .put_item()
            .table_name(&self.sessions_table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn touch_session(
        &self,
        user_id: &str,
        session_id: &str,
        last_used_at: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.sessions_table)
            .set_key(Some(row_key(user_id, session_id)))
            .update_expression("SET #used = :used, #exp = :exp")
            .condition_expression("attribute_exists(session_id)")
            .expression_attribute_names("#used", "last_used_at")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":used", n(last_used_at))
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await;
        // Not listed (forgotten by a deletion meanwhile: condition failed): it stays so.
        condition_held(result).map(|_| ())
    }

    /// One consistent query (newest first, paged up to the cap), then one consistent batch
    /// read of the `session#` revocations of what it found.
    async fn list_sessions(&self, user_id: &str) -> Result<Vec<ListedSession>, StoreError> {
        let mut sessions = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .user_rows(user_id)
                .scan_index_forward(false)
                .limit((MAX_LISTED_SESSIONS - sessions.len()) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            sessions.extend(page.items().iter().filter_map(session_from_item));
            start = page.last_evaluated_key().cloned();
            if start.is_none() || sessions.len() >= MAX_LISTED_SESSIONS {
                break;
            }
        }
        let mut revoked = std::collections::HashSet::new();
        for chunk in sessions.chunks(BATCH_GET_MAX) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true).projection_expression("jti");
            for session in chunk {
                keys = keys.keys(HashMap::from([("jti".to_string(), s(session_key(&session.session_id)))]));
            }
            let found =
                self.batch_get(HashMap::from([(self.revoked_table.clone(), keys.build().map_err(build_err)?)])).await?;
            revoked.extend(found.into_values().flatten().filter_map(|item| get_s(&item, "jti")));
        }
        Ok(sessions
            .into_iter()
            .map(|session| {
                let revoked = revoked.contains(&session_key(&session.session_id));
                ListedSession { session, revoked }
            })
            .collect())
    }

    /// One consistent BatchGetItem: the row of (`user_id`, `session_id`) and the session's
    /// revocation.
    async fn session(&self, user_id: &str, session_id: &str) -> Result<Option<ListedSession>, StoreError> {
        let row = KeysAndAttributes::builder().keys(row_key(user_id, session_id)).consistent_read(true);
        let revocation = KeysAndAttributes::builder()
            .keys(HashMap::from([("jti".to_string(), s(session_key(session_id)))]))
            .projection_expression("jti")
            .consistent_read(true);
        let found = self
            .batch_get(HashMap::from([
                (self.sessions_table.clone(), row.build().map_err(build_err)?),
                (self.revoked_table.clone(), revocation.build().map_err(build_err)?),
            ]))
            .await?;
        let revoked = found.get(&self.revoked_table).is_some_and(|items| !items.is_empty());
        let session = found.get(&self.sessions_table).and_then(|items| items.first()).and_then(session_from_item);
        Ok(session.map(|session| ListedSession { session, revoked }))
    }

    async fn forget_session(&self, user_id: &str, session_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.sessions_table)
            .set_key(Some(row_key(user_id, session_id)))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// Queries the keys and deletes them in batches until none is left (a login racing
    /// the deletion may add a row; it expires through TTL if it lands after this).
    async fn forget_sessions(&self, user_id: &str) -> Result<(), StoreError> {
        loop {
            let page =
                self.user_rows(user_id).projection_expression("#u, session_id").send().await.map_err(classify)?;
            let keys: Vec<Item> = page
                .items()
                .iter()
                .filter_map(|item| Some(row_key(&get_s(item, "user_id")?, &get_s(item, "session_id")?)))
                .collect();
            if keys.is_empty() {
                return Ok(());
            }
            for chunk in keys.chunks(BATCH_WRITE_MAX) {
                self.batch_delete(chunk).await?;
            }
        }
    }
}
