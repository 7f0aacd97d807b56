//! [`VerificationStore`] on DynamoDB: each verification one transaction.

use super::DynamoStore;
use super::error::failed;
use super::item::{
    action_from, action_item, approval_item, credential_item, enum_attr, n, s, version_condition,
};
use super::keys::Key;
use super::schema;
use crate::domain::{ActionKey, ActionState, Credential, TenantId};
use crate::error::{Error, Result};
use crate::store::{
    ActionWrite, CredentialUpdate, SingleUse, VerificationCommit, VerificationStore,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use std::collections::HashMap;

#[async_trait]
impl VerificationStore for DynamoStore {
    async fn complete_verification(&self, commit: &VerificationCommit) -> Result<ActionKey> {
        let tenant = &commit.tenant_id;
        let now = commit.now;
        if commit.single_use.expires_at() <= now {
            return Err(Error::ChallengeExpired);
        }
        let credential = &commit.credential;
        let method = enum_attr(&commit.method)?;

        // 1. The challenge, used now for the first time.
        let mark = self.use_once(tenant, &commit.single_use)?;

        // 2. The action: completed if still challengeable and retained, or created.
        let action_write = match &commit.action {
            ActionWrite::Complete(key) => {
                self.update(
                    &Key::action(tenant, key),
                    "SET #state = :succeeded, stateUpdatedAt = :now, verificationMethod = :method, verifiedBy = :by",
                    "attribute_exists(pk) AND expiresAt > :now AND #state IN (:allow, :required, :succeeded)",
                    &[("#state", "state")],
                    HashMap::from([
                        (":succeeded".to_owned(), s(ActionState::ChallengeSucceeded.as_str())),
                        (":allow".to_owned(), s(ActionState::Allow.as_str())),
                        (":required".to_owned(), s(ActionState::ChallengeRequired.as_str())),
                        (":now".to_owned(), n(now.0)),
                        (":method".to_owned(), method.clone()),
                        (":by".to_owned(), s(credential.id.as_str())),
                    ]),
                )?
            }
            ActionWrite::Create(action) => {
                let mut created = action.clone();
                created.state = ActionState::ChallengeSucceeded;
                created.state_updated_at = now;
                created.verification_method = Some(commit.method);
                created.verified_by_authenticator_id = Some(credential.id.clone());
                self.put(action_item(&created)?, Some("attribute_not_exists(pk)"))?
            }
        };

        // 3 and 4. Both copies of the credential: still registered, still this one.
        let touch = |key: &Key| {
            self.update(
                key,
                "SET lastVerifiedAt = :now",
                "credId = :id",
                &[],
                HashMap::from([
                    (":now".to_owned(), n(now.0)),
                    (":id".to_owned(), s(credential.id.as_str())),
                ]),
            )
        };
        let [by_key, by_user] = Key::credential_copies(credential);
        let by_key = touch(&by_key)?;
        let by_user = touch(&by_user)?;

        match self
            .transact(vec![mark, action_write, by_key, by_user])
            .await?
        {
            Ok(()) => {}
            Err(reasons) => {
                let reason = |i: usize| reasons.get(i).filter(|r| failed(r));
                if reason(0).is_some() {
                    return Err(Error::ChallengeAlreadyUsed);
                }
                if let Some(r) = reason(1) {
                    return Err(match (r.item(), &commit.action) {
                        (Some(old), ActionWrite::Complete(_)) => {
                            let old = action_from(tenant, old)?;
                            if old.expires_at <= now {
                                Error::ActionNotFound
                            } else {
                                Error::ActionNotChallengeable(old.state.as_str())
                            }
                        }
                        (None, ActionWrite::Complete(_)) => Error::ActionNotFound,
                        (_, ActionWrite::Create(_)) => Error::Internal,
                    });
                }
                return Err(Error::InvalidCredential);
            }
        }
        Ok(match &commit.action {
            ActionWrite::Complete(key) => key.clone(),
            ActionWrite::Create(created) => created.key.clone(),
        })
    }

    async fn update_credential_once(&self, update: &CredentialUpdate) -> Result<()> {
        if update.challenge.expires_at() <= update.now {
            return Err(Error::ChallengeExpired);
        }
        let mark = self.use_once(&update.tenant_id, &update.challenge)?;
        let [by_key, by_user] = self.replace_credential(&update.credential)?;
        match self.transact(vec![mark, by_key, by_user]).await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.first().is_some_and(failed) => Err(Error::ChallengeAlreadyUsed),
            Err(_) => Err(Error::InvalidCredential),
        }
    }
}

impl DynamoStore {
    /// The transaction item that uses a challenge once (see [`SingleUse`]).
    fn use_once(&self, tenant: &TenantId, single_use: &SingleUse) -> Result<TransactWriteItem> {
        match single_use {
            SingleUse::Mark {
                challenge_id,
                expires_at,
            } => self.update(
                &Key::challenge_mark(tenant, challenge_id),
                "SET #consumed = :true, failedAttempts = if_not_exists(failedAttempts, :zero), expiresAt = :exp, #ttl = :ttl",
                // Failed attempts do not stop the right signature (DESIGN 6).
                "attribute_not_exists(pk) OR #consumed = :false",
                &[("#ttl", schema::TTL_ATTRIBUTE), ("#consumed", "consumed")],
                HashMap::from([
                    (":true".to_owned(), AttributeValue::Bool(true)),
                    (":false".to_owned(), AttributeValue::Bool(false)),
                    (":zero".to_owned(), n(0)),
                    (":exp".to_owned(), n(expires_at.0)),
                    (":ttl".to_owned(), n(expires_at.unix_seconds())),
                ]),
            ),
            SingleUse::Approval { approved } => {
                let (condition, values) =
                    version_condition(approved.version.checked_sub(1))?;
                self.put_if(approval_item(approved)?, Some(condition), values)
            }
        }
    }

    /// Both copies of a credential replaced by `new`, if still registered under its id.
    fn replace_credential(&self, new: &Credential) -> Result<[TransactWriteItem; 2]> {
        let condition = "credId = :id";
        let values = || HashMap::from([(":id".to_owned(), s(new.id.as_str()))]);
        let [by_key, by_user] = Key::credential_copies(new);
        Ok([
            self.put_if(credential_item(new, &by_key), Some(condition), values())?,
            self.put_if(credential_item(new, &by_user), Some(condition), values())?,
        ])
    }
}
