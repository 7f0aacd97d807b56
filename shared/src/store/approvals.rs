//! Push and QR-code challenges.

use crate::domain::{ApprovalChallenge, ApprovalSlot, TenantId};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// The push or QR-code challenge in `slot`, whatever its state and expiry: callers check
    /// both (DynamoDB TTL deletes late).
    async fn get_approval(
        &self,
        tenant: &TenantId,
        slot: &ApprovalSlot,
    ) -> Result<Option<ApprovalChallenge>>;
    /// Writes `next` into its slot only if the slot still holds version `expected_version`
    /// (`None`: the slot must be empty). `Ok(false)` if another writer got there first. Kept
    /// until `next.expires_at` (TTL).
    async fn put_approval(
        &self,
        next: &ApprovalChallenge,
        expected_version: Option<u64>,
    ) -> Result<bool>;
}
