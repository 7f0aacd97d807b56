//! Sessions (spec 2.8, issue #20): what a tenant configures for them, a session (one refresh
//! token family) and its refresh tokens as the store keeps them.
//!
//! A session is created from a challenge token that `/validate` accepts and lives as long as
//! its newest refresh token. Refresh tokens are stored as SHA-256 hashes only; each is used
//! once, and using one again revokes its whole session (refresh-token rotation, as OAuth 2.1).

use crate::clock::Timestamp;
use crate::domain::{ActionCode, TenantId, UserId, VerificationMethod};
use serde::{Deserialize, Serialize};

/// Access tokens last 10 minutes unless the tenant says otherwise (like the challenge tokens).
pub const DEFAULT_ACCESS_TOKEN_TTL_SECONDS: i64 = 600;
/// Refresh tokens last 30 days unless the tenant says otherwise.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// A tenant's session settings and its ES256 access-token signing keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionConfig {
    pub tenant_id: TenantId,
    /// The client ids a session may be created for (`aud` of the access tokens).
    pub client_ids: Vec<String>,
    pub access_token_ttl_seconds: i64,
    pub refresh_token_ttl_seconds: i64,
    /// ES256 signing keys, newest first: the first signs, all that are not retired are
    /// published and verify (DESIGN 5).
    pub signing_keys: Vec<SessionKeyRecord>,
    /// Bumped by every change, written only over the revision it was made from (DESIGN 5).
    #[serde(default)]
    pub revision: u64,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_ids", &self.client_ids)
            .field("access_token_ttl_seconds", &self.access_token_ttl_seconds)
            .field("refresh_token_ttl_seconds", &self.refresh_token_ttl_seconds)
            .field("signing_keys", &self.signing_keys.len())
            .finish()
    }
}

/// One P-256 key pair: `kid` goes into the JWT header and the JWKS.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionKeyRecord {
    pub kid: String,
    /// Standard base64 of the PKCS#8 DER private key.
    pub pkcs8: String,
    /// When it was made; none for keys made before rotation existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// The longest access-token lifetime it signed with while it was the signing key: what
    /// its retire time is computed from when a newer key replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_lifetime_seconds: Option<i64>,
    /// Set when a newer key replaces it; from then on it is neither published nor verifies
    /// (DESIGN 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<Timestamp>,
}

impl SessionKeyRecord {
    /// Whether it is still published and verifies at `now`.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.retire_at.is_none_or(|retire| now < retire)
    }
}

impl std::fmt::Debug for SessionKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeyRecord")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// A session: one refresh-token family of one user, created from one challenge token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// 128 random bits, hex; the access tokens' `sid`.
    pub id: String,
    pub client_id: String,
    pub action_code: ActionCode,
    pub verification_method: Option<VerificationMethod>,
    pub created_at: Timestamp,
    /// When its newest refresh token expires; the session is useless after it.
    pub expires_at: Timestamp,
    pub revoked: bool,
}

/// A refresh token as stored: its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshTokenRecord {
    pub tenant_id: TenantId,
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub user_id: UserId,
    pub session_id: String,
    pub expires_at: Timestamp,
    /// Set once, by the one refresh that used it.
    pub used: bool,
}
