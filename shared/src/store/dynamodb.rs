//! The DynamoDB implementation of [`Store`].
//!
//! Users table: partition key `username`. Besides one item per user it holds one id
//! item per user, keyed `id#<user_id>`, so a refresh token (which carries only `sub`) can
//! find its user with a strongly consistent read; `#` cannot occur in a username, so the
//! two kinds of key never collide; nor do the `login#<username>` items of the failed-login
//! throttle, which expire through the users table's TTL on `expires_at` (user items never
//! carry that attribute). Revoked tokens table: partition key `jti`, holding
//! token ids, spent refresh token ids, and `session#<sid>` items; `expires_at` is its TTL
//! attribute. Nothing here relies on TTL deletion having happened.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, WriteRequest,
};

use super::{
    AccessState, CreateOutcome, FailedLogins, LoginState, Revocation, SpendOutcome, Store, StoreError, UserAccess,
    UserRecord,
};

type Item = HashMap<String, AttributeValue>;

/// Unprocessed keys/items of a batch call are retried this many times before the call
/// fails closed as unavailable.
const BATCH_RETRIES: usize = 3;

const SESSION_PREFIX: &str = "session#";
const USER_ID_PREFIX: &str = "id#";
const LOGIN_FAILURES_PREFIX: &str = "login#";

fn session_key(sid: &str) -> String {
    format!("{SESSION_PREFIX}{sid}")
}

fn user_id_key(user_id: &str) -> String {
    format!("{USER_ID_PREFIX}{user_id}")
}

fn login_failures_key(username: &str) -> String {
    format!("{LOGIN_FAILURES_PREFIX}{username}")
}

/// A failure record past its expiry counts as none: TTL deletion may lag by days.
fn failures_from_item(item: &Item, now_ms: u64) -> FailedLogins {
    let expires_at = get_u64(item, "expires_at").unwrap_or(0);
    if expires_at.saturating_mul(1000) <= now_ms {
        return FailedLogins::default();
    }
    FailedLogins {
        count: get_u64(item, "failures").unwrap_or(0).try_into().unwrap_or(u32::MAX),
        locked_until_ms: get_u64(item, "locked_until_ms"),
    }
}

/// A conditional write whose condition did not hold: an answer, not a fault.
fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    users_table: String,
    revoked_table: String,
}

impl DynamoStore {
    pub fn new(client: Client, users_table: impl Into<String>, revoked_table: impl Into<String>) -> Self {
        DynamoStore { client, users_table: users_table.into(), revoked_table: revoked_table.into() }
    }

    /// One `BatchGetItem` (plus retries of unprocessed keys): the items found, by table.
    /// Keys still unprocessed after the retries fail closed: not knowing is not "absent".
    async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for _ in 0..=BATCH_RETRIES {
            if request.is_empty() {
                return Ok(found);
            }
            let out = self.client.batch_get_item().set_request_items(Some(request)).send().await.map_err(classify)?;
            for (table, items) in out.responses.unwrap_or_default() {
                found.entry(table).or_default().extend(items);
            }
            request = out.unprocessed_keys.unwrap_or_default();
        }
        if request.is_empty() { Ok(found) } else { Err(StoreError::Unavailable("keys left unprocessed".into())) }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

fn get_u64(item: &Item, key: &str) -> Option<u64> {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// `sessions_valid_after` is stored as epoch seconds with millisecond precision
/// ("1763800000.123"), so a login in the same second as a "log out everywhere" survives.
fn ms_to_seconds_attr(ms: u64) -> AttributeValue {
    AttributeValue::N(format!("{}.{:03}", ms / 1000, ms % 1000))
}

fn seconds_attr_to_ms(item: &Item, key: &str) -> Option<u64> {
    let raw = item.get(key)?.as_n().ok()?;
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let frac_ms: u64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    Some(whole.parse::<u64>().ok()? * 1000 + frac_ms)
}

fn get_roles(item: &Item) -> Vec<String> {
    let mut roles = item.get("roles").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
    roles.sort();
    roles
}

/// Sorts SDK failures into "retry later" and "deployment fault". Only the error's
/// code and context are kept: requests never contain secrets other than hashes, and
/// the SDK does not echo request bodies in errors.
fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(detail)
        }
        SdkError::ServiceError(se) => match se.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException",
            ) => StoreError::Unavailable(detail),
            _ => StoreError::Internal(detail),
        },
        _ => StoreError::Internal(detail),
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("request build: {e}"))
}

fn user_from_item(item: &Item) -> Result<UserRecord, StoreError> {
    let field = |k: &str| get_s(item, k).ok_or_else(|| StoreError::Internal(format!("user item lacks {k}")));
    Ok(UserRecord {
        user_id: field("user_id")?,
        username: field("username")?,
        password_hash: field("password_hash")?,
        roles: get_roles(item),
        email: get_s(item, "email"),
        created_at: get_u64(item, "created_at").unwrap_or(0),
        sessions_valid_after_ms: seconds_attr_to_ms(item, "sessions_valid_after"),
    })
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_user(&self, user: &UserRecord) -> Result<CreateOutcome, StoreError> {
        let mut item: Item = HashMap::from([
            ("username".into(), s(&user.username)),
            ("user_id".into(), s(&user.user_id)),
            ("password_hash".into(), s(&user.password_hash)),
            ("created_at".into(), n(user.created_at)),
        ]);
        if !user.roles.is_empty() {
            item.insert("roles".into(), AttributeValue::Ss(user.roles.clone()));
        }
        if let Some(email) = &user.email {
            item.insert("email".into(), s(email));
        }
        let id_item: Item =
            HashMap::from([("username".into(), s(user_id_key(&user.user_id))), ("alias_of".into(), s(&user.username))]);
        // Both items or neither; the condition on the user item is what makes a
        // username unique, atomically, with no read beforehand.
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.users_table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(username)")
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(build_err)
        };
        let result =
            self.client.transact_write_items().transact_items(put(item)?).transact_items(put(id_item)?).send().await;
        match result {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(e) => {
                let taken = e
                    .as_service_error()
                    .filter(|se| se.is_transaction_canceled_exception())
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tc) => {
                            tc.cancellation_reasons().first().and_then(|r| r.code()).map(|c| c == "ConditionalCheckFailed")
                        }
                        _ => None,
                    })
                    .unwrap_or(false);
                if taken { Ok(CreateOutcome::UsernameTaken) } else { Err(classify(e)) }
            }
        }
    }

    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item().map(user_from_item).transpose()
    }

    async fn login_state(&self, username: &str, now_ms: u64) -> Result<LoginState, StoreError> {
        let failures_key = login_failures_key(username);
        let keys = KeysAndAttributes::builder()
            .keys(HashMap::from([("username".to_string(), s(username))]))
            .keys(HashMap::from([("username".to_string(), s(&failures_key))]))
            .consistent_read(true)
            .build()
            .map_err(build_err)?;
        let found = self.batch_get(HashMap::from([(self.users_table.clone(), keys)])).await?;
        let mut state = LoginState::default();
        for item in found.get(&self.users_table).into_iter().flatten() {
            match get_s(item, "username") {
                Some(key) if key == failures_key => state.failures = failures_from_item(item, now_ms),
                Some(key) if key == username => state.user = Some(user_from_item(item)?),
                _ => {}
            }
        }
        Ok(state)
    }

    async fn record_login_failure(&self, username: &str, now_ms: u64, expires_at: u64) -> Result<u32, StoreError> {
        let key = login_failures_key(username);
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(&key))
            .update_expression("ADD failures :one SET expires_at = :exp")
            // A record past its expiry is stale (TTL lags): start counting afresh below.
            .condition_expression("attribute_not_exists(username) OR expires_at > :now")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now", n(now_ms / 1000))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .attributes()
                .and_then(|a| get_u64(a, "failures"))
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(u32::MAX)),
            Err(e) if is_condition_failure(&e) => {
                self.client
                    .put_item()
                    .table_name(&self.users_table)
                    .item("username", s(&key))
                    .item("failures", n(1))
                    .item("expires_at", n(expires_at))
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(1)
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn lock_logins(&self, username: &str, until_ms: u64, expires_at: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(login_failures_key(username)))
            .update_expression("SET locked_until_ms = :until, expires_at = :exp")
            .condition_expression("attribute_not_exists(locked_until_ms) OR locked_until_ms < :until")
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":exp", n(expires_at))
            .send()
            .await;
        match result {
            // A longer lock is already in place: keep it.
            Err(e) if is_condition_failure(&e) => Ok(()),
            other => other.map(|_| ()).map_err(classify),
        }
    }

    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.users_table)
            .key("username", s(login_failures_key(username)))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn username_for_id(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(user_id_key(user_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item().and_then(|item| get_s(item, "alias_of")))
    }

    async fn replace_password_hash(&self, username: &str, old_hash: &str, new_hash: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .update_expression("SET password_hash = :new")
            .condition_expression("password_hash = :old")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":old", s(old_hash))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Changed meanwhile: the newer hash wins, nothing to do.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn revoke(&self, revocations: &[Revocation]) -> Result<(), StoreError> {
        let mut pending = revocations
            .iter()
            .map(|r| {
                let (key, kind, expires_at) = match r {
                    Revocation::Token { jti, expires_at } => (jti.clone(), "token", *expires_at),
                    Revocation::Session { sid, expires_at } => (session_key(sid), "session", *expires_at),
                };
                let item = HashMap::from([
                    ("jti".into(), s(key)),
                    ("kind".into(), s(kind)),
                    ("expires_at".into(), n(expires_at)),
                ]);
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(build_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for _ in 0..=BATCH_RETRIES {
            if pending.is_empty() {
                return Ok(());
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.revoked_table, pending)
                .send()
                .await
                .map_err(classify)?;
            pending = out.unprocessed_items().and_then(|u| u.get(&self.revoked_table)).cloned().unwrap_or_default();
        }
        if pending.is_empty() { Ok(()) } else { Err(StoreError::Unavailable("revocations left unprocessed".into())) }
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
            .projection_expression("#id, #roles, #after")
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#roles", "roles")
            .expression_attribute_names("#after", "sessions_valid_after")
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
        });
        Ok(AccessState {
            token_revoked: found_revoked.iter().any(|k| k == jti),
            session_revoked: found_revoked.contains(&session),
            user,
        })
    }

    async fn spend_refresh_token(&self, jti: &str, expires_at: u64) -> Result<SpendOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.revoked_table)
            .item("jti", s(jti))
            .item("kind", s("spent"))
            .item("expires_at", n(expires_at))
            .condition_expression("attribute_not_exists(jti)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(SpendOutcome::Spent),
            Err(e) if is_condition_failure(&e) => Ok(SpendOutcome::AlreadySpent),
            Err(e) => Err(classify(e)),
        }
    }

    async fn revoke_sessions_before(&self, username: &str, at_ms: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .update_expression("SET #after = :t")
            .condition_expression("attribute_exists(username) AND (attribute_not_exists(#after) OR #after < :t)")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_values(":t", ms_to_seconds_attr(at_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already later (a concurrent "log out everywhere"), or no such user: done.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_after_keeps_milliseconds_through_the_number_format() {
        for ms in [0u64, 1, 999, 1000, 1_763_800_000_123, 1_763_800_000_100, 1_763_800_000_000] {
            let item = HashMap::from([("t".to_string(), ms_to_seconds_attr(ms))]);
            assert_eq!(seconds_attr_to_ms(&item, "t"), Some(ms), "{ms}");
        }
        // DynamoDB normalizes numbers ("…0.100" comes back as "…0.1").
        let item = HashMap::from([("t".to_string(), AttributeValue::N("1763800000.1".into()))]);
        assert_eq!(seconds_attr_to_ms(&item, "t"), Some(1_763_800_000_100));
        let item = HashMap::from([("t".to_string(), AttributeValue::N("1763800000".into()))]);
        assert_eq!(seconds_attr_to_ms(&item, "t"), Some(1_763_800_000_000));
    }
}
