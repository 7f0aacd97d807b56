//! [`ActionConfigStore`] on DynamoDB: a tenant's configs in one partition.

use super::DynamoStore;
use super::error::{internal, sdk_error};
use super::item::{Item, data_item, from_json_attr};
use super::keys::{CONFIG_PREFIX, Key, config_partition};
use super::store::{enrolment_set, one};
use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{ActionCode, Enrolment, TenantId, UserId, VerificationMethod};
use crate::error::{Error, Result};
use crate::store::{ActionConfigStore, DecisionInputs};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use std::collections::HashMap;

/// The enrolment item's id sets, counted (an absent set is empty).
fn enrolment_from(item: &Item) -> Enrolment {
    let count = |method| match item.get(enrolment_set(method)) {
        Some(AttributeValue::Ss(ids)) => ids.len(),
        _ => 0,
    };
    Enrolment {
        device: count(VerificationMethod::Device),
        push: count(VerificationMethod::Push),
        passkey: count(VerificationMethod::Passkey),
    }
}

#[async_trait]
impl ActionConfigStore for DynamoStore {
    async fn get_decision_inputs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
        user: &UserId,
    ) -> Result<DecisionInputs> {
        let own = Key::action_config(tenant, &ConfigKey::Action(code.clone()));
        let default = Key::action_config(tenant, &ConfigKey::TenantDefault);
        let enrolment = Key::enrolment(tenant, user);
        // One request for the three items (DESIGN 4: a full in-app flow in at most 5).
        let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .keys(own.item())
            .keys(default.item())
            .keys(enrolment.item())
            // A config change must take effect at once (docs/api.md), and an authenticator
            // just added must make track challenge.
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
        let mut inputs = DecisionInputs::default();
        for item in &items {
            let found = Key::of_item(item)?;
            if found == enrolment {
                inputs.enrolment = enrolment_from(item);
            } else if found == own {
                inputs.own = Some(from_json_attr(item, "data")?);
            } else if found == default {
                inputs.tenant_default = Some(from_json_attr(item, "data")?);
            }
        }
        Ok(inputs)
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
