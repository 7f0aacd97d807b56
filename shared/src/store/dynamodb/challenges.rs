//! [`ChallengeStore`] on DynamoDB: the single-use marks of in-app challenges.

use super::DynamoStore;
use super::error::conditional;
use super::item::{challenge_mark_from, n};
use super::keys::Key;
use super::schema;
use super::store::one;
use crate::clock::Timestamp;
use crate::domain::{ChallengeId, ChallengeMark, TenantId};
use crate::error::Result;
use crate::store::ChallengeStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

#[async_trait]
impl ChallengeStore for DynamoStore {
    async fn record_failed_attempt(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
        expires_at: Timestamp,
        max_attempts: u32,
    ) -> Result<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Key::challenge_mark(tenant, challenge).item()))
            .update_expression(
                "ADD failedAttempts :one SET #consumed = if_not_exists(#consumed, :false), expiresAt = :exp, #ttl = :ttl",
            )
            .condition_expression("attribute_not_exists(pk) OR failedAttempts < :max")
            .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#consumed", "consumed")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(i64::from(max_attempts)))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":exp", n(expires_at.0))
            .expression_attribute_values(":ttl", n(expires_at.unix_seconds()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match conditional("UpdateItem", result)? {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                Ok(true)
            }
            // Already at the limit: nothing more to count.
            Err(_) => Ok(false),
        }
    }

    async fn get_challenge_mark(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
    ) -> Result<Option<ChallengeMark>> {
        self.get_item(&Key::challenge_mark(tenant, challenge))
            .await?
            .map(|item| challenge_mark_from(&item))
            .transpose()
    }
}
