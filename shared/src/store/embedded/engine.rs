//! The embedded store's engine: SQLite (through `rusqlite`, bundled) in WAL mode, one table
//! of items keyed by (table, key), as the DynamoDB adapter keeps one table keyed by (pk, sk).
//! A storage engine is not ours to write: atomicity, isolation, recovery after a crash and
//! locking between processes are SQLite's.
//!
//! ```sql
//! items(tbl INTEGER, key TEXT, value BLOB, expires_at INTEGER NULL,
//!       PRIMARY KEY (tbl, key)) WITHOUT ROWID
//! items_expiry ON items(expires_at) WHERE expires_at IS NOT NULL
//! ```
//!
//! - **Atomic and isolated, across threads and processes.** A write runs in a
//!   `BEGIN IMMEDIATE` transaction: it holds SQLite's write lock from its first read, so
//!   "read, check, write" is one atomic step, as a conditional write is in DynamoDB, also
//!   against the CLI writing from another process. If the step returns an error, or SQLite
//!   fails anywhere up to and including the commit, the transaction is rolled back: nothing is
//!   half-written. A read runs in a (deferred) transaction too, so it sees one snapshot.
//! - **Durable** as [`Durability`] says (WAL mode; `synchronous` NORMAL or FULL). At FULL,
//!   where each commit waits for an `fsync`, concurrent writes share commits (group commit,
//!   `Engine::write_in_group`), as the journal engine before SQLite did. On the server's
//!   multi-thread runtime writers wait for their turn and their commit as tasks, not threads
//!   (`Engine::write_in_group_async`).
//! - **Concurrent.** One writer connection (SQLite allows one writer at a time anyway) and a
//!   pool of reader connections; in WAL mode readers never wait for the writer. Another
//!   process waits for the write lock up to [`BUSY_TIMEOUT`], then the write fails
//!   (`StoreUnavailable`).
//! - **No fail-stop.** SQLite rolls a failed transaction back and its files stay consistent,
//!   so after a fault (disk full, read-only file) the next transaction simply tries again:
//!   nobody can observe a change that was not committed, so there is nothing to stop for.
//! - **Refuses a damaged file** at open (`PRAGMA quick_check`), rather than serving from it.
//! - **Expiry.** Items that expire carry `expires_at` (ms since the epoch); [`Tx::purge_expired`]
//!   deletes them through the partial index, in bounded batches. Reads still check expiry in
//!   code (`mod.rs`): deletion is only housekeeping.

use crate::clock::Timestamp;
use crate::domain::KEY_SEPARATOR;
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The tables of the store; the number is the table's `tbl` in SQLite (and its tag in the old
/// journal, `legacy_journal`): never renumber one.
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
    /// Open QR-code WebSockets (`sockets.rs`).
    SocketSessions = 11,
    SessionConfigs = 12,
    Sessions = 13,
    RefreshTokens = 14,
    TokenMarks = 15,
    UserLookups = 16,
    Passkeys = 17,
    UserPasskeys = 18,
    Ceremonies = 19,
    /// The last used in-app challenge of each user ([`crate::domain::ChallengeOrder`]).
    UsedChallenges = 20,
}

impl TableId {
    /// Whether a change to an item of this table is written to the outbox, in the same
    /// transaction, for the events worker (DESIGN 10): the records that can make an event.
    pub fn feeds_events(self) -> bool {
        // `Passkeys`, not `UserPasskeys`: the first holds the whole record, the second only
        // points at it, so one passkey is one change.
        matches!(
            self,
            TableId::Credentials
                | TableId::Passkeys
                | TableId::Actions
                | TableId::Approvals
                | TableId::ChallengeMarks
        )
    }

    pub(crate) fn from_tag(tag: u8) -> Option<TableId> {
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
            SocketSessions,
            SessionConfigs,
            Sessions,
            RefreshTokens,
            TokenMarks,
            UserLookups,
            Passkeys,
            UserPasskeys,
            Ceremonies,
            UsedChallenges,
        ]
        .get(usize::from(tag))
        .copied()
    }
}

/// How long a write waits for another process's write lock before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many expired items one purge transaction deletes: small enough that other writers
/// wait at most a few milliseconds for it.
pub const PURGE_BATCH: u32 = 500;

/// The schema version in `PRAGMA user_version`; a file with a higher one was written by a
/// newer trusted-device and is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS items (
        tbl INTEGER NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (tbl, key)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tbl INTEGER NOT NULL,
        key TEXT NOT NULL,
        old BLOB,
        new BLOB,
        at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at);
";

/// What a write transaction survives once it has been answered.
///
/// Both levels run SQLite in WAL mode, so a transaction is all or nothing and the file is
/// never left inconsistent, whatever happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = NORMAL`: a commit is written to the WAL file (the kernel holds it) but
    /// not flushed to the disk. Survives the process being killed (SIGKILL, panic, OOM);
    /// a power loss or kernel crash may lose the last transactions answered before it (those
    /// since the last checkpoint), never half of one.
    Normal,
    /// `synchronous = FULL`: every commit is flushed (`fsync` of the WAL) before it is
    /// answered. Also survives a power loss; costs a disk flush per commit, which the writes
    /// that arrive while one is in progress share (group commit). The default: an answered
    /// write is never lost, and with group commit it costs little throughput under load
    /// (docs/performance.md).
    #[default]
    Full,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// Why the store could not be opened: shown to the operator as it is.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{path} is damaged or not a trusted-device database ({detail}); refusing to start. \
         Restore it from a backup, or move it aside to start with an empty store"
    )]
    Damaged { path: String, detail: String },
    #[error(
        "{path} was written by a newer trusted-device (schema {found}, this one knows {SCHEMA_VERSION})"
    )]
    NewerSchema { path: String, found: i64 },
    #[error("cannot open {path}: {detail}")]
    Io { path: String, detail: String },
    #[error(
        "cannot import {path}, the journal of the engine before SQLite: {detail}. Nothing was \
         imported and the journal is left as it is; the server does not start without its \
         data. Fix the cause, or move the journal out of the data directory to start without it"
    )]
    Import { path: String, detail: String },
}

/// Logs a SQLite failure and returns what callers see: the store is unavailable (503).
pub(crate) fn sqlite_failure(error: rusqlite::Error) -> Error {
    tracing::error!(error = %error, "embedded store failure");
    crate::metric::store_error(crate::metric::StoreKind::Embedded, &Error::StoreUnavailable);
    Error::StoreUnavailable
}

/// Decides, inside a change's own transaction and from the changed item's key, whether the
/// change is written to the outbox (DESIGN 10). The store's rule
/// (`outbox::tenant_has_events_webhook`) keeps the changes of tenants that have an events
/// webhook; [`Engine::in_memory`] and [`Engine::open`] start with [`record_every_change`]. A
/// rule may read the [`TableId::Tenants`] item of the key's first segment: its answer is
/// remembered for the transaction until that table is written.
pub type OutboxRule = fn(&Tx<'_>, &str) -> Result<bool>;

/// The engine's own rule: every change to a table that [feeds events](TableId::feeds_events).
pub fn record_every_change(_: &Tx<'_>, _: &str) -> Result<bool> {
    Ok(true)
}

/// A transaction's view of the items: reads see its own writes.
pub struct Tx<'a> {
    conn: &'a Connection,
    outbox_rule: OutboxRule,
    /// The last key prefix the rule was asked about, and its answer: the writes of one
    /// transaction are almost always one tenant's.
    outbox_answer: Option<(String, bool)>,
}

impl<'a> Tx<'a> {
    fn new(conn: &'a Connection, outbox_rule: OutboxRule) -> Self {
        Tx {
            conn,
            outbox_rule,
            outbox_answer: None,
        }
    }
}

impl Tx<'_> {
    pub fn get(&self, table: TableId, key: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .prepare_cached("SELECT value FROM items WHERE tbl = ?1 AND key = ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![table as i64, key], |row| row.get(0))
                    .optional()
            })
            .map_err(sqlite_failure)
    }

    /// Every item: how many, and their size as [`Engine::live_counts`] says.
    pub fn live_counts(&self) -> Result<(usize, usize)> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(key) + length(value) + 10), 0) FROM items",
                [],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
            )
            .map(|(items, bytes)| {
                (
                    usize::try_from(items).unwrap_or(usize::MAX),
                    usize::try_from(bytes).unwrap_or(usize::MAX),
                )
            })
            .map_err(sqlite_failure)
    }

    /// Creates or replaces an item; `expires_at` for items that expire (purged after it). A
    /// change to a table that [feeds events](TableId::feeds_events) is also written to the
    /// outbox, with the value before it, in this transaction, when the engine's [`OutboxRule`]
    /// wants it (DESIGN 10).
    pub fn put(
        &mut self,
        table: TableId,
        key: &str,
        value: &[u8],
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        if table.feeds_events() {
            let old = self.get(table, key)?;
            if old.as_deref() != Some(value) && self.outbox_wants(key)? {
                self.record_change(table, key, old.as_deref(), Some(value))?;
            }
        }
        self.put_unrecorded(table, key, value, expires_at)
    }

    /// [`Tx::put`] without the outbox: for the import of the old journal, whose items are not
    /// news to anyone.
    pub fn put_unrecorded(
        &mut self,
        table: TableId,
        key: &str,
        value: &[u8],
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        if table == TableId::Tenants {
            self.outbox_answer = None;
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO items (tbl, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut statement| {
                statement.execute(params![table as i64, key, value, expires_at.map(|t| t.0)])
            })
            .map(drop)
            .map_err(sqlite_failure)
    }

    pub fn remove(&mut self, table: TableId, key: &str) -> Result<()> {
        if table.feeds_events()
            && let Some(old) = self.get(table, key)?
            && self.outbox_wants(key)?
        {
            self.record_change(table, key, Some(&old), None)?;
        }
        if table == TableId::Tenants {
            self.outbox_answer = None;
        }
        self.conn
            .prepare_cached("DELETE FROM items WHERE tbl = ?1 AND key = ?2")
            .and_then(|mut statement| statement.execute(params![table as i64, key]))
            .map(drop)
            .map_err(sqlite_failure)
    }

    /// What the engine's [`OutboxRule`] says of a change to `key`, asked once per transaction
    /// for the keys that share a first segment (the tenant, in every table that feeds events).
    fn outbox_wants(&mut self, key: &str) -> Result<bool> {
        let prefix = key.split(KEY_SEPARATOR).next().unwrap_or(key);
        if let Some((asked, answer)) = &self.outbox_answer
            && asked == prefix
        {
            return Ok(*answer);
        }
        let answer = (self.outbox_rule)(self, key)?;
        self.outbox_answer = Some((prefix.to_owned(), answer));
        Ok(answer)
    }

    /// One row of the outbox: the item's value before and after a write, and when (wall-clock
    /// milliseconds: the engine has no clock of its own), due at once.
    fn record_change(
        &mut self,
        table: TableId,
        key: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<()> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.conn
            .prepare_cached(
                "INSERT INTO outbox (tbl, key, old, new, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| statement.execute(params![table as i64, key, old, new, at]))
            .map(drop)
            .map_err(sqlite_failure)
    }

    /// Up to `limit` outbox rows due at `now` (ms), oldest first, through the `outbox_due`
    /// index.
    pub fn due_changes(&self, now: i64, limit: u32) -> Result<Vec<OutboxRow>> {
        self.conn
            .prepare_cached(
                "SELECT seq, tbl, key, old, new, at, attempts FROM outbox \
                 WHERE next_attempt_at <= ?1 ORDER BY next_attempt_at, seq LIMIT ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(params![now, limit], |row| {
                        Ok(OutboxRow {
                            seq: row.get(0)?,
                            table: TableId::from_tag(row.get::<_, u8>(1)?),
                            key: row.get(2)?,
                            old: row.get(3)?,
                            new: row.get(4)?,
                            at: Timestamp(row.get(5)?),
                            attempts: row.get(6)?,
                        })
                    })?
                    .collect()
            })
            .map_err(sqlite_failure)
    }

    /// Removes an outbox row: its events were delivered (or it makes none).
    pub fn remove_change(&mut self, seq: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM outbox WHERE seq = ?1")
            .and_then(|mut statement| statement.execute([seq]))
            .map(drop)
            .map_err(sqlite_failure)
    }

    /// Counts a failed delivery of an outbox row and makes it due again at `next_attempt_at`.
    pub fn postpone_change(&mut self, seq: i64, attempts: u32, next_attempt_at: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE outbox SET attempts = ?2, next_attempt_at = ?3 WHERE seq = ?1")
            .and_then(|mut statement| statement.execute(params![seq, attempts, next_attempt_at]))
            .map(drop)
            .map_err(sqlite_failure)
    }

    /// How many rows the outbox holds.
    pub fn outbox_len(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
            .map_err(sqlite_failure)
    }

    /// Every item with `start <= key < end`, in key order (SQLite compares TEXT bytewise, as
    /// Rust compares strings).
    pub fn range(&self, table: TableId, start: &str, end: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.conn
            .prepare_cached(
                "SELECT key, value FROM items WHERE tbl = ?1 AND key >= ?2 AND key < ?3 ORDER BY key",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(params![table as i64, start, end], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
            })
            .map_err(sqlite_failure)
    }

    /// Deletes up to `limit` items that expired at or before `now`, found through the expiry
    /// index (never a scan of the table); returns how many.
    pub fn purge_expired(&mut self, now: Timestamp, limit: u32) -> Result<u64> {
        self.conn
            .prepare_cached(
                "DELETE FROM items WHERE (tbl, key) IN \
                 (SELECT tbl, key FROM items WHERE expires_at <= ?1 LIMIT ?2)",
            )
            .and_then(|mut statement| statement.execute(params![now.0, limit]))
            .map(|deleted| deleted as u64)
            .map_err(sqlite_failure)
    }

    pub(crate) fn meta(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sqlite_failure)
    }

    pub(crate) fn set_meta(&mut self, name: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
                [name, value],
            )
            .map(drop)
            .map_err(sqlite_failure)
    }

    pub(crate) fn is_empty(&self) -> Result<bool> {
        self.conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM items)", [], |row| {
                row.get(0)
            })
            .map_err(sqlite_failure)
    }
}

/// A change waiting in the outbox (DESIGN 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    /// `None`: a table this version does not know (written by a newer one).
    pub table: Option<TableId>,
    pub key: String,
    pub old: Option<Vec<u8>>,
    pub new: Option<Vec<u8>>,
    pub at: Timestamp,
    pub attempts: u32,
}

/// The write transactions that share one commit at [`Durability::Full`] (group commit).
/// Changed only by a thread that holds the writer connection.
#[derive(Default)]
struct Batches {
    /// The batch begun on the writer connection and not yet committed, if any.
    open: Option<u64>,
    members: usize,
    last: u64,
    /// Every batch up to and including this one has committed or failed.
    finished_through: u64,
    /// Batches whose commit failed, with how many of their members are still to be answered
    /// (a member whose request was cancelled never asks: entries far behind are dropped).
    failed: BTreeMap<u64, usize>,
}

/// At most this many transactions share one commit, so a steady stream of writers still
/// commits regularly.
const MAX_BATCH: usize = 64;

/// One write transaction of a batch, run: its batch and what its step returned (or its panic).
struct Member<T> {
    batch: u64,
    outcome: std::thread::Result<Result<T>>,
    /// Ending its savepoint (`RELEASE`, `ROLLBACK TO`) failed: what it changed is unknown.
    savepoint_failed: bool,
}

impl<T> Member<T> {
    /// SQLite rolls a whole transaction back after some errors (a full disk, I/O), and a
    /// panicking step or a savepoint that could not be ended leaves the member's changes
    /// unknown: the batch cannot be committed.
    fn breaks_batch(&self, conn: &Connection) -> bool {
        conn.is_autocommit() || self.outcome.is_err() || self.savepoint_failed
    }
}

/// An async writer counted in [`Engine::waiting_writers`] until it takes its turn. Dropped
/// before that (its request was cancelled while it queued), it uncounts itself and commits a
/// batch that was left open for it ([`Engine::commit_abandoned_batch`]).
struct QueuedWriter<'a> {
    engine: &'a Engine,
    queued: bool,
}

impl<'a> QueuedWriter<'a> {
    fn new(engine: &'a Engine) -> Self {
        engine.waiting_writers.fetch_add(1, Ordering::SeqCst);
        QueuedWriter {
            engine,
            queued: true,
        }
    }

    fn take_turn(mut self) {
        self.queued = false;
        self.engine.waiting_writers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for QueuedWriter<'_> {
    fn drop(&mut self) {
        if self.queued {
            self.engine.waiting_writers.fetch_sub(1, Ordering::SeqCst);
            self.engine.commit_abandoned_batch();
        }
    }
}

/// The engine: a writer connection and, on disk, a pool of reader connections.
pub struct Engine {
    writer: Mutex<Connection>,
    /// The queue of async writers for their turn on the writer connection (group commit on a
    /// multi-thread runtime): waiting here holds no thread, where waiting for `writer` does.
    write_turns: tokio::sync::Mutex<()>,
    batches: Mutex<Batches>,
    /// Wakes the threads of blocking writers waiting for their batch to finish.
    batch_finished: Condvar,
    /// The last batch finished (`Batches::finished_through`), for async writers waiting for
    /// theirs.
    finished_batches: tokio::sync::watch::Sender<u64>,
    /// Writers waiting for their turn, blocking or async: while there are some, a batch is
    /// left open for them to join instead of being committed.
    waiting_writers: AtomicUsize,
    /// Idle reader connections; `None` in memory, where the one connection serves both (a
    /// private in-memory database is seen by its own connection only).
    readers: Option<Mutex<Vec<Connection>>>,
    path: Option<PathBuf>,
    durability: Durability,
    outbox_rule: OutboxRule,
}

impl Engine {
    /// A private database in memory: for unit tests.
    pub fn in_memory() -> Result<Engine> {
        let conn = Connection::open_in_memory().map_err(sqlite_failure)?;
        conn.execute_batch(SCHEMA).map_err(sqlite_failure)?;
        Ok(Engine {
            writer: Mutex::new(conn),
            write_turns: tokio::sync::Mutex::new(()),
            batches: Mutex::default(),
            batch_finished: Condvar::new(),
            finished_batches: tokio::sync::watch::Sender::new(0),
            waiting_writers: AtomicUsize::new(0),
            readers: None,
            path: None,
            durability: Durability::Normal,
            outbox_rule: record_every_change,
        })
    }

    /// Opens (or creates) the database at `path`: WAL mode, the schema, and a `quick_check`
    /// that refuses a damaged file.
    pub fn open(path: &Path, durability: Durability) -> std::result::Result<Engine, OpenError> {
        let shown = path.display().to_string();
        keep_owner_only(path).map_err(|e| OpenError::Io {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        let damaged = |error: rusqlite::Error| OpenError::Damaged {
            path: shown.clone(),
            detail: error.to_string(),
        };
        let writer = Self::connect(path, durability).map_err(|error| match error {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                damaged(error)
            }
            other => OpenError::Io {
                path: shown.clone(),
                detail: other.to_string(),
            },
        })?;
        // quick_check reads every page (O(size), no index cross-checks): a few milliseconds
        // for a store of this kind's size, paid once at start.
        let problems: Vec<String> = writer
            .prepare("PRAGMA quick_check")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect()
            })
            .map_err(damaged)?;
        if problems != ["ok"] {
            return Err(OpenError::Damaged {
                path: shown,
                detail: problems.join("; "),
            });
        }
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(damaged)?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::NewerSchema {
                path: shown,
                found: version,
            });
        }
        writer
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| OpenError::Io {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
        Ok(Engine {
            writer: Mutex::new(writer),
            write_turns: tokio::sync::Mutex::new(()),
            batches: Mutex::default(),
            batch_finished: Condvar::new(),
            finished_batches: tokio::sync::watch::Sender::new(0),
            waiting_writers: AtomicUsize::new(0),
            readers: Some(Mutex::new(Vec::new())),
            path: Some(path.to_owned()),
            durability,
            outbox_rule: record_every_change,
        })
    }

    /// The engine with `rule` deciding which changes go to the outbox.
    pub fn with_outbox_rule(mut self, rule: OutboxRule) -> Engine {
        self.outbox_rule = rule;
        self
    }

    fn connect(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // The first statement reads the header: a file that is not a database fails here.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // E.g. a filesystem without shared memory: refused rather than run with weaker
            // guarantees than the ones documented.
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!(
                    "SQLite could not use WAL mode here (journal_mode {mode})"
                )),
            ));
        }
        // `temp_store = MEMORY`: the savepoint journal of a group commit's members (the pages
        // each member changes, kept to roll that member back) stays in memory. By default it
        // spills to a temporary file past 64 KiB, and a large batch then wrote it with a
        // `pwrite` per page (seen with `strace` under load; docs/performance.md). It holds the
        // pages of one open transaction only, and is never needed after a crash.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY;",
            durability.pragma()
        ))?;
        Ok(conn)
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// How many items the store holds and their size in bytes (keys, values and 10 bytes of
    /// overhead each, as the journal engine counted them, so the figures compare).
    pub fn live_counts(&self) -> Result<(usize, usize)> {
        self.read(|tx| tx.live_counts())
    }

    /// Runs `f` in a read transaction: one consistent snapshot, never waiting for a writer.
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let Some(readers) = &self.readers else {
            let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            return self.run(&conn, Begin::Read, |tx| f(tx));
        };
        let idle = readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let path = self.path.as_deref().ok_or(Error::Internal)?;
                Self::connect(path, self.durability).map_err(sqlite_failure)?
            }
        };
        let result = self.run(&conn, Begin::Read, |tx| f(tx));
        readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        result
    }

    /// Runs `f` as one write transaction (`BEGIN IMMEDIATE`): committed only if `f` succeeds,
    /// and answered once the commit is as durable as [`Durability`] says.
    ///
    /// With [`Durability::Full`] a commit waits for the disk (an `fsync`, a few hundred
    /// microseconds), so concurrent writes share commits ([`Engine::write_in_group`]). On a
    /// multi-thread runtime a writer waits for its turn and for its batch's commit as a task,
    /// holding no thread; only the writer that commits hands its worker's other tasks over
    /// while the disk flushes (`block_in_place`), once per batch. With [`Durability::Normal`]
    /// a write is tens of microseconds of CPU, less than that hand-over costs (measured:
    /// docs/performance.md), so it runs on the caller's thread, as reads do.
    ///
    /// As with any lock, a write future that has been polled must be polled to completion or
    /// dropped: parked in the queue, it holds up the writers behind it.
    pub async fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle)
                if self.durability == Durability::Full
                    && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                self.write_in_group_async(f).await
            }
            _ => self.write_now(f),
        }
    }

    /// [`Engine::write`] on the calling thread, whatever it is (opening, tests).
    pub fn write_now<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        if self.durability == Durability::Full {
            return self.write_in_group(f);
        }
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.run(&conn, Begin::Write, f)
    }

    /// Group commit, for [`Durability::Full`], where each commit waits for an `fsync`: the
    /// write transactions that queue for the writer connection while one commits run one
    /// after another inside one SQLite transaction, each in its own savepoint (a step that
    /// fails rolls back its savepoint only), and share one commit and one disk flush. Each is
    /// answered only once that commit is durable; if it fails, every member is answered
    /// `StoreUnavailable` (nothing of the batch is written). A member's reads see the members
    /// before it, which is safe because none of them is answered unless all commit.
    ///
    /// This is the blocking form: the thread waits for the writer connection and for the
    /// batch. [`Engine::write_in_group_async`] is the same protocol for tasks; the two share
    /// the batches, so they may run side by side.
    fn write_in_group<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.waiting_writers.fetch_add(1, Ordering::SeqCst);
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiting_writers.fetch_sub(1, Ordering::SeqCst);
        let member = self.run_member(&conn, f, |conn| execute_cached(conn, "BEGIN IMMEDIATE"))?;
        if self.member_ends_batch(&conn, &member) {
            self.finish_batch(&conn, member.batch, member.breaks_batch(&conn));
            drop(conn);
        } else {
            // The next writer joins this batch, and it or a later one commits it.
            drop(conn);
            let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
            while batches.finished_through < member.batch {
                batches = self
                    .batch_finished
                    .wait(batches)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        self.member_result(member)
    }

    /// [`Engine::write_in_group`] for a task on a multi-thread runtime: it queues for its turn
    /// on [`Engine::write_turns`] and waits for its batch on [`Engine::finished_batches`]
    /// without holding a thread. Its turn itself (the savepoint, and the commit when it ends
    /// the batch) has no `.await`, so a cancelled request cannot stop a writer in the middle
    /// of one; one cancelled while queued is handled by [`QueuedWriter`]. What can wait for
    /// the disk or for another process leaves the worker thread (`block_in_place`): the
    /// commit, and a `BEGIN` that finds the CLI holding SQLite's write lock.
    async fn write_in_group_async<T: Send>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        let queued = QueuedWriter::new(self);
        let turn = self.write_turns.lock().await;
        queued.take_turn();
        let mut finished = self.finished_batches.subscribe();
        let (member, ended) = {
            let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let member = self.run_member(&conn, f, begin_off_the_worker_if_busy)?;
            let ended = self.member_ends_batch(&conn, &member);
            if ended {
                let broken = member.breaks_batch(&conn);
                tokio::task::block_in_place(|| self.finish_batch(&conn, member.batch, broken));
            }
            (member, ended)
        };
        drop(turn);
        if !ended {
            // The sender lives as long as `self`, so this wait ends only when the batch has.
            let _ = finished.wait_for(|through| *through >= member.batch).await;
        }
        self.member_result(member)
    }

    /// One writer's turn on the writer connection (held by the caller): joins the open batch
    /// or begins one with `begin`, and runs `f` in a savepoint of its own. The `batches` lock
    /// is not held while SQLite works: only the holder of the writer connection changes
    /// which batch is open, and members of finished batches read `batches` meanwhile.
    fn run_member<T>(
        &self,
        conn: &Connection,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
        begin: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> Result<Member<T>> {
        let open = self
            .batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open;
        let batch = match open {
            Some(batch) => batch,
            None => {
                if !conn.is_autocommit() {
                    rollback(conn);
                }
                begin(conn).map_err(sqlite_failure)?;
                let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
                batches.last += 1;
                batches.open = Some(batches.last);
                batches.members = 0;
                batches.last
            }
        };
        let mut savepoint_failed = false;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute_cached(conn, "SAVEPOINT member").map_err(sqlite_failure)?;
            let result = f(&mut Tx::new(conn, self.outbox_rule));
            let end = match result {
                Ok(_) => execute_cached(conn, "RELEASE member"),
                Err(_) => execute_cached(conn, "ROLLBACK TO member")
                    .and_then(|()| execute_cached(conn, "RELEASE member")),
            };
            if let Err(error) = end {
                savepoint_failed = true;
                return Err(sqlite_failure(error));
            }
            result
        }));
        Ok(Member {
            batch,
            outcome,
            savepoint_failed,
        })
    }

    /// Counts the member in and says whether it ends its batch: nobody is queued to join it,
    /// it is full, or it broke.
    fn member_ends_batch<T>(&self, conn: &Connection, member: &Member<T>) -> bool {
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        batches.members += 1;
        member.breaks_batch(conn)
            || self.waiting_writers.load(Ordering::SeqCst) == 0
            || batches.members >= MAX_BATCH
    }

    /// Commits the open batch, or rolls it back if it is `broken` or the commit fails, and
    /// tells its waiting members, blocking and async. The caller holds the writer connection
    /// and not `batches`, which is locked only after the disk flush.
    fn finish_batch(&self, conn: &Connection, batch: u64, broken: bool) {
        let committed = !broken
            && execute_cached(conn, "COMMIT")
                .map_err(sqlite_failure)
                .is_ok();
        if !committed {
            rollback(conn);
        }
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        if !committed {
            let members = batches.members;
            batches.failed.insert(batch, members);
        }
        batches.open = None;
        batches.finished_through = batch;
        self.batch_finished.notify_all();
        self.finished_batches.send_replace(batch);
    }

    /// A writer that was queued for its turn and left (its request was cancelled) may have
    /// been the one the open batch was left open for. If nobody else is queued, the batch is
    /// committed here, so its members are not left waiting for the next write. This blocks
    /// for one turn or one commit at most, on a path that is rare.
    fn commit_abandoned_batch(&self) {
        if self.waiting_writers.load(Ordering::SeqCst) != 0 {
            return;
        }
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let open = self
            .batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open;
        if let Some(batch) = open
            && self.waiting_writers.load(Ordering::SeqCst) == 0
        {
            let broken = conn.is_autocommit();
            self.finish_batch(&conn, batch, broken);
        }
    }

    /// A member's answer once its batch has finished.
    fn member_result<T>(&self, member: Member<T>) -> Result<T> {
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        let failed = match batches.failed.get_mut(&member.batch) {
            Some(unanswered) => {
                *unanswered = unanswered.saturating_sub(1);
                if *unanswered == 0 {
                    batches.failed.remove(&member.batch);
                }
                true
            }
            None => false,
        };
        // Failed batches whose cancelled members will never ask: kept for a million batches.
        let forgotten = batches.finished_through.saturating_sub(1 << 20);
        while let Some(entry) = batches.failed.first_entry()
            && *entry.key() < forgotten
        {
            entry.remove();
        }
        drop(batches);
        match member.outcome {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) if failed => Err(Error::StoreUnavailable),
            Ok(result) => result,
        }
    }

    /// Runs `f` between `begin` and `COMMIT`, rolling back if either `f` or the commit fails.
    /// The statements are cached: a read or a write is a few microseconds of SQLite, so
    /// parsing `BEGIN` and `COMMIT` each time would show.
    fn run<T>(
        &self,
        conn: &Connection,
        begin: Begin,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        if !conn.is_autocommit() {
            // Left open by a step that panicked: nothing of it was committed; end it.
            rollback(conn);
        }
        let begin = match begin {
            Begin::Read => "BEGIN DEFERRED",
            Begin::Write => "BEGIN IMMEDIATE",
        };
        conn.prepare_cached(begin)
            .and_then(|mut statement| statement.execute([]))
            .map_err(sqlite_failure)?;
        let value = match f(&mut Tx::new(conn, self.outbox_rule)) {
            Ok(value) => value,
            Err(error) => {
                rollback(conn);
                return Err(error);
            }
        };
        match conn
            .prepare_cached("COMMIT")
            .and_then(|mut statement| statement.execute([]))
        {
            Ok(_) => Ok(value),
            // A failed commit (disk full, I/O error) may leave the transaction open.
            Err(error) => {
                rollback(conn);
                Err(sqlite_failure(error))
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Begin {
    /// `BEGIN DEFERRED`: a snapshot, taken at the first read; never waits for a writer.
    Read,
    /// `BEGIN IMMEDIATE`: the write lock from the start, so nothing changes between this
    /// transaction's reads and its writes.
    Write,
}

fn execute_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
}

/// `BEGIN IMMEDIATE` from a runtime worker: at once when SQLite's write lock is free (no
/// other process writes: the usual case), and otherwise off the worker (`block_in_place`),
/// waiting up to [`BUSY_TIMEOUT`] for the other process, so the worker's other tasks go on.
fn begin_off_the_worker_if_busy(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::ZERO)?;
    let at_once = execute_cached(conn, "BEGIN IMMEDIATE");
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match at_once {
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            tokio::task::block_in_place(|| execute_cached(conn, "BEGIN IMMEDIATE"))
        }
        other => other,
    }
}

/// The database and its `-wal` and `-shm` files readable and writable by their owner only
/// (0600), whatever the umask: they hold the tenants' token-signing keys, with which anyone
/// who reads them can forge tokens. A new database file is created 0600 before SQLite opens
/// it (SQLite creates the `-wal` and `-shm` files with the database file's mode); existing
/// files that others could read are tightened, with a warning. A file that cannot be
/// tightened (another owner) is only warned about: the operator chose that layout.
fn keep_owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o077 == 0 {
                continue;
            }
            let tightened = std::fs::Permissions::from_mode(mode & 0o700);
            match std::fs::set_permissions(&file, tightened) {
                Ok(()) => tracing::warn!(
                    file = %file.display(),
                    was = format!("{:o}", mode & 0o777),
                    "the store's file could be read by other users; it is now its owner's only"
                ),
                Err(error) => tracing::warn!(
                    file = %file.display(),
                    error = %error,
                    "the store's file can be read by other users and could not be tightened"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(error) = conn.execute_batch("ROLLBACK")
    {
        // SQLite may already have rolled back (e.g. after SQLITE_FULL): nothing is left open.
        tracing::warn!(error = %error, "rollback of the embedded store failed");
    }
}

impl Engine {
    /// Test hook: makes the writer connection refuse every write (`PRAGMA query_only`), as a
    /// data directory that became read-only does, or lifts that.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn set_read_only_fault(&self, on: bool) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.pragma_update(None, "query_only", on)
            .map_err(sqlite_failure)
    }

    /// Test hook: lets the database file grow by at most `extra_pages` more pages
    /// (`PRAGMA max_page_count`), as a full disk does; `None` lifts the limit.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn set_disk_full_fault(&self, extra_pages: Option<u32>) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .map_err(sqlite_failure)?;
        let limit = match extra_pages {
            Some(extra) => pages + i64::from(extra),
            None => i64::from(u32::MAX) * 2,
        };
        conn.query_row(&format!("PRAGMA max_page_count = {limit}"), [], |_| Ok(()))
            .map_err(sqlite_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(engine: &Engine, key: &str, value: &str) -> Result<()> {
        engine
            .write(|tx| tx.put(TableId::Users, key, value.as_bytes(), None))
            .await
    }

    fn get(engine: &Engine, key: &str) -> Option<Vec<u8>> {
        engine.read(|tx| tx.get(TableId::Users, key)).unwrap()
    }

    /// The bundled SQLite is built with the options of `.cargo/config.toml` (no global
    /// page-cache LRU, no memory statistics: two global mutexes fewer on every page fetch and
    /// allocation; docs/performance.md). A build that loses them still works, only slower, so
    /// nothing else would notice.
    #[test]
    fn sqlite_is_built_without_its_global_mutexes() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_transaction_applies_nothing() {
        let engine = Engine::in_memory().unwrap();
        let result: Result<()> = engine
            .write(|tx| {
                tx.put(TableId::Users, "a", b"1", None)?;
                Err(Error::ChallengeAlreadyUsed)
            })
            .await;
        assert_eq!(result, Err(Error::ChallengeAlreadyUsed));
        assert_eq!(get(&engine, "a"), None);
    }

    #[tokio::test]
    async fn ranges_are_half_open_and_in_key_order() {
        let engine = Engine::in_memory().unwrap();
        for key in ["b", "a\u{1f}2", "a\u{1f}1", "a\u{20}", "a"] {
            put(&engine, key, key).await.unwrap();
        }
        let keys: Vec<String> = engine
            .read(|tx| tx.range(TableId::Users, "a\u{1f}", "a\u{20}"))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["a\u{1f}1", "a\u{1f}2"]);
    }

    #[tokio::test]
    async fn purging_uses_the_expiry_index_and_bounded_batches() {
        let engine = Engine::in_memory().unwrap();
        engine
            .write(|tx| {
                for i in 0..10 {
                    let key = format!("k{i}");
                    tx.put(TableId::Actions, &key, b"x", Some(Timestamp(i)))?;
                }
                tx.put(TableId::Tenants, "forever", b"x", None)
            })
            .await
            .unwrap();
        let deleted = engine.write(|tx| tx.purge_expired(Timestamp(5), 4)).await;
        assert_eq!(deleted, Ok(4));
        let deleted = engine.write(|tx| tx.purge_expired(Timestamp(5), 4)).await;
        assert_eq!(deleted, Ok(2), "k0..=k5 expired at 5");
        let left = engine
            .read(|tx| tx.range(TableId::Actions, "", "\u{7f}"))
            .unwrap();
        assert_eq!(left.len(), 4);
        assert!(
            engine
                .read(|tx| tx.get(TableId::Tenants, "forever"))
                .unwrap()
                .is_some()
        );

        // The plan of the inner select searches the partial index, never scans the table.
        let conn = engine.writer.lock().unwrap();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN DELETE FROM items WHERE (tbl, key) IN \
                 (SELECT tbl, key FROM items WHERE expires_at <= ?1 LIMIT ?2)",
            )
            .unwrap()
            .query_map(params![5, 4], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING COVERING INDEX items_expiry")
                    || step.contains("USING INDEX items_expiry")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|step| step == "SCAN items"), "{plan:?}");
    }

    #[tokio::test]
    async fn data_survives_reopening_and_a_second_connection_sees_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let first = Engine::open(&path, Durability::Full).unwrap();
        put(&first, "a", "1").await.unwrap();
        // Another process's view: a second engine on the same file.
        let second = Engine::open(&path, Durability::Normal).unwrap();
        assert_eq!(get(&second, "a"), Some(b"1".to_vec()));
        put(&second, "b", "2").await.unwrap();
        assert_eq!(get(&first, "b"), Some(b"2".to_vec()));
        drop((first, second));
        let reopened = Engine::open(&path, Durability::Normal).unwrap();
        assert_eq!(get(&reopened, "a"), Some(b"1".to_vec()));
    }

    /// The files hold the tenants' signing keys: 0600 whatever the umask (the test runs
    /// with the usual 022, under which SQLite alone makes them 0644), and files that were
    /// readable by others before are tightened at the next open.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let wal = dir.path().join("store.db-wal");
        let shm = dir.path().join("store.db-shm");
        let engine = Engine::open(&path, Durability::Full).unwrap();
        put(&engine, "a", "1").await.unwrap();
        assert_eq!(
            [mode(&path), mode(&wal), mode(&shm)],
            [0o600; 3],
            "a new store"
        );
        // The first engine stays open, so the `-wal` and `-shm` files stay too.
        for file in [&path, &wal, &shm] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let second = Engine::open(&path, Durability::Full).unwrap();
        assert_eq!(
            [mode(&path), mode(&wal), mode(&shm)],
            [0o600; 3],
            "an existing store"
        );
        assert_eq!(get(&second, "a"), Some(b"1".to_vec()), "its data kept");
        drop(engine);
    }

    /// Group commit: concurrent writers at full durability share commits, lose no update,
    /// and a member that fails leaves no trace while the others are committed.
    /// Reads the counter and writes it plus one: lost updates show as a smaller count.
    fn increment_counter(tx: &mut Tx<'_>) -> Result<()> {
        let count: u64 = tx
            .get(TableId::Users, "counter")?
            .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
            .unwrap_or(0);
        tx.put(
            TableId::Users,
            "counter",
            (count + 1).to_string().as_bytes(),
            None,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_loses_no_update_and_keeps_failed_members_out() {
        let dir = tempfile::tempdir().unwrap();
        let engine = std::sync::Arc::new(
            Engine::open(&dir.path().join("store.db"), Durability::Full).unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..200 {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                engine
                    .write(|tx| {
                        increment_counter(tx)?;
                        tx.put(TableId::Users, &format!("member-{i}"), b"x", None)?;
                        if i % 3 == 0 {
                            return Err(Error::ChallengeAlreadyUsed);
                        }
                        Ok(())
                    })
                    .await
            }));
        }
        let mut failed = 0;
        for task in tasks {
            if task.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 67);
        let counter = engine.read(|tx| tx.get(TableId::Users, "counter")).unwrap();
        assert_eq!(counter, Some(b"133".to_vec()));
        let members = engine
            .read(|tx| tx.range(TableId::Users, "member-", "member."))
            .unwrap();
        assert_eq!(members.len(), 133);
        assert!(
            members
                .iter()
                .all(|(k, _)| k[7..].parse::<u32>().unwrap() % 3 != 0)
        );
        let commits = engine.batches.lock().unwrap().last;
        assert!(
            commits < 200,
            "writers shared commits: {commits} for 200 writes"
        );
        eprintln!("200 writes in {commits} commits");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_and_async_writers_share_batches_and_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let engine = std::sync::Arc::new(
            Engine::open(&dir.path().join("store.db"), Durability::Full).unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..120 {
            let engine = engine.clone();
            tasks.push(if i % 4 == 0 {
                // The CLI's and the opening's way: the thread itself waits.
                tokio::task::spawn_blocking(move || engine.write_now(increment_counter))
            } else {
                tokio::spawn(async move { engine.write(increment_counter).await })
            });
        }
        // A writer left waiting for a batch nobody commits would hang here: a failure.
        let all = tokio::time::timeout(Duration::from_secs(60), async {
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        });
        assert!(all.await.is_ok(), "every writer was answered");
        let counter = engine.read(|tx| tx.get(TableId::Users, "counter")).unwrap();
        assert_eq!(counter, Some(b"120".to_vec()));
        assert_eq!(
            *engine.finished_batches.borrow(),
            engine.batches.lock().unwrap().last
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_write_waiting_for_another_process_leaves_the_worker_to_other_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let engine = std::sync::Arc::new(Engine::open(&path, Durability::Full).unwrap());
        // Another process (the CLI) holds SQLite's write lock.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let write = tokio::spawn({
            let engine = engine.clone();
            async move { put(&engine, "k", "v").await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!write.is_finished(), "the write waits for the lock");
        // The runtime's only worker is not stuck in that wait: another task runs meanwhile.
        let read = tokio::spawn({
            let engine = engine.clone();
            async move { get(&engine, "k") }
        });
        let read = tokio::time::timeout(Duration::from_secs(2), read).await;
        assert!(matches!(read, Ok(Ok(None))), "{read:?}");
        other.execute_batch("COMMIT").unwrap();
        assert!(matches!(write.await, Ok(Ok(()))));
        assert_eq!(get(&engine, "k"), Some(b"v".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_left_open_for_a_writer_that_leaves_the_queue_is_committed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let engine = std::sync::Arc::new(Engine::open(&path, Durability::Full).unwrap());
        // A writer queued for its turn, as a request is whose handler waits for the engine.
        let queued = QueuedWriter::new(&engine);
        let first = tokio::spawn({
            let engine = engine.clone();
            async move { put(&engine, "first", "1").await }
        });
        // The first writer leaves its batch open for the queued one to join and waits.
        let waiting = tokio::time::timeout(Duration::from_secs(5), async {
            while engine.batches.lock().unwrap().open.is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waiting.is_ok(), "the first writer's batch was opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!first.is_finished(), "answered before its commit");
        // The queued writer's request is cancelled before its turn: the batch commits now.
        drop(queued);
        let answer = tokio::time::timeout(Duration::from_secs(5), first).await;
        assert!(matches!(answer, Ok(Ok(Ok(())))), "{answer:?}");
        let other = Engine::open(&path, Durability::Full).unwrap();
        assert_eq!(get(&other, "first"), Some(b"1".to_vec()), "durable");
        assert_eq!(engine.waiting_writers.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_group_commit_answers_every_member_with_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let engine = std::sync::Arc::new(
            Engine::open(&dir.path().join("store.db"), Durability::Full).unwrap(),
        );
        engine.set_disk_full_fault(Some(1)).unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("big-{i:03}");
                let result = engine
                    .write(|tx| tx.put(TableId::Users, &key, &[9; 2048], None))
                    .await;
                (key, result)
            }));
        }
        let mut answered = Vec::new();
        for task in tasks {
            let (key, result) = task.await.unwrap();
            if result.is_ok() {
                answered.push(key);
            }
        }
        // Whatever was answered is there; whatever was refused is not.
        for i in 0..40 {
            let key = format!("big-{i:03}");
            let present = engine
                .read(|tx| tx.get(TableId::Users, &key))
                .unwrap()
                .is_some();
            assert_eq!(present, answered.contains(&key), "{key}");
        }
        assert!(answered.len() < 40, "the disk was full for some");
        engine.set_disk_full_fault(None).unwrap();
        put(&engine, "after", "1").await.unwrap();
        assert_eq!(get(&engine, "after"), Some(b"1".to_vec()));
    }

    /// A member of a group commit whose savepoint cannot be ended leaves what it changed
    /// unknown: its batch is rolled back whole and the member told `StoreUnavailable`, never
    /// its own `Ok`; the next write is served. Here the member ends its savepoint itself, so
    /// the engine's `RELEASE` finds none. Both forms of the group commit: the async one (a
    /// multi-thread runtime) and the blocking one the CLI uses.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_whose_savepoint_cannot_be_ended_fails_and_its_batch_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("store.db"), Durability::Full).unwrap();
        let releases_its_own_savepoint = |tx: &mut Tx<'_>| {
            tx.put(TableId::Users, "unknown", b"1", None)?;
            tx.conn
                .execute_batch("RELEASE member")
                .map_err(sqlite_failure)
        };
        assert_eq!(
            engine.write(releases_its_own_savepoint).await,
            Err(Error::StoreUnavailable)
        );
        assert_eq!(get(&engine, "unknown"), None, "rolled back");
        assert_eq!(
            engine.write_now(releases_its_own_savepoint),
            Err(Error::StoreUnavailable)
        );
        assert_eq!(get(&engine, "unknown"), None, "rolled back");
        put(&engine, "after", "2").await.unwrap();
        assert_eq!(get(&engine, "after"), Some(b"2".to_vec()));
    }

    #[test]
    fn the_durability_sets_synchronous_on_every_connection_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        for (durability, level) in [(Durability::Normal, 1), (Durability::Full, 2)] {
            let engine = Engine::open(&path, durability).unwrap();
            let writer = engine.writer.lock().unwrap();
            let synchronous: i64 = writer
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
                .unwrap();
            let mode: String = writer
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                .unwrap();
            assert_eq!((synchronous, mode.as_str()), (level, "wal"));
            drop(writer);
            // A reader connection opened later has the same settings.
            let reader = Engine::connect(&path, durability).unwrap();
            let synchronous: i64 = reader
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
                .unwrap();
            assert_eq!(synchronous, level);
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let garbage = vec![0x5a_u8; 8192];
        std::fs::write(&path, &garbage).unwrap();
        let error = Engine::open(&path, Durability::Normal).err().unwrap();
        assert!(matches!(error, OpenError::Damaged { .. }), "{error}");
        assert!(error.to_string().contains("refusing to start"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage, "never truncated");
    }

    #[tokio::test]
    async fn a_damaged_page_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let engine = Engine::open(&path, Durability::Full).unwrap();
            engine
                .write(|tx| {
                    for i in 0..2000 {
                        tx.put(TableId::Users, &format!("user-{i:05}"), &[7; 100], None)?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
            // Everything into the main file, so the damage below is what the next open reads.
            let conn = engine.writer.lock().unwrap();
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 16 * 4096);
        // Scribble over the middle of the file: b-tree pages of the items table.
        for byte in &mut bytes[8 * 4096..8 * 4096 + 4096] {
            *byte = 0xff;
        }
        std::fs::write(&path, &bytes).unwrap();
        let error = Engine::open(&path, Durability::Normal).err().unwrap();
        assert!(matches!(error, OpenError::Damaged { .. }), "{error}");
        assert_eq!(std::fs::read(&path).unwrap().len(), bytes.len());
    }

    #[tokio::test]
    async fn after_a_read_only_fault_writes_fail_whole_and_then_work_again() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("store.db"), Durability::Normal).unwrap();
        put(&engine, "a", "1").await.unwrap();
        engine.set_read_only_fault(true).unwrap();
        assert_eq!(put(&engine, "b", "2").await, Err(Error::StoreUnavailable));
        assert_eq!(get(&engine, "a"), Some(b"1".to_vec()), "reads go on");
        engine.set_read_only_fault(false).unwrap();
        put(&engine, "b", "2").await.unwrap();
        assert_eq!(get(&engine, "b"), Some(b"2".to_vec()));
    }

    #[tokio::test]
    async fn a_disk_full_in_the_middle_of_a_transaction_leaves_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("store.db"), Durability::Normal).unwrap();
        put(&engine, "before", "1").await.unwrap();
        engine.set_disk_full_fault(Some(2)).unwrap();
        // The first items fit; the file then cannot grow any more.
        let result = engine
            .write(|tx| {
                for i in 0..500 {
                    tx.put(TableId::Users, &format!("big-{i:04}"), &[1; 512], None)?;
                }
                Ok(())
            })
            .await;
        assert_eq!(result, Err(Error::StoreUnavailable));
        assert_eq!(get(&engine, "big-0000"), None, "nothing half-written");
        engine.set_disk_full_fault(None).unwrap();
        put(&engine, "after", "2").await.unwrap();
        assert_eq!(get(&engine, "after"), Some(b"2".to_vec()));
        assert_eq!(get(&engine, "before"), Some(b"1".to_vec()));
    }
}
