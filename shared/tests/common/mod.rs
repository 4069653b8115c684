//! Test support for the storage and use-case tests. They run against a real DynamoDB API
//! (the moto server `make test` starts, or any endpoint in AWS_ENDPOINT_URL_DYNAMODB),
//! never an in-memory stand-in.
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

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: these tests need a DynamoDB API with the project's tables; run them with `make test`")
    })
}

pub struct Env {
    pub client: aws_sdk_dynamodb::Client,
    pub users_table: String,
    pub revoked_table: String,
    pub sessions_table: String,
}

pub async fn env() -> Env {
    required("AWS_ENDPOINT_URL_DYNAMODB");
    let config = shared::aws::load_sdk_config().await.expect("SDK configuration");
    Env {
        client: shared::aws::dynamodb_client(&config),
        users_table: required("USERS_TABLE"),
        revoked_table: required("REVOKED_TOKENS_TABLE"),
        sessions_table: required("SESSIONS_TABLE"),
    }
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
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), &self.users_table, &self.revoked_table, &self.sessions_table)
    }

    pub fn auth(&self) -> Auth {
        auth_over(self.store())
    }

    /// The raw item of the revoked-tokens table under `key`, to check what was written.
    pub async fn revoked_item(&self, key: &str) -> Option<Item> {
        self.raw_item(&self.revoked_table, "jti", key).await
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
