//! [`VerificationStore`] on DynamoDB: each verification one transaction.

use super::DynamoStore;
use super::error::failed;
use super::item::{
    Item, action_from, action_item, approval_item, credential_item, enum_attr, get_opt_s, n, s,
    version_condition,
};
use super::keys::Key;
use super::schema;
use super::store::{LAST_CHALLENGE_ATTRIBUTE, enrolment_set, last_verified_attribute};
use crate::domain::{ActionKey, ActionState, ChallengeOrder, Credential, TenantId};
use crate::error::{Error, Result};
use crate::store::{
    ActionWrite, CredentialUpdate, OneTimeMark, SingleUse, VerificationCommit, VerificationStore,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use std::collections::HashMap;

#[async_trait]
impl VerificationStore for DynamoStore {
    /// One transaction of two items for an in-app verify (the action and the user's enrolment
    /// item, which holds the single use: [`SingleUse::InOrder`]), three for an approval (the
    /// approval too). Each item is a transactional write of 2 units, so a full in-app flow
    /// costs 5 write units (docs/dynamodb.md, "The verify transaction").
    async fn complete_verification(&self, commit: &VerificationCommit) -> Result<ActionKey> {
        let tenant = &commit.tenant_id;
        let now = commit.now;
        if commit.single_use.expires_at() <= now {
            return Err(Error::ChallengeExpired);
        }
        let credential = &commit.credential;
        let method = enum_attr(&commit.method)?;

        // The challenge, used now for the first time: an approval's own item, or (in order)
        // a condition on the enrolment item below.
        let (approval, order) = match &commit.single_use {
            SingleUse::Approval { approved } => {
                let (condition, values) = version_condition(approved.version.checked_sub(1))?;
                (
                    Some(self.put_if(approval_item(approved)?, Some(condition), values)?),
                    None,
                )
            }
            SingleUse::InOrder { order, .. } => (None, Some(order)),
        };

        // The action: completed if still challengeable and retained, or created.
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

        // The credential: still registered (its id in the user's enrolment set, moved by
        // every add and removal), and its verification time.
        let enrolment = self.verify_on_enrolment(credential, now, order)?;

        let first = usize::from(approval.is_some());
        let (action_at, enrolment_at) = (first, first + 1);
        let items = approval
            .into_iter()
            .chain([action_write, enrolment])
            .collect();
        if let Err(reasons) = self.transact(items).await? {
            let failed_at = |i: usize| reasons.get(i).filter(|r| failed(r));
            if first == 1 && failed_at(0).is_some() {
                return Err(Error::ChallengeAlreadyUsed);
            }
            // A replay or a superseded challenge before what the action says: a replay's
            // action may have moved on since.
            let enrolment_failure =
                failed_at(enrolment_at).map(|r| enrolment_refusal(r.item(), order));
            if let Some(refusal @ (Error::ChallengeAlreadyUsed | Error::ChallengeSuperseded)) =
                enrolment_failure
            {
                return Err(refusal);
            }
            if let Some(r) = failed_at(action_at) {
                return Err(action_refusal(tenant, r.item(), &commit.action, now)?);
            }
            return Err(enrolment_failure.unwrap_or(Error::InvalidCredential));
        }
        Ok(match &commit.action {
            ActionWrite::Complete(key) => key.clone(),
            ActionWrite::Create(created) => created.key.clone(),
        })
    }

    async fn update_credential_once(&self, update: &CredentialUpdate) -> Result<()> {
        if update.challenge.expires_at <= update.now {
            return Err(Error::ChallengeExpired);
        }
        let mark = self.use_mark(&update.tenant_id, &update.challenge)?;
        let [by_key, by_user] = self.replace_credential(&update.credential)?;
        match self.transact(vec![mark, by_key, by_user]).await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.first().is_some_and(failed) => Err(Error::ChallengeAlreadyUsed),
            Err(_) => Err(Error::InvalidCredential),
        }
    }
}

/// Why the action's item refused a verification or a passkey sign-in, from its old image:
/// gone or past retention, or in a state a signature cannot complete. A created action's
/// `attribute_not_exists` cannot fail (its idempotency key is new): `Internal`.
pub(super) fn action_refusal(
    tenant: &TenantId,
    old: Option<&Item>,
    write: &ActionWrite,
    now: crate::clock::Timestamp,
) -> Result<Error> {
    Ok(match (old, write) {
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
    })
}

/// Why the enrolment item refused a verification, from its old image: (in order) a challenge
/// at or after this one was used, else the credential is no longer registered. The same
/// precedence as the embedded store's.
fn enrolment_refusal(old: Option<&Item>, order: Option<&ChallengeOrder>) -> Error {
    let last = old
        .and_then(|old| get_opt_s(old, LAST_CHALLENGE_ATTRIBUTE))
        .map(ChallengeOrder::from_stored);
    match (order, last) {
        (Some(order), Some(last)) if last == *order => Error::ChallengeAlreadyUsed,
        (Some(order), Some(last)) if last > *order => Error::ChallengeSuperseded,
        _ => Error::InvalidCredential,
    }
}

impl DynamoStore {
    /// The enrolment item's part of a verification: the credential's id must still be in its
    /// user's set; its verification time becomes `now`; with `order`, no challenge of the
    /// user at or after it may have been used, and it becomes the last used.
    fn verify_on_enrolment(
        &self,
        credential: &Credential,
        now: crate::clock::Timestamp,
        order: Option<&ChallengeOrder>,
    ) -> Result<TransactWriteItem> {
        let last_verified = last_verified_attribute(credential.id.as_str());
        let set = enrolment_set(credential.namespace.verification_method());
        let mut values = HashMap::from([
            (":id".to_owned(), s(credential.id.as_str())),
            (":now".to_owned(), n(now.0)),
        ]);
        let (expression, condition) = match order {
            Some(order) => {
                values.insert(":order".to_owned(), s(order.as_str()));
                (
                    "SET #lastVerified = :now, #lastChallenge = :order",
                    "contains(#set, :id) AND (attribute_not_exists(#lastChallenge) OR #lastChallenge < :order)",
                )
            }
            None => ("SET #lastVerified = :now", "contains(#set, :id)"),
        };
        let mut names = vec![("#set", set), ("#lastVerified", last_verified.as_str())];
        if order.is_some() {
            names.push(("#lastChallenge", LAST_CHALLENGE_ATTRIBUTE));
        }
        self.update(
            &Key::enrolment(&credential.tenant_id, &credential.user_id),
            expression,
            condition,
            &names,
            values,
        )
    }

    /// The transaction item that uses a challenge's mark once (see [`OneTimeMark`]).
    fn use_mark(&self, tenant: &TenantId, mark: &OneTimeMark) -> Result<TransactWriteItem> {
        self.update(
            &Key::challenge_mark(tenant, &mark.challenge_id),
            "SET #consumed = :true, failedAttempts = if_not_exists(failedAttempts, :zero), expiresAt = :exp, #ttl = :ttl",
            // Failed attempts do not stop the right signature (DESIGN 6).
            "attribute_not_exists(pk) OR #consumed = :false",
            &[("#ttl", schema::TTL_ATTRIBUTE), ("#consumed", "consumed")],
            HashMap::from([
                (":true".to_owned(), AttributeValue::Bool(true)),
                (":false".to_owned(), AttributeValue::Bool(false)),
                (":zero".to_owned(), n(0)),
                (":exp".to_owned(), n(mark.expires_at.0)),
                (":ttl".to_owned(), n(mark.expires_at.unix_seconds())),
            ]),
        )
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
