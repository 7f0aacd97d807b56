//! [`ApprovalStore`] on DynamoDB: push and QR-code challenges, compare-and-swap on `version`.

use super::DynamoStore;
use super::error::conditional;
use super::item::{approval_item, from_json_attr, version_condition};
use super::keys::Key;
use super::store::one;
use crate::domain::{ApprovalChallenge, ApprovalSlot, TenantId};
use crate::error::Result;
use crate::store::ApprovalStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

#[async_trait]
impl ApprovalStore for DynamoStore {
    async fn get_approval(
        &self,
        tenant: &TenantId,
        slot: &ApprovalSlot,
    ) -> Result<Option<ApprovalChallenge>> {
        self.get_item(&Key::approval(tenant, slot))
            .await?
            .map(|item| from_json_attr(&item, "data"))
            .transpose()
    }

    async fn put_approval(
        &self,
        next: &ApprovalChallenge,
        expected_version: Option<u64>,
    ) -> Result<bool> {
        let (condition, values) = version_condition(expected_version)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(approval_item(next)?))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match conditional("PutItem", result)? {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }
}
