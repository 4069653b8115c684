//! SDK errors sorted into [`StoreError`]s, and the failed conditions that are answers,
//! not faults.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;

use super::item::Item;
use crate::store::StoreError;

/// A conditional write whose condition did not hold: an answer, not a fault.
pub(super) fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

/// A conditional write's outcome: `true` if it was applied, `false` if its condition did
/// not hold (an answer), a `StoreError` for anything else.
pub(super) fn condition_held<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(classify(e)),
    }
}

/// The operations whose failed condition can return the item as it is
/// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`).
pub(super) trait ConditionFailure {
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
pub(super) fn failed_condition<E: ConditionFailure, R>(e: &SdkError<E, R>) -> Option<Option<Item>> {
    e.as_service_error().and_then(ConditionFailure::condition_failure).map(|c| c.item().cloned())
}

/// Sorts SDK failures into "retry later" and "deployment fault". Only the error's
/// code and context are kept: requests never contain secrets other than hashes, and
/// the SDK does not echo request bodies in errors.
pub(super) fn classify<E, R>(e: SdkError<E, R>) -> StoreError
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

pub(super) fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("request build: {e}"))
}
