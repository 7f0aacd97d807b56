//! The outbox (issue #19, DESIGN 10): every change to a record that can make an event, of a
//! tenant that has an events webhook ([`tenant_has_events_webhook`]), is written, with the
//! record before it, to SQLite's `outbox` table in the transaction of the change itself
//! ([`super::engine::Tx::put`]), so a change and its pending events are committed together or
//! not at all. The events worker ([`crate::events::outbox`]) reads the due rows,
//! maps them with [`crate::events::events_of`] (the mapping DynamoDB Streams records go through
//! too), delivers, and removes each row delivered or postpones it.

use super::engine::{OutboxRow, TableId, Tx};
use super::{EmbeddedStore, decode};
use crate::clock::Timestamp;
use crate::domain::{
    Action, ApprovalChallenge, ChallengeMark, Credential, KEY_SEPARATOR, PasskeyRecord, TenantId,
};
use crate::error::Result;
use crate::events::{Change, Record};

/// One outbox row, decoded: `change` is `Ok(None)` for a row that can make no event (a table
/// this version does not know, a key without a tenant), and an error for one whose values do
/// not decode (the worker postpones that row alone: rows are independent).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingChange {
    pub seq: i64,
    pub attempts: u32,
    pub change: Result<Option<Change>>,
}

impl EmbeddedStore {
    /// Up to `limit` outbox rows due at `now`, oldest first. A row whose values do not decode
    /// (the store is damaged) carries its error, so that it cannot hold back the others.
    pub fn due_changes(&self, now: Timestamp, limit: u32) -> Result<Vec<PendingChange>> {
        let rows = self.read(|tx| tx.due_changes(now.0, limit))?;
        Ok(rows
            .into_iter()
            .map(|row| PendingChange {
                seq: row.seq,
                attempts: row.attempts,
                change: change_of_row(&row),
            })
            .collect())
    }

    /// What a pass of the events worker did, in one transaction: the rows in `removed` (their
    /// events were delivered, or they make none) go, and each of `postponed` (a delivery
    /// failed) is due again at its time.
    pub async fn settle_changes(&self, removed: &[i64], postponed: &[Postponement]) -> Result<()> {
        self.write(|tx| {
            for &seq in removed {
                tx.remove_change(seq)?;
            }
            for later in postponed {
                tx.postpone_change(later.seq, later.attempts, later.next_attempt_at.0)?;
            }
            Ok(())
        })
        .await
    }

    /// How many changes wait in the outbox.
    pub fn outbox_len(&self) -> Result<u64> {
        self.read(|tx| tx.outbox_len())
    }
}

/// The store's [`OutboxRule`](super::engine::OutboxRule): a change is written to the outbox
/// only when its tenant (the key's first segment) has an events webhook at the time of the
/// change. DESIGN 10: "a tenant without an events webhook gets nothing and nothing is kept
/// for it", so its changes cost no outbox row, no delivery pass and no delete. Read in the
/// change's transaction, which holds the write lock: a webhook set by the CLI in another
/// process applies from the next change on.
pub(super) fn tenant_has_events_webhook(tx: &Tx<'_>, key: &str) -> Result<bool> {
    /// The one field of the tenant's record this needs; the others are skipped, not decoded.
    #[derive(serde::Deserialize)]
    struct EventsSink {
        #[serde(default)]
        events_webhook: Option<serde::de::IgnoredAny>,
    }
    let tenant = key.split(KEY_SEPARATOR).next().unwrap_or_default();
    match tx.get(TableId::Tenants, tenant)? {
        Some(record) => Ok(decode::<EventsSink>(&record)?.events_webhook.is_some()),
        None => Ok(false),
    }
}

/// An outbox row to try again later: its failed attempts so far, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Postponement {
    pub seq: i64,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
}

fn change_of_row(row: &OutboxRow) -> Result<Option<Change>> {
    fn both<T: serde::de::DeserializeOwned>(row: &OutboxRow) -> Result<(Option<T>, Option<T>)> {
        Ok((
            row.old.as_deref().map(decode).transpose()?,
            row.new.as_deref().map(decode).transpose()?,
        ))
    }
    // Every key of these tables starts with the tenant (`mod.rs`'s table of keys).
    let mut parts = row.key.split(KEY_SEPARATOR);
    let Some(tenant) = parts.next().and_then(|t| TenantId::parse(t).ok()) else {
        return Ok(None);
    };
    let record = match row.table {
        Some(TableId::Credentials) => {
            let (old, new) = both::<Credential>(row)?;
            Record::Credential(old, new)
        }
        Some(TableId::Passkeys) => {
            let (old, new) = both::<PasskeyRecord>(row)?;
            Record::Passkey(old, new)
        }
        Some(TableId::Actions) => {
            let (old, new) = both::<Action>(row)?;
            Record::Action(old, new)
        }
        Some(TableId::Approvals) => {
            let (old, new) = both::<ApprovalChallenge>(row)?;
            Record::Approval(old, new)
        }
        Some(TableId::ChallengeMarks) => {
            let (old, new) = both::<ChallengeMark>(row)?;
            Record::ChallengeMark {
                fingerprint: parts.next().unwrap_or_default().to_owned(),
                old,
                new,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Change {
        tenant_id: tenant,
        record,
        at: row.at,
        // The purge of expired items deletes without the outbox: every removal here was asked
        // for.
        expired: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CredentialId, Namespace, TenantRecord, UserId};
    use crate::error::Error;
    use crate::store::TenantStore;
    use crate::store::embedded::encode;

    fn credential() -> Credential {
        Credential {
            id: CredentialId::parse("0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            namespace: Namespace::InApp,
            public_key: "MFkw".into(),
            key_fingerprint: "f0".into(),
            device_name: None,
            device_platform: None,
            push_token: None,
            created_at: Timestamp(1_000),
            last_verified_at: None,
            expires_at: None,
        }
    }

    const KEY: &str = "acme\u{1f}in-app\u{1f}f0";

    fn far_future() -> Timestamp {
        Timestamp(i64::MAX)
    }

    /// The tenant `acme`, with or without an events webhook.
    fn acme(events_webhook: bool) -> TenantRecord {
        let tenant = crate::store::samples::tenant_with_events_webhook("acme");
        if events_webhook {
            tenant
        } else {
            TenantRecord {
                events_webhook: None,
                ..tenant
            }
        }
    }

    /// A store whose tenant `acme` (the tenant of [`KEY`]) has an events webhook, so the
    /// outbox keeps its changes.
    async fn store_with_events_webhook() -> EmbeddedStore {
        let store = EmbeddedStore::in_memory().unwrap();
        store.put_tenant(&acme(true)).await.unwrap();
        store
    }

    /// The rule's answer is remembered within a transaction, but not across a write of the
    /// tenant: a change after the webhook is set in the same transaction is kept, one after it
    /// is removed is not.
    #[tokio::test]
    async fn a_tenant_written_in_the_transaction_is_asked_again() {
        let store = EmbeddedStore::in_memory().unwrap();
        let first = encode(&credential()).unwrap();
        let second = encode(&Credential {
            last_verified_at: Some(Timestamp(2_000)),
            ..credential()
        })
        .unwrap();
        let third = encode(&Credential {
            last_verified_at: Some(Timestamp(3_000)),
            ..credential()
        })
        .unwrap();
        store
            .write(|tx| {
                tx.put(TableId::Credentials, KEY, &first, None)?;
                super::super::put(tx, TableId::Tenants, "acme", &acme(true))?;
                tx.put(TableId::Credentials, KEY, &second, None)?;
                super::super::put(tx, TableId::Tenants, "acme", &acme(false))?;
                tx.put(TableId::Credentials, KEY, &third, None)
            })
            .await
            .unwrap();
        let due = store.due_changes(far_future(), 10).unwrap();
        let news: Vec<_> = due
            .into_iter()
            .map(|p| p.change.unwrap().unwrap().record)
            .collect();
        assert_eq!(
            news,
            [Record::Credential(
                Some(credential()),
                Some(Credential {
                    last_verified_at: Some(Timestamp(2_000)),
                    ..credential()
                })
            )],
            "only the change made while the webhook was set"
        );
    }

    /// DESIGN 10: a tenant without an events webhook gets nothing and nothing is kept for it,
    /// so its changes write no outbox row; a webhook set later applies from the next change
    /// on, and a change of a tenant the store does not know writes none either.
    #[tokio::test]
    async fn only_the_changes_of_a_tenant_with_an_events_webhook_are_kept() {
        let store = EmbeddedStore::in_memory().unwrap();
        store.put_tenant(&acme(false)).await.unwrap();
        let first = credential();
        let second = Credential {
            last_verified_at: Some(Timestamp(2_000)),
            ..credential()
        };
        let put = |credential: &Credential| {
            let value = encode(credential).unwrap();
            let store = store.clone();
            async move {
                store
                    .write(|tx| tx.put(TableId::Credentials, KEY, &value, None))
                    .await
                    .unwrap()
            }
        };
        put(&first).await;
        assert_eq!(store.outbox_len().unwrap(), 0, "no webhook: no row");

        store.put_tenant(&acme(true)).await.unwrap();
        put(&second).await;
        store
            .write(|tx| {
                tx.put(
                    TableId::Credentials,
                    "globex\u{1f}in-app\u{1f}f0",
                    &encode(&first).unwrap(),
                    None,
                )
            })
            .await
            .unwrap();
        let due = store.due_changes(far_future(), 10).unwrap();
        assert_eq!(
            due.into_iter()
                .map(|p| p.change.unwrap().unwrap().record)
                .collect::<Vec<_>>(),
            [Record::Credential(Some(first), Some(second))],
            "only acme's change after its webhook was set"
        );
    }

    /// DESIGN 10: the outbox row is written by the change's own transaction, so a change that
    /// is rolled back leaves no row, and one that commits always has its row.
    #[tokio::test]
    async fn a_change_and_its_outbox_row_commit_or_roll_back_together() {
        let store = store_with_events_webhook().await;
        let value = encode(&credential()).unwrap();
        let failed: Result<()> = store
            .write(|tx| {
                tx.put(TableId::Credentials, KEY, &value, None)?;
                Err(Error::Internal)
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(
            store.outbox_len().unwrap(),
            0,
            "rolled back with the change"
        );

        store
            .write(|tx| tx.put(TableId::Credentials, KEY, &value, None))
            .await
            .unwrap();
        // Writing the same value again is no change; a table that makes no events has none.
        store
            .write(|tx| {
                tx.put(TableId::Credentials, KEY, &value, None)?;
                tx.put(TableId::Users, "acme\u{1f}alice", b"{}", None)
            })
            .await
            .unwrap();
        store
            .write(|tx| tx.remove(TableId::Credentials, KEY))
            .await
            .unwrap();
        let due = store.due_changes(far_future(), 10).unwrap();
        let records: Vec<Record> = due
            .iter()
            .map(|p| p.change.clone().unwrap().unwrap().record)
            .collect();
        assert_eq!(
            records,
            [
                Record::Credential(None, Some(credential())),
                Record::Credential(Some(credential()), None),
            ]
        );
        assert!(due.iter().all(|p| {
            p.change
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .tenant_id
                .as_str()
                == "acme"
        }));
    }

    #[tokio::test]
    async fn a_postponed_row_is_due_again_only_at_its_time_and_a_removed_one_never() {
        let store = store_with_events_webhook().await;
        let value = encode(&credential()).unwrap();
        store
            .write(|tx| tx.put(TableId::Credentials, KEY, &value, None))
            .await
            .unwrap();
        let seq = store.due_changes(Timestamp(0), 10).unwrap()[0].seq;
        let later = Postponement {
            seq,
            attempts: 1,
            next_attempt_at: Timestamp(5_000),
        };
        store.settle_changes(&[], &[later]).await.unwrap();
        assert!(store.due_changes(Timestamp(4_999), 10).unwrap().is_empty());
        let due = store.due_changes(Timestamp(5_000), 10).unwrap();
        assert_eq!((due[0].seq, due[0].attempts), (seq, 1));
        store.settle_changes(&[seq], &[]).await.unwrap();
        assert!(store.due_changes(far_future(), 10).unwrap().is_empty());
    }

    fn passkey(now: i64) -> PasskeyRecord {
        PasskeyRecord {
            id: CredentialId::parse("5b1d9c3e-7a2f-4e8d-b6c0-1f9e3a7d5c24").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            credential_id: "q2Vx8f0aLwJ3".into(),
            user_handle: "YWxpY2U".into(),
            credential: serde_json::json!({}),
            counter: 0,
            name: None,
            aaguid: None,
            backed_up: false,
            created_at: Timestamp(now),
            last_verified_at: None,
        }
    }

    /// DESIGN 10, spec 3.5: a passkey's registration, sign-in and removal each write their
    /// passkey change (one row: `Passkeys`, not its `UserPasskeys` pointer) to the outbox in
    /// their own transaction, next to the change of the action they complete; a registration
    /// that fails writes neither. Mapped, they are `authenticator.created`, no event, and
    /// `authenticator.deleted`.
    #[tokio::test]
    async fn a_passkeys_changes_are_outbox_rows_of_their_own_transactions() {
        use crate::domain::{
            ActionCode, ActionKey, ActionOrigin, ActionState, Ceremony, CeremonyPurpose,
            IdempotencyKey, TrackContext,
        };
        use crate::events::events_of;
        use crate::store::PasskeyStore;
        use crate::store::{ActionWrite, EnrolmentGuard, PasskeyEnrolment, PasskeySignIn};

        let store = store_with_events_webhook().await;
        let tenant = TenantId::parse("acme").unwrap();
        let now = 1_790_000_000_000;
        let key = |k: &str| ActionKey {
            user_id: UserId::parse("alice").unwrap(),
            action_code: ActionCode::parse("signUp").unwrap(),
            idempotency_key: IdempotencyKey::parse(k).unwrap(),
        };
        let action = |k: &str| Action {
            tenant_id: tenant.clone(),
            key: key(k),
            state: ActionState::Allow,
            created_at: Timestamp(now),
            state_updated_at: Timestamp(now),
            verification_method: None,
            verified_by_authenticator_id: None,
            context: TrackContext::default(),
            rule_ids: Vec::new(),
            rules: Vec::new(),
            origin: ActionOrigin::Track,
            enrolled_passkey_id: None,
            expires_at: Timestamp(now + 600_000),
        };
        let ceremony = |id: &str| Ceremony {
            id: id.into(),
            tenant_id: tenant.clone(),
            purpose: CeremonyPurpose::Registration {
                action: key("k1"),
                scoped: false,
                name: None,
            },
            state: serde_json::json!({}),
            consumed: false,
            expires_at: Timestamp(now + 300_000),
        };
        for k in ["k1", "k2"] {
            store
                .write(|tx| {
                    super::super::put(
                        tx,
                        TableId::Actions,
                        &super::super::action_key(&tenant, &key(k)),
                        &action(k),
                    )
                })
                .await
                .unwrap();
        }
        store.put_ceremony(&ceremony("reg")).await.unwrap();
        store.put_ceremony(&ceremony("auth")).await.unwrap();
        let drain = || async {
            let due = store.due_changes(Timestamp(i64::MAX), 100).unwrap();
            for pending in &due {
                store.settle_changes(&[pending.seq], &[]).await.unwrap();
            }
            due.into_iter()
                .map(|p| p.change.unwrap().unwrap().record)
                .collect::<Vec<_>>()
        };
        drain().await;

        let enrolment = |ceremony_id: &str| PasskeyEnrolment {
            ceremony_id: ceremony_id.into(),
            passkey: passkey(now),
            guard: EnrolmentGuard {
                action: key("k1"),
                first_credential_only: true,
                now: Timestamp(now + 1),
            },
            completes_action: true,
        };
        // An unknown ceremony: nothing is written, not even to the outbox.
        assert!(store.enrol_passkey(&enrolment("unknown")).await.is_err());
        assert_eq!(store.outbox_len().unwrap(), 0);

        store.enrol_passkey(&enrolment("reg")).await.unwrap();
        let registered = drain().await;
        assert_eq!(registered.len(), 2, "{registered:?}");
        assert!(registered.contains(&Record::Passkey(None, Some(passkey(now)))));
        assert!(registered.iter().any(|r| matches!(
            r,
            Record::Action(Some(old), Some(new))
                if old.state == ActionState::Allow && new.state == ActionState::ChallengeSucceeded
        )));

        let mut used = passkey(now);
        used.counter = 1;
        used.last_verified_at = Some(Timestamp(now + 2));
        store
            .complete_passkey_sign_in(&PasskeySignIn {
                tenant_id: tenant.clone(),
                ceremony_id: "auth".into(),
                passkey: used.clone(),
                previous_counter: 0,
                action: ActionWrite::Complete(key("k2")),
                now: Timestamp(now + 2),
            })
            .await
            .unwrap();
        let signed_in = drain().await;
        assert_eq!(signed_in.len(), 2, "{signed_in:?}");
        assert!(signed_in.contains(&Record::Passkey(Some(passkey(now)), Some(used.clone()))));

        let removed = store
            .delete_passkey(&tenant, &used.user_id, &used.id)
            .await
            .unwrap();
        assert_eq!(removed.as_ref(), Some(&used));
        let deleted = drain().await;
        assert_eq!(deleted, [Record::Passkey(Some(used), None)]);

        let kinds = |records: &[Record]| -> Vec<&'static str> {
            let mut kinds: Vec<_> = records
                .iter()
                .flat_map(|record| {
                    let change = Change {
                        tenant_id: tenant.clone(),
                        record: record.clone(),
                        at: Timestamp(now + 3),
                        expired: false,
                    };
                    events_of(&change, 5).into_iter().map(|e| e.kind)
                })
                .collect();
            kinds.sort();
            kinds
        };
        assert_eq!(
            kinds(&registered),
            ["action.state_changed", "authenticator.created"]
        );
        assert_eq!(kinds(&signed_in), ["action.state_changed"]);
        assert_eq!(kinds(&deleted), ["authenticator.deleted"]);
    }

    /// A row that does not decode carries its error and does not hide the rows after it
    /// (the worker postpones it alone; found in review).
    #[tokio::test]
    async fn an_undecodable_row_does_not_hold_back_the_next() {
        let store = store_with_events_webhook().await;
        store
            .write(|tx| {
                tx.put(
                    TableId::Credentials,
                    "acme\u{1f}in-app\u{1f}bad",
                    b"not json",
                    None,
                )
            })
            .await
            .unwrap();
        store
            .write(|tx| {
                tx.put(
                    TableId::Credentials,
                    KEY,
                    &encode(&credential()).unwrap(),
                    None,
                )
            })
            .await
            .unwrap();
        let due = store.due_changes(far_future(), 10).unwrap();
        assert_eq!(due.len(), 2);
        assert!(due[0].change.is_err(), "{:?}", due[0]);
        assert_eq!(
            due[1].change.clone().unwrap().unwrap().record,
            Record::Credential(None, Some(credential()))
        );
    }
}
