//! The `events` function (issue #19, DESIGN 10): the table's DynamoDB Stream (new and old
//! images) → events ([`shared::events::events_of`], the mapping the local server's outbox uses
//! too) → signed webhooks to each tenant's events URL.
//!
//! At least once, with the stream's event source mapping doing the retrying (template.yaml):
//! records are handled in order, and the first one whose delivery fails is reported in
//! `batchItemFailures` (`ReportBatchItemFailures`), so Lambda retries the batch from that record
//! on, with backoff, for as long as `MaximumRecordAgeInSeconds` allows, and then hands its
//! position to the SQS on-failure destination (the dead-letter queue). The records before it
//! were delivered and are not sent again; the records after it are retried with it. Each
//! event's id is derived from the change, so a retried delivery has the id it had.
//!
//! A record that makes no event, or whose tenant has no events webhook (or no longer exists),
//! is done with at once.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use shared::App;
use shared::clock::Timestamp;
use shared::error::Error as AppError;
use shared::events::{deliver, events_of};
use shared::store::dynamodb::stream::change_of_record;
use shared::webhook::WebhookSender;
use std::collections::HashMap;
use std::time::Duration;

/// Who removes items when their TTL passes, in a stream record's `userIdentity` (AWS: "Time to
/// Live and DynamoDB Streams").
const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// One batch: the position of the first record not handled, if any (`batchItemFailures`).
pub async fn handle(
    app: &App,
    sender: &dyn WebhookSender,
    event: Event,
    now: impl Fn() -> Timestamp,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in event.records {
        if let Err(problem) = handle_record(app, sender, &record, &now).await {
            tracing::warn!(
                event_id = %record.event_id,
                problem = %problem,
                "event delivery failed; the batch is retried from this record"
            );
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
    }
    response
}

async fn handle_record(
    app: &App,
    sender: &dyn WebhookSender,
    record: &EventRecord,
    now: &impl Fn() -> Timestamp,
) -> Result<(), String> {
    let image = |item: &serde_dynamo_item::Item| -> HashMap<String, AttributeValue> {
        HashMap::from(item.clone())
    };
    let keys = image(&record.change.keys);
    let old = image(&record.change.old_image);
    let new = image(&record.change.new_image);
    let at = Timestamp(
        record
            .change
            .approximate_creation_date_time
            .timestamp_millis(),
    );
    let expired = record
        .user_identity
        .as_ref()
        .is_some_and(|identity| identity.principal_id == TTL_PRINCIPAL);
    let change = change_of_record(&keys, Some(&old), Some(&new), at, expired)
        .map_err(|e| format!("the record does not decode: {e}"))?;
    let Some(change) = change else {
        return Ok(());
    };
    let events = events_of(&change, app.settings().max_failed_attempts);
    if events.is_empty() {
        return Ok(());
    }
    let endpoint = match app.tenant_by_id(&change.tenant_id).await {
        Ok(tenant) => tenant.events_webhook.clone(),
        // No such tenant (any more): nobody to tell.
        Err(AppError::Unauthorized) => None,
        Err(other) => return Err(format!("the tenant could not be read: {other}")),
    };
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    let timeout = Duration::from_millis(app.settings().webhook_timeout_ms);
    for event in &events {
        deliver(sender, &endpoint, event, now(), timeout)
            .await
            .map_err(|problem| format!("{} {}: {problem}", event.kind, event.id))?;
        tracing::info!(tenant = %change.tenant_id, event = event.kind, id = %event.id, "event delivered");
    }
    Ok(())
}

/// The image type of `aws_lambda_events`' stream records (`serde_dynamo`'s), named once.
mod serde_dynamo_item {
    pub use serde_dynamo::Item;
}
