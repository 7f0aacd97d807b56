//! [`SessionStore`] on the embedded store: each method one SQLite transaction, so the
//! single-use steps (a challenge token made into a session, a refresh token used) are atomic
//! across threads and processes.

use super::engine::TableId;
use super::engine::Tx;
use super::{EmbeddedStore, Stored, get, key, prefix_range, put, scan};
use crate::clock::Timestamp;
use crate::domain::{
    RefreshTokenRecord, SessionConfig, SessionRecord, TenantId, UserId, UserProfile,
};
use crate::error::{Error, Result};
use crate::store::SessionStore;
use crate::store::user_lookups::{UserLookupStore, UserPage, lookup_values};
use async_trait::async_trait;

impl Stored for SessionConfig {}

impl Stored for SessionRecord {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.expires_at)
    }
}

impl Stored for RefreshTokenRecord {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.expires_at)
    }
}

fn session_key(tenant: &TenantId, user: &UserId, id: &str) -> String {
    key(&[tenant.as_str(), user.as_str(), id])
}

fn refresh_key(tenant: &TenantId, hash: &str) -> String {
    key(&[tenant.as_str(), hash])
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn get_session_config(&self, tenant: &TenantId) -> Result<Option<SessionConfig>> {
        self.read(|tx| get(tx, TableId::SessionConfigs, tenant.as_str()))
    }

    async fn put_session_config(&self, config: &SessionConfig) -> Result<()> {
        self.write(|tx| {
            put(
                tx,
                TableId::SessionConfigs,
                config.tenant_id.as_str(),
                config,
            )
        })
        .await
    }

    async fn replace_session_config(
        &self,
        config: &SessionConfig,
        expected_revision: u64,
    ) -> Result<bool> {
        self.write(|tx| {
            // Checked and written in one transaction (DESIGN 5).
            let stored =
                get::<SessionConfig>(tx, TableId::SessionConfigs, config.tenant_id.as_str())?
                    .map_or(0, |c| c.revision);
            if stored != expected_revision {
                return Ok(false);
            }
            put(
                tx,
                TableId::SessionConfigs,
                config.tenant_id.as_str(),
                config,
            )
            .map(|()| true)
        })
        .await
    }

    async fn create_session(
        &self,
        token_id: &str,
        token_expires_at: Timestamp,
        session: &SessionRecord,
        refresh: &RefreshTokenRecord,
    ) -> Result<()> {
        self.write(|tx| {
            // A mark outlives its token, so an old mark never blocks a token that could verify.
            let mark = key(&[session.tenant_id.as_str(), token_id]);
            if tx.get(TableId::TokenMarks, &mark)?.is_some() {
                return Err(Error::TokenAlreadyUsed);
            }
            put(tx, TableId::TokenMarks, &mark, &token_expires_at)?;
            put(
                tx,
                TableId::Sessions,
                &session_key(&session.tenant_id, &session.user_id, &session.id),
                session,
            )?;
            put(
                tx,
                TableId::RefreshTokens,
                &refresh_key(&refresh.tenant_id, &refresh.hash),
                refresh,
            )
        })
        .await
    }

    async fn get_session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        session_id: &str,
    ) -> Result<Option<SessionRecord>> {
        self.read(|tx| {
            get(
                tx,
                TableId::Sessions,
                &session_key(tenant, user, session_id),
            )
        })
    }

    async fn get_refresh_token(
        &self,
        tenant: &TenantId,
        hash: &str,
    ) -> Result<Option<RefreshTokenRecord>> {
        self.read(|tx| get(tx, TableId::RefreshTokens, &refresh_key(tenant, hash)))
    }

    async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenRecord,
        new: &RefreshTokenRecord,
    ) -> Result<()> {
        self.write(|tx| {
            let old_key = refresh_key(&old.tenant_id, &old.hash);
            let mut stored = get::<RefreshTokenRecord>(tx, TableId::RefreshTokens, &old_key)?
                .ok_or(Error::InvalidRefreshToken)?;
            if stored.used {
                return Err(Error::RefreshTokenReused);
            }
            let k = session_key(&old.tenant_id, &old.user_id, &old.session_id);
            let mut session = get::<SessionRecord>(tx, TableId::Sessions, &k)?
                .filter(|s| !s.revoked)
                .ok_or(Error::SessionRevoked)?;
            stored.used = true;
            put(tx, TableId::RefreshTokens, &old_key, &stored)?;
            session.expires_at = session.expires_at.max(new.expires_at);
            put(tx, TableId::Sessions, &k, &session)?;
            put(
                tx,
                TableId::RefreshTokens,
                &refresh_key(&new.tenant_id, &new.hash),
                new,
            )
        })
        .await
    }

    async fn revoke_session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        session_id: &str,
    ) -> Result<()> {
        self.write(|tx| {
            let k = session_key(tenant, user, session_id);
            if let Some(mut session) = get::<SessionRecord>(tx, TableId::Sessions, &k)? {
                session.revoked = true;
                put(tx, TableId::Sessions, &k, &session)?;
            }
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<usize> {
        self.write(|tx| {
            let mut live = 0;
            for (k, mut session) in
                scan::<SessionRecord>(tx, TableId::Sessions, &[tenant.as_str(), user.as_str()])?
            {
                if !session.revoked {
                    live += 1;
                    session.revoked = true;
                    put(tx, TableId::Sessions, &k, &session)?;
                }
            }
            Ok(live)
        })
        .await
    }
}

// ---------------------------------------------------------------- user lookups (query users)

fn lookup_key(tenant: &TenantId, attribute: &str, value: &str, user: &UserId) -> String {
    key(&[tenant.as_str(), attribute, value, user.as_str()])
}

/// Moves the user's lookup entries from `old` to `new` (`None`: the user is deleted), in the
/// transaction that writes the profile.
pub(super) fn replace_lookups(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    user: &UserId,
    old: Option<&UserProfile>,
    new: Option<&UserProfile>,
) -> Result<()> {
    for (attribute, value) in old.map(lookup_values).unwrap_or_default() {
        tx.remove(
            TableId::UserLookups,
            &lookup_key(tenant, attribute, &value, user),
        )?;
    }
    for (attribute, value) in new.map(lookup_values).unwrap_or_default() {
        put(
            tx,
            TableId::UserLookups,
            &lookup_key(tenant, attribute, &value, user),
            user,
        )?;
    }
    Ok(())
}

impl Stored for UserId {}

#[async_trait]
impl UserLookupStore for EmbeddedStore {
    async fn query_users(
        &self,
        tenant: &TenantId,
        attribute: &str,
        value: &str,
        limit: usize,
        after: Option<&UserId>,
    ) -> Result<UserPage> {
        self.read(|tx| {
            let (start, end) = prefix_range(&[tenant.as_str(), attribute, value]);
            let start = match after {
                // Just after that user's key.
                Some(user) => format!("{}\u{0}", lookup_key(tenant, attribute, value, user)),
                None => start,
            };
            let mut page = UserPage::default();
            for (_, bytes) in tx.range(TableId::UserLookups, &start, &end)? {
                if page.users.len() == limit {
                    page.last_evaluated = page.users.last().map(|(u, _)| u.clone());
                    break;
                }
                let user: UserId = super::decode(&bytes)?;
                let profile = get::<UserProfile>(
                    tx,
                    TableId::Users,
                    &key(&[tenant.as_str(), user.as_str()]),
                )?
                .unwrap_or_default();
                page.users.push((user, profile));
            }
            Ok(page)
        })
    }
}
