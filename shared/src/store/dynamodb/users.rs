//! [`UserStore`] on DynamoDB: a user's partition, and deleting all of it.

use super::DynamoStore;
use super::error::{internal, sdk_error};
use super::item::{credential_from, data_item, from_json_attr};
use super::keys::{CREDENTIAL_PREFIX, Key, PASSKEY_PREFIX, user_partition};
use crate::domain::{TenantId, UserId, UserProfile};
use crate::error::{Error, Result};
use crate::store::UserStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

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
        self.put_unconditionally(data_item(&Key::profile(tenant, user), profile)?)
            .await
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
