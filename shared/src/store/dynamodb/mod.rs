//! The DynamoDB implementation of [`Store`](super::Store): this file holds the client, the
//! table names, the key layout and the retry policy; `item.rs` the attribute-value
//! conversions, `errors.rs` the classification of SDK errors, and one file per aggregate
//! its `impl XStore for DynamoStore` (`users.rs`, `throttle.rs`, `revocations.rs`,
//! `sessions.rs`).
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

mod errors;
mod factors;
mod item;
mod one_time;
mod outbox;
mod revocations;
mod sessions;
mod throttle;
mod users;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, KeysAndAttributes, TransactWriteItem};

use self::errors::classify;
use self::item::Item;
use super::{StoreError, ThrottleKey};

/// Unprocessed keys/items of a batch call are retried this many times before the call
/// fails closed as unavailable.
const BATCH_RETRIES: usize = 3;

const SESSION_PREFIX: &str = "session#";
const USER_ID_PREFIX: &str = "id#";
const LOGIN_FAILURES_PREFIX: &str = "login#";
const EMAIL_PREFIX: &str = "email#";
const MAIL_ALLOWANCE_PREFIX: &str = "mail#";
const FACTOR_PREFIX: &str = "mfa#";
/// Registrations that lost a transaction conflict (a concurrent transaction on the same
/// name) are tried again this many times before the store reports itself unavailable.
const CONFLICT_RETRIES: u32 = 3;

fn session_key(sid: &str) -> String {
    format!("{SESSION_PREFIX}{sid}")
}

fn user_id_key(user_id: &str) -> String {
    format!("{USER_ID_PREFIX}{user_id}")
}

/// The item that counts the mails of one kind sent for one user (`key`), with TTL.
fn mail_allowance_key(key: &str) -> String {
    format!("{MAIL_ALLOWANCE_PREFIX}{key}")
}

/// The item of a user's second factor.
fn factor_key(user_id: &str) -> String {
    format!("{FACTOR_PREFIX}{user_id}")
}

/// The item that claims a verified address for one user.
fn email_key(address: &str) -> String {
    format!("{EMAIL_PREFIX}{address}")
}

fn throttle_key(key: &ThrottleKey) -> String {
    match key {
        ThrottleKey::Name { username } => format!("{LOGIN_FAILURES_PREFIX}{username}"),
        ThrottleKey::Client { username, client } => format!("{LOGIN_FAILURES_PREFIX}{username}#{client}"),
    }
}

/// How a transaction ended (`DynamoStore::transact`).
enum Transacted {
    Applied,
    /// A condition did not hold: nothing was written. The cancellation reasons, one per
    /// item in the transaction's order.
    Refused(Vec<CancellationReason>),
}

/// The condition of the transaction's item `i` did not hold.
fn refused_at(reasons: &[CancellationReason], i: usize) -> bool {
    reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
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
    /// The mail tables: `None` where mail is not configured (a write to them is a fault).
    tokens_table: Option<String>,
    outbox_table: Option<String>,
}

impl DynamoStore {
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
            tokens_table: None,
            outbox_table: None,
        }
    }

    /// A store of the outbox alone (the mailer): every other aggregate's call is a fault.
    pub fn for_outbox(client: Client, outbox_table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            users_table: String::new(),
            revoked_table: String::new(),
            sessions_table: String::new(),
            tokens_table: None,
            outbox_table: Some(outbox_table.into()),
        }
    }

    /// The one-time tokens and outbox tables (email verification, password reset, mail).
    pub fn with_mail_tables(mut self, tokens_table: impl Into<String>, outbox_table: impl Into<String>) -> Self {
        self.tokens_table = Some(tokens_table.into());
        self.outbox_table = Some(outbox_table.into());
        self
    }

    /// The one-time tokens table alone (a multi-factor login's `mfa_token`, without mail).
    pub fn with_tokens_table(mut self, tokens_table: impl Into<String>) -> Self {
        self.tokens_table = Some(tokens_table.into());
        self
    }

    /// Runs one transaction, trying again with back-off while it loses to concurrent
    /// transactions on its items (once those are done, its conditions give the real
    /// answer). Each attempt has a client request token, which makes the SDK's own retry
    /// of an attempt DynamoDB had applied (its answer lost) a no-op. Conflicts past the
    /// retries are `Unavailable` (`what` says whose).
    async fn transact(&self, items: Vec<TransactWriteItem>, what: &str) -> Result<Transacted, StoreError> {
        for attempt in 0..=CONFLICT_RETRIES {
            let result = self
                .client
                .transact_write_items()
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(Transacted::Applied),
                Err(e) => e,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = e.as_service_error() else {
                return Err(classify(e));
            };
            let reasons = tc.cancellation_reasons();
            if (0..reasons.len()).any(|i| refused_at(reasons, i)) {
                return Ok(Transacted::Refused(reasons.to_vec()));
            }
            if !reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
                return Err(classify(e));
            }
            if attempt < CONFLICT_RETRIES {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Err(StoreError::Unavailable(format!("{what} kept conflicting with concurrent transactions")))
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
