//! AWS SDK setup shared by every function: built once per cold start.
//!
//! Timeouts and retries are explicit so the worst case fits well inside API Gateway's
//! 29 s integration limit and the functions' own timeout: per attempt 2 s, at most 3
//! attempts, 6 s per operation in all. Local emulators are reached through the SDK's own
//! standard variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

pub async fn load_sdk_config() -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build();
    let retries = RetryConfig::standard().with_max_attempts(3).with_max_backoff(Duration::from_millis(500));
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts).retry_config(retries).load().await
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}
