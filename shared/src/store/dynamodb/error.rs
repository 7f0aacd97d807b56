//! SDK failures to domain errors, and the one place a failed condition is recognised.

use super::attr::Item;
use crate::error::Error;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::CancellationReason;

pub(super) fn internal(error: impl std::fmt::Display) -> Error {
    tracing::error!(error = %error, "dynamodb request could not be built");
    crate::metric::store_error(crate::metric::StoreKind::DynamoDb, &Error::Internal);
    Error::Internal
}

/// Maps an SDK failure: throttling, timeouts, connection failures and 5xx are
/// `StoreUnavailable` (a 503: a retry can help); anything else is a bug, `Internal`.
pub(super) fn sdk_error<E, R>(operation: &str, error: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = error.code().map(str::to_owned);
    let retryable = matches!(
        error,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || matches!(
        code.as_deref(),
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
        )
    );
    let failure = if retryable {
        // A connection that failed or timed out says why (refused, a certificate not trusted,
        // a name that does not resolve): the operator's first question. Those errors come from
        // the connector and carry no request content; a response error's body is not logged.
        let cause = matches!(
            error,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
        )
        .then(|| aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string());
        tracing::warn!(
            operation,
            code = code.as_deref(),
            cause = cause.as_deref(),
            "dynamodb unavailable"
        );
        Error::StoreUnavailable
    } else {
        tracing::error!(operation, code = code.as_deref(), error = %aws_sdk_dynamodb::error::DisplayErrorContext(&error), "dynamodb request failed");
        Error::Internal
    };
    crate::metric::store_error(crate::metric::StoreKind::DynamoDb, &failure);
    failure
}

/// A single-item write's errors that can be a failed condition.
pub(super) trait ConditionalError {
    /// `Some` if the write's condition failed, with the old item when DynamoDB returned it
    /// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`).
    fn condition_failed(&self) -> Option<Option<&Item>>;
}

macro_rules! conditional_error {
    ($($error:ident),*) => {$(
        impl ConditionalError for $error {
            fn condition_failed(&self) -> Option<Option<&Item>> {
                match self {
                    $error::ConditionalCheckFailedException(failed) => Some(failed.item()),
                    _ => None,
                }
            }
        }
    )*};
}

conditional_error!(PutItemError, UpdateItemError, DeleteItemError);

/// The result of a conditional single-item write: `Ok(Ok(output))` if written,
/// `Ok(Err(old item))` if its condition failed (the old item when DynamoDB returned one),
/// `Err` for any other failure (mapped by [`sdk_error`]).
pub(super) fn conditional<T, E, R>(
    operation: &str,
    result: std::result::Result<T, SdkError<E, R>>,
) -> crate::error::Result<std::result::Result<T, Option<Item>>>
where
    E: ConditionalError + ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(output) => Ok(Ok(output)),
        Err(error) => match error.as_service_error().and_then(|e| e.condition_failed()) {
            Some(old) => Ok(Err(old.cloned())),
            None => Err(sdk_error(operation, error)),
        },
    }
}

/// Whether a transaction item was cancelled by its own condition.
pub(super) fn failed(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}
