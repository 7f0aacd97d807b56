//! Per-action rules configs and the tenant default.

use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{ActionCode, TenantId};
use crate::error::Result;
use async_trait::async_trait;

/// The rules configs of a tenant (spec 7), one per action code plus the tenant default under
/// [`ConfigKey::TenantDefault`]. Configs are validated before they get here.
#[async_trait]
pub trait ActionConfigStore: Send + Sync {
    /// The config of `code` and the tenant default, in one read: track needs both.
    async fn get_action_configs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
    ) -> Result<(Option<ActionConfig>, Option<ActionConfig>)>;
    async fn get_action_config(
        &self,
        tenant: &TenantId,
        key: &ConfigKey,
    ) -> Result<Option<ActionConfig>>;
    /// Creates or replaces the config under its `actionCode`.
    async fn put_action_config(&self, tenant: &TenantId, config: &ActionConfig) -> Result<()>;
    /// Every config of the tenant, ordered by key (`*` first).
    async fn list_action_configs(&self, tenant: &TenantId) -> Result<Vec<ActionConfig>>;
    /// Deletes a config; `false` if there was none.
    async fn delete_action_config(&self, tenant: &TenantId, key: &ConfigKey) -> Result<bool>;
}
