//! The revocations aggregate on the revoked tokens table: spent refresh token ids (with
//! their spend) and `session#<sid>` items.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure};

use super::errors::{build_err, classify, failed_condition};
use super::item::{Item, get_roles, get_s, get_u64, is_disabled, is_true, n, s, seconds_attr_to_ms};
use super::{DynamoStore, session_key};
use crate::store::{AccessState, RevocationStore, Spend, SpendOutcome, StoreError, Successor, UserAccess};

/// A spent marker's item: the token id, its expiry and the spend (who, from where, when,
/// and the pair it was given; roles as a list, in the order the tokens carry them).
fn spent_item(jti: &str, expires_at: u64, spend: &Spend) -> Item {
    let next = &spend.successor;
    let roles = next.roles.iter().map(|r| s(r.as_str())).collect();
    HashMap::from([
        ("jti".to_string(), s(jti)),
        ("kind".to_string(), s("spent")),
        ("expires_at".to_string(), n(expires_at)),
        ("spender".to_string(), s(&spend.spender)),
        ("spent_by".to_string(), s(&spend.client)),
        ("spent_at_ms".to_string(), n(spend.at_ms)),
        ("next_access_jti".to_string(), s(&next.access_jti)),
        ("next_refresh_jti".to_string(), s(&next.refresh_jti)),
        ("next_iat".to_string(), n(next.iat)),
        ("next_access_exp".to_string(), n(next.access_exp)),
        ("next_refresh_exp".to_string(), n(next.refresh_exp)),
        ("next_roles".to_string(), AttributeValue::L(roles)),
    ])
}

/// The spend a marker records; `None` for one that records none (a marker written
/// before markers held their spend).
fn spend_from_item(item: &Item) -> Option<Spend> {
    let roles = match item.get("next_roles")? {
        AttributeValue::L(values) => values.iter().map(|v| v.as_s().ok().cloned()).collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    Some(Spend {
        spender: get_s(item, "spender")?,
        client: get_s(item, "spent_by")?,
        at_ms: get_u64(item, "spent_at_ms")?,
        successor: Successor {
            access_jti: get_s(item, "next_access_jti")?,
            refresh_jti: get_s(item, "next_refresh_jti")?,
            iat: get_u64(item, "next_iat")?,
            access_exp: get_u64(item, "next_access_exp")?,
            refresh_exp: get_u64(item, "next_refresh_exp")?,
            roles,
        },
    })
}

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

    async fn access_state(&self, sid: &str, username: &str) -> Result<AccessState, StoreError> {
        let session = session_key(sid);
        let revoked_keys = KeysAndAttributes::builder()
            .keys(HashMap::from([("jti".to_string(), s(&session))]))
            .projection_expression("jti")
            .consistent_read(true)
            .build()
            .map_err(build_err)?;
        let user_keys = KeysAndAttributes::builder()
            .keys(HashMap::from([("username".to_string(), s(username))]))
            .projection_expression("#id, #roles, #after, #dis, #email, #verified")
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#roles", "roles")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_names("#dis", "disabled")
            .expression_attribute_names("#email", "email")
            .expression_attribute_names("#verified", "email_verified")
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
            email: get_s(item, "email"),
            email_verified: is_true(item, "email_verified"),
        });
        Ok(AccessState { session_revoked: found_revoked.contains(&session), user })
    }

    async fn spend_refresh_token(&self, jti: &str, expires_at: u64, spend: &Spend) -> Result<SpendOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.revoked_table)
            .set_item(Some(spent_item(jti, expires_at, spend)))
            .condition_expression("attribute_not_exists(jti)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(SpendOutcome::Spent),
            Err(e) => match failed_condition(&e) {
                // Spent by this very request: an attempt the SDK retried after DynamoDB had
                // applied it. Anything else already there means reuse.
                Some(Some(item)) if get_s(&item, "spender").as_deref() == Some(spend.spender.as_str()) => {
                    Ok(SpendOutcome::Spent)
                }
                Some(item) => Ok(SpendOutcome::AlreadySpent(item.as_ref().and_then(spend_from_item))),
                None => Err(classify(e)),
            },
        }
    }
}
