//! The DynamoDB implementation of [`Store`].
//!
//! Users table: partition key `username`. Besides one item per user it holds one id
//! item per user, keyed `id#<user_id>`, so a refresh token (which carries only `sub`) can
//! find its user with a strongly consistent read; `#` cannot occur in a username, so the
//! two kinds of key never collide; nor do the failed-login counters of the throttle,
//! `login#<username>` (the name across all clients) and `login#<username>#<client>`, which
//! expire through the users table's TTL on `expires_at` (user items never carry that
//! attribute). Revoked tokens table: partition key `jti`, holding
//! token ids, spent refresh token ids, and `session#<sid>` items; `expires_at` is its TTL
//! attribute. Sessions table (`sessions.rs`): partition key `user_id`, sort key
//! `session_id` (UUIDv7, so newest sorts last), for listing only; `expires_at` is its TTL
//! attribute. Nothing here relies on TTL deletion having happened.

mod sessions;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::{
    AccessState, CreateOutcome, FailedLogins, ListedSession, LoginState, NameAttempt, PasswordChange, SessionRecord,
    SpendOutcome, Store, StoreError, Swapped, ThrottleKey, UserAccess, UserRecord,
};

type Item = HashMap<String, AttributeValue>;

/// Unprocessed keys/items of a batch call are retried this many times before the call
/// fails closed as unavailable.
const BATCH_RETRIES: usize = 3;

const SESSION_PREFIX: &str = "session#";
const USER_ID_PREFIX: &str = "id#";
const LOGIN_FAILURES_PREFIX: &str = "login#";
/// Registrations that lost a transaction conflict (a concurrent transaction on the same
/// name) are tried again this many times before the store reports itself unavailable.
const CONFLICT_RETRIES: u32 = 3;
/// Counting a failure races only with other counts and with a stale record's reset.
const COUNT_RETRIES: usize = 3;

fn session_key(sid: &str) -> String {
    format!("{SESSION_PREFIX}{sid}")
}

fn user_id_key(user_id: &str) -> String {
    format!("{USER_ID_PREFIX}{user_id}")
}

fn throttle_key(key: &ThrottleKey) -> String {
    match key {
        ThrottleKey::Name { username } => format!("{LOGIN_FAILURES_PREFIX}{username}"),
        ThrottleKey::Client { username, client } => format!("{LOGIN_FAILURES_PREFIX}{username}#{client}"),
    }
}

fn failures_from_item(item: &Item) -> FailedLogins {
    FailedLogins {
        count: get_u64(item, "failures").unwrap_or(0).try_into().unwrap_or(u32::MAX),
        locked_until_ms: get_u64(item, "locked_until_ms"),
        expires_at: get_u64(item, "expires_at").unwrap_or(0),
        version: get_s(item, "write_id").unwrap_or_default(),
    }
}

/// A conditional write whose condition did not hold: an answer, not a fault.
fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

/// The operations whose failed condition can return the item as it is
/// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`).
trait ConditionFailure {
    fn condition_failure(&self) -> Option<&ConditionalCheckFailedException>;
}

impl ConditionFailure for PutItemError {
    fn condition_failure(&self) -> Option<&ConditionalCheckFailedException> {
        match self {
            PutItemError::ConditionalCheckFailedException(e) => Some(e),
            _ => None,
        }
    }
}

impl ConditionFailure for UpdateItemError {
    fn condition_failure(&self) -> Option<&ConditionalCheckFailedException> {
        match self {
            UpdateItemError::ConditionalCheckFailedException(e) => Some(e),
            _ => None,
        }
    }
}

/// `Some(item as stored)` when the write's condition did not hold (`Some(None)`: no item);
/// `None` for any other error.
fn failed_condition<E: ConditionFailure, R>(e: &SdkError<E, R>) -> Option<Option<Item>> {
    e.as_service_error().and_then(ConditionFailure::condition_failure).map(|c| c.item().cloned())
}

/// A unit of the retry back-off with some jitter, so that conflicting writers spread out.
fn backoff(attempt: u32) -> std::time::Duration {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 16);
    std::time::Duration::from_millis((20u64 << attempt.min(4)) + jitter)
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    users_table: String,
    revoked_table: String,
    sessions_table: String,
}

/// The condition under which `write_failures` replaces a failed-login record.
enum OnlyIf<'a> {
    Absent,
    /// The record is the one written by the write of this id.
    Version(&'a str),
    /// No record, or one expired at this instant (TTL has not deleted it yet).
    AbsentOrExpired {
        now_ms: u64,
    },
}

impl DynamoStore {
    /// Stores a failed-login record whole (with an update: login may only update and
    /// delete its own records) if `only_if` holds: `None` when written, else the item as
    /// it is (`Some(None)`: no item).
    async fn write_failures(
        &self,
        key: &str,
        record: &FailedLogins,
        only_if: OnlyIf<'_>,
    ) -> Result<Option<Option<Item>>, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(key))
            .expression_attribute_names("#f", "failures")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_names("#w", "write_id")
            .expression_attribute_names("#lock", "locked_until_ms")
            .expression_attribute_values(":f", n(record.count))
            .expression_attribute_values(":exp", n(record.expires_at))
            .expression_attribute_values(":w", s(&record.version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match record.locked_until_ms {
            Some(until) => update
                .update_expression("SET #f = :f, #exp = :exp, #w = :w, #lock = :lock")
                .expression_attribute_values(":lock", n(until)),
            None => update.update_expression("SET #f = :f, #exp = :exp, #w = :w REMOVE #lock"),
        };
        update = match only_if {
            OnlyIf::Absent => update.condition_expression("attribute_not_exists(username)"),
            OnlyIf::Version(version) => {
                update.condition_expression("#w = :seen").expression_attribute_values(":seen", s(version))
            }
            OnlyIf::AbsentOrExpired { now_ms } => update
                .condition_expression("attribute_not_exists(username) OR #exp <= :now")
                .expression_attribute_values(":now", n(now_ms / 1000)),
        };
        match update.send().await {
            Ok(_) => Ok(None),
            Err(e) => failed_condition(&e).map(Some).ok_or_else(|| classify(e)),
        }
    }

    pub fn new(
        client: Client,
        users_table: impl Into<String>,
        revoked_table: impl Into<String>,
        sessions_table: impl Into<String>,
    ) -> Self {
        DynamoStore {
            client,
            users_table: users_table.into(),
            revoked_table: revoked_table.into(),
            sessions_table: sessions_table.into(),
        }
    }

    /// One `BatchGetItem` (plus retries of unprocessed keys): the items found, by table.
    /// Keys still unprocessed after the retries fail closed: not knowing is not "absent".
    async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for attempt in 0..=BATCH_RETRIES {
            if request.is_empty() {
                return Ok(found);
            }
            if attempt > 0 {
                // Unprocessed keys mean throttling: back off before asking again.
                tokio::time::sleep(backoff(attempt as u32 - 1)).await;
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
        disabled: is_disabled(item),
    })
}

fn is_disabled(item: &Item) -> bool {
    item.get("disabled").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false)
}

/// A string set, or `None` for the empty set (DynamoDB stores no empty sets).
fn string_set(values: &[String]) -> Option<AttributeValue> {
    (!values.is_empty()).then(|| AttributeValue::Ss(values.to_vec()))
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
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(build_err)
        };
        let (item, id_item) = (put(item)?, put(id_item)?);
        for attempt in 0..=CONFLICT_RETRIES {
            // The token makes an SDK retry of an applied transaction a no-op on DynamoDB;
            // the user id (fresh per registration) tells our own write apart elsewhere.
            let result = self
                .client
                .transact_write_items()
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .transact_items(item.clone())
                .transact_items(id_item.clone())
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(e) => e,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = e.as_service_error() else {
                return Err(classify(e));
            };
            let reasons = tc.cancellation_reasons();
            if let Some(user_reason) = reasons.first().filter(|r| r.code() == Some("ConditionalCheckFailed")) {
                // Taken, unless what holds the name is this very registration: an attempt
                // the SDK retried after DynamoDB had applied it (the answer was lost).
                let holder = user_reason.item().and_then(|i| get_s(i, "user_id"));
                return Ok(if holder.as_deref() == Some(&user.user_id) {
                    CreateOutcome::Created
                } else {
                    CreateOutcome::UsernameTaken
                });
            }
            if !reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
                return Err(classify(e));
            }
            // Another transaction held one of the items (a concurrent registration of
            // the name): once it is done, the condition gives the real answer.
            if attempt < CONFLICT_RETRIES {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Err(StoreError::Unavailable("registration kept conflicting with concurrent transactions".into()))
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

    async fn login_state(&self, username: &str, client: &str) -> Result<LoginState, StoreError> {
        let client_key = throttle_key(&ThrottleKey::Client { username: username.into(), client: client.into() });
        let name_key = throttle_key(&ThrottleKey::Name { username: username.into() });
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for key in [username, &client_key, &name_key] {
            keys = keys.keys(HashMap::from([("username".to_string(), s(key))]));
        }
        let found =
            self.batch_get(HashMap::from([(self.users_table.clone(), keys.build().map_err(build_err)?)])).await?;
        let mut state = LoginState::default();
        for item in found.get(&self.users_table).into_iter().flatten() {
            match get_s(item, "username") {
                Some(key) if key == client_key => state.client_failures = Some(failures_from_item(item)),
                Some(key) if key == name_key => state.name_failures = Some(failures_from_item(item)),
                Some(key) if key == username => state.user = Some(user_from_item(item)?),
                _ => {}
            }
        }
        Ok(state)
    }

    async fn swap_login_failures(
        &self,
        key: &ThrottleKey,
        seen: Option<&str>,
        next: &FailedLogins,
    ) -> Result<Swapped, StoreError> {
        let only_if = match seen {
            Some(version) => OnlyIf::Version(version),
            None => OnlyIf::Absent,
        };
        Ok(match self.write_failures(&throttle_key(key), next, only_if).await? {
            None => Swapped::Done,
            Some(Some(item)) if get_s(&item, "write_id").as_deref() == Some(&next.version) => Swapped::Done,
            Some(item) => Swapped::Changed(item.as_ref().map(failures_from_item)),
        })
    }

    async fn reserve_name_attempt(
        &self,
        key: &ThrottleKey,
        fresh: &FailedLogins,
        max: u32,
        now_ms: u64,
        attempt: &str,
    ) -> Result<NameAttempt, StoreError> {
        let key = throttle_key(key);
        let mine = |item: &Item| get_s(item, "write_id").as_deref() == Some(attempt);
        let granted = |item: &Item| NameAttempt::Granted { expires_at: get_u64(item, "expires_at").unwrap_or(0) };
        for _ in 0..COUNT_RETRIES {
            let counted = self
                .client
                .update_item()
                .table_name(&self.users_table)
                .key("username", s(&key))
                .update_expression("ADD #f :one SET #w = :w")
                // A stale record (TTL lags) is not counted on: it starts afresh below.
                .condition_expression("attribute_exists(username) AND #exp > :now AND #w <> :w AND #f < :max")
                .expression_attribute_names("#f", "failures")
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_names("#w", "write_id")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":w", s(attempt))
                .expression_attribute_values(":now", n(now_ms / 1000))
                .expression_attribute_values(":max", n(max))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match counted {
                Ok(out) => return Ok(out.attributes().map(granted).unwrap_or(NameAttempt::Granted { expires_at: 0 })),
                Err(e) => match failed_condition(&e) {
                    // Our own attempt, applied by a try whose answer was lost.
                    Some(Some(item)) if mine(&item) => return Ok(granted(&item)),
                    Some(Some(item)) if get_u64(&item, "expires_at").unwrap_or(0) * 1000 > now_ms => {
                        let until_ms = get_u64(&item, "expires_at").unwrap_or(0) * 1000;
                        return Ok(NameAttempt::Full { until_ms });
                    }
                    Some(_) => {}
                    None => return Err(classify(e)),
                },
            }
            // No record, or a stale one: start a new window, unless someone just did.
            let fresh = FailedLogins { version: attempt.to_string(), ..fresh.clone() };
            match self.write_failures(&key, &fresh, OnlyIf::AbsentOrExpired { now_ms }).await? {
                None => return Ok(NameAttempt::Granted { expires_at: fresh.expires_at }),
                Some(Some(item)) if mine(&item) => return Ok(granted(&item)),
                Some(_) => {}
            }
        }
        Err(StoreError::Unavailable("failed-login count kept conflicting".into()))
    }

    async fn release_name_attempt(&self, key: &ThrottleKey, window_expires_at: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(throttle_key(key)))
            .update_expression("ADD #f :minus")
            .condition_expression("#exp = :exp AND #f > :zero")
            .expression_attribute_names("#f", "failures")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":exp", n(window_expires_at))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            // Another window by now, or nothing to give back: nothing to do.
            Err(e) if is_condition_failure(&e) => Ok(()),
            other => other.map(|_| ()).map_err(classify),
        }
    }

    async fn clear_login_failures(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.users_table)
            .key("username", s(throttle_key(key)))
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

    async fn replace_roles(&self, username: &str, old: &[String], new: &[String]) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .expression_attribute_names("#roles", "roles");
        update = match string_set(new) {
            Some(set) => update.update_expression("SET #roles = :new").expression_attribute_values(":new", set),
            None => update.update_expression("REMOVE #roles"),
        };
        update = match string_set(old) {
            Some(set) => update
                .condition_expression("attribute_exists(username) AND #roles = :old")
                .expression_attribute_values(":old", set),
            None => update.condition_expression("attribute_exists(username) AND attribute_not_exists(#roles)"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn set_disabled(&self, username: &str, disabled: bool, at_ms: u64) -> Result<bool, StoreError> {
        let update = || {
            self.client
                .update_item()
                .table_name(&self.users_table)
                .key("username", s(username))
                .expression_attribute_names("#dis", "disabled")
        };
        let outcome = |result: Result<_, SdkError<UpdateItemError, _>>| match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        };
        if !disabled {
            let enable = update().update_expression("REMOVE #dis").condition_expression("attribute_exists(username)");
            return outcome(enable.send().await);
        }
        // Disabled and every session cut off, in one write...
        let with_cutoff = update()
            .update_expression("SET #dis = :true, #after = :t")
            .condition_expression("attribute_exists(username) AND (attribute_not_exists(#after) OR #after < :t)")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":t", ms_to_seconds_attr(at_ms));
        if outcome(with_cutoff.send().await)? {
            return Ok(true);
        }
        // ...unless a later cutoff is already there (or there is no such user).
        let alone = update()
            .update_expression("SET #dis = :true")
            .condition_expression("attribute_exists(username)")
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        outcome(alone.send().await)
    }

    async fn record_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.put_session(session).await
    }

    async fn touch_session(
        &self,
        user_id: &str,
        session_id: &str,
        last_used_at: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.update_session(user_id, session_id, last_used_at, expires_at).await
    }

    async fn list_sessions(&self, user_id: &str) -> Result<Vec<ListedSession>, StoreError> {
        self.query_sessions(user_id).await
    }

    async fn session(&self, user_id: &str, session_id: &str) -> Result<Option<ListedSession>, StoreError> {
        self.read_session(user_id, session_id).await
    }

    async fn forget_session(&self, user_id: &str, session_id: &str) -> Result<(), StoreError> {
        self.delete_session(user_id, session_id).await
    }

    async fn forget_sessions(&self, user_id: &str) -> Result<(), StoreError> {
        self.delete_all_sessions(user_id).await
    }

    async fn change_password(
        &self,
        username: &str,
        user_id: &str,
        old_hash: &str,
        new_hash: &str,
        cutoff_ms: u64,
    ) -> Result<PasswordChange, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .update_expression("SET #hash = :new, #after = :t")
            .condition_expression(
                "#id = :id AND #hash = :old AND attribute_not_exists(#dis) \
                 AND (attribute_not_exists(#after) OR #after < :t)",
            )
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#hash", "password_hash")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_names("#dis", "disabled")
            .expression_attribute_values(":id", s(user_id))
            .expression_attribute_values(":old", s(old_hash))
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":t", ms_to_seconds_attr(cutoff_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PasswordChange::Changed),
            Err(e) if is_condition_failure(&e) => {
                // A salted hash is unique to this change: finding it stored means this very
                // write was applied by an attempt whose answer was lost (the SDK retried).
                let stored = self.get_user(username).await?;
                Ok(match stored {
                    Some(u) if u.user_id == user_id && u.password_hash == new_hash => PasswordChange::Changed,
                    _ => PasswordChange::Conflict,
                })
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn delete_user(
        &self,
        username: &str,
        user_id: &str,
        password_hash: &str,
        counters: &[ThrottleKey],
    ) -> Result<bool, StoreError> {
        let delete = |key: String| {
            aws_sdk_dynamodb::types::Delete::builder().table_name(&self.users_table).key("username", s(key))
        };
        let user = delete(username.to_string())
            .condition_expression("#id = :id AND #hash = :hash AND attribute_not_exists(#dis)")
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#hash", "password_hash")
            .expression_attribute_names("#dis", "disabled")
            .expression_attribute_values(":id", s(user_id))
            .expression_attribute_values(":hash", s(password_hash));
        let mut items = vec![user, delete(user_id_key(user_id))];
        items.extend(counters.iter().map(|key| delete(throttle_key(key))));
        let items = items
            .into_iter()
            .map(|d| d.build().map(|d| TransactWriteItem::builder().delete(d).build()).map_err(build_err))
            .collect::<Result<Vec<_>, _>>()?;
        for attempt in 0..=CONFLICT_RETRIES {
            // The token makes an SDK retry of an applied transaction a no-op on DynamoDB.
            let result = self
                .client
                .transact_write_items()
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = e.as_service_error() else {
                return Err(classify(e));
            };
            let reasons = tc.cancellation_reasons();
            if reasons.first().is_some_and(|r| r.code() == Some("ConditionalCheckFailed")) {
                return Ok(false);
            }
            if !reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
                return Err(classify(e));
            }
            if attempt < CONFLICT_RETRIES {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Err(StoreError::Unavailable("deletion kept conflicting with concurrent transactions".into()))
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
