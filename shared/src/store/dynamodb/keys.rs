//! Every key of the table, built in one place: one constructor per item kind of the table in
//! the module docs, so a key's shape is written once and every read, write and condition of
//! that item uses the same one.

use super::attr::{Item, get_s, s};
use super::schema;
use crate::domain::policy::ConfigKey;
use crate::domain::{
    ActionKey, ApprovalSlot, ChallengeId, Credential, CredentialId, Namespace, TenantId, UserId,
};
use crate::error::Result;
use std::collections::HashMap;

/// The sort-key prefix of a user's credentials, in the user's partition.
pub(super) const CREDENTIAL_PREFIX: &str = "CRED#";
/// The sort key of a user's enrolment item, in the user's partition. It sorts right after
/// every `CRED#…`, so one Query can read both.
pub(super) const ENROLMENT_SORT_KEY: &str = "ENROLMENT";
/// The sort-key prefix of a user's actions, in the user's partition.
pub(super) const ACTION_PREFIX: &str = "ACT#";
/// The sort-key prefix of a user's sessions, in the user's partition.
pub(super) const SESSION_PREFIX: &str = "SESSION#";
/// The sort-key prefix of the users in a lookup partition (query users).
pub(super) const LOOKUP_PREFIX: &str = "U#";
/// The sort-key prefix of a user's passkeys (the second copy), in the user's partition.
pub(super) const PASSKEY_PREFIX: &str = "PASSKEY#";
/// The sort-key prefix of a tenant's action configs, in the config partition.
pub(super) const CONFIG_PREFIX: &str = "ACTION#";

/// A user's partition: profile, enrolment counter, credentials, actions, pending push.
pub(super) fn user_partition(tenant: &TenantId, user: &UserId) -> String {
    format!("T#{tenant}#U#{user}")
}

/// How many copies of a tenant's action configs are kept, each in its own partition. Every
/// track reads the configs strongly consistent; one partition serves about 3,000 read units
/// a second, so one copy would cap a tenant at about 1,500 tracks a second (2 units each).
/// Each user reads the copy of their shard, so 16 copies carry 16 times that; a save writes
/// all of them in one transaction, so the next track sees it whichever copy it reads
/// (DESIGN 4: no hot item; docs/scaling.md).
pub(super) const CONFIG_SHARDS: u64 = 16;

/// The config copy `user` reads: a hash of the user id, so a tenant's users spread evenly.
/// Any copy would do (they are written together); the hash only spreads the load.
pub(super) fn config_shard(user: &UserId) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    user.as_str().hash(&mut hasher);
    hasher.finish() % CONFIG_SHARDS
}

/// How many copies of a tenant's session config are kept (as for the rules configs: every
/// session call reads it strongly consistent, so one item would cap a tenant's session calls
/// at one partition's 3,000 reads a second; DESIGN 4). A save writes all of them in one
/// transaction; a read picks one at random.
pub(super) const SESSION_CONFIG_COPIES: u64 = 16;

/// One copy of a tenant's action configs.
pub(super) fn config_partition(tenant: &TenantId, shard: u64) -> String {
    format!("T#{tenant}#CFG#{shard}")
}

/// The primary key of one item: `pk` and `sk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: impl Into<String>) -> Key {
        Key { pk, sk: sk.into() }
    }

    /// `WS#{connection id}` / `WS`: an open QR-code WebSocket behind API Gateway. API Gateway
    /// hands out the ids (unique per API), so the key needs no tenant.
    pub fn socket_session(connection: &crate::websocket::ConnectionId) -> Key {
        Key::new(format!("WS#{connection}"), "WS")
    }

    /// `TENANT#{t}` / `TENANT`
    pub fn tenant(tenant: &TenantId) -> Key {
        Key::new(format!("TENANT#{tenant}"), Key::tenant_sort_key())
    }

    /// The sort key of every tenant item (what `tenant list` scans for).
    pub fn tenant_sort_key() -> &'static str {
        "TENANT"
    }

    /// `SECRET#{hash}` / `SECRET`
    pub fn secret(secret_hash: &str) -> Key {
        Key::new(format!("SECRET#{secret_hash}"), "SECRET")
    }

    /// `T#{t}#U#{u}` / `PROFILE`
    pub fn profile(tenant: &TenantId, user: &UserId) -> Key {
        Key::new(user_partition(tenant, user), "PROFILE")
    }

    /// `T#{t}#U#{u}` / `ENROLMENT`
    pub fn enrolment(tenant: &TenantId, user: &UserId) -> Key {
        Key::new(user_partition(tenant, user), ENROLMENT_SORT_KEY)
    }

    /// `T#{t}#U#{u}` / `CRED#{id}`: a credential in its user's partition.
    pub fn credential(tenant: &TenantId, user: &UserId, id: &CredentialId) -> Key {
        Key::new(
            user_partition(tenant, user),
            format!("{CREDENTIAL_PREFIX}{id}"),
        )
    }

    /// `T#{t}#K#{ns}#{fp}` / `KEY`: a credential found by its public key.
    pub fn credential_by_key(tenant: &TenantId, namespace: Namespace, fingerprint: &str) -> Key {
        Key::new(
            format!("T#{tenant}#K#{}#{fingerprint}", namespace.segment()),
            "KEY",
        )
    }

    /// Both copies of `credential`: by its key, then in its user's partition.
    pub fn credential_copies(credential: &Credential) -> [Key; 2] {
        let tenant = &credential.tenant_id;
        [
            Key::credential_by_key(tenant, credential.namespace, &credential.key_fingerprint),
            Key::credential(tenant, &credential.user_id, &credential.id),
        ]
    }

    /// `T#{t}#RK#{fp}` / `RECEIPT#{window}#{r}`: one signature (by its `r`, so its malleated
    /// twin too). Not per namespace: the signed window message names none (spec 3.2, 4.4).
    pub fn removal_receipt(
        tenant: &TenantId,
        fingerprint: &str,
        window: i64,
        signature_id: &str,
    ) -> Key {
        Key::new(
            format!("T#{tenant}#RK#{fingerprint}"),
            format!("RECEIPT#{window}#{signature_id}"),
        )
    }

    /// `T#{t}#U#{u}` / `ACT#{code}#{key}`
    pub fn action(tenant: &TenantId, key: &ActionKey) -> Key {
        Key::new(
            user_partition(tenant, &key.user_id),
            format!("{ACTION_PREFIX}{}#{}", key.action_code, key.idempotency_key),
        )
    }

    /// `T#{t}#CH#{ch}` / `MARK`
    pub fn challenge_mark(tenant: &TenantId, challenge: &ChallengeId) -> Key {
        Key::new(format!("T#{tenant}#CH#{}", challenge.fingerprint()), "MARK")
    }

    /// `T#{t}#CFG#{shard}` / `ACTION#{code}` (`ACTION#*`: the tenant default)
    pub fn action_config(tenant: &TenantId, shard: u64, key: &ConfigKey) -> Key {
        Key::new(
            config_partition(tenant, shard),
            format!("{CONFIG_PREFIX}{key}"),
        )
    }

    /// `T#{t}#U#{u}` / `PUSH`, or `T#{t}#QR#{id}` / `QR`
    pub fn approval(tenant: &TenantId, slot: &ApprovalSlot) -> Key {
        match slot {
            ApprovalSlot::Push(user) => Key::new(user_partition(tenant, user), "PUSH"),
            ApprovalSlot::QrCode(id) => Key::new(format!("T#{tenant}#QR#{id}"), "QR"),
        }
    }

    /// `T#{t}#RL#{bucket}` / `RL`
    pub fn rate_limit(tenant: &TenantId, bucket: &str) -> Key {
        Key::new(format!("T#{tenant}#RL#{bucket}"), "RL")
    }

    /// `T#{t}#SESSIONS#{copy}` / `CONFIG`: one copy of the tenant's session settings and
    /// signing keys (every session call reads one: [`SESSION_CONFIG_COPIES`]).
    pub fn session_config(tenant: &TenantId, copy: u64) -> Key {
        Key::new(format!("T#{tenant}#SESSIONS#{copy}"), "CONFIG")
    }

    /// `T#{t}#U#{u}` / `SESSION#{id}`: a session in its user's partition.
    pub fn session(tenant: &TenantId, user: &UserId, id: &str) -> Key {
        Key::new(
            user_partition(tenant, user),
            format!("{SESSION_PREFIX}{id}"),
        )
    }

    /// `T#{t}#RT#{hash}` / `RT`: a refresh token by the SHA-256 of the token.
    pub fn refresh_token(tenant: &TenantId, hash: &str) -> Key {
        Key::new(format!("T#{tenant}#RT#{hash}"), "RT")
    }

    /// `T#{t}#TK#{hash}` / `USED`: a challenge token made into a session.
    pub fn token_mark(tenant: &TenantId, token_hash: &str) -> Key {
        Key::new(format!("T#{tenant}#TK#{token_hash}"), "USED")
    }

    /// `T#{t}#UL#{attribute}#{value}`: the lookup partition of one attribute value.
    pub fn lookup_partition(tenant: &TenantId, attribute: &str, value: &str) -> String {
        format!("T#{tenant}#UL#{attribute}#{value}")
    }

    /// `T#{t}#UL#{attribute}#{value}` / `U#{u}`: a user found by an attribute value.
    pub fn user_lookup(tenant: &TenantId, attribute: &str, value: &str, user: &UserId) -> Key {
        Key::new(
            Key::lookup_partition(tenant, attribute, value),
            format!("{LOOKUP_PREFIX}{user}"),
        )
    }

    /// `T#{t}#PK#{credentialId}` / `PASSKEY`: a passkey found by its WebAuthn credential id
    /// (discoverable sign-in names no user).
    pub fn passkey(tenant: &TenantId, credential_id: &str) -> Key {
        Key::new(format!("T#{tenant}#PK#{credential_id}"), "PASSKEY")
    }

    /// `T#{t}#U#{u}` / `PASSKEY#{id}`: the same passkey in its user's partition.
    pub fn user_passkey(tenant: &TenantId, user: &UserId, id: &CredentialId) -> Key {
        Key::new(
            user_partition(tenant, user),
            format!("{PASSKEY_PREFIX}{id}"),
        )
    }

    /// `T#{t}#CER#{id}` / `CEREMONY`: a WebAuthn ceremony in progress.
    pub fn ceremony(tenant: &TenantId, id: &str) -> Key {
        Key::new(format!("T#{tenant}#CER#{id}"), "CEREMONY")
    }

    /// The key of a stored item (to delete what a query returned).
    pub fn of_item(item: &Item) -> Result<Key> {
        Ok(Key::new(
            get_s(item, schema::PARTITION_KEY)?,
            get_s(item, schema::SORT_KEY)?,
        ))
    }

    /// The key attributes, as DynamoDB takes a key (and as an item starts).
    pub fn item(&self) -> Item {
        HashMap::from([
            (schema::PARTITION_KEY.to_owned(), s(&self.pk)),
            (schema::SORT_KEY.to_owned(), s(&self.sk)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ActionCode, ApprovalId, IdempotencyKey};

    /// The layout of docs/dynamodb.md and the module docs, byte for byte: a changed key would
    /// orphan every item already stored.
    #[test]
    fn keys_keep_the_documented_layout() {
        let t = TenantId::parse("acme").unwrap();
        let u = UserId::parse("alice").unwrap();
        let id = CredentialId::parse("c1").unwrap();
        let pair = |k: Key| (k.pk, k.sk);
        assert_eq!(
            pair(Key::tenant(&t)),
            ("TENANT#acme".into(), "TENANT".into())
        );
        assert_eq!(
            pair(Key::secret("ab")),
            ("SECRET#ab".into(), "SECRET".into())
        );
        assert_eq!(
            pair(Key::profile(&t, &u)),
            ("T#acme#U#alice".into(), "PROFILE".into())
        );
        assert_eq!(
            pair(Key::enrolment(&t, &u)),
            ("T#acme#U#alice".into(), "ENROLMENT".into())
        );
        assert_eq!(
            pair(Key::credential(&t, &u, &id)),
            ("T#acme#U#alice".into(), "CRED#c1".into())
        );
        assert_eq!(
            pair(Key::credential_by_key(&t, Namespace::Push, "f0")),
            ("T#acme#K#push#f0".into(), "KEY".into())
        );
        assert_eq!(
            pair(Key::credential_by_key(&t, Namespace::QrCode, "f0")),
            ("T#acme#K#qr-code#f0".into(), "KEY".into())
        );
        assert_eq!(
            pair(Key::removal_receipt(&t, "f0", 7, "r0")),
            ("T#acme#RK#f0".into(), "RECEIPT#7#r0".into())
        );
        let action = ActionKey {
            user_id: u.clone(),
            action_code: ActionCode::parse("login").unwrap(),
            idempotency_key: IdempotencyKey::parse("k1").unwrap(),
        };
        assert_eq!(
            pair(Key::action(&t, &action)),
            ("T#acme#U#alice".into(), "ACT#login#k1".into())
        );
        assert_eq!(
            pair(Key::action_config(&t, 3, &ConfigKey::TenantDefault)),
            ("T#acme#CFG#3".into(), "ACTION#*".into())
        );
        assert_eq!(
            pair(Key::approval(&t, &ApprovalSlot::Push(u.clone()))),
            ("T#acme#U#alice".into(), "PUSH".into())
        );
        let qr = "0123456789abcdef".repeat(6);
        assert_eq!(
            pair(Key::approval(
                &t,
                &ApprovalSlot::QrCode(ApprovalId::parse(qr).unwrap())
            )),
            (
                "T#acme#QR#0123456789abcdef0123456789abcdef0123456789abcdef\
                 0123456789abcdef0123456789abcdef0123456789abcdef"
                    .into(),
                "QR".into()
            )
        );
        assert_eq!(
            pair(Key::rate_limit(&t, "anon#1")),
            ("T#acme#RL#anon#1".into(), "RL".into())
        );
        assert_eq!(
            pair(Key::socket_session(
                &crate::websocket::ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap()
            )),
            ("WS#L0SM9cOFvHcCIhw=".into(), "WS".into())
        );
        assert_eq!(
            pair(Key::session_config(&t, 5)),
            ("T#acme#SESSIONS#5".into(), "CONFIG".into())
        );
        assert_eq!(
            pair(Key::session(&t, &u, "s1")),
            ("T#acme#U#alice".into(), "SESSION#s1".into())
        );
        assert_eq!(
            pair(Key::refresh_token(&t, "ab")),
            ("T#acme#RT#ab".into(), "RT".into())
        );
        assert_eq!(
            pair(Key::token_mark(&t, "ab")),
            ("T#acme#TK#ab".into(), "USED".into())
        );
        assert_eq!(
            pair(Key::user_lookup(&t, "email", "a@b.c", &u)),
            ("T#acme#UL#email#a@b.c".into(), "U#alice".into())
        );
        assert_eq!(
            pair(Key::passkey(&t, "cid")),
            ("T#acme#PK#cid".into(), "PASSKEY".into())
        );
        assert_eq!(
            pair(Key::user_passkey(&t, &u, &id)),
            ("T#acme#U#alice".into(), "PASSKEY#c1".into())
        );
        assert_eq!(
            pair(Key::ceremony(&t, "x")),
            ("T#acme#CER#x".into(), "CEREMONY".into())
        );
        let challenge = ChallengeId::parse("c1.00ff.mac").unwrap();
        assert_eq!(
            pair(Key::challenge_mark(&t, &challenge)),
            (
                // SHA-256 of `c1.00ff.mac`.
                "T#acme#CH#dc1a649deb7abe8762aeb5704b466117e3c821fbb15f037fe9c315553279e51a".into(),
                "MARK".into()
            )
        );
    }

    /// The conformance scene `config_changes_reach_every_copy` reads the configs as users
    /// `user-0` to `user-159`: those reach every copy, so it proves a save and a delete reach
    /// them all.
    #[test]
    fn the_conformance_users_read_every_config_copy() {
        let shards: std::collections::BTreeSet<u64> = (0..160)
            .map(|i| config_shard(&UserId::parse(format!("user-{i}")).unwrap()))
            .collect();
        assert_eq!(shards.len() as u64, CONFIG_SHARDS);
    }
}
