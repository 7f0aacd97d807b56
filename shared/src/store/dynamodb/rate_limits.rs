//! [`RateLimitStore`] on DynamoDB: one fixed-window counter per item.

use super::DynamoStore;
use super::error::conditional;
use super::item::{self, get_opt_n, n};
use super::keys::Key;
use super::schema;
use super::store::one;
use crate::clock::Timestamp;
use crate::domain::TenantId;
use crate::error::Result;
use crate::store::{RateBucket, RateLimitStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure};

#[async_trait]
impl RateLimitStore for DynamoStore {
    async fn hit(&self, tenant: &TenantId, bucket: &RateBucket, now: Timestamp) -> Result<bool> {
        // Each bucket is its own partition: a tenant-wide limit is split into shards by the
        // caller, so no counter takes every request of a tenant (DESIGN 4).
        if bucket.limit == 0 {
            return Ok(false);
        }
        let key = Key::rate_limit(tenant, &bucket.key);
        // Twice at most: a counter past its end (TTL deletes late) is started again from one,
        // and a concurrent restart of the same counter sends this one back to counting.
        for _ in 0..2 {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.item()))
                .update_expression(
                    "SET hits = if_not_exists(hits, :zero) + :one, expiresAt = :exp, #ttl = :ttl",
                )
                .condition_expression(
                    "attribute_not_exists(pk) OR (hits < :limit AND expiresAt > :now)",
                )
                .expression_attribute_names("#ttl", schema::TTL_ATTRIBUTE)
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":limit", n(i64::from(bucket.limit)))
                .expression_attribute_values(":now", n(now.0))
                .expression_attribute_values(":exp", n(bucket.expires_at.0))
                .expression_attribute_values(":ttl", n(bucket.expires_at.unix_seconds()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let old = match conditional("UpdateItem", result)? {
                Ok(output) => {
                    self.meter.record_write(one(output.consumed_capacity()));
                    return Ok(true);
                }
                Err(old) => old.unwrap_or_default(),
            };
            if get_opt_n(&old, "expiresAt").is_none_or(|end| end > now.0) {
                // Full, and still in its window.
                return Ok(false);
            }
            // Expired: one hit, replacing the old count only if it is still the expired one.
            let fresh = item::rate_bucket_item(tenant, bucket);
            let restarted = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(fresh))
                .condition_expression("expiresAt <= :now")
                .expression_attribute_values(":now", n(now.0))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            // On a failed condition another hit restarted it first: count on that one.
            if let Ok(output) = conditional("PutItem", restarted)? {
                self.meter.record_write(one(output.consumed_capacity()));
                return Ok(true);
            }
        }
        Ok(false)
    }
}
