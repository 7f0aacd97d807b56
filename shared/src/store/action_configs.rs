//! Per-action rules configs and the tenant default.

use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{ActionCode, Enrolment, TenantId, UserId};
use crate::error::Result;
use async_trait::async_trait;

/// What the rules decide from, besides the request: read by track in one go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionInputs {
    /// The config of the action's code.
    pub own: Option<ActionConfig>,
    /// The tenant default (`*`).
    pub tenant_default: Option<ActionConfig>,
    pub enrolment: Enrolment,
}

/// The rules configs of a tenant (spec 7), one per action code plus the tenant default under
/// [`ConfigKey::TenantDefault`]. Configs are validated before they get here.
#[async_trait]
pub trait ActionConfigStore: Send + Sync {
    /// What track reads before it decides, in one read (one DynamoDB request, DESIGN 4):
    /// the config of `code`, the tenant default, and how many authenticators `user` has.
    /// Strongly consistent: a config saved before it was called applies (docs/api.md).
    async fn get_decision_inputs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
        user: &UserId,
    ) -> Result<DecisionInputs>;
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
