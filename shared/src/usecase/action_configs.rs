//! Rules configs: save, read, list and delete a tenant's per-action configs and its default
//! (spec 7; the routes are our extension of the Server API, see docs/api.md).
//!
//! A config is validated before it is stored ([`ActionConfig::parse`]), so track only ever
//! reads configs that evaluate.

use super::tenants::Tenant;
use crate::App;
use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::error::{Error, Result};
use serde_json::Value;

impl App {
    /// Validates and saves a config. `key`, when given (the route's action code), fills a
    /// missing `actionCode` and must equal a present one.
    pub async fn put_action_config(
        &self,
        tenant: &Tenant,
        key: Option<&ConfigKey>,
        body: Value,
    ) -> Result<ActionConfig> {
        let config = ActionConfig::parse(body, key)?;
        self.store.put_action_config(&tenant.id, &config).await?;
        Ok(config)
    }

    pub async fn get_action_config(
        &self,
        tenant: &Tenant,
        key: &ConfigKey,
    ) -> Result<ActionConfig> {
        self.store
            .get_action_config(&tenant.id, key)
            .await?
            .ok_or(Error::ActionConfigNotFound)
    }

    pub async fn list_action_configs(&self, tenant: &Tenant) -> Result<Vec<ActionConfig>> {
        self.store.list_action_configs(&tenant.id).await
    }

    pub async fn delete_action_config(&self, tenant: &Tenant, key: &ConfigKey) -> Result<()> {
        if self.store.delete_action_config(&tenant.id, key).await? {
            Ok(())
        } else {
            Err(Error::ActionConfigNotFound)
        }
    }
}
