//! Tenants and the index from a secret key's hash to its tenant.

use crate::domain::{TenantId, TenantRecord};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>>;
    /// The tenant whose API secret hashes to `secret_hash` (hex SHA-256), read in one request
    /// where the store can: on DynamoDB each secret index entry keeps a copy of its tenant,
    /// written in the same transaction as the tenant, so a cold process resolves a secret key
    /// with one `GetItem` instead of two (issue #18: cold init).
    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantRecord>>;
    /// Creates or replaces a tenant, keeping the secret index in step with its hashes.
    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()>;
    /// Writes `tenant` as `put_tenant` does, but only over the stored revision
    /// `expected_revision` (0 when no tenant, or one from before revisions, is stored). `false`,
    /// with nothing written, when another change came first: the caller reads again and
    /// redoes its change, so two concurrent rotations cannot lose a key (DESIGN 5).
    async fn replace_tenant(&self, tenant: &TenantRecord, expected_revision: u64) -> Result<bool>;
    /// Every tenant, by id (the operator's `tenant list`; a Scan on DynamoDB, never on a
    /// request path).
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>>;
    /// Whether a tenant read costs so little that a cached tenant is checked against the
    /// stored revision on every request, so a change made by another process (the CLI next
    /// to a local server: a revoked secret, rotated keys) applies at once (DESIGN 5). When
    /// not, [`crate::tenant::TENANT_CACHE_TTL`] bounds how long a change waits.
    fn cheap_tenant_reads(&self) -> bool {
        false
    }
}
