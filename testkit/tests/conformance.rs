//! The store conformance suite on each adapter: the embedded store (in memory, on disk at both
//! durability levels) and DynamoDB (dynoxide, embedded on a free loopback port). Moved here from
//! `shared`'s unit tests with the suite, so `shared` does not depend on dynoxide.

use shared::store::TenantStore;
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter, schema};
use shared::store::embedded::{DB_FILE, Durability, EmbeddedStore};
use std::sync::Arc;
use testkit::conformance;
use testkit::dynamodb::{LocalDynamo, unique_table};

// ---------------------------------------------------------------- embedded

// Multi-threaded runtimes, so the suite's concurrent scenes really run in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    conformance::run_all(Arc::new(EmbeddedStore::in_memory().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_disk_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = EmbeddedStore::open(&path).unwrap();
    conformance::run_all(Arc::new(store.clone())).await;
    let tenant = conformance::sample_tenant("reopen");
    store.put_tenant(&tenant).await.unwrap();
    drop(store);
    let reopened = EmbeddedStore::open(&path).unwrap();
    assert_eq!(reopened.get_tenant(&tenant.id).await.unwrap(), Some(tenant));
}

/// The default (full durability, group commit) runs the suite above; this is the other
/// level, whose writes run on the caller's thread, concurrent scenes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_disk_at_normal_durability() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_with(&dir.path().join(DB_FILE), Durability::Normal).unwrap();
    conformance::run_all(Arc::new(store)).await;
}

// ---------------------------------------------------------------- DynamoDB

/// A new table on `local`: its store, the meter that counts the store's requests, and the
/// client and table name, for writing items around the store.
struct Table {
    store: DynamoStore,
    meter: UsageMeter,
    client: aws_sdk_dynamodb::Client,
    name: String,
}

async fn table(local: &LocalDynamo, prefix: &str) -> Table {
    let meter = UsageMeter::default();
    let client = dynamodb::client(
        &DynamoConfig {
            endpoint_url: Some(local.endpoint()),
        },
        meter.clone(),
    )
    .await;
    let name = unique_table(prefix);
    assert!(dynamodb::create_table(&client, &name).await.unwrap());
    meter.take();
    Table {
        store: DynamoStore::new(client.clone(), name.clone(), meter.clone()),
        meter,
        client,
        name,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_a_dynamodb_compatible_server() {
    let local = LocalDynamo::start().await;
    let table = table(&local, "conformance").await;
    conformance::run_all(Arc::new(table.store)).await;
}

/// A secret index entry carries its tenant's record, so a cold process resolves a secret key
/// with one `GetItem` (issue #18); an entry written before that (only `tenantId`) is followed
/// to the tenant item, and a copy that names another tenant is refused as damage.
#[tokio::test]
async fn a_secret_key_resolves_in_one_request_and_old_index_entries_still_resolve() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let local = LocalDynamo::start().await;
    let Table {
        store,
        meter,
        client,
        name: table,
    } = table(&local, "secret-index").await;
    let tenant = conformance::sample_tenant("one-read");
    store.put_tenant(&tenant).await.unwrap();
    meter.take();
    assert_eq!(
        store
            .find_tenant_by_secret_hash(&tenant.secret_key_hashes[0])
            .await
            .unwrap(),
        Some(tenant.clone())
    );
    let usage = meter.take();
    assert_eq!(
        usage.requests,
        [("GetItem".to_owned(), 1)].into_iter().collect(),
        "one read of the index entry"
    );

    // Written around the store, as a version before the copy wrote them.
    let index_entry = |hash: &str, tenant_id: &str| {
        client
            .put_item()
            .table_name(&table)
            .item(
                schema::PARTITION_KEY,
                AttributeValue::S(format!("SECRET#{hash}")),
            )
            .item(schema::SORT_KEY, AttributeValue::S("SECRET".into()))
            .item("tenantId", AttributeValue::S(tenant_id.into()))
    };
    index_entry("old-entry", tenant.id.as_str())
        .send()
        .await
        .unwrap();
    meter.take();
    assert_eq!(
        store.find_tenant_by_secret_hash("old-entry").await.unwrap(),
        Some(tenant.clone()),
        "an entry without the copy is followed to the tenant"
    );
    assert_eq!(
        meter.take().requests,
        [("GetItem".to_owned(), 2)].into_iter().collect()
    );

    let other = conformance::sample_tenant("other");
    let copy = serde_json::to_string(&other).unwrap();
    index_entry("damaged", tenant.id.as_str())
        .item("data", AttributeValue::S(copy))
        .send()
        .await
        .unwrap();
    assert!(
        store.find_tenant_by_secret_hash("damaged").await.is_err(),
        "a copy of another tenant is not served"
    );
}

#[tokio::test]
async fn create_table_is_idempotent_and_enables_ttl() {
    let local = LocalDynamo::start().await;
    let client = dynamodb::client(
        &DynamoConfig {
            endpoint_url: Some(local.endpoint()),
        },
        UsageMeter::default(),
    )
    .await;
    let table = unique_table("schema");
    assert!(dynamodb::create_table(&client, &table).await.unwrap());
    assert!(!dynamodb::create_table(&client, &table).await.unwrap());
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
