//! The adapter's classification of failures: an outage is "unavailable", a missing table
//! a fault.

use shared::store::{RevocationStore, StoreError, UserStore};

use crate::common;

#[tokio::test]
async fn an_unreachable_store_is_reported_as_unavailable() {
    // A port nothing listens on: connection refused, retried, then a clean error.
    let Some(env) = common::env().await else { return };
    let store = env.unreachable_store().await;
    assert!(matches!(store.get_user("alice").await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.access_state("s", "alice").await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.spend_refresh_token("j", 1, &Default::default()).await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn a_missing_table_is_a_fault_not_a_user_error() {
    let Some(env) = common::env().await else { return };
    let store =
        shared::store::DynamoStore::new(env.client.clone(), "no-such-table", "no-such-table-either", "nor-this");
    assert!(matches!(store.get_user("alice").await, Err(StoreError::Internal(_))));
}
