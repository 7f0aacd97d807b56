//! Fixed-window counters of the rate limits.

use crate::clock::Timestamp;
use crate::domain::TenantId;
use crate::error::Result;
use async_trait::async_trait;

/// One fixed-window counter of a rate limit (DESIGN 6, docs/api.md "Rate limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBucket {
    /// Scope, subject, window index and shard, e.g. `anon-qr#src#203.0.113.7#29445123`: a
    /// new window is a new key, so a counter never needs resetting.
    pub key: String,
    pub limit: u32,
    /// The end of the window: the counter is kept until then (TTL) and counts as empty from
    /// then on, whether or not it was deleted yet.
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one hit on `bucket` if it holds fewer than `bucket.limit` hits or has expired
    /// at `now` (then it starts again from one, whether or not TTL deleted it yet): `true`. `false` when it is full, and then nothing is written, so refused
    /// requests cost no storage. One conditional write: concurrent hits from any number of
    /// instances never count past the limit.
    async fn hit(&self, tenant: &TenantId, bucket: &RateBucket, now: Timestamp) -> Result<bool>;
}
