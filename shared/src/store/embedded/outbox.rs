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
    Action, ApprovalChallenge, ChallengeMark, Credential, KEY_SEPARATOR, TenantId,
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
