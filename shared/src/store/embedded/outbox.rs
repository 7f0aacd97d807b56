//! The outbox (issue #19, DESIGN 10): every change to a record that can make an event is
//! written, with the record before it, to SQLite's `outbox` table in the transaction of the
//! change itself ([`super::engine::Tx::put`]), so a change and its pending events are committed
//! together or not at all. The events worker ([`crate::events::outbox`]) reads the due rows,
//! maps them with [`crate::events::events_of`] (the mapping DynamoDB Streams records go through
//! too), delivers, and removes each row delivered or postpones it.

use super::engine::{OutboxRow, TableId};
use super::{EmbeddedStore, decode};
use crate::clock::Timestamp;
use crate::domain::{
    Action, ApprovalChallenge, ChallengeMark, Credential, KEY_SEPARATOR, PasskeyRecord, TenantId,
};
use crate::error::Result;
use crate::events::{Change, Record};

/// One outbox row, decoded: `change` is `None` for a row that can make no event (a table this
/// version does not know, a key without a tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingChange {
    pub seq: i64,
    pub attempts: u32,
    pub change: Option<Change>,
}

impl EmbeddedStore {
    /// Up to `limit` outbox rows due at `now`, oldest first. A row whose values do not decode
    /// is an error (the store is damaged): it stays, and the worker reports it.
    pub fn due_changes(&self, now: Timestamp, limit: u32) -> Result<Vec<PendingChange>> {
        let rows = self.read(|tx| tx.due_changes(now.0, limit))?;
        rows.into_iter()
            .map(|row| {
                Ok(PendingChange {
                    seq: row.seq,
                    attempts: row.attempts,
                    change: change_of_row(&row)?,
                })
            })
            .collect()
    }

    /// The row's events were delivered, or it makes none: it goes.
    pub async fn remove_change(&self, seq: i64) -> Result<()> {
        self.write(|tx| tx.remove_change(seq)).await
    }

    /// A delivery failed: the row is tried again at `next_attempt_at`.
    pub async fn postpone_change(
        &self,
        seq: i64,
        attempts: u32,
        next_attempt_at: Timestamp,
    ) -> Result<()> {
        self.write(|tx| tx.postpone_change(seq, attempts, next_attempt_at.0))
            .await
    }

    /// How many changes wait in the outbox.
    pub fn outbox_len(&self) -> Result<u64> {
        self.read(|tx| tx.outbox_len())
    }
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
    use crate::domain::{CredentialId, Namespace, UserId};
    use crate::error::Error;
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

    /// DESIGN 10: the outbox row is written by the change's own transaction, so a change that
    /// is rolled back leaves no row, and one that commits always has its row.
    #[tokio::test]
    async fn a_change_and_its_outbox_row_commit_or_roll_back_together() {
        let store = EmbeddedStore::in_memory().unwrap();
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
            .map(|p| p.change.clone().unwrap().record)
            .collect();
        assert_eq!(
            records,
            [
                Record::Credential(None, Some(credential())),
                Record::Credential(Some(credential()), None),
            ]
        );
        assert!(
            due.iter()
                .all(|p| p.change.as_ref().unwrap().tenant_id.as_str() == "acme")
        );
    }

    #[tokio::test]
    async fn a_postponed_row_is_due_again_only_at_its_time_and_a_removed_one_never() {
        let store = EmbeddedStore::in_memory().unwrap();
        let value = encode(&credential()).unwrap();
        store
            .write(|tx| tx.put(TableId::Credentials, KEY, &value, None))
            .await
            .unwrap();
        let seq = store.due_changes(Timestamp(0), 10).unwrap()[0].seq;
        store
            .postpone_change(seq, 1, Timestamp(5_000))
            .await
            .unwrap();
        assert!(store.due_changes(Timestamp(4_999), 10).unwrap().is_empty());
        let due = store.due_changes(Timestamp(5_000), 10).unwrap();
        assert_eq!((due[0].seq, due[0].attempts), (seq, 1));
        store.remove_change(seq).await.unwrap();
        assert!(store.due_changes(far_future(), 10).unwrap().is_empty());
    }
}
