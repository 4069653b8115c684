//! Second factors on the users table: one `mfa#<user_id>` item per user (`#` cannot occur
//! in a username), holding the sealed secret or pending secret, `last_step` and the
//! recovery codes' hashes (a string set). Every change is one conditional write.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::errors::{classify, condition_held};
use super::item::{get_s, get_u64, n, s, string_set};
use super::{DynamoStore, factor_key};
use crate::store::{Factor, FactorStore, StoreError};

/// The set of recovery codes (DynamoDB has no empty set: at least one code).
fn codes_set(values: &[String]) -> Result<AttributeValue, StoreError> {
    string_set(values).ok_or_else(|| StoreError::Internal("no recovery codes to store".into()))
}

/// The compare-and-set that accepts a code's step once: the secret is still the one read,
/// and no step at or after `step` was accepted.
const STEP_IS_NEW: &str = "secret = :secret AND (attribute_not_exists(last_step) OR last_step < :step)";

impl DynamoStore {
    fn factor_update(
        &self,
        user_id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.users_table).key("username", s(factor_key(user_id)))
    }
}

#[async_trait]
impl FactorStore for DynamoStore {
    async fn factor(&self, user_id: &str) -> Result<Option<Factor>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(factor_key(user_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = out.item() else { return Ok(None) };
        let mut recovery_codes = item.get("recovery_codes").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
        recovery_codes.sort();
        Ok(Some(Factor {
            user_id: get_s(item, "user_id").unwrap_or_else(|| user_id.to_string()),
            secret: get_s(item, "secret"),
            pending: get_s(item, "pending"),
            last_step: get_u64(item, "last_step"),
            recovery_codes,
        }))
    }

    async fn begin_enrolment(&self, user_id: &str, pending: &str) -> Result<bool, StoreError> {
        let result = self
            .factor_update(user_id)
            .update_expression("SET user_id = :id, pending = :pending")
            .condition_expression("attribute_not_exists(secret)")
            .expression_attribute_values(":id", s(user_id))
            .expression_attribute_values(":pending", s(pending))
            .send()
            .await;
        condition_held(result)
    }

    async fn confirm_enrolment(
        &self,
        user_id: &str,
        pending: &str,
        step: u64,
        recovery_codes: &[String],
    ) -> Result<bool, StoreError> {
        let result = self
            .factor_update(user_id)
            .update_expression("SET secret = :pending, last_step = :step, recovery_codes = :codes REMOVE pending")
            .condition_expression("pending = :pending AND attribute_not_exists(secret)")
            .expression_attribute_values(":pending", s(pending))
            .expression_attribute_values(":step", n(step))
            .expression_attribute_values(":codes", codes_set(recovery_codes)?)
            .send()
            .await;
        condition_held(result)
    }

    async fn accept_step(&self, user_id: &str, secret: &str, step: u64) -> Result<bool, StoreError> {
        let result = self
            .factor_update(user_id)
            .update_expression("SET last_step = :step")
            .condition_expression(STEP_IS_NEW)
            .expression_attribute_values(":secret", s(secret))
            .expression_attribute_values(":step", n(step))
            .send()
            .await;
        condition_held(result)
    }

    async fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> Result<bool, StoreError> {
        let result = self
            .factor_update(user_id)
            .update_expression("DELETE recovery_codes :code")
            .condition_expression("attribute_exists(secret) AND contains(recovery_codes, :hash)")
            .expression_attribute_values(":code", codes_set(&[code_hash.to_string()])?)
            .expression_attribute_values(":hash", s(code_hash))
            .send()
            .await;
        condition_held(result)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        secret: &str,
        step: u64,
        recovery_codes: &[String],
    ) -> Result<bool, StoreError> {
        let result = self
            .factor_update(user_id)
            .update_expression("SET last_step = :step, recovery_codes = :codes")
            .condition_expression(STEP_IS_NEW)
            .expression_attribute_values(":secret", s(secret))
            .expression_attribute_values(":step", n(step))
            .expression_attribute_values(":codes", codes_set(recovery_codes)?)
            .send()
            .await;
        condition_held(result)
    }

    async fn remove_factor(&self, user_id: &str, secret: Option<&str>) -> Result<bool, StoreError> {
        let delete = self.client.delete_item().table_name(&self.users_table).key("username", s(factor_key(user_id)));
        let delete = match secret {
            Some(secret) => {
                delete.condition_expression("secret = :secret").expression_attribute_values(":secret", s(secret))
            }
            None => delete.condition_expression("attribute_exists(username)"),
        };
        condition_held(delete.send().await)
    }
}
