//! The table's DynamoDB Stream records back to records (issue #19, DESIGN 10): what the
//! `events` function hands to [`crate::events::events_of`]. Only the item kinds that can make an
//! event are decoded; every other item (the credential's by-key copy, the passkey's copy by
//! WebAuthn credential id, profiles, counters, ...)
//! is `None`, so each change is reported once.

use super::attr::{Item, get_s};
use super::item::{action_from, challenge_mark_from, credential_from, from_json_attr};
use super::keys::{ACTION_PREFIX, CREDENTIAL_PREFIX, PASSKEY_PREFIX};
use super::schema;
use crate::clock::Timestamp;
use crate::domain::{ApprovalChallenge, PasskeyRecord, TenantId};
use crate::error::Result;
use crate::events::{Change, Record};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The change one stream record reports: its `Keys`, its `OldImage` and `NewImage` (`None` when
/// absent or empty), when it happened, and whether TTL removed the item (`userIdentity`
/// `dynamodb.amazonaws.com`). `Ok(None)`: not a kind of item that makes events. An image that
/// does not decode is an error: the record is retried and, in the end, dead-lettered.
pub fn change_of_record(
    keys: &HashMap<String, AttributeValue>,
    old: Option<&HashMap<String, AttributeValue>>,
    new: Option<&HashMap<String, AttributeValue>>,
    at: Timestamp,
    expired: bool,
) -> Result<Option<Change>> {
    let pk = get_s(keys, schema::PARTITION_KEY)?;
    let sk = get_s(keys, schema::SORT_KEY)?;
    // `T#{t}#...`: tenant ids contain no `#` (module docs of `dynamodb`).
    let Some(tenant) = pk
        .strip_prefix("T#")
        .and_then(|rest| rest.split('#').next())
        .and_then(|t| TenantId::parse(t).ok())
    else {
        return Ok(None);
    };
    let old = old.filter(|item| !item.is_empty());
    let new = new.filter(|item| !item.is_empty());
    fn both<T>(
        old: Option<&Item>,
        new: Option<&Item>,
        decode: impl Fn(&Item) -> Result<T>,
    ) -> Result<(Option<T>, Option<T>)> {
        Ok((old.map(&decode).transpose()?, new.map(&decode).transpose()?))
    }
    let record = if sk.starts_with(CREDENTIAL_PREFIX) {
        let (old, new) = both(old, new, |item| credential_from(&tenant, item))?;
        Record::Credential(old, new)
    } else if sk.starts_with(PASSKEY_PREFIX) {
        // spec 3.5: the passkey's copy in its user's partition (`PASSKEY#{id}`); the copy by
        // WebAuthn credential id (`PASSKEY`, no `#`) is skipped, so one passkey is one change.
        let (old, new) = both(old, new, |item| {
            from_json_attr::<PasskeyRecord>(item, "data")
        })?;
        Record::Passkey(old, new)
    } else if sk.starts_with(ACTION_PREFIX) {
        let (old, new) = both(old, new, |item| action_from(&tenant, item))?;
        Record::Action(old, new)
    } else if sk == "PUSH" || sk == "QR" {
        let (old, new) = both(old, new, |item| {
            from_json_attr::<ApprovalChallenge>(item, "data")
        })?;
        Record::Approval(old, new)
    } else if sk == "MARK" {
        let fingerprint = pk.rsplit('#').next().unwrap_or_default().to_owned();
        let (old, new) = both(old, new, challenge_mark_from)?;
        Record::ChallengeMark {
            fingerprint,
            old,
            new,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(Change {
        tenant_id: tenant,
        record,
        at,
        expired,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Credential, CredentialId, Namespace, UserId};
    use crate::store::dynamodb::item::credential_item;
    use crate::store::dynamodb::keys::Key;
    use crate::store::dynamodb::passkeys::passkey_item;

    /// Both copies of a credential change in one transaction; only the one in the user's
    /// partition is decoded, so an added credential is one event, not two.
    #[test]
    fn only_the_user_partition_copy_of_a_credential_is_a_change() {
        let credential = Credential {
            id: CredentialId::parse("0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            namespace: Namespace::Push,
            public_key: "MFkw".into(),
            key_fingerprint: "f0".into(),
            device_name: None,
            device_platform: None,
            push_token: None,
            created_at: Timestamp(1_000),
            last_verified_at: None,
            expires_at: None,
        };
        let [by_key, in_user] = Key::credential_copies(&credential);
        let at = Timestamp(2_000);
        let item = credential_item(&credential, &by_key);
        let change = change_of_record(&by_key.item(), None, Some(&item), at, false).unwrap();
        assert_eq!(change, None);
        let item = credential_item(&credential, &in_user);
        let change = change_of_record(&in_user.item(), None, Some(&item), at, false)
            .unwrap()
            .unwrap();
        assert_eq!(change.tenant_id.as_str(), "acme");
        assert_eq!(change.record, Record::Credential(None, Some(credential)));
    }

    /// The same for a passkey: both copies are written by one transaction, and only the one
    /// in its user's partition is a change; a sign-in rewrites both with the new counter.
    #[test]
    fn only_the_user_partition_copy_of_a_passkey_is_a_change() {
        let tenant = TenantId::parse("acme").unwrap();
        let passkey = PasskeyRecord {
            id: CredentialId::parse("5b1d9c3e-7a2f-4e8d-b6c0-1f9e3a7d5c24").unwrap(),
            tenant_id: tenant.clone(),
            user_id: UserId::parse("alice").unwrap(),
            credential_id: "q2Vx8f0aLwJ3".into(),
            user_handle: "YWxpY2U".into(),
            credential: serde_json::json!({"cred": 1}),
            counter: 0,
            name: None,
            aaguid: None,
            backed_up: false,
            created_at: Timestamp(1_000),
            last_verified_at: None,
        };
        let at = Timestamp(2_000);
        let by_credential_id = Key::passkey(&tenant, &passkey.credential_id);
        let item = passkey_item(&by_credential_id, &passkey).unwrap();
        let change =
            change_of_record(&by_credential_id.item(), None, Some(&item), at, false).unwrap();
        assert_eq!(change, None);

        let in_user = Key::user_passkey(&tenant, &passkey.user_id, &passkey.id);
        let item = passkey_item(&in_user, &passkey).unwrap();
        let change = change_of_record(
            &in_user.item(),
            Some(&HashMap::new()),
            Some(&item),
            at,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(change.record, Record::Passkey(None, Some(passkey)));
    }
}
