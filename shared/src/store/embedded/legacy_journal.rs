//! Reads the journal of the engine the embedded store had before SQLite
//! (`trusted-device.journal`), so that a data directory it wrote is imported, not lost. Only
//! the reader is kept; nothing writes this format any more.
//!
//! Format: a sequence of records `len: u32 LE | checksum: 8 bytes (SHA-256 prefix of the
//! body) | body`, the body a sequence of `table: u8 | key_len: u32 LE | key | tag: u8
//! (0 delete, 1 put) | [value_len: u32 LE | value]`. Replaying every record in order gives the
//! tables.
//!
//! The old engine cut off a torn record at the end of the file (a crash in the middle of an
//! append, never acknowledged). The reader does the same, and only that: a damaged record
//! followed by anything but zeros is corruption in the middle, and is refused with an error
//! rather than dropping every record after it.

use super::engine::TableId;
use std::collections::BTreeMap;

/// Every live item of the journal, by table and key.
pub type Items = BTreeMap<(TableId, String), Vec<u8>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JournalError {
    #[error(
        "record {record} (at byte {offset}) is damaged and is followed by more data: the \
         journal is corrupt in the middle, so importing it would lose the records after it"
    )]
    CorruptInTheMiddle { record: usize, offset: usize },
}

/// What a replay found.
#[derive(Debug)]
pub struct Replayed {
    pub items: Items,
    pub records: usize,
    /// Bytes of a torn last record that were ignored (0 if none).
    pub torn_tail: usize,
}

fn checksum(body: &[u8]) -> [u8; 8] {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

/// Reads `n` bytes at `*at`, advancing it; `None` past the end.
fn take<'b>(bytes: &'b [u8], at: &mut usize, n: usize) -> Option<&'b [u8]> {
    let end = at.checked_add(n)?;
    let slice = bytes.get(*at..end)?;
    *at = end;
    Some(slice)
}

fn take_u32(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let raw: [u8; 4] = take(bytes, at, 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(raw)).ok()
}

/// Applies one record's body to `items`; `None` if it does not decode.
fn apply_body(body: &[u8], items: &mut Items) -> Option<()> {
    let mut changes = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let table = TableId::from_tag(*take(body, &mut at, 1)?.first()?)?;
        let key_len = take_u32(body, &mut at)?;
        let key = String::from_utf8(take(body, &mut at, key_len)?.to_vec()).ok()?;
        let change = match take(body, &mut at, 1)?.first()? {
            0 => None,
            1 => {
                let len = take_u32(body, &mut at)?;
                Some(take(body, &mut at, len)?.to_vec())
            }
            _ => return None,
        };
        changes.push(((table, key), change));
    }
    // Only a record that decoded whole is applied.
    for (item, change) in changes {
        match change {
            Some(value) => items.insert(item, value),
            None => items.remove(&item),
        };
    }
    Some(())
}

/// Replays a whole journal.
pub fn replay(bytes: &[u8]) -> Result<Replayed, JournalError> {
    let mut items = Items::new();
    let mut at = 0;
    let mut records = 0;
    while at < bytes.len() {
        let start = at;
        let valid = (|| {
            let mut cursor = at;
            let len = take_u32(bytes, &mut cursor)?;
            let sum = take(bytes, &mut cursor, 8)?;
            let body = take(bytes, &mut cursor, len)?;
            (sum == checksum(body)).then_some(())?;
            apply_body(body, &mut items)?;
            Some(cursor)
        })();
        match valid {
            Some(next) => {
                at = next;
                records += 1;
            }
            None => {
                let rest = &bytes[start..];
                // Torn: the record runs past the end of the file, or the rest is zeros (a file
                // extended but not written before a power loss).
                let declared_end = bytes
                    .get(start..start + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
                    .and_then(|len| usize::try_from(len).ok())
                    .and_then(|len| start.checked_add(12)?.checked_add(len));
                let runs_past_the_end = declared_end.is_none_or(|end| end > bytes.len());
                if runs_past_the_end || rest.iter().all(|b| *b == 0) {
                    return Ok(Replayed {
                        items,
                        records,
                        torn_tail: rest.len(),
                    });
                }
                return Err(JournalError::CorruptInTheMiddle {
                    record: records,
                    offset: start,
                });
            }
        }
    }
    Ok(Replayed {
        items,
        records,
        torn_tail: 0,
    })
}

/// One change of a record: a put (`Some(value)`) or a delete (`None`) of a key.
#[cfg(test)]
pub(crate) type Change<'a> = ((TableId, &'a str), Option<&'a [u8]>);

/// The old engine's record encoding, for tests that need journals it would have written.
#[cfg(test)]
pub(crate) fn encode_record(changes: &[Change<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for ((table, key), change) in changes {
        body.push(*table as u8);
        body.extend_from_slice(&(key.len() as u32).to_le_bytes());
        body.extend_from_slice(key.as_bytes());
        match change {
            Some(value) => {
                body.push(1);
                body.extend_from_slice(&(value.len() as u32).to_le_bytes());
                body.extend_from_slice(value);
            }
            None => body.push(0),
        }
    }
    let mut record = Vec::with_capacity(body.len() + 12);
    record.extend_from_slice(&(body.len() as u32).to_le_bytes());
    record.extend_from_slice(&checksum(&body));
    record.extend_from_slice(&body);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(table: TableId, key: &str, value: Option<&str>) -> Vec<u8> {
        encode_record(&[((table, key), value.map(str::as_bytes))])
    }

    #[test]
    fn records_replay_in_order_and_a_torn_tail_is_ignored() {
        let mut bytes = record(TableId::Users, "a", Some("1"));
        bytes.extend(record(TableId::Users, "b", Some("2")));
        bytes.extend(record(TableId::Users, "a", None));
        let torn = record(TableId::Users, "c", Some("3"));
        bytes.extend_from_slice(&torn[..torn.len() - 2]);
        let replayed = replay(&bytes).unwrap();
        assert_eq!(replayed.records, 3);
        assert_eq!(replayed.torn_tail, torn.len() - 2);
        let keys: Vec<&str> = replayed.items.keys().map(|(_, k)| k.as_str()).collect();
        assert_eq!(keys, ["b"]);
    }

    #[test]
    fn a_zero_filled_tail_is_torn_not_corrupt() {
        let mut bytes = record(TableId::Users, "a", Some("1"));
        bytes.extend([0u8; 64]);
        assert_eq!(replay(&bytes).unwrap().records, 1);
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_refused_not_truncated() {
        let mut bytes = record(TableId::Tenants, "t", Some("x"));
        let second = bytes.len();
        bytes.extend(record(TableId::Tenants, "u", Some("y")));
        bytes.extend(record(TableId::Tenants, "v", Some("z")));
        bytes[second + 14] ^= 0xff;
        assert_eq!(
            replay(&bytes).err(),
            Some(JournalError::CorruptInTheMiddle {
                record: 1,
                offset: second
            })
        );
    }

    #[test]
    fn absurd_lengths_do_not_panic() {
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff];
        bytes.extend([0u8; 8]);
        bytes.extend([1u8; 32]);
        assert_eq!(replay(&bytes).unwrap().records, 0);
        // A body whose key length points past its end: refused as damaged, not a panic.
        let mut body = vec![TableId::Users as u8];
        body.extend(u32::MAX.to_le_bytes());
        let mut bad = (body.len() as u32).to_le_bytes().to_vec();
        bad.extend(checksum(&body));
        bad.extend(&body);
        bad.extend(record(TableId::Users, "after", Some("1")));
        assert!(replay(&bad).is_err());
    }
}
