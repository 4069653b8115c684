//! The one-time tokens table: partition key `token_hash` (hex SHA-256 of the token);
//! `expires_at` is its TTL. A verified address's claim is an `email#<address>` item of
//! the users table (`#` cannot occur in a username).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::errors::{build_err, classify, condition_held, is_condition_failure};
use super::item::{Item, get_s, get_u64, ms_to_seconds_attr, n, s};
use super::outbox::mail_item;
use super::{DynamoStore, Transacted, email_key, refused_at};
use crate::store::{Mailed, OneTimeToken, OneTimeTokenStore, StoreError, TokenPurpose, VerifyOutcome};

fn token_item(token: &OneTimeToken) -> Item {
    let mut item = HashMap::from([
        ("token_hash".to_string(), s(&token.hash)),
        ("purpose".to_string(), s(token.purpose.name())),
        ("user_id".to_string(), s(&token.user_id)),
        ("username".to_string(), s(&token.username)),
        ("created_at_ms".to_string(), n(token.created_at_ms)),
        ("expires_at".to_string(), n(token.expires_at)),
    ]);
    if let Some(email) = &token.email {
        item.insert("email".into(), s(email));
    }
    if let Some(sid) = &token.session_id {
        item.insert("session_id".into(), s(sid));
    }
    item
}

fn token_from_item(item: &Item) -> Option<OneTimeToken> {
    Some(OneTimeToken {
        hash: get_s(item, "token_hash")?,
        purpose: TokenPurpose::from_name(&get_s(item, "purpose")?)?,
        user_id: get_s(item, "user_id")?,
        username: get_s(item, "username")?,
        email: get_s(item, "email"),
        session_id: get_s(item, "session_id"),
        created_at_ms: get_u64(item, "created_at_ms")?,
        expires_at: get_u64(item, "expires_at")?,
    })
}

impl DynamoStore {
    fn tokens_table(&self) -> Result<&str, StoreError> {
        self.tokens_table.as_deref().ok_or_else(|| StoreError::Internal("no one-time tokens table configured".into()))
    }

    /// The writes that store `mailed`'s token and queue its mail (one transaction's items).
    pub(super) fn mailed_writes(&self, mailed: &Mailed) -> Result<Vec<TransactWriteItem>, StoreError> {
        let token = Put::builder()
            .table_name(self.tokens_table()?)
            .set_item(Some(token_item(&mailed.token)))
            .build()
            .map_err(build_err)?;
        let mut writes = vec![TransactWriteItem::builder().put(token).build()];
        for mail in std::iter::once(&mailed.mail).chain(&mailed.notice) {
            let put = Put::builder()
                .table_name(self.outbox_table()?)
                .set_item(Some(mail_item(mail)))
                .build()
                .map_err(build_err)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(writes)
    }
}

#[async_trait]
impl OneTimeTokenStore for DynamoStore {
    async fn issue_token(&self, mailed: &Mailed) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(self.mailed_writes(mailed)?))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn forget_token(&self, hash: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.tokens_table()?)
            .key("token_hash", s(hash))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn put_token(&self, token: &OneTimeToken) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.tokens_table()?)
            .set_item(Some(token_item(token)))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn spend_token(&self, hash: &str, max: u32) -> Result<bool, StoreError> {
        let spent = self
            .client
            .delete_item()
            .table_name(self.tokens_table()?)
            .key("token_hash", s(hash))
            // (A token whose count reached `max` is deleted by that count; should that delete
            // have failed, it still opens nothing.)
            .condition_expression(
                "attribute_exists(token_hash) AND (attribute_not_exists(attempts) OR attempts < :max)",
            )
            .expression_attribute_values(":max", n(u64::from(max)))
            .send()
            .await;
        condition_held(spent)
    }

    async fn count_wrong_code(&self, hash: &str, max: u32) -> Result<bool, StoreError> {
        let counted = self
            .client
            .update_item()
            .table_name(self.tokens_table()?)
            .key("token_hash", s(hash))
            .update_expression("ADD attempts :one")
            .condition_expression("attribute_exists(token_hash)")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        let attempts = match counted {
            Ok(out) => out.attributes().and_then(|a| get_u64(a, "attempts")).unwrap_or(u64::MAX),
            Err(e) if is_condition_failure(&e) => return Ok(false),
            Err(e) => return Err(classify(e)),
        };
        if attempts < u64::from(max) {
            return Ok(true);
        }
        self.forget_token(hash).await?;
        Ok(false)
    }

    async fn one_time_token(&self, hash: &str) -> Result<Option<OneTimeToken>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.tokens_table()?)
            .key("token_hash", s(hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item().and_then(token_from_item))
    }

    async fn verify_email(
        &self,
        token: &OneTimeToken,
        previous: Option<&str>,
        at_ms: u64,
    ) -> Result<VerifyOutcome, StoreError> {
        let Some(email) = &token.email else { return Ok(VerifyOutcome::TokenGone) };
        let spend = Delete::builder()
            .table_name(self.tokens_table()?)
            .key("token_hash", s(&token.hash))
            .condition_expression("attribute_exists(token_hash)")
            .build()
            .map_err(build_err)?;
        let claim = Put::builder()
            .table_name(&self.users_table)
            .item("username", s(email_key(email)))
            .item("user_id", s(&token.user_id))
            .condition_expression("attribute_not_exists(username) OR user_id = :id")
            .expression_attribute_values(":id", s(&token.user_id))
            .build()
            .map_err(build_err)?;
        let verified = Update::builder()
            .table_name(&self.users_table)
            .key("username", s(&token.username))
            .update_expression("SET #email = :email, #verified = :yes, #at = :at")
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#email", "email")
            .expression_attribute_names("#verified", "email_verified")
            .expression_attribute_names("#at", "email_verified_at")
            .expression_attribute_values(":email", s(email))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":at", ms_to_seconds_attr(at_ms))
            .expression_attribute_values(":id", s(&token.user_id));
        // The user's verified address must still be the one read: two verifications at
        // once must not both release the claim they read, or leave one claimed for nobody.
        let verified = match previous {
            Some(previous) => verified
                .condition_expression("#id = :id AND #verified = :yes AND #email = :previous")
                .expression_attribute_values(":previous", s(previous)),
            None => {
                verified.condition_expression("#id = :id AND (attribute_not_exists(#verified) OR #verified <> :yes)")
            }
        };
        let mut items = vec![
            TransactWriteItem::builder().delete(spend).build(),
            TransactWriteItem::builder().put(claim).build(),
            TransactWriteItem::builder().update(verified.build().map_err(build_err)?).build(),
        ];
        // The address it replaces is free again.
        if let Some(previous) = previous.filter(|p| p != email) {
            let release = Delete::builder()
                .table_name(&self.users_table)
                .key("username", s(email_key(previous)))
                .condition_expression("attribute_not_exists(username) OR user_id = :id")
                .expression_attribute_values(":id", s(&token.user_id))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().delete(release).build());
        }
        let Transacted::Refused(reasons) = self.transact(items, "a verification").await? else {
            return Ok(VerifyOutcome::Verified);
        };
        // The token first: a used token says nothing about the address.
        Ok(if refused_at(&reasons, 0) {
            VerifyOutcome::TokenGone
        } else if refused_at(&reasons, 2) || refused_at(&reasons, 3) {
            VerifyOutcome::UserChanged
        } else {
            VerifyOutcome::EmailTaken
        })
    }
}
