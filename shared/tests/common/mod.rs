//! Test support for the storage and use-case tests. They run against a real DynamoDB API
//! (the moto server `make test` starts, or any endpoint in AWS_ENDPOINT_URL_DYNAMODB),
//! never an in-memory stand-in; without one they skip (see [`env`]).
#![allow(dead_code)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use jsonwebtoken::Algorithm;
use shared::Auth;
use shared::config::{Argon2Config, TokenConfig};
use shared::password::PasswordHasher;
use shared::store::DynamoStore;
use shared::tokens::TokenService;

pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";

/// Why a test that needs DynamoDB did not run (or, under `REQUIRE_DYNAMODB`, failed).
pub const NO_DYNAMODB: &str =
    "no DynamoDB API (AWS_ENDPOINT_URL_DYNAMODB unset); `make test` starts one and runs these";

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: these tests need a DynamoDB API with the project's tables; run them with `make test`")
    })
}

fn is_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// `REQUIRE_DYNAMODB` set to anything but empty or `0` (`make test` sets it to 1).
fn dynamodb_required() -> bool {
    std::env::var_os("REQUIRE_DYNAMODB").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Says once per test binary that its DynamoDB tests were skipped, straight to the
/// process's stderr: the test harness captures `eprintln!` of passing tests.
fn note_skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped: {NO_DYNAMODB}");
    });
}

pub struct Env {
    pub client: aws_sdk_dynamodb::Client,
    pub users_table: String,
    pub revoked_table: String,
    pub sessions_table: String,
}

/// The DynamoDB API and tables to test against. `None` when AWS_ENDPOINT_URL_DYNAMODB is
/// unset: the test returns at once (`let Some(env) = common::env().await else { return };`)
/// and the binary says so on stderr, so that a bare `cargo test` runs everything else.
/// With `REQUIRE_DYNAMODB` set (as `make test` does) a missing endpoint panics instead: CI
/// never skips silently. An endpoint without its tables' variables panics either way.
pub async fn env() -> Option<Env> {
    if !is_set("AWS_ENDPOINT_URL_DYNAMODB") {
        assert!(!dynamodb_required(), "{NO_DYNAMODB} (REQUIRE_DYNAMODB is set: not skipping)");
        note_skipped();
        return None;
    }
    let config = shared::aws::load_sdk_config().await.expect("SDK configuration");
    Some(Env {
        client: shared::aws::dynamodb_client(&config),
        users_table: required("USERS_TABLE"),
        revoked_table: required("REVOKED_TOKENS_TABLE"),
        sessions_table: required("SESSIONS_TABLE"),
    })
}

impl Env {
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.client.clone(), &self.users_table, &self.revoked_table, &self.sessions_table)
    }

    /// The same tables behind an endpoint nothing listens on: connections are refused,
    /// retried, and fail as an outage would.
    pub async fn unreachable_store(&self) -> DynamoStore {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let base = shared::aws::load_sdk_config().await.expect("SDK configuration");
        let conf =
            aws_sdk_dynamodb::config::Builder::from(&base).endpoint_url(format!("http://127.0.0.1:{port}")).build();
        DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(conf),
            &self.users_table,
            &self.revoked_table,
            &self.sessions_table,
        )
    }

    pub fn auth(&self) -> Auth {
        auth_over(self.store())
    }

    /// The raw item of the revoked-tokens table under `key`, to check what was written.
    pub async fn revoked_item(&self, key: &str) -> Option<Item> {
        self.raw_item(&self.revoked_table, "jti", key).await
    }

    /// Writes an item of the revoked-tokens table as another writer (or an older version)
    /// would have: key `jti`, string attributes.
    pub async fn put_revoked_item(&self, jti: &str, attributes: &[(&str, &str)]) {
        let mut put = self.client.put_item().table_name(&self.revoked_table).item("jti", AttributeValue::S(jti.into()));
        for (name, value) in attributes {
            put = put.item(*name, AttributeValue::S(value.to_string()));
        }
        put.send().await.unwrap();
    }

    pub async fn user_item(&self, username: &str) -> Option<Item> {
        self.raw_item(&self.users_table, "username", username).await
    }

    /// The sessions-table rows of a user, read consistently.
    pub async fn session_rows(&self, user_id: &str) -> Vec<Item> {
        let out = self
            .client
            .query()
            .table_name(&self.sessions_table)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items.unwrap_or_default()
    }

    async fn raw_item(&self, table: &str, key_name: &str, key: &str) -> Option<Item> {
        let out = self.client.get_item().table_name(table).key(key_name, AttributeValue::S(key.to_string()));
        out.consistent_read(true).send().await.unwrap().item
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// The use cases over `store`, with the test token config and production argon2 parameters.
pub fn auth_over(store: DynamoStore) -> Auth {
    let tokens = TokenService::from_secret(token_config(), SECRET);
    let passwords = PasswordHasher::new(Argon2Config::default()).unwrap();
    Auth::new(Arc::new(store), Arc::new(tokens), Arc::new(passwords))
}

pub fn token_config() -> TokenConfig {
    TokenConfig {
        issuer: "https://auth.test".into(),
        audience: "test-api".into(),
        algorithm: Algorithm::HS256,
        key_id: "k1".into(),
        access_ttl_seconds: 900,
        refresh_ttl_seconds: 30 * 86_400,
        leeway_seconds: 5,
    }
}

/// A username no other test (or earlier run against a persistent table) uses.
pub fn unique_username(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

pub fn number(item: &Item, key: &str) -> u64 {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{key} missing"))
}
