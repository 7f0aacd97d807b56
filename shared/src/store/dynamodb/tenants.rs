//! [`TenantStore`] on DynamoDB: the tenant item and the index from secret hashes to tenants.
//!
//! The tenant item carries its `revision` as a top-level number too, so that a change can be
//! written on the condition that nobody changed the tenant since it was read (DESIGN 5).
//!
//! Each secret index entry (`SECRET#{hash}`) keeps a copy of its tenant's record, written in
//! the same transaction as the tenant item, so a process with a cold cache resolves a secret
//! key with one `GetItem` (issue #18: the functions' cold init). An entry written before the
//! copy existed holds only `tenantId`, and is followed to the tenant item.

use super::DynamoStore;
use super::error::{failed, sdk_error};
use super::item::{Item, corrupt, data_item, from_json_attr, get_s, n, s};
use super::keys::Key;
use crate::domain::{TenantId, TenantRecord};
use crate::error::{Error, Result};
use crate::store::TenantStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use std::collections::HashMap;

/// The top-level attribute that mirrors [`TenantRecord::revision`] for conditions.
const REVISION: &str = "revision";

/// The condition that the stored revision is `expected` (a missing item or attribute is 0),
/// and its values.
pub(super) fn revision_condition(expected: u64) -> (&'static str, Item) {
    let expected = i64::try_from(expected).unwrap_or(i64::MAX);
    let condition = if expected == 0 {
        "attribute_not_exists(revision) OR revision = :expected"
    } else {
        "revision = :expected"
    };
    (
        condition,
        HashMap::from([(":expected".to_owned(), n(expected))]),
    )
}

/// A record's item with its revision mirrored at the top level.
pub(super) fn revisioned_item<T: serde::Serialize>(
    key: &Key,
    record: &T,
    revision: u64,
) -> Result<Item> {
    let mut item = data_item(key, record)?;
    item.insert(
        REVISION.into(),
        n(i64::try_from(revision).unwrap_or(i64::MAX)),
    );
    Ok(item)
}

impl DynamoStore {
    /// The tenant item and its secret index, in one transaction; the tenant item's write is
    /// conditional when `expected_revision` is given. `Ok(false)`: that condition failed.
    async fn write_tenant(
        &self,
        tenant: &TenantRecord,
        expected_revision: Option<u64>,
    ) -> Result<bool> {
        let old = self.get_tenant(&tenant.id).await?;
        let mut items = Vec::new();
        let item = revisioned_item(&Key::tenant(&tenant.id), tenant, tenant.revision)?;
        items.push(match expected_revision {
            Some(expected) => {
                let (condition, values) = revision_condition(expected);
                self.put_if(item, Some(condition), values)?
            }
            None => self.put(item, None)?,
        });
        for hash in &tenant.secret_key_hashes {
            let mut index = revisioned_item(&Key::secret(hash), tenant, tenant.revision)?;
            index.insert("tenantId".into(), s(tenant.id.as_str()));
            items.push(self.put_if(
                index,
                Some("attribute_not_exists(pk) OR tenantId = :me"),
                HashMap::from([(":me".to_owned(), s(tenant.id.as_str()))]),
            )?);
        }
        for stale in old
            .iter()
            .flat_map(|o| &o.secret_key_hashes)
            .filter(|h| !tenant.secret_key_hashes.contains(h))
        {
            items.push(self.delete(&Key::secret(stale), None)?);
        }
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            // The first item is the tenant: its condition failing means another change won.
            Err(reasons) if reasons.first().is_some_and(failed) => Ok(false),
            Err(_) => Err(Error::invalid_request(
                "This secret key is already used by another tenant.",
            )),
        }
    }
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        match self.get_item(&Key::tenant(id)).await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantRecord>> {
        let Some(item) = self.get_item(&Key::secret(secret_hash)).await? else {
            return Ok(None);
        };
        let id = TenantId::parse(get_s(&item, "tenantId")?).map_err(|_| corrupt("tenantId"))?;
        if !item.contains_key("data") {
            // An entry from before the copy: the tenant item has the record.
            return self.get_tenant(&id).await;
        }
        let record: TenantRecord = from_json_attr(&item, "data")?;
        // The copy is written with its entry and names the same tenant; anything else is
        // damage, not a tenant to serve.
        if record.id != id {
            return Err(corrupt("data"));
        }
        Ok(Some(record))
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        self.write_tenant(tenant, None).await.map(|_| ())
    }

    async fn replace_tenant(&self, tenant: &TenantRecord, expected_revision: u64) -> Result<bool> {
        self.write_tenant(tenant, Some(expected_revision)).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        // Tenants have no partition of their own to query: a Scan filtered on the tenant
        // items' sort key. For the operator's `tenant list` only.
        let mut tenants = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :tenant")
                .expression_attribute_values(":tenant", s(Key::tenant_sort_key()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("Scan", e))?;
            self.meter.record_read(output.consumed_capacity());
            for item in output.items.unwrap_or_default() {
                tenants.push(from_json_attr::<TenantRecord>(&item, "data")?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        tenants.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(tenants)
    }
}
