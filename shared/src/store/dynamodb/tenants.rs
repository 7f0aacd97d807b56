//! [`TenantStore`] on DynamoDB: the tenant item and the index from secret hashes to tenants.

use super::DynamoStore;
use super::item::{corrupt, data_item, from_json_attr, get_s, s};
use super::keys::Key;
use crate::domain::{TenantId, TenantRecord};
use crate::error::{Error, Result};
use crate::store::TenantStore;
use async_trait::async_trait;
use std::collections::HashMap;

#[async_trait]
impl TenantStore for DynamoStore {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        match self.get_item(&Key::tenant(id)).await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantId>> {
        match self.get_item(&Key::secret(secret_hash)).await? {
            Some(item) => TenantId::parse(get_s(&item, "tenantId")?)
                .map(Some)
                .map_err(|_| corrupt("tenantId")),
            None => Ok(None),
        }
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let old = self.get_tenant(&tenant.id).await?;
        let mut items = Vec::new();
        items.push(self.put(data_item(&Key::tenant(&tenant.id), tenant)?, None)?);
        for hash in &tenant.secret_key_hashes {
            let mut index = Key::secret(hash).item();
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
            Ok(()) => Ok(()),
            Err(_) => Err(Error::invalid_request(
                "This secret key is already used by another tenant.",
            )),
        }
    }
}
