//! Tenants and the index from a secret key's hash to its tenant.

use crate::domain::{TenantId, TenantRecord};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>>;
    /// The tenant whose API secret hashes to `secret_hash` (hex SHA-256).
    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantId>>;
    /// Creates or replaces a tenant, keeping the secret index in step with its hashes.
    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()>;
}
