//! The revocations aggregate on the revoked tokens table: token ids, spent refresh token
//! ids and `session#<sid>` items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValuesOnConditionCheckFailure};

use super::errors::{build_err, classify, failed_condition};
use super::item::{get_roles, get_s, is_disabled, n, s, seconds_attr_to_ms};
use super::{DynamoStore, session_key};
use crate::store::{AccessState, RevocationStore, SpendOutcome, StoreError, UserAccess};

#[async_trait]
impl RevocationStore for DynamoStore {
    async fn revoke_session(&self, sid: &str, expires_at: u64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.revoked_table)
            .item("jti", s(session_key(sid)))
            .item("kind", s("session"))
            .item("expires_at", n(expires_at))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn access_state(&self, jti: &str, sid: &str, username: &str) -> Result<AccessState, StoreError> {
        let session = session_key(sid);
        let revoked_keys = KeysAndAttributes::builder()
            .keys(HashMap::from([("jti".to_string(), s(jti))]))
            .keys(HashMap::from([("jti".to_string(), s(&session))]))
            .projection_expression("jti")
            .consistent_read(true)
            .build()
            .map_err(build_err)?;
        let user_keys = KeysAndAttributes::builder()
            .keys(HashMap::from([("username".to_string(), s(username))]))
            .projection_expression("#id, #roles, #after, #dis")
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#roles", "roles")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_names("#dis", "disabled")
            .consistent_read(true)
            .build()
            .map_err(build_err)?;

        let found = self
            .batch_get(HashMap::from([
                (self.revoked_table.clone(), revoked_keys),
                (self.users_table.clone(), user_keys),
            ]))
            .await?;
        let found_revoked: Vec<String> =
            found.get(&self.revoked_table).into_iter().flatten().filter_map(|item| get_s(item, "jti")).collect();
        let user = found.get(&self.users_table).and_then(|items| items.first()).map(|item| UserAccess {
            user_id: get_s(item, "user_id").unwrap_or_default(),
            roles: get_roles(item),
            sessions_valid_after_ms: seconds_attr_to_ms(item, "sessions_valid_after"),
            disabled: is_disabled(item),
        });
        Ok(AccessState {
            token_revoked: found_revoked.iter().any(|k| k == jti),
            session_revoked: found_revoked.contains(&session),
            user,
        })
    }

    async fn spend_refresh_token(&self, jti: &str, expires_at: u64, spender: &str) -> Result<SpendOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.revoked_table)
            .item("jti", s(jti))
            .item("kind", s("spent"))
            .item("expires_at", n(expires_at))
            .item("spender", s(spender))
            .condition_expression("attribute_not_exists(jti)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(SpendOutcome::Spent),
            Err(e) => match failed_condition(&e) {
                // Spent by this very request: an attempt the SDK retried after DynamoDB had
                // applied it. Anything else already there means reuse.
                Some(Some(item)) if get_s(&item, "spender").as_deref() == Some(spender) => Ok(SpendOutcome::Spent),
                Some(_) => Ok(SpendOutcome::AlreadySpent),
                None => Err(classify(e)),
            },
        }
    }
}
