//! Sessions (spec 2.8, issue #20): the tenant's session config, sessions in their user's
//! partition, refresh tokens by hash, and the single-use marks of the challenge tokens a
//! session was created from.

use crate::clock::Timestamp;
use crate::domain::{RefreshTokenRecord, SessionConfig, SessionRecord, TenantId, UserId};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn get_session_config(&self, tenant: &TenantId) -> Result<Option<SessionConfig>>;
    async fn put_session_config(&self, config: &SessionConfig) -> Result<()>;
    /// Writes `config` only over the stored revision `expected_revision` (0 when none, or one
    /// from before revisions, is stored); `false`, with nothing written, when another change
    /// came first (DESIGN 5).
    async fn replace_session_config(
        &self,
        config: &SessionConfig,
        expected_revision: u64,
    ) -> Result<bool>;

    /// In one atomic step: marks the challenge token `token_id` (its `jti`) used, kept until
    /// `token_expires_at`, and writes the session and its first refresh token. A token already
    /// marked is `Error::TokenAlreadyUsed` and nothing is written.
    async fn create_session(
        &self,
        token_id: &str,
        token_expires_at: Timestamp,
        session: &SessionRecord,
        refresh: &RefreshTokenRecord,
    ) -> Result<()>;

    async fn get_session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        session_id: &str,
    ) -> Result<Option<SessionRecord>>;

    async fn get_refresh_token(
        &self,
        tenant: &TenantId,
        hash: &str,
    ) -> Result<Option<RefreshTokenRecord>>;

    /// In one atomic step: marks `old_hash` used (it must be unused: else
    /// `Error::RefreshTokenReused`), checks that its session is not revoked (else
    /// `Error::SessionRevoked`), moves the session's expiry to `new`'s and writes `new`.
    async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenRecord,
        new: &RefreshTokenRecord,
    ) -> Result<()>;

    /// Marks the session revoked (kept until its expiry); a missing session is not an error.
    async fn revoke_session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        session_id: &str,
    ) -> Result<()>;

    /// Revokes every session of the user; returns how many were live.
    async fn revoke_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<usize>;
}
