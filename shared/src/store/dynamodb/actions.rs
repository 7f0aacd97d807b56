//! [`ActionStore`] on DynamoDB: actions in their user's partition.

use super::DynamoStore;
use super::error::conditional;
use super::item::{action_from, action_item, credential_from, get_s, n, s};
use super::keys::{ACTION_PREFIX, CREDENTIAL_PREFIX, ENROLMENT_SORT_KEY, Key, user_partition};
use super::schema;
use super::store::one;
use crate::clock::Timestamp;
use crate::domain::{Action, ActionKey, ActionState, Credential, TenantId, UserId};
use crate::error::Result;
use crate::store::ActionStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure};

#[async_trait]
impl ActionStore for DynamoStore {
    async fn create_action(&self, action: &Action) -> Result<Action> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(action_item(action)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match conditional("PutItem", result)? {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                Ok(action.clone())
            }
            Err(Some(existing)) => action_from(&action.tenant_id, &existing),
            // A failed condition always returns the old item (ALL_OLD): it exists.
            Err(None) => {
                tracing::error!(
                    operation = "PutItem",
                    code = "ConditionalCheckFailedException",
                    "dynamodb request failed: the failed condition returned no old item"
                );
                Err(crate::error::Error::Internal)
            }
        }
    }

    async fn get_action(&self, tenant: &TenantId, key: &ActionKey) -> Result<Option<Action>> {
        match self.get_item(&Key::action(tenant, key)).await? {
            Some(item) => action_from(tenant, &item).map(Some),
            None => Ok(None),
        }
    }

    async fn set_action_state(
        &self,
        tenant: &TenantId,
        key: &ActionKey,
        state: ActionState,
        now: Timestamp,
    ) -> Result<Option<Action>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Key::action(tenant, key).item()))
            .update_expression("SET #state = :state, stateUpdatedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":now", n(now.0))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match conditional("UpdateItem", result)? {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                output
                    .attributes
                    .as_ref()
                    .map(|item| action_from(tenant, item))
                    .transpose()
            }
            Err(_) => Ok(None),
        }
    }

    /// One `Query` of the user's whole partition: their profile, credentials and actions live
    /// there, so one request (paged past 1 MB) returns both lists; the profile is skipped.
    async fn list_user_activity(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<(
        Vec<Credential>,
        Vec<Action>,
        Vec<crate::domain::PasskeyRecord>,
    )> {
        let items = self.query_prefix(user_partition(tenant, user), "").await?;
        let mut credentials = Vec::new();
        let mut actions = Vec::new();
        let mut passkeys: Vec<crate::domain::PasskeyRecord> = Vec::new();
        let mut enrolment = None;
        for item in &items {
            let sk = get_s(item, schema::SORT_KEY)?;
            if sk == ENROLMENT_SORT_KEY {
                enrolment = Some(item);
            } else if sk.starts_with(CREDENTIAL_PREFIX) {
                credentials.push(credential_from(tenant, item)?);
            } else if sk.starts_with(ACTION_PREFIX) {
                let action = action_from(tenant, item)?;
                if action.created_at >= since {
                    actions.push(action);
                }
            } else if sk.starts_with(super::keys::PASSKEY_PREFIX) {
                passkeys.push(super::item::from_json_attr(item, "data")?);
            }
        }
        super::store::with_last_verified(&mut credentials, enrolment);
        credentials.sort_by_key(|c| c.created_at);
        actions.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        passkeys.sort_by_key(|p| p.created_at);
        Ok((credentials, actions, passkeys))
    }

    async fn list_actions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<Vec<Action>> {
        let items = self
            .query_prefix(user_partition(tenant, user), ACTION_PREFIX)
            .await?;
        let mut actions: Vec<Action> = items
            .iter()
            .map(|item| action_from(tenant, item))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|a| a.created_at >= since)
            .collect();
        actions.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        Ok(actions)
    }
}
