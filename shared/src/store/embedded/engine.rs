//! The embedded store's engine: sorted in-memory tables, changed only by transactions that
//! are applied atomically and appended to a journal file, fsynced before the write returns.
//!
//! - **Atomic and isolated.** A write transaction runs under the write lock against the
//!   committed tables plus its own overlay of changes; if it returns an error nothing is
//!   applied. So "check, then write" is one atomic step, as a conditional write is in DynamoDB.
//! - **Durable.** The changes of a transaction are one journal record. A single writer thread
//!   appends the records that arrived while it was busy and makes them durable with one
//!   `fdatasync` (group commit): many concurrent writers share one disk flush, where a
//!   database that syncs each transaction alone would make them queue for one each.
//! - **Recovered.** Opening replays the journal; a torn record at the end (a crash during a
//!   write) fails its checksum and is cut off. A journal much larger than the live data is
//!   rewritten as one snapshot record (atomically, by rename) when the store is opened.
//! - **One process.** An exclusive lock on `<journal>.lock` keeps a second process out.
//! - **Fail-stop.** If the journal cannot be written, memory may hold a change the disk does
//!   not; from then on every read and write is refused (`StoreUnavailable`) until a restart
//!   replays what is durable. Nobody can observe a change that a restart would undo.
//!
//! Record format: `len: u32 LE | checksum: 8 bytes (SHA-256 prefix of the body) | body`, the
//! body a sequence of `table: u8 | key_len: u32 | key | tag: u8 (0 delete, 1 put) |
//! [value_len: u32 | value]`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, mpsc};
use tokio::sync::oneshot;

/// The tables of the store; the number is the table's tag in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TableId {
    Tenants = 0,
    SecretIndex = 1,
    Credentials = 2,
    UserCredentials = 3,
    ChallengeMarks = 4,
    Actions = 5,
    Users = 6,
    RemovalReceipts = 7,
    Approvals = 8,
    ActionConfigs = 9,
    RateLimits = 10,
}

const TABLE_COUNT: usize = 11;

impl TableId {
    fn from_tag(tag: u8) -> Option<TableId> {
        use TableId::*;
        [
            Tenants,
            SecretIndex,
            Credentials,
            UserCredentials,
            ChallengeMarks,
            Actions,
            Users,
            RemovalReceipts,
            Approvals,
            ActionConfigs,
            RateLimits,
        ]
        .get(usize::from(tag))
        .copied()
    }
}

type Map = BTreeMap<String, Vec<u8>>;

#[derive(Default)]
pub struct Tables {
    maps: [Map; TABLE_COUNT],
}

impl Tables {
    fn map(&self, table: TableId) -> &Map {
        &self.maps[table as usize]
    }

    /// Records in every table, and their size as [`Tables::live_bytes`] counts it.
    pub fn live_counts(&self) -> (usize, usize) {
        (self.maps.iter().map(BTreeMap::len).sum(), self.live_bytes())
    }

    fn live_bytes(&self) -> usize {
        self.maps
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| k.len() + v.len() + 10)
            .sum()
    }
}

/// The changes of one transaction: `None` deletes.
pub type Changes = BTreeMap<(TableId, String), Option<Vec<u8>>>;

/// A view of the committed tables with a transaction's own changes on top.
pub struct Tx<'a> {
    base: &'a Tables,
    changes: Changes,
}

impl<'a> Tx<'a> {
    pub fn new(base: &'a Tables) -> Self {
        Tx {
            base,
            changes: Changes::new(),
        }
    }

    pub fn get(&self, table: TableId, key: &str) -> Option<&[u8]> {
        match self.changes.get(&(table, key.to_owned())) {
            Some(change) => change.as_deref(),
            None => self.base.map(table).get(key).map(Vec::as_slice),
        }
    }

    pub fn put(&mut self, table: TableId, key: &str, value: Vec<u8>) {
        self.changes.insert((table, key.to_owned()), Some(value));
    }

    pub fn remove(&mut self, table: TableId, key: &str) {
        self.changes.insert((table, key.to_owned()), None);
    }

    /// Every entry with `start <= key < end`, this transaction's changes included.
    pub fn range(&self, table: TableId, start: &str, end: &str) -> Vec<(String, Vec<u8>)> {
        let mut merged: BTreeMap<String, Vec<u8>> = self
            .base
            .map(table)
            .range::<str, _>((Bound::Included(start), Bound::Excluded(end)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((t, key), change) in &self.changes {
            if *t == table && key.as_str() >= start && key.as_str() < end {
                match change {
                    Some(value) => merged.insert(key.clone(), value.clone()),
                    None => merged.remove(key),
                };
            }
        }
        merged.into_iter().collect()
    }

    /// Every committed entry of a table (for sweeps).
    pub fn entries(&self, table: TableId) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.base.map(table).iter()
    }

    pub fn into_changes(self) -> Changes {
        self.changes
    }
}

fn apply(tables: &mut Tables, changes: Changes) {
    for ((table, key), change) in changes {
        let map = &mut tables.maps[table as usize];
        match change {
            Some(value) => map.insert(key, value),
            None => map.remove(&key),
        };
    }
}

// ---------------------------------------------------------------- the journal

fn checksum(body: &[u8]) -> [u8; 8] {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

fn encode_record(changes: &Changes) -> Vec<u8> {
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

fn decode_body(body: &[u8]) -> Option<Changes> {
    let mut changes = Changes::new();
    let mut at = 0;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let slice = body.get(*at..*at + n)?;
        *at += n;
        Some(slice)
    };
    let u32_at = |bytes: &[u8]| u32::from_le_bytes(bytes.try_into().unwrap_or([0; 4])) as usize;
    while at < body.len() {
        let table = TableId::from_tag(take(&mut at, 1)?[0])?;
        let key_len = u32_at(take(&mut at, 4)?);
        let key = String::from_utf8(take(&mut at, key_len)?.to_vec()).ok()?;
        let change = match take(&mut at, 1)?[0] {
            0 => None,
            1 => {
                let len = u32_at(take(&mut at, 4)?);
                Some(take(&mut at, len)?.to_vec())
            }
            _ => return None,
        };
        changes.insert((table, key), change);
    }
    Some(changes)
}

/// Replays `bytes` into `tables`; returns the length of the valid prefix.
fn replay(bytes: &[u8], tables: &mut Tables) -> (usize, usize) {
    let mut at = 0;
    let mut records = 0;
    while let Some(header) = bytes.get(at..at + 12) {
        let len = u32::from_le_bytes(header[..4].try_into().unwrap_or([0; 4])) as usize;
        let Some(body) = bytes.get(at + 12..at + 12 + len) else {
            break;
        };
        if header[4..12] != checksum(body) {
            break;
        }
        let Some(changes) = decode_body(body) else {
            break;
        };
        apply(tables, changes);
        at += 12 + len;
        records += 1;
    }
    (at, records)
}

struct Pending {
    record: Vec<u8>,
    done: oneshot::Sender<std::io::Result<()>>,
}

/// The group-commit writer: appends what is queued, then one `fdatasync` for all of it.
fn writer(mut file: File, queue: mpsc::Receiver<Pending>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let result = batch
            .iter()
            .try_for_each(|p| file.write_all(&p.record))
            .and_then(|()| file.sync_data());
        for pending in batch {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
            };
            let _ = pending.done.send(outcome);
        }
    }
}

/// The engine: the tables, and the journal when on disk.
pub struct Engine {
    tables: RwLock<Tables>,
    journal: Option<mpsc::Sender<Pending>>,
    /// Set when a journal write failed: the engine then refuses all access.
    failed: AtomicBool,
    _lock: Option<File>,
}

impl Engine {
    pub fn in_memory() -> Engine {
        Engine {
            tables: RwLock::new(Tables::default()),
            journal: None,
            failed: AtomicBool::new(false),
            _lock: None,
        }
    }

    pub fn open(path: &Path) -> std::io::Result<Engine> {
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        lock.try_lock()
            .map_err(|_| std::io::Error::other("the store is in use by another process"))?;

        let mut bytes = Vec::new();
        if path.exists() {
            File::open(path)?.read_to_end(&mut bytes)?;
        }
        let mut tables = Tables::default();
        let (valid, records) = replay(&bytes, &mut tables);
        let live = tables.live_bytes();
        if records > 1 && valid > 2 * live + (1 << 20) {
            compact(path, &tables)?;
        } else if valid < bytes.len() {
            // A torn record at the end: cut it off before appending after it.
            OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(valid as u64)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (sender, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("td-journal".into())
            .spawn(move || writer(file, queue))?;
        Ok(Engine {
            tables: RwLock::new(tables),
            journal: Some(sender),
            failed: AtomicBool::new(false),
            _lock: Some(lock),
        })
    }

    fn check_not_failed(&self) -> std::io::Result<()> {
        if self.failed.load(Ordering::SeqCst) {
            Err(std::io::Error::other(
                "the journal failed earlier; restart to recover",
            ))
        } else {
            Ok(())
        }
    }

    fn fail(&self, error: std::io::Error) -> std::io::Error {
        self.failed.store(true, Ordering::SeqCst);
        error
    }

    /// Runs `f` against the committed tables.
    /// How many records the tables hold, and their size in bytes (keys, values and a small
    /// per-record overhead): what the store keeps in memory.
    pub fn live_counts(&self) -> (usize, usize) {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .live_counts()
    }

    pub fn read<T, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
        journal_failed: impl FnOnce(std::io::Error) -> E,
    ) -> Result<T, E> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        self.check_not_failed().map_err(journal_failed)?;
        f(&Tx::new(&tables))
    }

    /// Runs `f` as a transaction; applies and journals its changes only if it succeeds, and
    /// returns once they are durable.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
        journal_failed: impl FnOnce(std::io::Error) -> E,
    ) -> Result<T, E> {
        let (value, durable) = {
            let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
            if let Err(error) = self.check_not_failed() {
                return Err(journal_failed(error));
            }
            let (value, changes) = {
                let mut tx = Tx::new(&tables);
                let value = f(&mut tx)?;
                (value, tx.into_changes())
            };
            if changes.is_empty() {
                return Ok(value);
            }
            // Queued under the lock, so the journal's order is the order of application.
            let durable = match &self.journal {
                None => None,
                Some(journal) => {
                    let (done, durable) = oneshot::channel();
                    let record = encode_record(&changes);
                    if journal.send(Pending { record, done }).is_err() {
                        // Nothing applied, but the engine can no longer make writes durable.
                        let stopped = std::io::Error::other("the journal writer stopped");
                        return Err(journal_failed(self.fail(stopped)));
                    }
                    Some(durable)
                }
            };
            apply(&mut tables, changes);
            (value, durable)
        };
        let Some(durable) = durable else {
            return Ok(value);
        };
        match durable.await {
            Ok(Ok(())) => Ok(value),
            // Applied in memory but not durable: fail-stop (see the module docs).
            Ok(Err(error)) => Err(journal_failed(self.fail(error))),
            Err(_) => Err(journal_failed(
                self.fail(std::io::Error::other("the journal writer stopped")),
            )),
        }
    }
}

/// Writes all live entries as one record to a new file and renames it over the journal.
fn compact(path: &Path, tables: &Tables) -> std::io::Result<()> {
    let mut changes = Changes::new();
    for (index, map) in tables.maps.iter().enumerate() {
        let table = TableId::from_tag(index as u8).expect("every index is a table");
        for (key, value) in map {
            changes.insert((table, key.clone()), Some(value.clone()));
        }
    }
    let temporary = PathBuf::from(format!("{}.compact", path.display()));
    let mut file = File::create(&temporary)?;
    if !changes.is_empty() {
        file.write_all(&encode_record(&changes))?;
    }
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(table: TableId, key: &str, value: Option<&str>) -> Changes {
        Changes::from([(
            (table, key.to_owned()),
            value.map(|v| v.as_bytes().to_vec()),
        )])
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_ignored() {
        let mut bytes = encode_record(&change(TableId::Users, "a", Some("1")));
        bytes.extend(encode_record(&change(TableId::Users, "b", Some("2"))));
        bytes.extend(encode_record(&change(TableId::Users, "a", None)));
        let full = bytes.len();
        let torn = encode_record(&change(TableId::Users, "c", Some("3")));
        bytes.extend_from_slice(&torn[..torn.len() - 2]);

        let mut tables = Tables::default();
        let (valid, records) = replay(&bytes, &mut tables);
        assert_eq!((valid, records), (full, 3));
        let users = tables.map(TableId::Users);
        assert_eq!(users.get("b").map(Vec::as_slice), Some(&b"2"[..]));
        assert!(!users.contains_key("a") && !users.contains_key("c"));
    }

    #[test]
    fn a_corrupted_record_stops_the_replay_there() {
        let mut bytes = encode_record(&change(TableId::Tenants, "t", Some("x")));
        let second = bytes.len();
        bytes.extend(encode_record(&change(TableId::Tenants, "u", Some("y"))));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let mut tables = Tables::default();
        assert_eq!(replay(&bytes, &mut tables).0, second);
    }

    #[tokio::test]
    async fn a_failed_transaction_applies_nothing() {
        let engine = Engine::in_memory();
        let result: Result<(), &str> = engine
            .write(
                |tx| {
                    tx.put(TableId::Users, "a", b"1".to_vec());
                    Err("refused")
                },
                |_| "journal",
            )
            .await;
        assert_eq!(result, Err("refused"));
        assert!(
            engine
                .read(
                    |tx| Ok::<_, ()>(tx.get(TableId::Users, "a").is_none()),
                    |_| ()
                )
                .unwrap()
        );
    }

    #[tokio::test]
    async fn after_a_journal_failure_every_read_and_write_is_refused() {
        // A journal whose writer is gone: the change cannot be made durable.
        let (sender, queue) = mpsc::channel::<Pending>();
        drop(queue);
        let engine = Engine {
            tables: RwLock::new(Tables::default()),
            journal: Some(sender),
            failed: AtomicBool::new(false),
            _lock: None,
        };
        let put = |tx: &mut Tx<'_>| {
            tx.put(TableId::Users, "a", b"1".to_vec());
            Ok::<_, String>(())
        };
        assert!(engine.write(put, |e| e.to_string()).await.is_err());
        // Not applied, and from now on nothing is served.
        let read = engine.read(
            |tx| Ok::<_, String>(tx.get(TableId::Users, "a").is_some()),
            |e| e.to_string(),
        );
        assert!(read.is_err(), "{read:?}");
        assert!(engine.write(put, |e| e.to_string()).await.is_err());
        assert!(engine.tables.read().unwrap().map(TableId::Users).is_empty());
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_the_same_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let _first = Engine::open(&path).unwrap();
        assert!(Engine::open(&path).is_err());
    }

    #[tokio::test]
    async fn a_large_journal_is_compacted_on_open_and_keeps_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let engine = Engine::open(&path).unwrap();
            let big = vec![b'x'; 64 * 1024];
            for i in 0..40 {
                let value = big.clone();
                engine
                    .write(
                        |tx| {
                            tx.put(TableId::Actions, "same-key", value);
                            Ok::<_, ()>(())
                        },
                        |_| (),
                    )
                    .await
                    .unwrap();
                let _ = i;
            }
        }
        let before = std::fs::metadata(&path).unwrap().len();
        let engine = Engine::open(&path).unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < before / 10, "{before} -> {after}");
        let length = engine.read(
            |tx| Ok::<_, ()>(tx.get(TableId::Actions, "same-key").map(<[u8]>::len)),
            |_| (),
        );
        assert_eq!(length, Ok(Some(64 * 1024)));
    }
}
