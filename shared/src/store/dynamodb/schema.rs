//! The table's definition, in one place: the CLI's `table create`, the tests and the SAM
//! template (checked by a test) all use it.

use super::error::{internal, sdk_error};
use crate::error::Result;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

/// Partition key attribute (string).
pub const PARTITION_KEY: &str = "pk";
/// Sort key attribute (string).
pub const SORT_KEY: &str = "sk";
/// The TTL attribute (number, epoch seconds).
pub const TTL_ATTRIBUTE: &str = "ttl";
/// On-demand capacity: the cost follows the traffic, nothing to size.
pub const BILLING_MODE: &str = "PAY_PER_REQUEST";
/// No secondary index: every access pattern is a key lookup (see the module docs).
pub const GLOBAL_SECONDARY_INDEXES: &[&str] = &[];

/// Creates the table (on-demand, `pk`/`sk`) and enables TTL on `ttl`; waits until it is
/// active. Returns `false` if a table of that name already existed (it is left as it is).
pub async fn create_table(client: &Client, table: &str) -> Result<bool> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(internal)
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(internal)
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(BILLING_MODE))
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .attribute_definitions(attribute(PARTITION_KEY)?)
        .attribute_definitions(attribute(SORT_KEY)?)
        .send()
        .await;
    let is_new = match created {
        Ok(_) => true,
        Err(error) if error.code() == Some("ResourceInUseException") => false,
        Err(error) => return Err(sdk_error("CreateTable", error)),
    };
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        let status = described
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(internal)?;
    match client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        Ok(_) => {}
        // Already enabled on an existing table.
        Err(error) if is_new || error.code() != Some("ValidationException") => {
            return Err(sdk_error("UpdateTimeToLive", error));
        }
        Err(_) => {}
    }
    Ok(is_new)
}
