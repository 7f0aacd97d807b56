//! The adapter against a real DynamoDB-compatible server (dynoxide, embedded).

use super::item::{approval_item, get_n};
use super::local::{LocalDynamo, unique_table};
use super::*;
use crate::domain::{TenantId, UserId};
use std::sync::Arc;

#[test]
fn an_approval_item_lives_until_its_retention_not_its_expiry() {
    use crate::domain::ApprovalKind;
    let tenant = TenantId::parse("t").unwrap();
    let user = UserId::parse("alice").unwrap();
    let push = crate::store::conformance::approval(&tenant, Some(&user), ApprovalKind::Push);
    let item = approval_item(&push).unwrap();
    assert_eq!(
        get_n(&item, schema::TTL_ATTRIBUTE).unwrap(),
        push.retain_until.unix_seconds()
    );
    assert_ne!(push.retain_until, push.expires_at);
}

async fn store(local: &LocalDynamo) -> (DynamoStore, UsageMeter) {
    let counter = UsageMeter::default();
    let client = client(
        &DynamoConfig {
            endpoint_url: Some(local.endpoint()),
        },
        counter.clone(),
    )
    .await;
    let table = unique_table("conformance");
    assert!(create_table(&client, &table).await.unwrap());
    counter.take();
    (DynamoStore::new(client, table, counter.clone()), counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_a_dynamodb_compatible_server() {
    let local = LocalDynamo::start().await;
    let (store, _) = store(&local).await;
    crate::store::conformance::run_all(Arc::new(store)).await;
}

#[tokio::test]
async fn create_table_is_idempotent_and_enables_ttl() {
    let local = LocalDynamo::start().await;
    let client = client(
        &DynamoConfig {
            endpoint_url: Some(local.endpoint()),
        },
        UsageMeter::default(),
    )
    .await;
    let table = unique_table("schema");
    assert!(create_table(&client, &table).await.unwrap());
    assert!(!create_table(&client, &table).await.unwrap());
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some(schema::TTL_ATTRIBUTE));
    let table = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    let keys: Vec<(&str, &str)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![(schema::PARTITION_KEY, "HASH"), (schema::SORT_KEY, "RANGE")]
    );
    assert!(table.global_secondary_indexes().is_empty());
}
