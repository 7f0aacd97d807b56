//! [`SessionStore`] on DynamoDB: the session config item, sessions in their user's partition,
//! refresh tokens by hash, challenge-token marks. The single-use steps are one transaction
//! each: create (the mark's `attribute_not_exists` with the session and its first refresh
//! token) and rotate (the old token's `used = false`, the session's `revoked = false`, the
//! new token).

use super::DynamoStore;
use super::error::{failed, sdk_error};
use super::item::{Item, corrupt, data_item, from_json_attr, get_n, n};
use super::keys::{Key, SESSION_CONFIG_COPIES, SESSION_PREFIX, user_partition};
use super::schema;
use crate::clock::Timestamp;
use crate::domain::{RefreshTokenRecord, SessionConfig, SessionRecord, TenantId, UserId};
use crate::error::{Error, Result};
use crate::store::SessionStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

fn boolean(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

fn get_bool(item: &Item, name: &str) -> Result<bool> {
    match item.get(name) {
        Some(AttributeValue::Bool(value)) => Ok(*value),
        _ => Err(corrupt(name)),
    }
}

/// A session: its JSON in `data`; `revoked` and `expiresAt` as attributes of their own (the
/// conditions and updates work on them), and `ttl`.
fn session_item(session: &SessionRecord) -> Result<Item> {
    let mut item = data_item(
        &Key::session(&session.tenant_id, &session.user_id, &session.id),
        session,
    )?;
    item.insert("revoked".into(), boolean(session.revoked));
    item.insert("expiresAt".into(), n(session.expires_at.0));
    item.insert(
        schema::TTL_ATTRIBUTE.into(),
        n(session.expires_at.unix_seconds()),
    );
    Ok(item)
}

fn session_from(item: &Item) -> Result<SessionRecord> {
    let mut session: SessionRecord = from_json_attr(item, "data")?;
    session.revoked = get_bool(item, "revoked")?;
    session.expires_at = Timestamp(get_n(item, "expiresAt")?);
    Ok(session)
}

/// A refresh token: its JSON in `data`, `used` as an attribute of its own, and `ttl`.
fn refresh_item(refresh: &RefreshTokenRecord) -> Result<Item> {
    let mut item = data_item(
        &Key::refresh_token(&refresh.tenant_id, &refresh.hash),
        refresh,
    )?;
    item.insert("used".into(), boolean(refresh.used));
    item.insert(
        schema::TTL_ATTRIBUTE.into(),
        n(refresh.expires_at.unix_seconds()),
    );
    Ok(item)
}

fn refresh_from(item: &Item) -> Result<RefreshTokenRecord> {
    let mut refresh: RefreshTokenRecord = from_json_attr(item, "data")?;
    refresh.used = get_bool(item, "used")?;
    Ok(refresh)
}

impl DynamoStore {
    /// A write of every copy of the session config, each with its revision mirrored at the
    /// top level; with `expected_revision`, copy 0's write is conditional on it (the copies
    /// are only ever written together, so copy 0 stands for all of them).
    fn session_config_copies(
        &self,
        config: &SessionConfig,
        expected_revision: Option<u64>,
    ) -> Result<Vec<aws_sdk_dynamodb::types::TransactWriteItem>> {
        (0..SESSION_CONFIG_COPIES)
            .map(|copy| {
                let key = Key::session_config(&config.tenant_id, copy);
                let item = super::tenants::revisioned_item(&key, config, config.revision)?;
                match expected_revision {
                    Some(expected) if copy == 0 => {
                        let (condition, values) = super::tenants::revision_condition(expected);
                        self.put_if(item, Some(condition), values)
                    }
                    _ => self.put(item, None),
                }
            })
            .collect()
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn get_session_config(&self, tenant: &TenantId) -> Result<Option<SessionConfig>> {
        // Any copy: they are written together. The clock's nanoseconds spread the reads.
        let copy = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
            % SESSION_CONFIG_COPIES;
        match self.get_item(&Key::session_config(tenant, copy)).await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn put_session_config(&self, config: &SessionConfig) -> Result<()> {
        // Every copy in one transaction: the next read sees the change whichever it reads.
        match self
            .transact(self.session_config_copies(config, None)?)
            .await?
        {
            Ok(()) => Ok(()),
            // No item has a condition to fail (a conflict is a 503 from `transact`).
            Err(_) => Err(Error::Internal),
        }
    }

    async fn replace_session_config(
        &self,
        config: &SessionConfig,
        expected_revision: u64,
    ) -> Result<bool> {
        // Copy 0 carries the revision check; every copy is written in the same transaction.
        let items = self.session_config_copies(config, Some(expected_revision))?;
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    async fn create_session(
        &self,
        token_id: &str,
        token_expires_at: Timestamp,
        session: &SessionRecord,
        refresh: &RefreshTokenRecord,
    ) -> Result<()> {
        let mut mark = Key::token_mark(&session.tenant_id, token_id).item();
        mark.insert(
            schema::TTL_ATTRIBUTE.into(),
            n(token_expires_at.unix_seconds()),
        );
        let items = vec![
            self.put(mark, Some("attribute_not_exists(pk)"))?,
            self.put(session_item(session)?, Some("attribute_not_exists(pk)"))?,
            self.put(refresh_item(refresh)?, Some("attribute_not_exists(pk)"))?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.first().is_some_and(failed) => Err(Error::TokenAlreadyUsed),
            // 128 and 256 random bits: a collision is a broken random source.
            Err(_) => Err(Error::Internal),
        }
    }

    async fn get_session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        session_id: &str,
    ) -> Result<Option<SessionRecord>> {
        match self
            .get_item(&Key::session(tenant, user, session_id))
            .await?
        {
            Some(item) => session_from(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn get_refresh_token(
        &self,
        tenant: &TenantId,
        hash: &str,
    ) -> Result<Option<RefreshTokenRecord>> {
        match self.get_item(&Key::refresh_token(tenant, hash)).await? {
            Some(item) => refresh_from(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn rotate_refresh_token(
        &self,
        old: &RefreshTokenRecord,
        new: &RefreshTokenRecord,
    ) -> Result<()> {
        let f = || HashMap::from([(":f".to_owned(), boolean(false))]);
        let mut use_values = f();
        use_values.insert(":t".into(), boolean(true));
        let mut session_values = f();
        session_values.insert(":e".into(), n(new.expires_at.0));
        session_values.insert(":ttl".into(), n(new.expires_at.unix_seconds()));
        let items = vec![
            self.update(
                &Key::refresh_token(&old.tenant_id, &old.hash),
                "SET used = :t",
                "used = :f",
                &[],
                use_values,
            )?,
            self.update(
                &Key::session(&old.tenant_id, &old.user_id, &old.session_id),
                "SET expiresAt = :e, #ttl = :ttl",
                "revoked = :f",
                &[("#ttl", schema::TTL_ATTRIBUTE)],
                session_values,
            )?,
            self.put(refresh_item(new)?, Some("attribute_not_exists(pk)"))?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(reasons) => {
                if let Some(reason) = reasons.first().filter(|r| failed(r)) {
                    return Err(if reason.item().is_some() {
                        Error::RefreshTokenReused
                    } else {
                        Error::InvalidRefreshToken
                    });
                }
                if reasons.get(1).is_some_and(failed) {
                    return Err(Error::SessionRevoked);
                }
                Err(Error::Internal)
            }
        }
    }

    async fn revoke_session(
        &self,
        tenant: &TenantId,
        user: &UserId,
        session_id: &str,
    ) -> Result<()> {
        self.revoke(Key::session(tenant, user, session_id)).await
    }

    async fn revoke_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<usize> {
        let items = self
            .query_prefix(user_partition(tenant, user), SESSION_PREFIX)
            .await?;
        let mut live = 0;
        for item in &items {
            if !get_bool(item, "revoked")? {
                live += 1;
                self.revoke(Key::of_item(item)?).await?;
            }
        }
        Ok(live)
    }
}

impl DynamoStore {
    /// `revoked = true` on a session that exists; a missing one is left missing.
    async fn revoke(&self, key: Key) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.item()))
            .update_expression("SET revoked = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", boolean(true))
            .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.meter
                    .record_write(super::store::one(output.consumed_capacity()));
                Ok(())
            }
            Err(error) => {
                use super::error::ConditionalError;
                if error
                    .as_service_error()
                    .and_then(|e| e.condition_failed())
                    .is_some()
                {
                    return Ok(());
                }
                Err(sdk_error("UpdateItem", error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamodb::item::get_s;

    /// Every field survives the item and back (the flags from their own attributes).
    #[test]
    fn sessions_and_refresh_tokens_round_trip() {
        let session = SessionRecord {
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            id: "s1".into(),
            client_id: "web".into(),
            action_code: crate::domain::ActionCode::parse("signIn").unwrap(),
            verification_method: Some(crate::domain::VerificationMethod::Device),
            created_at: Timestamp(1_000),
            expires_at: Timestamp(9_000),
            revoked: true,
        };
        let item = session_item(&session).unwrap();
        assert_eq!(get_s(&item, "sk").unwrap(), "SESSION#s1");
        assert_eq!(session_from(&item).unwrap(), session);
        let refresh = RefreshTokenRecord {
            tenant_id: session.tenant_id.clone(),
            hash: "ab".into(),
            user_id: session.user_id.clone(),
            session_id: "s1".into(),
            expires_at: Timestamp(9_000),
            used: true,
        };
        let item = refresh_item(&refresh).unwrap();
        assert_eq!(get_n(&item, schema::TTL_ATTRIBUTE).unwrap(), 9);
        assert_eq!(refresh_from(&item).unwrap(), refresh);
    }
}
