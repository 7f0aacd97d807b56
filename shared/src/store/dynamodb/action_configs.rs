//! [`ActionConfigStore`] on DynamoDB: a tenant's configs in one partition.

use super::DynamoStore;
use super::error::failed;
use super::error::{internal, sdk_error};
use super::item::{Item, data_item, from_json_attr};
use super::keys::{CONFIG_PREFIX, CONFIG_SHARDS, Key, config_partition, config_shard};
use super::store::enrolment_set;
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
        // The user's copy of the configs: each copy serves a share of the tenant's tracks.
        let shard = config_shard(user);
        let own = Key::action_config(tenant, shard, &ConfigKey::Action(code.clone()));
        let default = Key::action_config(tenant, shard, &ConfigKey::TenantDefault);
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
        match self.get_item(&Key::action_config(tenant, 0, key)).await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn put_action_config(&self, tenant: &TenantId, config: &ActionConfig) -> Result<()> {
        let key = config.key()?;
        // Every copy in one transaction: a track that starts after this answers reads the new
        // config whichever copy it reads (docs/api.md: a change applies to the next track).
        let items = (0..CONFIG_SHARDS)
            .map(|shard| {
                let item = data_item(&Key::action_config(tenant, shard, &key), config)?;
                self.put(item, None)
            })
            .collect::<Result<Vec<_>>>()?;
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            // No item has a condition to fail (a conflict with a concurrent save is a 503
            // from `transact`).
            Err(_) => Err(Error::Internal),
        }
    }

    async fn list_action_configs(&self, tenant: &TenantId) -> Result<Vec<ActionConfig>> {
        let items = self
            .query_prefix(config_partition(tenant, 0), CONFIG_PREFIX)
            .await?;
        let mut configs = items
            .iter()
            .map(|item| from_json_attr::<ActionConfig>(item, "data"))
            .collect::<Result<Vec<_>>>()?;
        configs.sort_by(|a, b| a.action_code.cmp(&b.action_code));
        Ok(configs)
    }

    async fn delete_action_config(&self, tenant: &TenantId, key: &ConfigKey) -> Result<bool> {
        // Every copy in one transaction, the first only if it exists: "was there one?".
        let items = (0..CONFIG_SHARDS)
            .map(|shard| {
                let condition = (shard == 0).then(|| ("attribute_exists(pk)", Item::new()));
                self.delete(&Key::action_config(tenant, shard, key), condition)
            })
            .collect::<Result<Vec<_>>>()?;
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            Err(reasons) if reasons.first().is_some_and(failed) => Ok(false),
            Err(_) => Err(Error::Internal),
        }
    }
}
