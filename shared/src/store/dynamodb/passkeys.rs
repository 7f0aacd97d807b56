//! [`PasskeyStore`] on DynamoDB: passkeys stored twice (by credential id, in the user's
//! partition), ceremonies with a TTL, each registration and sign-in one transaction.

use super::DynamoStore;
use super::error::{conditional, failed};
use super::item::{
    Item, action_from, action_item, credential_from, data_item, enum_attr, from_json_attr, get_s,
    n, s,
};
use super::keys::{CREDENTIAL_PREFIX, ENROLMENT_SORT_KEY, Key, PASSKEY_PREFIX, user_partition};
use super::schema;
use super::store::{SortKeys, one, with_last_verified};
use crate::clock::Timestamp;
use crate::domain::{
    ADD_AUTHENTICATORS_SCOPE, ActionKey, ActionState, Ceremony, CredentialId, PasskeyCheck,
    PasskeyRecord, TenantId, UserId, VerificationMethod,
};
use crate::error::{Error, Result};
use crate::store::{ActionWrite, PasskeyEnrolment, PasskeySignIn, PasskeyStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, TransactWriteItem};
use std::collections::HashMap;

pub(super) fn passkey_item(key: &Key, passkey: &PasskeyRecord) -> Result<Item> {
    let mut item = data_item(key, passkey)?;
    item.insert("passkeyId".into(), s(passkey.id.as_str()));
    item.insert("counter".into(), n(i64::from(passkey.counter)));
    Ok(item)
}

fn ceremony_item(ceremony: &Ceremony) -> Result<Item> {
    let mut item = data_item(&Key::ceremony(&ceremony.tenant_id, &ceremony.id), ceremony)?;
    item.insert("consumed".into(), AttributeValue::Bool(ceremony.consumed));
    item.insert("expiresAt".into(), n(ceremony.expires_at.0));
    item.insert(
        schema::TTL_ATTRIBUTE.into(),
        n(ceremony.expires_at.unix_seconds()),
    );
    Ok(item)
}

fn ceremony_from(item: &Item) -> Result<Ceremony> {
    let mut ceremony: Ceremony = from_json_attr(item, "data")?;
    // The attribute is what the conditional writes change.
    ceremony.consumed = matches!(item.get("consumed"), Some(AttributeValue::Bool(true)));
    Ok(ceremony)
}

impl DynamoStore {
    /// The transaction item that marks a ceremony consumed, if it exists, is unexpired and
    /// unused.
    fn consume_ceremony(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<TransactWriteItem> {
        self.update(
            &Key::ceremony(tenant, id),
            "SET #consumed = :true",
            "attribute_exists(pk) AND #consumed = :false AND expiresAt > :now",
            &[("#consumed", "consumed")],
            HashMap::from([
                (":true".to_owned(), AttributeValue::Bool(true)),
                (":false".to_owned(), AttributeValue::Bool(false)),
                (":now".to_owned(), n(now.0)),
            ]),
        )
    }
}

/// The precise error of a failed ceremony condition, from the item DynamoDB returned.
fn ceremony_failure(old: Option<&Item>, now: Timestamp) -> Result<Error> {
    Ok(match old {
        None => Error::ChallengeNotFound,
        Some(item) => {
            let ceremony = ceremony_from(item)?;
            if ceremony.expires_at <= now {
                Error::ChallengeExpired
            } else {
                Error::ChallengeAlreadyUsed
            }
        }
    })
}

#[async_trait]
impl PasskeyStore for DynamoStore {
    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(ceremony_item(ceremony)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match conditional("PutItem", result)? {
            Ok(output) => {
                self.meter.record_write(one(output.consumed_capacity()));
                Ok(())
            }
            // 256 random bits collided: not a case to answer.
            Err(_) => Err(Error::Internal),
        }
    }

    async fn get_ceremony(
        &self,
        tenant: &TenantId,
        id: &str,
        _now: Timestamp,
    ) -> Result<Option<Ceremony>> {
        Ok(self
            .get_item(&Key::ceremony(tenant, id))
            .await?
            .map(|item| ceremony_from(&item))
            .transpose()?)
    }

    async fn get_passkey(
        &self,
        tenant: &TenantId,
        credential_id: &str,
    ) -> Result<Option<PasskeyRecord>> {
        self.get_item(&Key::passkey(tenant, credential_id))
            .await?
            .map(|item| from_json_attr(&item, "data"))
            .transpose()
    }

    async fn list_user_passkeys(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<PasskeyRecord>> {
        let mut passkeys = self
            .query_prefix(user_partition(tenant, user), PASSKEY_PREFIX)
            .await?
            .iter()
            .map(|item| from_json_attr::<PasskeyRecord>(item, "data"))
            .collect::<Result<Vec<_>>>()?;
        passkeys.sort_by_key(|p| p.created_at);
        Ok(passkeys)
    }

    async fn list_user_authenticators(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(Vec<crate::domain::Credential>, Vec<PasskeyRecord>)> {
        // `CRED#…` to `PASSKEY#…` in the user's partition: the credentials, the enrolment
        // item between them (the credentials' verification times), and the passkeys; one
        // Query. `$` sorts right after `#`: past every `PASSKEY#…`.
        let items = self
            .query(
                user_partition(tenant, user),
                SortKeys::Between(CREDENTIAL_PREFIX, "PASSKEY$"),
            )
            .await?;
        let mut credentials = Vec::new();
        let mut passkeys = Vec::new();
        let mut enrolment = None;
        for item in &items {
            let sk = get_s(item, schema::SORT_KEY)?;
            if sk.starts_with(CREDENTIAL_PREFIX) {
                credentials.push(credential_from(tenant, item)?);
            } else if sk.starts_with(PASSKEY_PREFIX) {
                passkeys.push(from_json_attr::<PasskeyRecord>(item, "data")?);
            } else if sk == ENROLMENT_SORT_KEY {
                enrolment = Some(item);
            }
        }
        with_last_verified(&mut credentials, enrolment);
        credentials.sort_by_key(|c| c.created_at);
        passkeys.sort_by_key(|p| p.created_at);
        Ok((credentials, passkeys))
    }

    async fn enrol_passkey(&self, enrolment: &PasskeyEnrolment) -> Result<()> {
        let passkey = &enrolment.passkey;
        let tenant = &passkey.tenant_id;
        let guard = &enrolment.guard;
        let items = vec![
            self.consume_ceremony(tenant, &enrolment.ceremony_id, guard.now)?,
            // spec 3.5: the action completed (or, completed already, marked) by this
            // registration, if its token registered no passkey yet.
            self.update(
                &Key::action(tenant, &guard.action),
                if enrolment.completes_action {
                    "SET #state = :succeeded, stateUpdatedAt = :now, verificationMethod = :method, verifiedBy = :by, enrolledPasskey = :by"
                } else {
                    "SET enrolledPasskey = :by"
                },
                "attribute_exists(pk) AND expiresAt > :now AND attribute_not_exists(enrolledPasskey) AND #state IN (:expected0, :expected1)",
                &[("#state", "state")],
                {
                    let [expected0, expected1] = enrolment.expected_states();
                    let mut values = HashMap::from([
                        (":now".to_owned(), n(guard.now.0)),
                        (":by".to_owned(), s(passkey.id.as_str())),
                        (":expected0".to_owned(), s(expected0.as_str())),
                        (":expected1".to_owned(), s(expected1.as_str())),
                    ]);
                    if enrolment.completes_action {
                        values.insert(
                            ":succeeded".to_owned(),
                            s(ActionState::ChallengeSucceeded.as_str()),
                        );
                        values.insert(
                            ":method".to_owned(),
                            enum_attr(&VerificationMethod::Passkey)?,
                        );
                    }
                    values
                },
            )?,
            self.put(
                passkey_item(&Key::passkey(tenant, &passkey.credential_id), passkey)?,
                Some("attribute_not_exists(pk)"),
            )?,
            self.put(
                passkey_item(&Key::user_passkey(tenant, &passkey.user_id, &passkey.id), passkey)?,
                Some("attribute_not_exists(pk)"),
            )?,
            // Passkeys count with device credentials: one counter for "has an authenticator".
            self.count_enrolment(
                tenant,
                &passkey.user_id,
                1,
                guard.first_credential_only,
                (VerificationMethod::Passkey, passkey.id.as_str()),
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(reasons) => {
                let failed_at = |i: usize| reasons.get(i).filter(|r| failed(r));
                if let Some(reason) = failed_at(0) {
                    return Err(ceremony_failure(reason.item(), guard.now)?);
                }
                if let Some(reason) = failed_at(1) {
                    return Err(match reason.item() {
                        Some(old) => {
                            let old = action_from(tenant, old)?;
                            if old.expires_at <= guard.now {
                                Error::ActionNotFound
                            } else if old.enrolled_passkey_id.is_some() {
                                Error::PasskeyTokenAlreadyUsed
                            } else if !old.state.allows_enrolment() {
                                Error::ActionForbidsEnrolment(old.state.as_str())
                            } else {
                                Error::ActionNotChallengeable(old.state.as_str())
                            }
                        }
                        None => Error::ActionNotFound,
                    });
                }
                if failed_at(2).is_some() || failed_at(3).is_some() {
                    return Err(Error::CredentialConflict);
                }
                Err(Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE))
            }
        }
    }

    async fn complete_passkey_sign_in(&self, sign_in: &PasskeySignIn) -> Result<ActionKey> {
        let tenant = &sign_in.tenant_id;
        let now = sign_in.now;
        let passkey = &sign_in.passkey;
        let method = enum_attr(&VerificationMethod::Passkey)?;
        let action_write = match &sign_in.action {
            ActionWrite::Complete(key) => self.update(
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
                    (":by".to_owned(), s(passkey.id.as_str())),
                ]),
            )?,
            ActionWrite::Create(action) => {
                let mut created = action.clone();
                created.state = ActionState::ChallengeSucceeded;
                created.state_updated_at = now;
                created.verification_method = Some(VerificationMethod::Passkey);
                created.verified_by_authenticator_id = Some(passkey.id.clone());
                self.put(action_item(&created)?, Some("attribute_not_exists(pk)"))?
            }
        };
        let counter_condition = "passkeyId = :id AND #counter = :previous";
        let values = || {
            HashMap::from([
                (":id".to_owned(), s(passkey.id.as_str())),
                (
                    ":previous".to_owned(),
                    n(i64::from(sign_in.previous_counter)),
                ),
            ])
        };
        let copy = |key: Key| -> Result<TransactWriteItem> {
            let mut put = self.put_if(
                passkey_item(&key, passkey)?,
                Some(counter_condition),
                values(),
            )?;
            if let Some(p) = put.put.as_mut() {
                p.expression_attribute_names = Some(HashMap::from([(
                    "#counter".to_owned(),
                    "counter".to_owned(),
                )]));
            }
            Ok(put)
        };
        let items = vec![
            self.consume_ceremony(tenant, &sign_in.ceremony_id, now)?,
            copy(Key::passkey(tenant, &passkey.credential_id))?,
            copy(Key::user_passkey(tenant, &passkey.user_id, &passkey.id))?,
            action_write,
        ];
        match self.transact(items).await? {
            Ok(()) => {}
            Err(reasons) => {
                let failed_at = |i: usize| reasons.get(i).filter(|r| failed(r));
                if let Some(reason) = failed_at(0) {
                    return Err(ceremony_failure(reason.item(), now)?);
                }
                for copy in [1, 2] {
                    if let Some(reason) = failed_at(copy) {
                        return Err(match reason.item() {
                            Some(_) => Error::PasskeyRejected(PasskeyCheck::CounterRegression),
                            None => Error::PasskeyNotRegistered,
                        });
                    }
                }
                if let Some(reason) = failed_at(3) {
                    return Err(super::verification::action_refusal(
                        tenant,
                        reason.item(),
                        &sign_in.action,
                        now,
                    )?);
                }
                return Err(Error::Internal);
            }
        }
        Ok(match &sign_in.action {
            ActionWrite::Complete(key) => key.clone(),
            ActionWrite::Create(created) => created.key.clone(),
        })
    }

    async fn delete_passkey(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<Option<PasskeyRecord>> {
        let user_key = Key::user_passkey(tenant, user, id);
        let Some(item) = self.get_item(&user_key).await? else {
            return Ok(None);
        };
        let passkey: PasskeyRecord = from_json_attr(&item, "data")?;
        let condition = || {
            Some((
                "passkeyId = :id",
                HashMap::from([(":id".to_owned(), s(id.as_str()))]),
            ))
        };
        let items = vec![
            self.delete(&user_key, condition())?,
            self.delete(&Key::passkey(tenant, &passkey.credential_id), None)?,
            self.count_enrolment(
                tenant,
                user,
                -1,
                false,
                (VerificationMethod::Passkey, id.as_str()),
            )?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(Some(passkey)),
            // Removed concurrently: the other removal answered for it.
            Err(_) => Ok(None),
        }
    }
}
