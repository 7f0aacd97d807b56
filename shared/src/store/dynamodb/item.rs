//! Records to items and back: the attribute names and types of the module docs' table.
//!
//! Every record→item function destructures its record with no `..`: a field added to a record
//! fails to compile here until it is given an attribute (or explicitly skipped, with the
//! reason), so a field cannot go silently unstored on DynamoDB while the embedded store keeps it.
//! Every item→record function builds its record with a struct literal, which the compiler checks
//! the same way. Two kinds of item are written by update expressions as well as by these
//! functions (challenge marks, rate-limit counters): their functions say so. The records kept as
//! one JSON attribute (tenants, profiles, configs, push and
//! QR-code challenges) are covered by their serde derive.

use super::error::internal;
use super::keys::Key;
use super::schema;
use crate::clock::Timestamp;
use crate::domain::{
    Action, ActionCode, ActionKey, ActionOrigin, ApprovalChallenge, ChallengeMark, Credential,
    CredentialId, IdempotencyKey, Namespace, TenantId, UserId, VerificationMethod,
};
use crate::error::{Error, Result};
use crate::store::{RateBucket, RemovalReceipt};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub(super) use super::attr::{Item, corrupt, get_n, get_opt_n, get_opt_s, get_s, n, s};

pub(super) fn json_attr<T: serde::Serialize>(value: &T) -> Result<AttributeValue> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|_| Error::Internal)
}

pub(super) fn from_json_attr<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T> {
    serde_json::from_str(&get_s(item, name)?).map_err(|_| corrupt(name))
}

/// A closed enum stored as its wire string.
pub(super) fn enum_attr<T: serde::Serialize>(value: &T) -> Result<AttributeValue> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(s(text)),
        _ => Err(Error::Internal),
    }
}

pub(super) fn from_enum_attr<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(get_s(item, name)?)).map_err(|_| corrupt(name))
}

/// An item holding one record as JSON in `data` under `key`.
pub(super) fn data_item<T: serde::Serialize>(key: &Key, record: &T) -> Result<Item> {
    let mut item = key.item();
    item.insert("data".into(), json_attr(record)?);
    Ok(item)
}

// ---------------------------------------------------------------- credentials

/// One copy of `c` under `key` (see [`Key::credential_copies`]).
pub(super) fn credential_item(c: &Credential, key: &Key) -> Item {
    let Credential {
        id,
        // In the key of both copies.
        tenant_id: _,
        user_id,
        namespace,
        public_key,
        key_fingerprint,
        device_name,
        device_platform,
        push_token,
        created_at,
        last_verified_at,
        expires_at,
    } = c;
    let mut item = key.item();
    item.insert("credId".into(), s(id.as_str()));
    item.insert("userId".into(), s(user_id.as_str()));
    item.insert("namespace".into(), s(namespace.segment()));
    item.insert("publicKey".into(), s(public_key));
    item.insert("fingerprint".into(), s(key_fingerprint));
    item.insert("createdAt".into(), n(created_at.0));
    let optional = [
        ("deviceName", device_name.as_ref()),
        ("devicePlatform", device_platform.as_ref()),
        ("pushToken", push_token.as_ref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.into(), s(value));
        }
    }
    if let Some(at) = last_verified_at {
        item.insert("lastVerifiedAt".into(), n(at.0));
    }
    if let Some(at) = expires_at {
        item.insert("credExpiresAt".into(), n(at.0));
    }
    item
}

pub(super) fn credential_from(tenant: &TenantId, item: &Item) -> Result<Credential> {
    Ok(Credential {
        id: CredentialId::parse(get_s(item, "credId")?).map_err(|_| corrupt("credId"))?,
        tenant_id: tenant.clone(),
        user_id: UserId::parse(get_s(item, "userId")?).map_err(|_| corrupt("userId"))?,
        namespace: Namespace::parse_segment(&get_s(item, "namespace")?)
            .ok_or_else(|| corrupt("namespace"))?,
        public_key: get_s(item, "publicKey")?,
        key_fingerprint: get_s(item, "fingerprint")?,
        device_name: get_opt_s(item, "deviceName"),
        device_platform: get_opt_s(item, "devicePlatform"),
        push_token: get_opt_s(item, "pushToken"),
        created_at: Timestamp(get_n(item, "createdAt")?),
        last_verified_at: get_opt_n(item, "lastVerifiedAt").map(Timestamp),
        expires_at: get_opt_n(item, "credExpiresAt").map(Timestamp),
    })
}

// ---------------------------------------------------------------- actions

pub(super) fn action_item(a: &Action) -> Result<Item> {
    let Action {
        tenant_id,
        key,
        state,
        created_at,
        state_updated_at,
        verification_method,
        verified_by_authenticator_id,
        context,
        rule_ids,
        rules,
        origin,
        enrolled_passkey_id,
        expires_at,
    } = a;
    let ActionKey {
        user_id,
        action_code,
        idempotency_key,
    } = key;
    let mut item = Key::action(tenant_id, key).item();
    item.insert("userId".into(), s(user_id.as_str()));
    item.insert("actionCode".into(), s(action_code.as_str()));
    item.insert("idempotencyKey".into(), s(idempotency_key.as_str()));
    item.insert("state".into(), s(state.as_str()));
    item.insert("createdAt".into(), n(created_at.0));
    item.insert("stateUpdatedAt".into(), n(state_updated_at.0));
    if let Some(method) = verification_method {
        item.insert("verificationMethod".into(), enum_attr(method)?);
    }
    if let Some(by) = verified_by_authenticator_id {
        item.insert("verifiedBy".into(), s(by.as_str()));
    }
    item.insert("context".into(), json_attr(context)?);
    item.insert("ruleIds".into(), json_attr(rule_ids)?);
    if !rules.is_empty() {
        item.insert("rules".into(), json_attr(rules)?);
    }
    item.insert("origin".into(), enum_attr(origin)?);
    if let Some(passkey) = enrolled_passkey_id {
        item.insert("enrolledPasskey".into(), s(passkey.as_str()));
    }
    item.insert("expiresAt".into(), n(expires_at.0));
    item.insert(schema::TTL_ATTRIBUTE.into(), n(expires_at.unix_seconds()));
    Ok(item)
}

pub(super) fn action_from(tenant: &TenantId, item: &Item) -> Result<Action> {
    Ok(Action {
        tenant_id: tenant.clone(),
        key: ActionKey {
            user_id: UserId::parse(get_s(item, "userId")?).map_err(|_| corrupt("userId"))?,
            action_code: ActionCode::parse(get_s(item, "actionCode")?)
                .map_err(|_| corrupt("actionCode"))?,
            idempotency_key: IdempotencyKey::parse(get_s(item, "idempotencyKey")?)
                .map_err(|_| corrupt("idempotencyKey"))?,
        },
        state: from_enum_attr(item, "state")?,
        created_at: Timestamp(get_n(item, "createdAt")?),
        state_updated_at: Timestamp(get_n(item, "stateUpdatedAt")?),
        verification_method: match item.get("verificationMethod") {
            Some(_) => Some(from_enum_attr::<VerificationMethod>(
                item,
                "verificationMethod",
            )?),
            None => None,
        },
        verified_by_authenticator_id: get_opt_s(item, "verifiedBy")
            .map(CredentialId::parse)
            .transpose()
            .map_err(|_| corrupt("verifiedBy"))?,
        context: from_json_attr(item, "context")?,
        rule_ids: from_json_attr(item, "ruleIds")?,
        rules: match item.get("rules") {
            Some(_) => from_json_attr(item, "rules")?,
            None => Vec::new(),
        },
        origin: match item.get("origin") {
            Some(_) => from_enum_attr(item, "origin")?,
            None => ActionOrigin::Track,
        },
        enrolled_passkey_id: get_opt_s(item, "enrolledPasskey")
            .map(CredentialId::parse)
            .transpose()
            .map_err(|_| corrupt("enrolledPasskey"))?,
        expires_at: Timestamp(get_n(item, "expiresAt")?),
    })
}

// ---------------------------------------------------------------- removal receipts

/// The receipt that a signature removed `credential`'s key in `receipt.window`: the window and
/// the signature's replay id are in the key (not the namespace: the signed window message names
/// none, spec 3.2, 4.4); the receipt is kept until `expiresAt` (and `ttl`).
pub(super) fn removal_receipt_item(credential: &Credential, receipt: &RemovalReceipt) -> Item {
    let RemovalReceipt {
        window,
        signature_id,
        expires_at,
    } = receipt;
    let mut item = Key::removal_receipt(
        &credential.tenant_id,
        &credential.key_fingerprint,
        *window,
        signature_id,
    )
    .item();
    item.insert("expiresAt".into(), n(expires_at.0));
    item.insert(schema::TTL_ATTRIBUTE.into(), n(expires_at.unix_seconds()));
    item
}

// ---------------------------------------------------------------- rate limits

/// A rate-limit counter started again with one hit. `hit`'s update expression counts on the
/// same attributes (`hits`, `expiresAt`, `ttl`): keep the two in step.
pub(super) fn rate_bucket_item(tenant: &TenantId, bucket: &RateBucket) -> Item {
    let RateBucket {
        key,
        // Not stored: `hit` checks it in its condition.
        limit: _,
        expires_at,
    } = bucket;
    let mut item = Key::rate_limit(tenant, key).item();
    item.insert("hits".into(), n(1));
    item.insert("expiresAt".into(), n(expires_at.0));
    item.insert(schema::TTL_ATTRIBUTE.into(), n(expires_at.unix_seconds()));
    item
}

// ---------------------------------------------------------------- challenge marks

/// A challenge mark as stored. Marks are only ever written by update expressions
/// (`record_failed_attempt`, the single-use step of a commit), which set these three
/// attributes: keep them in step with this function.
pub(super) fn challenge_mark_from(item: &Item) -> Result<ChallengeMark> {
    Ok(ChallengeMark {
        consumed: matches!(item.get("consumed"), Some(AttributeValue::Bool(true))),
        failed_attempts: u32::try_from(get_opt_n(item, "failedAttempts").unwrap_or(0))
            .unwrap_or(u32::MAX),
        expires_at: Timestamp(get_n(item, "expiresAt")?),
    })
}

// ---------------------------------------------------------------- push and QR-code challenges

/// The challenge as JSON in `data` (every field, through its serde derive), its `version` for
/// the compare-and-swap, and `ttl` at its retention.
pub(super) fn approval_item(challenge: &ApprovalChallenge) -> Result<Item> {
    let mut item = data_item(
        &Key::approval(&challenge.tenant_id, &challenge.slot()),
        challenge,
    )?;
    item.insert(
        "version".into(),
        n(i64::try_from(challenge.version).map_err(internal)?),
    );
    item.insert(
        schema::TTL_ATTRIBUTE.into(),
        n(challenge.retain_until.unix_seconds()),
    );
    Ok(item)
}

/// The condition that the slot still holds `expected` (or nothing), with its values.
pub(super) fn version_condition(expected: Option<u64>) -> Result<(&'static str, Item)> {
    Ok(match expected {
        None => ("attribute_not_exists(pk)", Item::new()),
        Some(version) => (
            "version = :expected",
            HashMap::from([(
                ":expected".to_owned(),
                n(i64::try_from(version).map_err(internal)?),
            )]),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ActionState, RuleRef, TrackContext};

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    /// Every field set, and set to something other than its default, survives the item.
    #[test]
    fn a_credential_with_every_field_set_survives_its_item() {
        let credential = Credential {
            id: CredentialId::parse("0a1b-2c").unwrap(),
            tenant_id: tenant(),
            user_id: UserId::parse("alice").unwrap(),
            namespace: Namespace::Push,
            public_key: "MFkw".into(),
            key_fingerprint: "f0f1".into(),
            device_name: Some("phone".into()),
            device_platform: Some("ios".into()),
            push_token: Some("apns".into()),
            created_at: Timestamp(1_000),
            last_verified_at: Some(Timestamp(2_000)),
            expires_at: Some(Timestamp(3_000)),
        };
        for key in Key::credential_copies(&credential) {
            let item = credential_item(&credential, &key);
            assert_eq!(credential_from(&tenant(), &item).unwrap(), credential);
        }
    }

    #[test]
    fn an_action_with_every_field_set_survives_its_item() {
        let action = Action {
            tenant_id: tenant(),
            key: ActionKey {
                user_id: UserId::parse("alice").unwrap(),
                action_code: ActionCode::parse("login").unwrap(),
                idempotency_key: IdempotencyKey::parse("k1").unwrap(),
            },
            state: ActionState::ChallengeSucceeded,
            created_at: Timestamp(1_000),
            state_updated_at: Timestamp(2_000),
            verification_method: Some(VerificationMethod::Push),
            verified_by_authenticator_id: Some(CredentialId::parse("0a1b").unwrap()),
            context: TrackContext {
                ip_address: Some("203.0.113.7".into()),
                user_agent: Some("ua".into()),
                device_id: Some("d".into()),
                custom: Some(serde_json::json!({"a": 1})),
                scope: Some("add:authenticators".into()),
            },
            rule_ids: vec!["r1".into()],
            rules: vec![RuleRef {
                rule_id: "r1".into(),
                name: "Rule".into(),
                description: Some("why".into()),
            }],
            origin: ActionOrigin::DeviceVerification,
            enrolled_passkey_id: Some(CredentialId::parse("0c1d").unwrap()),
            expires_at: Timestamp(9_000_000),
        };
        let item = action_item(&action).unwrap();
        assert_eq!(action_from(&tenant(), &item).unwrap(), action);
        assert_eq!(
            get_n(&item, schema::TTL_ATTRIBUTE).unwrap(),
            action.expires_at.unix_seconds()
        );
    }
}
