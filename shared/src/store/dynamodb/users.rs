//! [`UserStore`] on DynamoDB: a user's partition, and deleting all of it.

use super::DynamoStore;
use super::error::{failed, internal, sdk_error};
use super::item::{credential_from, data_item, from_json_attr, get_s, s};
use super::keys::{CREDENTIAL_PREFIX, Key, LOOKUP_PREFIX, PASSKEY_PREFIX, user_partition};
use crate::domain::{TenantId, UserId, UserProfile};
use crate::error::{Error, Result};
use crate::store::UserStore;
use crate::store::user_lookups::{UserLookupStore, UserPage, lookup_values};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use std::collections::HashMap;

#[async_trait]
impl UserStore for DynamoStore {
    async fn get_user(&self, tenant: &TenantId, user: &UserId) -> Result<Option<UserProfile>> {
        match self.get_item(&Key::profile(tenant, user)).await? {
            Some(item) => from_json_attr(&item, "data").map(Some),
            None => Ok(None),
        }
    }

    async fn put_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        profile: &UserProfile,
    ) -> Result<()> {
        // The profile and its lookup entries (query users) in one transaction, conditional
        // on the profile read: a concurrent update makes this one read again.
        for _ in 0..3 {
            let old_item = self.get_item(&Key::profile(tenant, user)).await?;
            let old: Option<UserProfile> = match &old_item {
                Some(item) => Some(from_json_attr(item, "data")?),
                None => None,
            };
            let mut items = Vec::new();
            let (condition, values) = match old_item.as_ref().and_then(|i| i.get("data")) {
                Some(data) => (
                    "#data = :old",
                    HashMap::from([(":old".to_owned(), data.clone())]),
                ),
                None => ("attribute_not_exists(pk)", HashMap::new()),
            };
            let mut put = self.put_if(
                data_item(&Key::profile(tenant, user), profile)?,
                Some(condition),
                values,
            )?;
            if let Some(p) = put.put.as_mut()
                && old_item.is_some()
            {
                p.expression_attribute_names =
                    Some(HashMap::from([("#data".to_owned(), "data".to_owned())]));
            }
            items.push(put);
            let new_values = lookup_values(profile);
            for (attribute, value) in old.as_ref().map(lookup_values).unwrap_or_default() {
                if !new_values.contains(&(attribute, value.clone())) {
                    items.push(
                        self.delete(&Key::user_lookup(tenant, attribute, &value, user), None)?,
                    );
                }
            }
            for (attribute, value) in &new_values {
                let mut item =
                    data_item(&Key::user_lookup(tenant, attribute, value, user), profile)?;
                item.insert("userId".into(), s(user.as_str()));
                items.push(self.put(item, None)?);
            }
            match self.transact(items).await? {
                Ok(()) => return Ok(()),
                Err(reasons) if reasons.first().is_some_and(failed) => continue,
                Err(_) => return Err(Error::Internal),
            }
        }
        Err(Error::StoreUnavailable)
    }

    /// Deletes the user's partition and the key items of their credentials, 25 at a time.
    /// Not one transaction (a user may have many actions); repeating it finishes the job.
    ///
    /// In two passes, so that no credential survives an add racing the deletion: first
    /// everything but credentials (the actions too, which withdraws every token of the user:
    /// an add checks its action in its own transaction), then the credentials, read again
    /// after the actions are gone. An add that committed before its action was deleted is
    /// seen by the second read; one that comes after fails its action check.
    async fn delete_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        let items = self.query_prefix(user_partition(tenant, user), "").await?;
        let mut keys: Vec<Key> = Vec::with_capacity(items.len());
        // The lookup entries of the profile (query users).
        for item in &items {
            if Key::of_item(item)? == Key::profile(tenant, user) {
                let profile: UserProfile = from_json_attr(item, "data")?;
                for (attribute, value) in lookup_values(&profile) {
                    keys.push(Key::user_lookup(tenant, attribute, &value, user));
                }
            }
        }
        for item in &items {
            let key = Key::of_item(item)?;
            if key.sk.starts_with(PASSKEY_PREFIX) {
                // And the passkey's copy found by credential id.
                let passkey: crate::domain::PasskeyRecord = from_json_attr(item, "data")?;
                keys.push(Key::passkey(tenant, &passkey.credential_id));
            }
            if !key.sk.starts_with(CREDENTIAL_PREFIX) {
                keys.push(key);
            }
        }
        self.delete_batch(&keys).await?;

        let credentials = self
            .query_prefix(user_partition(tenant, user), CREDENTIAL_PREFIX)
            .await?;
        let mut keys: Vec<Key> = Vec::with_capacity(credentials.len() * 2);
        for item in &credentials {
            let credential = credential_from(tenant, item)?;
            keys.push(Key::credential_by_key(
                tenant,
                credential.namespace,
                &credential.key_fingerprint,
            ));
            keys.push(Key::of_item(item)?);
        }
        // A removal racing this may write the enrolment counter back, below zero: harmless,
        // as a counter at or below zero means "no credential" to the next add.
        self.delete_batch(&keys).await
    }
}

impl DynamoStore {
    /// Deletes `keys` with `BatchWriteItem`, 25 at a time, retrying unprocessed ones.
    async fn delete_batch(&self, keys: &[Key]) -> Result<()> {
        for chunk in keys.chunks(25) {
            let mut requests: Vec<aws_sdk_dynamodb::types::WriteRequest> = chunk
                .iter()
                .map(|key| {
                    let delete = aws_sdk_dynamodb::types::DeleteRequest::builder()
                        .set_key(Some(key.item()))
                        .build()
                        .map_err(internal)?;
                    Ok(aws_sdk_dynamodb::types::WriteRequest::builder()
                        .delete_request(delete)
                        .build())
                })
                .collect::<Result<_>>()?;
            for _ in 0..5 {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                self.meter.record_write(output.consumed_capacity());
                requests = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
            }
            if !requests.is_empty() {
                return Err(Error::StoreUnavailable);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl UserLookupStore for DynamoStore {
    /// One `Query` on the value's lookup partition, in user id order, `Limit` = `limit`; the
    /// entries carry the profile, so no other read is needed.
    async fn query_users(
        &self,
        tenant: &TenantId,
        attribute: &str,
        value: &str,
        limit: usize,
        after: Option<&UserId>,
    ) -> Result<UserPage> {
        let pk = Key::lookup_partition(tenant, attribute, value);
        let start = after.map(|user| Key::user_lookup(tenant, attribute, value, user).item());
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(LOOKUP_PREFIX))
            .limit(i32::try_from(limit).unwrap_or(100))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        self.meter.record_read(output.consumed_capacity());
        let mut page = UserPage::default();
        for item in output.items.unwrap_or_default() {
            let user = UserId::parse(get_s(&item, "userId")?)
                .map_err(|_| super::item::corrupt("userId"))?;
            page.users.push((user, from_json_attr(&item, "data")?));
        }
        if output.last_evaluated_key.is_some_and(|k| !k.is_empty()) {
            page.last_evaluated = page.users.last().map(|(u, _)| u.clone());
        }
        Ok(page)
    }
}
