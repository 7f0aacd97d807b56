//! The single-use marks of in-app challenges.

use crate::clock::Timestamp;
use crate::domain::{ChallengeId, ChallengeMark, TenantId};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Counts a failed signature against a challenge, creating its mark (kept until
    /// `expires_at`), up to `max_attempts`: `true` if counted, `false` once the count is at
    /// the limit, and then nothing more is written. The count throttles further bad
    /// signatures; it never ends the challenge (DESIGN 6): the commit ignores it.
    async fn record_failed_attempt(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
        expires_at: Timestamp,
        max_attempts: u32,
    ) -> Result<bool>;
    /// The challenge's mark, if it was ever used or failed.
    async fn get_challenge_mark(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
    ) -> Result<Option<ChallengeMark>>;
}
