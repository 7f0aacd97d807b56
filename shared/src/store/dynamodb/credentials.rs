//! [`CredentialStore`] on DynamoDB: both copies of a credential, always written together.

use super::DynamoStore;
use super::error::failed;
use super::item::{self, action_from, credential_from, credential_item, get_s, n, s};
use super::keys::{CREDENTIAL_PREFIX, ENROLMENT_SORT_KEY, Key, user_partition};
use super::schema;
use super::store::{SortKeys, with_last_verified};
use crate::domain::{
    ADD_AUTHENTICATORS_SCOPE, ActionState, Credential, CredentialId, Namespace, TenantId, UserId,
};
use crate::error::{Error, Result};
use crate::store::{CredentialStore, EnrolmentGuard, InsertOutcome, RemovalReceipt};
use async_trait::async_trait;
use std::collections::HashMap;

#[async_trait]
impl CredentialStore for DynamoStore {
    /// Two reads when found: the credential by its key, then its user's enrolment item for
    /// the verification time (see [`super::store::last_verified_attribute`]).
    async fn get_credential(
        &self,
        tenant: &TenantId,
        namespace: Namespace,
        key_fingerprint: &str,
    ) -> Result<Option<Credential>> {
        let Some(credential) = self
            .get_credential_for_signature(tenant, namespace, key_fingerprint)
            .await?
        else {
            return Ok(None);
        };
        let enrolment = self
            .get_item(&Key::enrolment(tenant, &credential.user_id))
            .await?;
        let mut found = [credential];
        with_last_verified(&mut found, enrolment.as_ref());
        let [credential] = found;
        Ok(Some(credential))
    }

    async fn get_credential_for_signature(
        &self,
        tenant: &TenantId,
        namespace: Namespace,
        key_fingerprint: &str,
    ) -> Result<Option<Credential>> {
        match self
            .get_item(&Key::credential_by_key(tenant, namespace, key_fingerprint))
            .await?
        {
            Some(item) => credential_from(tenant, &item).map(Some),
            None => Ok(None),
        }
    }

    async fn list_user_credentials(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<Credential>> {
        // `CRED#…` up to `ENROLMENT`, which sorts right after them: the credentials and their
        // verification times in one Query.
        let items = self
            .query(
                user_partition(tenant, user),
                SortKeys::Between(CREDENTIAL_PREFIX, ENROLMENT_SORT_KEY),
            )
            .await?;
        let (enrolment, credentials): (Vec<_>, Vec<_>) = items.iter().partition(|item| {
            get_s(item, schema::SORT_KEY).is_ok_and(|sk| sk == ENROLMENT_SORT_KEY)
        });
        let mut credentials = credentials
            .into_iter()
            .map(|item| credential_from(tenant, item))
            .collect::<Result<Vec<_>>>()?;
        with_last_verified(&mut credentials, enrolment.first().copied());
        credentials.sort_by_key(|c| c.created_at);
        Ok(credentials)
    }

    /// One transaction: the guard's action (`ConditionCheck`), both copies of the credential,
    /// the key in every other namespace free or the same user's (`ConditionCheck` each), and
    /// the user's enrolment counter. DynamoDB transactions are serializable, so of two users
    /// adding one key in two namespaces at once exactly one succeeds.
    async fn insert_credential(
        &self,
        credential: &Credential,
        guard: &EnrolmentGuard,
    ) -> Result<InsertOutcome> {
        let tenant = &credential.tenant_id;
        let user = &credential.user_id;
        let action_check = self.condition_check(
            &Key::action(tenant, &guard.action),
            "attribute_exists(pk) AND expiresAt > :now AND NOT (#state IN (:block, :review, :reviewFailed, :failed))",
            &[("#state", "state")],
            HashMap::from([
                (":now".to_owned(), n(guard.now.0)),
                (":block".to_owned(), s(ActionState::Block.as_str())),
                (":review".to_owned(), s(ActionState::ReviewRequired.as_str())),
                (":reviewFailed".to_owned(), s(ActionState::ReviewFailed.as_str())),
                (":failed".to_owned(), s(ActionState::ChallengeFailed.as_str())),
            ]),
        )?;
        let [by_key, by_user] =
            Key::credential_copies(credential).map(|key| credential_item(credential, &key));
        let mut items = vec![
            action_check,
            self.put(by_key, Some("attribute_not_exists(pk)"))?,
            self.put(by_user, Some("attribute_not_exists(pk)"))?,
        ];
        for namespace in Namespace::ALL
            .into_iter()
            .filter(|ns| *ns != credential.namespace)
        {
            items.push(self.condition_check(
                &Key::credential_by_key(tenant, namespace, &credential.key_fingerprint),
                "attribute_not_exists(pk) OR userId = :user",
                &[],
                HashMap::from([(":user".to_owned(), s(user.as_str()))]),
            )?);
        }
        items.push(self.count_enrolment(
            tenant,
            user,
            1,
            guard.first_credential_only,
            (
                credential.namespace.verification_method(),
                credential.id.as_str(),
            ),
        )?);
        const ACTION: usize = 0;
        const BY_KEY: usize = 1;
        const COUNTER_FROM_END: usize = 1;
        match self.transact(items).await? {
            Ok(()) => Ok(InsertOutcome::Inserted),
            Err(reasons) => {
                let failed_at = |i: usize| reasons.get(i).filter(|r| failed(r));
                // The most decisive failure first: a withdrawn token, then another user's key.
                if let Some(reason) = failed_at(ACTION) {
                    return Err(match reason.item() {
                        Some(old) => {
                            let old = action_from(tenant, old)?;
                            if old.expires_at <= guard.now {
                                Error::ActionNotFound
                            } else {
                                Error::ActionForbidsEnrolment(old.state.as_str())
                            }
                        }
                        None => Error::ActionNotFound,
                    });
                }
                let others = BY_KEY + 2..reasons.len().saturating_sub(COUNTER_FROM_END);
                if others.into_iter().any(|i| failed_at(i).is_some()) {
                    return Err(Error::CredentialConflict);
                }
                if let Some(existing) = failed_at(BY_KEY).and_then(|r| r.item()) {
                    return Ok(InsertOutcome::AlreadyRegistered(credential_from(
                        tenant, existing,
                    )?));
                }
                if reasons.last().is_some_and(failed) {
                    return Err(Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE));
                }
                Err(Error::Internal)
            }
        }
    }

    async fn delete_credential(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<Option<Credential>> {
        let Some(item) = self.get_item(&Key::credential(tenant, user, id)).await? else {
            return Ok(None);
        };
        let credential = credential_from(tenant, &item)?;
        let [by_key, by_user] = Key::credential_copies(&credential);
        let items = vec![
            self.count_enrolment(
                tenant,
                user,
                -1,
                false,
                (
                    credential.namespace.verification_method(),
                    credential.id.as_str(),
                ),
            )?,
            self.delete(&by_user, None)?,
            self.delete(
                &by_key,
                Some((
                    "credId = :id",
                    HashMap::from([(":id".to_owned(), s(id.as_str()))]),
                )),
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(Some(credential)),
            // Removed concurrently by someone else.
            Err(_) => Ok(None),
        }
    }

    async fn remove_credential_once(
        &self,
        credential: &Credential,
        receipt: &RemovalReceipt,
    ) -> Result<()> {
        let tenant = &credential.tenant_id;
        let [by_key, by_user] = Key::credential_copies(credential);
        let receipt_item = item::removal_receipt_item(credential, receipt);
        let id_matches = || {
            Some((
                "credId = :id",
                HashMap::from([(":id".to_owned(), s(credential.id.as_str()))]),
            ))
        };
        let items = vec![
            self.put(receipt_item, Some("attribute_not_exists(pk)"))?,
            self.delete(&by_key, id_matches())?,
            self.delete(&by_user, Some(("attribute_exists(pk)", HashMap::new())))?,
            self.count_enrolment(
                tenant,
                &credential.user_id,
                -1,
                false,
                (
                    credential.namespace.verification_method(),
                    credential.id.as_str(),
                ),
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.first().is_some_and(failed) => Err(Error::SignatureAlreadyUsed),
            Err(_) => Err(Error::InvalidCredential),
        }
    }
}
