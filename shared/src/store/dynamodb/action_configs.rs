//! [`ActionConfigStore`] on DynamoDB: a tenant's configs in one partition.

use super::DynamoStore;
use super::error::{internal, sdk_error};
use super::item::{Item, data_item, from_json_attr, get_s};
use super::keys::{CONFIG_PREFIX, Key, config_partition};
use super::schema;
use super::store::one;
use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{ActionCode, TenantId};
use crate::error::{Error, Result};
use crate::store::ActionConfigStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use std::collections::HashMap;

#[async_trait]
impl ActionConfigStore for DynamoStore {
    async fn get_action_configs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
    ) -> Result<(Option<ActionConfig>, Option<ActionConfig>)> {
        let own = Key::action_config(tenant, &ConfigKey::Action(code.clone()));
        let default = Key::action_config(tenant, &ConfigKey::TenantDefault);
        let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .keys(own.item())
            .keys(default.item())
            // A config change must take effect at once (docs/api.md).
            .consistent_read(true)
            .build()
            .map_err(internal)?;
        let mut request = HashMap::from([(self.table.clone(), keys)]);
        let mut items: Vec<Item> = Vec::new();
        // BatchGetItem may leave keys unprocessed under load: ask again for those, a few
        // times, backing off as AWS advises.
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            for capacity in output.consumed_capacity() {
                self.meter.record_read(Some(capacity));
            }
            if let Some(mut responses) = output.responses {
                items.extend(responses.remove(&self.table).unwrap_or_default());
            }
            request = output.unprocessed_keys.unwrap_or_default();
            if request.is_empty() {
                break;
            }
        }
        if !request.is_empty() {
            return Err(Error::StoreUnavailable);
        }
        let mut own_config = None;
        let mut tenant_default = None;
        for item in &items {
            let sk = get_s(item, schema::SORT_KEY)?;
            let config: ActionConfig = from_json_attr(item, "data")?;
            if sk == own.sk {
                own_config = Some(config);
            } else if sk == default.sk {
                tenant_default = Some(config);
            }
        }
        Ok((own_config, tenant_default))
    }

    async fn get_action_config(
        &self,
        tenant: &TenantId,
        key: &ConfigKey,
    ) -> Result<Option<ActionConfig>> {
        match self.get_item(&Key::action_config(tenant, key)).await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn put_action_config(&self, tenant: &TenantId, config: &ActionConfig) -> Result<()> {
        let item = data_item(&Key::action_config(tenant, &config.key()?), config)?;
        self.put_unconditionally(item).await
    }

    async fn list_action_configs(&self, tenant: &TenantId) -> Result<Vec<ActionConfig>> {
        let items = self
            .query_prefix(config_partition(tenant), CONFIG_PREFIX)
            .await?;
        let mut configs = items
            .iter()
            .map(|item| from_json_attr::<ActionConfig>(item, "data"))
            .collect::<Result<Vec<_>>>()?;
        configs.sort_by(|a, b| a.action_code.cmp(&b.action_code));
        Ok(configs)
    }

    async fn delete_action_config(&self, tenant: &TenantId, key: &ConfigKey) -> Result<bool> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Key::action_config(tenant, key).item()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        self.meter.record_write(one(output.consumed_capacity()));
        Ok(output.attributes.is_some_and(|a| !a.is_empty()))
    }
}
