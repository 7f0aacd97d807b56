//! Sessions (spec 2.8, issue #20): a successful challenge's token becomes an ES256 access
//! token and a refresh token; validate, refresh (rotation with reuse detection), revoke.
//!
//! Decisions (docs/api.md "Sessions"):
//! - A challenge token creates at most one session: the store marks it used in the same
//!   atomic step that writes the session (`token_already_used` after that). `/validate` still
//!   reads it as before.
//! - A refresh token works once. Presenting a used one revokes its whole session (every
//!   access token of it fails `validateSession` from then on, and no refresh works).
//! - Revocation and expiry are checked by `validateSession` against the stored session, so a
//!   revoked session's access tokens stop working at once there; offline verifiers (JWKS)
//!   see them until they expire, which is why access tokens are short.

use super::tenants::Tenant;
use crate::App;
use crate::domain::{
    ActionCode, ActionState, RefreshTokenRecord, SessionConfig, SessionRecord, TenantId, UserId,
    UserProfile, VerificationMethod,
};
use crate::encoding;
use crate::error::{Error, Result};
use crate::session_token::{
    AccessClaims, REFRESH_TOKEN_PREFIX, SessionKeys, issuer, refresh_token_hash,
};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub struct CreateSession {
    pub client_id: String,
    pub token: String,
    pub action: Option<ActionCode>,
}

/// An access token and a refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTokens(<redacted>)")
    }
}

/// What `validateSession` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSession {
    pub user_id: UserId,
    pub profile: UserProfile,
    /// Unix seconds: the access token's `exp`.
    pub expires_at: i64,
    pub verification_method: Option<VerificationMethod>,
    pub claims: AccessClaims,
}

impl App {
    async fn session_config(&self, tenant: &TenantId) -> Result<(SessionConfig, SessionKeys)> {
        let config = self
            .store
            .get_session_config(tenant)
            .await?
            .filter(|c| !c.client_ids.is_empty() && !c.signing_keys.is_empty())
            .ok_or(Error::SessionsNotConfigured)?;
        let keys = SessionKeys::new(&config, self.now())?;
        Ok((config, keys))
    }

    fn new_refresh_token(&self) -> Result<String> {
        let bytes: [u8; 32] = self.random_bytes()?;
        Ok(format!(
            "{REFRESH_TOKEN_PREFIX}{}",
            encoding::encode_url_safe(&bytes)
        ))
    }

    fn access_token(
        &self,
        config: &SessionConfig,
        keys: &SessionKeys,
        session: &SessionRecord,
    ) -> Result<String> {
        let iat = self.now().unix_seconds();
        let jti: [u8; 16] = self.random_bytes()?;
        keys.issue(&AccessClaims {
            iss: issuer(&config.tenant_id),
            sub: session.user_id.to_string(),
            aud: session.client_id.clone(),
            iat,
            exp: iat + config.access_token_ttl_seconds,
            jti: hex::encode(jti),
            sid: session.id.clone(),
            act: session.action_code.to_string(),
            vm: session.verification_method,
        })
    }

    /// `POST /sessions`: a token whose challenge succeeded becomes a session.
    pub async fn create_session(
        &self,
        tenant: &Tenant,
        command: CreateSession,
    ) -> Result<SessionTokens> {
        let (config, keys) = self.session_config(&tenant.id).await?;
        if !config.client_ids.contains(&command.client_id) {
            return Err(Error::UnknownClientId);
        }
        let now = self.now();
        let token = tenant.keys.verify(&command.token, now)?;
        let action = match self.get_action(tenant, &token.action).await {
            Ok(action) => action,
            // The token's action is gone (its user was deleted): the token stands for nothing.
            Err(Error::ActionNotFound) => return Err(Error::InvalidToken),
            Err(other) => return Err(other),
        };
        if command
            .action
            .as_ref()
            .is_some_and(|code| *code != action.key.action_code)
        {
            return Err(Error::invalid_request(
                "The token was issued for another action than `action`.",
            ));
        }
        if action.state != ActionState::ChallengeSucceeded {
            return Err(Error::ChallengeNotSucceeded);
        }
        let session_id: [u8; 16] = self.random_bytes()?;
        let expires_at = now.plus_seconds(config.refresh_token_ttl_seconds);
        let session = SessionRecord {
            tenant_id: tenant.id.clone(),
            user_id: action.key.user_id.clone(),
            id: hex::encode(session_id),
            client_id: command.client_id,
            action_code: action.key.action_code.clone(),
            verification_method: action.verification_method,
            created_at: now,
            expires_at,
            revoked: false,
        };
        let refresh_token = self.new_refresh_token()?;
        let refresh = RefreshTokenRecord {
            tenant_id: tenant.id.clone(),
            hash: refresh_token_hash(&refresh_token),
            user_id: session.user_id.clone(),
            session_id: session.id.clone(),
            expires_at,
            used: false,
        };
        // One session per succeeded action, not per token: the track token (in the pre-built
        // UI's URL), the challenge's and a passkey registration's token all name the action,
        // and whichever reaches a backend first is the one that counts (docs/api.md,
        // "Sessions"). The mark outlives every token of the action: the action's own record
        // and any token issued from now.
        let action_key = serde_json::json!([
            "session-of-action",
            action.key.user_id.as_str(),
            action.key.action_code.as_str(),
            action.key.idempotency_key.as_str(),
        ]);
        let token_id = refresh_token_hash(&action_key.to_string());
        let mark_until = now
            .plus_seconds(self.settings.token_lifetime_seconds)
            .max(action.expires_at);
        self.store
            .create_session(&token_id, mark_until, &session, &refresh)
            .await?;
        Ok(SessionTokens {
            access_token: self.access_token(&config, &keys, &session)?,
            refresh_token,
        })
    }

    /// `POST /sessions/validate`.
    pub async fn validate_session(
        &self,
        tenant: &Tenant,
        access_token: &str,
        client_ids: Option<&[String]>,
    ) -> Result<ValidSession> {
        let (config, keys) = self.session_config(&tenant.id).await?;
        let now = self.now();
        let claims = keys.verify(access_token, now, false)?;
        if !config.client_ids.contains(&claims.aud)
            || client_ids.is_some_and(|ids| !ids.is_empty() && !ids.contains(&claims.aud))
        {
            return Err(Error::ClientIdMismatch);
        }
        let user_id = UserId::parse(claims.sub.clone()).map_err(|_| Error::InvalidToken)?;
        let session = self
            .store
            .get_session(&tenant.id, &user_id, &claims.sid)
            .await?
            .filter(|s| !s.revoked && s.expires_at > now)
            .ok_or(Error::SessionRevoked)?;
        let profile = self
            .store
            .get_user(&tenant.id, &user_id)
            .await?
            .unwrap_or_default();
        Ok(ValidSession {
            user_id,
            profile,
            expires_at: claims.exp,
            verification_method: session.verification_method,
            claims,
        })
    }

    /// `POST /sessions/refresh`: a new pair for an unused refresh token. A used one revokes
    /// its session.
    pub async fn refresh_session(
        &self,
        tenant: &Tenant,
        refresh_token: &str,
    ) -> Result<SessionTokens> {
        if !refresh_token.starts_with(REFRESH_TOKEN_PREFIX) || refresh_token.len() > 200 {
            return Err(Error::InvalidRefreshToken);
        }
        let (config, keys) = self.session_config(&tenant.id).await?;
        let hash = refresh_token_hash(refresh_token);
        let old = self
            .store
            .get_refresh_token(&tenant.id, &hash)
            .await?
            .filter(|r| bool::from(r.hash.as_bytes().ct_eq(hash.as_bytes())))
            .ok_or(Error::InvalidRefreshToken)?;
        if old.used {
            self.store
                .revoke_session(&tenant.id, &old.user_id, &old.session_id)
                .await?;
            tracing::warn!(
                session = %old.session_id,
                "a used refresh token was presented again: its session is revoked"
            );
            return Err(Error::RefreshTokenReused);
        }
        let now = self.now();
        if old.expires_at <= now {
            return Err(Error::ExpiredRefreshToken);
        }
        let mut session = self
            .store
            .get_session(&tenant.id, &old.user_id, &old.session_id)
            .await?
            .filter(|s| !s.revoked)
            .ok_or(Error::SessionRevoked)?;
        if !config.client_ids.contains(&session.client_id) {
            return Err(Error::UnknownClientId);
        }
        let new_token = self.new_refresh_token()?;
        let expires_at = now.plus_seconds(config.refresh_token_ttl_seconds);
        let new = RefreshTokenRecord {
            tenant_id: tenant.id.clone(),
            hash: refresh_token_hash(&new_token),
            user_id: old.user_id.clone(),
            session_id: old.session_id.clone(),
            expires_at,
            used: false,
        };
        match self.store.rotate_refresh_token(&old, &new).await {
            Ok(()) => {}
            Err(Error::RefreshTokenReused) => {
                // Lost a race with another use of the same token: reuse all the same.
                self.store
                    .revoke_session(&tenant.id, &old.user_id, &old.session_id)
                    .await?;
                return Err(Error::RefreshTokenReused);
            }
            Err(other) => return Err(other),
        }
        session.expires_at = expires_at;
        Ok(SessionTokens {
            access_token: self.access_token(&config, &keys, &session)?,
            refresh_token: new_token,
        })
    }

    /// `POST /sessions/revoke`: the session of an access token (expired ones too).
    pub async fn revoke_session(&self, tenant: &Tenant, access_token: &str) -> Result<()> {
        let (_, keys) = self.session_config(&tenant.id).await?;
        let claims = keys.verify(access_token, self.now(), true)?;
        let user_id = UserId::parse(claims.sub).map_err(|_| Error::InvalidToken)?;
        self.store
            .revoke_session(&tenant.id, &user_id, &claims.sid)
            .await
    }

    /// `POST /sessions/user/revoke`: every session of the user.
    pub async fn revoke_user_sessions(&self, tenant: &Tenant, user: &UserId) -> Result<usize> {
        self.store.revoke_user_sessions(&tenant.id, user).await
    }

    /// The public keys of a tenant's access tokens (JWKS), or `None` when the tenant has no
    /// session keys (unknown tenant, or sessions never configured).
    pub async fn session_jwks(&self, tenant: &TenantId) -> Result<Option<serde_json::Value>> {
        match self.store.get_session_config(tenant).await? {
            Some(config) if !config.signing_keys.is_empty() => {
                Ok(Some(SessionKeys::new(&config, self.now())?.jwks()))
            }
            _ => Ok(None),
        }
    }

    /// Sets a tenant's session settings (operator CLI), creating its first signing key.
    /// `None` leaves a setting as it is. `rotate_key` makes a new signing key; the one it
    /// replaces stays published and verifying until its tokens have expired (DESIGN 5).
    pub async fn configure_sessions(
        &self,
        tenant: &TenantId,
        client_ids: Option<Vec<String>>,
        access_token_ttl_seconds: Option<i64>,
        refresh_token_ttl_seconds: Option<i64>,
        rotate_key: bool,
    ) -> Result<SessionConfig> {
        if let Some(ids) = &client_ids {
            for id in ids {
                if id.is_empty()
                    || id.len() > 128
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
                {
                    return Err(Error::invalid_request(format!(
                        "Invalid session client id {id:?}: 1 to 128 of A-Z a-z 0-9 - _ . :"
                    )));
                }
            }
        }
        let now = self.now();
        // Written over the revision read: a rotation at the same time keeps its key (DESIGN 5).
        self.change_session_config(tenant, |stored| {
            let mut config = stored.clone().unwrap_or_else(|| SessionConfig {
                tenant_id: tenant.clone(),
                client_ids: Vec::new(),
                access_token_ttl_seconds: crate::domain::DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
                refresh_token_ttl_seconds: crate::domain::DEFAULT_REFRESH_TOKEN_TTL_SECONDS,
                signing_keys: Vec::new(),
                revision: 0,
            });
            if let Some(ids) = &client_ids {
                config.client_ids = ids.clone();
            }
            if let Some(ttl) = access_token_ttl_seconds {
                config.access_token_ttl_seconds = ttl;
            }
            if let Some(ttl) = refresh_token_ttl_seconds {
                config.refresh_token_ttl_seconds = ttl;
            }
            if config.access_token_ttl_seconds < 1 || config.access_token_ttl_seconds > 86_400 {
                return Err(Error::invalid_request(
                    "The access token TTL must be 1 to 86400 seconds.",
                ));
            }
            if config.refresh_token_ttl_seconds < config.access_token_ttl_seconds
                || config.refresh_token_ttl_seconds > 365 * 86_400
            {
                return Err(Error::invalid_request(
                    "The refresh token TTL must be at least the access token TTL and at most 365 days.",
                ));
            }
            if config.signing_keys.is_empty() || rotate_key {
                crate::usecase::keys::rotate_session_keys(
                    &mut config,
                    now,
                    crate::usecase::keys::Retirement::AfterUse,
                    &self.rng,
                )?;
            } else if let Some(signing) = config.signing_keys.first_mut() {
                // The signing key remembers the longest TTL it signed with: what its retire
                // time is computed from when it is replaced (DESIGN 5).
                let longest = signing
                    .longest_lifetime_seconds
                    .unwrap_or(0)
                    .max(config.access_token_ttl_seconds);
                signing.longest_lifetime_seconds = Some(longest);
            }
            *stored = Some(config.clone());
            Ok(config)
        })
        .await
        .map(|mut config| {
            config.revision += 1;
            config
        })
    }
}
