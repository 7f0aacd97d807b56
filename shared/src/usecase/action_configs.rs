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

#[cfg(test)]
mod tests {
    use crate::domain::ActionState;
    use crate::domain::policy::ConfigKey;
    use crate::error::Error;
    use crate::usecase::testkit::Kit;
    use serde_json::json;

    #[tokio::test]
    async fn a_saved_config_decides_the_next_track_and_a_deleted_one_stops() {
        let kit = Kit::new().await;
        kit.enroll("alice").await;
        let pay = ConfigKey::parse("pay").unwrap();
        kit.app
            .put_action_config(
                &kit.tenant,
                Some(&pay),
                json!({"defaultOutcome": "ALLOW", "rules": [
                    {"ruleId": "new-device", "name": "New device", "type": "REVIEW",
                     "conditions": {"var": "device.isNew"}}
                ]}),
            )
            .await
            .unwrap();
        let first = kit.track("alice", "pay", None).await;
        assert_eq!(
            first.action.state,
            ActionState::ReviewRequired,
            "no deviceId: a new device (fails closed)"
        );
        kit.app
            .delete_action_config(&kit.tenant, &pay)
            .await
            .unwrap();
        assert_eq!(
            kit.app
                .get_action_config(&kit.tenant, &pay)
                .await
                .unwrap_err(),
            Error::ActionConfigNotFound
        );
        let second = kit.track("alice", "pay", None).await;
        assert_eq!(second.action.state, ActionState::ChallengeRequired);
        assert!(matches!(
            kit.app
                .put_action_config(&kit.tenant, Some(&pay), json!({"actionCode": "other"}))
                .await,
            Err(Error::InvalidActionConfig(_))
        ));
    }
}
