//! The embedded store: SQLite on one machine (or in memory, for tests), for the local server
//! and the operator CLI. The engine ([`engine`]) runs every method below as one SQLite
//! transaction, a write as `BEGIN IMMEDIATE`: every conditional step (check, then write) is
//! atomic across threads and processes, a failed step writes nothing, and what was answered
//! survives as [`Durability`] says. Several processes may use one data directory at once (the
//! server and the CLI).
//!
//! All tables live in one SQLite table `items (tbl, key, value, expires_at)`, the way the
//! DynamoDB adapter keeps one table. Keys are the parts of an identifier joined by
//! [`KEY_SEPARATOR`] (a control character no identifier may contain), so a prefix of parts is
//! also a range of keys. Items that expire carry `expires_at` ([`Stored::expires_at`]), which
//! [`EmbeddedStore::purge_expired`] deletes through an index; reads check expiry themselves.
//!
//! | table | key | value | `expires_at` |
//! |---|---|---|---|
//! | `Tenants` | tenant | [`TenantRecord`] JSON | |
//! | `SecretIndex` | hex SHA-256 of a secret | tenant id | |
//! | `Credentials` | tenant, namespace, key fingerprint | [`Credential`] JSON | |
//! | `UserCredentials` | tenant, user, credential id | namespace, fingerprint | |
//! | `ChallengeMarks` | tenant, challenge fingerprint | [`ChallengeMark`] JSON | the challenge's expiry |
//! | `Actions` | tenant, user, action code, idempotency key | [`Action`] JSON | the action's expiry |
//! | `Users` | tenant, user | [`UserProfile`] JSON | |
//! | `RemovalReceipts` | tenant, fingerprint, window, signature's `r` | expiry (ms) | that expiry |
//! | `ActionConfigs` | tenant, action code (or `*`, the tenant default) | [`ActionConfig`] JSON | |
//! | `Approvals` | tenant, `push`, user / tenant, `qr`, challenge id | [`ApprovalChallenge`] JSON | its `retain_until` |
//! | `Passkeys` | tenant, WebAuthn credential id | [`PasskeyRecord`] JSON | |
//! | `UserPasskeys` | tenant, user, authenticator id | the credential id | |
//! | `Ceremonies` | tenant, ceremony id | [`Ceremony`] JSON | the ceremony's expiry |
//! | `RateLimits` | tenant, bucket key (scope, subject, window, shard) | [`Counter`] JSON | its window's end |
//! | `SocketSessions` | WebSocket connection id | [`crate::store::SocketSession`] JSON | the session's expiry |
//! | `SessionConfigs` | tenant | [`SessionConfig`](crate::domain::SessionConfig) JSON | |
//! | `Sessions` | tenant, user, session id | [`SessionRecord`](crate::domain::SessionRecord) JSON | its `expires_at` |
//! | `RefreshTokens` | tenant, SHA-256 of the token | [`RefreshTokenRecord`](crate::domain::RefreshTokenRecord) JSON | its `expires_at` |
//! | `TokenMarks` | tenant, SHA-256 of a challenge token a session was made from | expiry (ms) | that expiry |
//! | `UserLookups` | tenant, attribute, value, user | user id | |
//! | `UsedChallenges` | tenant, user | [`UsedChallenge`] JSON: the user's last used in-app challenge | |
//!
//! A data directory written by the engine before SQLite (`trusted-device.journal`) is
//! imported on first open ([`legacy_journal`]), then renamed aside.

pub mod engine;
pub mod legacy_journal;
pub mod outbox;
mod sessions;
mod sockets;

use super::{
    ActionConfigStore, ActionStore, ActionWrite, ApprovalStore, ChallengeStore, CredentialStore,
    CredentialUpdate, DecisionInputs, EnrolmentGuard, InsertOutcome, OneTimeMark, PasskeyEnrolment,
    PasskeySignIn, PasskeyStore, RateBucket, RateLimitStore, RemovalReceipt, SingleUse,
    TenantStore, UserStore, VerificationCommit, VerificationStore,
};
use crate::clock::Timestamp;
use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{
    ADD_AUTHENTICATORS_SCOPE, Action, ActionKey, ActionState, ApprovalChallenge, ApprovalSlot,
    ChallengeId, ChallengeMark, ChallengeOrder, Credential, CredentialId, KEY_SEPARATOR, Namespace,
    TenantId, TenantRecord, UserId, UserProfile,
};
use crate::domain::{ActionCode, Enrolment};
use crate::domain::{Ceremony, PasskeyCheck, PasskeyRecord};
use crate::error::{Error, Result};
use async_trait::async_trait;
pub use engine::{Durability, OpenError};
use engine::{Engine, PURGE_BATCH, TableId, Tx};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The database in a data directory.
pub const DB_FILE: &str = "trusted-device.db";
/// The journal of the engine before SQLite, imported from a data directory on first open.
pub const LEGACY_JOURNAL_FILE: &str = "trusted-device.journal";
/// Marks, in the database's `meta`, the SHA-256 of a journal already imported, so that a crash
/// between the import's commit and the rename never imports it twice (over newer data).
const IMPORTED_JOURNAL_META: &str = "imported_journal_sha256";

#[derive(Clone)]
pub struct EmbeddedStore {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// What opening a data directory did with an old journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalImport {
    pub items: usize,
    /// Where the journal was renamed to.
    pub renamed_to: PathBuf,
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path` with the default [`Durability`] (full).
    pub fn open(path: &Path) -> std::result::Result<Self, OpenError> {
        Self::open_with(path, Durability::default())
    }

    pub fn open_with(path: &Path, durability: Durability) -> std::result::Result<Self, OpenError> {
        Ok(EmbeddedStore {
            engine: Arc::new(
                Engine::open(path, durability)?.with_outbox_rule(outbox::tenant_has_events_webhook),
            ),
        })
    }

    /// Opens the store of a data directory ([`DB_FILE`]), first importing the journal of the
    /// engine before SQLite if there is one ([`LEGACY_JOURNAL_FILE`]): its items are written
    /// in one transaction, then the journal is renamed to `….imported-<unix seconds>` (not
    /// deleted). A journal that cannot be read whole is refused, and left where it is.
    pub fn open_data_dir(
        dir: &Path,
        durability: Durability,
    ) -> std::result::Result<(Self, Option<JournalImport>), OpenError> {
        let store = Self::open_with(&dir.join(DB_FILE), durability)?;
        let journal = dir.join(LEGACY_JOURNAL_FILE);
        if !journal.exists() {
            return Ok((store, None));
        }
        let import = store.import_legacy_journal(&journal)?;
        Ok((store, Some(import)))
    }

    fn import_legacy_journal(
        &self,
        journal: &Path,
    ) -> std::result::Result<JournalImport, OpenError> {
        let shown = journal.display().to_string();
        let refused = |detail: String| OpenError::Import {
            path: shown.clone(),
            detail,
        };
        let bytes = std::fs::read(journal).map_err(|e| refused(e.to_string()))?;
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
        let replayed = legacy_journal::replay(&bytes).map_err(|e| refused(e.to_string()))?;
        let count = replayed.items.len();
        let outcome = tokio_free_write(&self.engine, |tx| {
            if tx.meta(IMPORTED_JOURNAL_META)?.as_deref() == Some(digest.as_str()) {
                // Imported before, but the rename did not happen: only rename now.
                return Ok(Ok(()));
            }
            if !tx.is_empty()? {
                return Ok(Err(
                    "the database already holds data; move the journal or the database aside"
                        .to_owned(),
                ));
            }
            for ((table, key), value) in &replayed.items {
                let expires_at = match stored_expiry(*table, value) {
                    Ok(expires_at) => expires_at,
                    Err(_) => return Ok(Err(format!("the item {key:?} does not decode"))),
                };
                tx.put_unrecorded(*table, key, value, expires_at)?;
            }
            tx.set_meta(IMPORTED_JOURNAL_META, &digest)?;
            Ok(Ok(()))
        })
        .map_err(|e| refused(e.to_string()))?;
        outcome.map_err(refused)?;
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let renamed_to = PathBuf::from(format!("{}.imported-{seconds}", journal.display()));
        std::fs::rename(journal, &renamed_to).map_err(|e| refused(e.to_string()))?;
        if let Some(dir) = journal.parent() {
            // The rename itself made durable; if this fails the marker above still prevents a
            // second import.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        if replayed.torn_tail > 0 {
            tracing::warn!(
                bytes = replayed.torn_tail,
                "the old journal ended in a torn record (a write never acknowledged); ignored"
            );
        }
        Ok(JournalImport {
            items: count,
            renamed_to,
        })
    }

    /// A store that lives in memory only: for unit tests.
    pub fn in_memory() -> Result<Self> {
        Ok(EmbeddedStore {
            engine: Arc::new(
                Engine::in_memory()?.with_outbox_rule(outbox::tenant_has_events_webhook),
            ),
        })
    }

    pub fn durability(&self) -> Durability {
        self.engine.durability()
    }

    fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.engine.read(f)
    }

    /// Runs `f` as one transaction: its changes are committed only if it succeeds, so
    /// nothing is ever half-written.
    async fn write<T: Send>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send) -> Result<T> {
        self.engine.write(f).await
    }

    /// How many records the store holds and their size in bytes (keys, values and a small
    /// per-record overhead; docs/performance.md measures what anonymous requests can make it
    /// hold).
    pub fn live_counts(&self) -> Result<(usize, usize)> {
        self.engine.live_counts()
    }

    /// Deletes every item whose `expires_at` is at or before `now` (challenge marks, actions,
    /// removal receipts, approvals past their retention, rate-limit counters): what DynamoDB's TTL does in
    /// production. Through the expiry index, [`PURGE_BATCH`] items per transaction, so other
    /// writers wait for one batch at most. Reads never depend on it having run.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted = self.write(|tx| tx.purge_expired(now, PURGE_BATCH)).await?;
            total += deleted;
            if deleted < u64::from(PURGE_BATCH) {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Test hook: every write fails as on a read-only data directory, until lifted.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn set_read_only_fault(&self, on: bool) -> Result<()> {
        self.engine.set_read_only_fault(on)
    }

    /// Test hook: the file may grow by `extra_pages` pages at most, as on a full disk.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn set_disk_full_fault(&self, extra_pages: Option<u32>) -> Result<()> {
        self.engine.set_disk_full_fault(extra_pages)
    }

    /// Test hook: the tenant `id`'s record replaced by bytes that do not decode, as a damaged
    /// item would be: every read of it fails (`Error::Internal`, logged).
    #[cfg(test)]
    pub(crate) async fn damage_tenant_record(&self, id: &TenantId) -> Result<()> {
        self.write(|tx| tx.put_unrecorded(TableId::Tenants, id.as_str(), b"{not json", None))
            .await
    }
}

/// Runs a write at open time, before any runtime may exist.
fn tokio_free_write<T>(engine: &Engine, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
    engine.write_now(f)
}

// ---------------------------------------------------------------- helpers

/// What the store keeps, and when it expires: `None` for items kept until deleted.
pub trait Stored: Serialize {
    fn expires_at(&self) -> Option<Timestamp> {
        None
    }
}

impl Stored for TenantRecord {}
impl Stored for TenantId {}
impl Stored for Credential {}
impl Stored for CredentialPointer {}
impl Stored for UserProfile {}
impl Stored for ActionConfig {}
impl Stored for PasskeyRecord {}
impl Stored for String {}

impl Stored for Ceremony {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.expires_at)
    }
}

/// A user's last used in-app challenge (see [`SingleUse::InOrder`]), kept with the user as
/// the DynamoDB adapter keeps it on the enrolment item: an older challenge that outlives it
/// (the lifetime setting lowered) is refused the same on both stores.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct UsedChallenge {
    order: ChallengeOrder,
}

impl Stored for UsedChallenge {}

impl Stored for ChallengeMark {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.expires_at)
    }
}

impl Stored for Action {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.expires_at)
    }
}

impl Stored for ApprovalChallenge {
    /// Not `expires_at`: a push slot is kept longer, for the rate limit's history.
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.retain_until)
    }
}

/// A removal receipt is its own expiry.
impl Stored for Timestamp {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(*self)
    }
}

/// The expiry of an item read back as bytes (the journal import), by what its table holds.
fn stored_expiry(table: TableId, value: &[u8]) -> Result<Option<Timestamp>> {
    Ok(match table {
        TableId::ChallengeMarks => decode::<ChallengeMark>(value)?.expires_at(),
        TableId::Actions => decode::<Action>(value)?.expires_at(),
        TableId::Approvals => decode::<ApprovalChallenge>(value)?.expires_at(),
        TableId::RemovalReceipts => decode::<Timestamp>(value)?.expires_at(),
        TableId::RateLimits => decode::<Counter>(value)?.expires_at(),
        TableId::SocketSessions => decode::<crate::store::SocketSession>(value)?.expires_at(),
        TableId::Sessions => decode::<crate::domain::SessionRecord>(value)?.expires_at(),
        TableId::RefreshTokens => decode::<crate::domain::RefreshTokenRecord>(value)?.expires_at(),
        TableId::TokenMarks => decode::<Timestamp>(value)?.expires_at(),
        TableId::SessionConfigs | TableId::UserLookups => None,
        TableId::Tenants
        | TableId::SecretIndex
        | TableId::Credentials
        | TableId::UserCredentials
        | TableId::Users
        | TableId::ActionConfigs
        | TableId::Passkeys
        | TableId::UserPasskeys
        | TableId::UsedChallenges => None,
        TableId::Ceremonies => decode::<Ceremony>(value)?.expires_at(),
    })
}

fn key(parts: &[&str]) -> String {
    parts.join(&KEY_SEPARATOR.to_string())
}

/// The half-open key range of every key that starts with `parts` followed by the separator.
fn prefix_range(parts: &[&str]) -> (String, String) {
    let base = key(parts);
    let start = format!("{base}{KEY_SEPARATOR}");
    // The character right after the separator, so `start..end` covers exactly the prefix.
    let end = format!("{base}{}", char::from(KEY_SEPARATOR as u8 + 1));
    (start, end)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|_| Error::Internal)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|error| {
        tracing::error!(error = %error, "corrupt record in the embedded store");
        Error::Internal
    })
}

fn get<T: DeserializeOwned>(tx: &Tx<'_>, table: TableId, key: &str) -> Result<Option<T>> {
    tx.get(table, key)?.as_deref().map(decode).transpose()
}

fn put<T: Stored>(tx: &mut Tx<'_>, table: TableId, key: &str, value: &T) -> Result<()> {
    tx.put(table, key, &encode(value)?, value.expires_at())
}

fn scan<T: DeserializeOwned>(
    tx: &Tx<'_>,
    table: TableId,
    prefix: &[&str],
) -> Result<Vec<(String, T)>> {
    let (start, end) = prefix_range(prefix);
    tx.range(table, &start, &end)?
        .into_iter()
        .map(|(k, v)| Ok((k, decode(&v)?)))
        .collect()
}

fn credential_key(tenant: &TenantId, namespace: Namespace, fingerprint: &str) -> String {
    key(&[tenant.as_str(), namespace.segment(), fingerprint])
}

fn user_credential_key(tenant: &TenantId, user: &UserId, id: &CredentialId) -> String {
    key(&[tenant.as_str(), user.as_str(), id.as_str()])
}

fn action_key(tenant: &TenantId, action: &ActionKey) -> String {
    key(&[
        tenant.as_str(),
        action.user_id.as_str(),
        action.action_code.as_str(),
        action.idempotency_key.as_str(),
    ])
}

fn mark_key(tenant: &TenantId, challenge: &ChallengeId) -> String {
    key(&[tenant.as_str(), &challenge.fingerprint()])
}

fn approval_key(tenant: &TenantId, slot: &ApprovalSlot) -> String {
    match slot {
        ApprovalSlot::Push(user) => key(&[tenant.as_str(), "push", user.as_str()]),
        ApprovalSlot::QrCode(id) => key(&[tenant.as_str(), "qr", id.as_str()]),
    }
}

/// Uses an in-app challenge in its user's order, or moves a push or QR challenge to its
/// approved version, inside a write transaction (see [`SingleUse`]).
fn use_once(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    user: &UserId,
    single_use: &SingleUse,
) -> Result<()> {
    match single_use {
        SingleUse::InOrder { order, .. } => {
            let used_key = key(&[tenant.as_str(), user.as_str()]);
            let last = get::<UsedChallenge>(tx, TableId::UsedChallenges, &used_key)?;
            match &last {
                Some(last) if last.order == *order => return Err(Error::ChallengeAlreadyUsed),
                Some(last) if last.order > *order => return Err(Error::ChallengeSuperseded),
                _ => {}
            }
            put(
                tx,
                TableId::UsedChallenges,
                &used_key,
                &UsedChallenge {
                    order: order.clone(),
                },
            )
        }
        SingleUse::Approval { approved } => {
            let slot_key = approval_key(tenant, &approved.slot());
            let current = get::<ApprovalChallenge>(tx, TableId::Approvals, &slot_key)?;
            if current.map(|c| c.version) != approved.version.checked_sub(1) {
                return Err(Error::ChallengeAlreadyUsed);
            }
            put(tx, TableId::Approvals, &slot_key, approved)
        }
    }
}

/// Uses up a challenge's mark inside a write transaction (see [`OneTimeMark`]).
fn use_mark(tx: &mut Tx<'_>, tenant: &TenantId, one_time: &OneTimeMark) -> Result<()> {
    let mark_key = mark_key(tenant, &one_time.challenge_id);
    let mut mark =
        get::<ChallengeMark>(tx, TableId::ChallengeMarks, &mark_key)?.unwrap_or(ChallengeMark {
            consumed: false,
            failed_attempts: 0,
            expires_at: one_time.expires_at,
        });
    if mark.consumed {
        return Err(Error::ChallengeAlreadyUsed);
    }
    mark.consumed = true;
    put(tx, TableId::ChallengeMarks, &mark_key, &mark)
}

/// The pointer stored in `UserCredentials`: where the credential itself lives.
#[derive(serde::Serialize, serde::Deserialize)]
struct CredentialPointer {
    namespace: Namespace,
    fingerprint: String,
}

fn user_credentials_in(tx: &Tx<'_>, tenant: &TenantId, user: &UserId) -> Result<Vec<Credential>> {
    let mut out = Vec::new();
    for (_, pointer) in scan::<CredentialPointer>(
        tx,
        TableId::UserCredentials,
        &[tenant.as_str(), user.as_str()],
    )? {
        let k = credential_key(tenant, pointer.namespace, &pointer.fingerprint);
        if let Some(credential) = get::<Credential>(tx, TableId::Credentials, &k)? {
            out.push(credential);
        }
    }
    out.sort_by_key(|c| c.created_at);
    Ok(out)
}

fn user_passkeys_in(tx: &Tx<'_>, tenant: &TenantId, user: &UserId) -> Result<Vec<PasskeyRecord>> {
    let mut out = Vec::new();
    for (_, credential_id) in
        scan::<String>(tx, TableId::UserPasskeys, &[tenant.as_str(), user.as_str()])?
    {
        if let Some(passkey) =
            get::<PasskeyRecord>(tx, TableId::Passkeys, &passkey_key(tenant, &credential_id))?
        {
            out.push(passkey);
        }
    }
    out.sort_by_key(|p| p.created_at);
    Ok(out)
}

fn user_actions_in(
    tx: &Tx<'_>,
    tenant: &TenantId,
    user: &UserId,
    since: Timestamp,
) -> Result<Vec<Action>> {
    let mut actions: Vec<Action> =
        scan::<Action>(tx, TableId::Actions, &[tenant.as_str(), user.as_str()])?
            .into_iter()
            .map(|(_, action)| action)
            .filter(|action| action.created_at >= since)
            .collect();
    actions.sort_by_key(|action| std::cmp::Reverse(action.created_at));
    Ok(actions)
}

fn config_key(tenant: &TenantId, config: &ConfigKey) -> String {
    key(&[tenant.as_str(), config.as_str()])
}

fn delete_credential_in(tx: &mut Tx<'_>, credential: &Credential) -> Result<()> {
    tx.remove(
        TableId::Credentials,
        &credential_key(
            &credential.tenant_id,
            credential.namespace,
            &credential.key_fingerprint,
        ),
    )?;
    tx.remove(
        TableId::UserCredentials,
        &user_credential_key(&credential.tenant_id, &credential.user_id, &credential.id),
    )
}

// ---------------------------------------------------------------- rate limits

/// A rate limit's counter (see [`RateLimitStore`]).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counter {
    hits: u32,
    expires_at: Timestamp,
}

impl Stored for Counter {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.expires_at)
    }
}

#[async_trait]
impl RateLimitStore for EmbeddedStore {
    async fn hit(&self, tenant: &TenantId, bucket: &RateBucket, now: Timestamp) -> Result<bool> {
        self.write(|tx| {
            let k = key(&[tenant.as_str(), &bucket.key]);
            // An expired counter counts as empty, whether or not the sweep removed it yet.
            let hits = get::<Counter>(tx, TableId::RateLimits, &k)?
                .filter(|c| c.expires_at > now)
                .map_or(0, |c| c.hits);
            if hits >= bucket.limit {
                return Ok(false);
            }
            put(
                tx,
                TableId::RateLimits,
                &k,
                &Counter {
                    hits: hits + 1,
                    expires_at: bucket.expires_at,
                },
            )?;
            Ok(true)
        })
        .await
    }
}

// ---------------------------------------------------------------- tenants

#[async_trait]
impl TenantStore for EmbeddedStore {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        self.read(|tx| get(tx, TableId::Tenants, id.as_str()))
    }

    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantRecord>> {
        // The index entry and its tenant in one read transaction: one snapshot.
        self.read(
            |tx| match get::<TenantId>(tx, TableId::SecretIndex, secret_hash)? {
                Some(id) => get(tx, TableId::Tenants, id.as_str()),
                None => Ok(None),
            },
        )
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        self.write(|tx| write_tenant(tx, tenant)).await
    }

    async fn replace_tenant(&self, tenant: &TenantRecord, expected_revision: u64) -> Result<bool> {
        self.write(|tx| {
            // Checked and written in one transaction (DESIGN 5).
            let stored = get::<TenantRecord>(tx, TableId::Tenants, tenant.id.as_str())?
                .map_or(0, |t| t.revision);
            if stored != expected_revision {
                return Ok(false);
            }
            write_tenant(tx, tenant).map(|()| true)
        })
        .await
    }

    /// One indexed SQLite read on this machine, far cheaper than parsing the tenant's keys.
    fn cheap_tenant_reads(&self) -> bool {
        true
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        self.read(|tx| {
            let tenants = tx
                .range(TableId::Tenants, "", "\u{10FFFF}")?
                .into_iter()
                .map(|(_, value)| decode::<TenantRecord>(&value))
                .collect::<Result<Vec<_>>>()?;
            Ok(tenants)
        })
    }
}

/// The tenant and its secret index, kept in step.
fn write_tenant(tx: &mut Tx<'_>, tenant: &TenantRecord) -> Result<()> {
    for hash in &tenant.secret_key_hashes {
        if let Some(owner) = get::<TenantId>(tx, TableId::SecretIndex, hash)?
            && owner != tenant.id
        {
            return Err(Error::invalid_request(
                "This secret key is already used by another tenant.",
            ));
        }
    }
    if let Some(old) = get::<TenantRecord>(tx, TableId::Tenants, tenant.id.as_str())? {
        for stale in old
            .secret_key_hashes
            .iter()
            .filter(|h| !tenant.secret_key_hashes.contains(h))
        {
            tx.remove(TableId::SecretIndex, stale)?;
        }
    }
    for hash in &tenant.secret_key_hashes {
        put(tx, TableId::SecretIndex, hash, &tenant.id)?;
    }
    put(tx, TableId::Tenants, tenant.id.as_str(), tenant)
}

// ---------------------------------------------------------------- credentials

#[async_trait]
impl CredentialStore for EmbeddedStore {
    async fn get_credential(
        &self,
        tenant: &TenantId,
        namespace: Namespace,
        key_fingerprint: &str,
    ) -> Result<Option<Credential>> {
        self.read(|tx| {
            get(
                tx,
                TableId::Credentials,
                &credential_key(tenant, namespace, key_fingerprint),
            )
        })
    }

    async fn list_user_credentials(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<Credential>> {
        self.read(|tx| user_credentials_in(tx, tenant, user))
    }

    async fn insert_credential(
        &self,
        credential: &Credential,
        guard: &EnrolmentGuard,
    ) -> Result<InsertOutcome> {
        self.write(|tx| {
            let tenant = &credential.tenant_id;
            // The guard, re-read inside the write: nothing can change between check and insert.
            let action = get::<Action>(tx, TableId::Actions, &action_key(tenant, &guard.action))?
                .filter(|action| action.expires_at > guard.now)
                .ok_or(Error::ActionNotFound)?;
            if !action.state.allows_enrolment() {
                return Err(Error::ActionForbidsEnrolment(action.state.as_str()));
            }
            // One user per key and tenant, whatever the namespace (DESIGN 4).
            for namespace in Namespace::ALL
                .into_iter()
                .filter(|ns| *ns != credential.namespace)
            {
                let k = credential_key(tenant, namespace, &credential.key_fingerprint);
                if let Some(holder) = get::<Credential>(tx, TableId::Credentials, &k)?
                    && holder.user_id != credential.user_id
                {
                    return Err(Error::CredentialConflict);
                }
            }
            let k = credential_key(tenant, credential.namespace, &credential.key_fingerprint);
            if let Some(existing) = get::<Credential>(tx, TableId::Credentials, &k)? {
                return Ok(InsertOutcome::AlreadyRegistered(existing));
            }
            if guard.first_credential_only
                && (!user_credentials_in(tx, tenant, &credential.user_id)?.is_empty()
                    || has_passkeys_in(tx, tenant, &credential.user_id)?)
            {
                return Err(Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE));
            }
            put(tx, TableId::Credentials, &k, credential)?;
            put(
                tx,
                TableId::UserCredentials,
                &user_credential_key(&credential.tenant_id, &credential.user_id, &credential.id),
                &CredentialPointer {
                    namespace: credential.namespace,
                    fingerprint: credential.key_fingerprint.clone(),
                },
            )?;
            Ok(InsertOutcome::Inserted)
        })
        .await
    }

    async fn delete_credential(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<Option<Credential>> {
        self.write(|tx| {
            let Some(pointer) = get::<CredentialPointer>(
                tx,
                TableId::UserCredentials,
                &user_credential_key(tenant, user, id),
            )?
            else {
                return Ok(None);
            };
            let k = credential_key(tenant, pointer.namespace, &pointer.fingerprint);
            let Some(credential) = get::<Credential>(tx, TableId::Credentials, &k)? else {
                return Ok(None);
            };
            delete_credential_in(tx, &credential)?;
            Ok(Some(credential))
        })
        .await
    }

    async fn remove_credential_once(
        &self,
        credential: &Credential,
        receipt: &RemovalReceipt,
    ) -> Result<()> {
        self.write(|tx| {
            // Not per namespace: the signed window message names none, so a signature must not
            // be replayable against the same key in another namespace (spec 3.2, 4.4).
            let receipt_key = key(&[
                credential.tenant_id.as_str(),
                &credential.key_fingerprint,
                &receipt.window.to_string(),
                &receipt.signature_id,
            ]);
            if tx.get(TableId::RemovalReceipts, &receipt_key)?.is_some() {
                return Err(Error::SignatureAlreadyUsed);
            }
            let k = credential_key(
                &credential.tenant_id,
                credential.namespace,
                &credential.key_fingerprint,
            );
            let stored = get::<Credential>(tx, TableId::Credentials, &k)?;
            if stored.as_ref().map(|c| &c.id) != Some(&credential.id) {
                return Err(Error::InvalidCredential);
            }
            delete_credential_in(tx, credential)?;
            put(
                tx,
                TableId::RemovalReceipts,
                &receipt_key,
                &receipt.expires_at,
            )
        })
        .await
    }
}

// ---------------------------------------------------------------- challenges

#[async_trait]
impl ChallengeStore for EmbeddedStore {
    async fn record_failed_attempt(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
        expires_at: Timestamp,
        max_attempts: u32,
    ) -> Result<bool> {
        let k = mark_key(tenant, challenge);
        self.write(|tx| {
            let mut mark =
                get::<ChallengeMark>(tx, TableId::ChallengeMarks, &k)?.unwrap_or(ChallengeMark {
                    consumed: false,
                    failed_attempts: 0,
                    expires_at,
                });
            if mark.failed_attempts >= max_attempts {
                return Ok(false);
            }
            mark.failed_attempts += 1;
            put(tx, TableId::ChallengeMarks, &k, &mark)?;
            Ok(true)
        })
        .await
    }

    async fn get_challenge_mark(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
    ) -> Result<Option<ChallengeMark>> {
        self.read(|tx| get(tx, TableId::ChallengeMarks, &mark_key(tenant, challenge)))
    }
}

// ---------------------------------------------------------------- actions

#[async_trait]
impl ActionStore for EmbeddedStore {
    async fn create_action(&self, action: &Action) -> Result<Action> {
        self.write(|tx| {
            let k = action_key(&action.tenant_id, &action.key);
            if let Some(existing) = get::<Action>(tx, TableId::Actions, &k)? {
                return Ok(existing);
            }
            put(tx, TableId::Actions, &k, action)?;
            Ok(action.clone())
        })
        .await
    }

    async fn get_action(&self, tenant: &TenantId, key: &ActionKey) -> Result<Option<Action>> {
        self.read(|tx| get(tx, TableId::Actions, &action_key(tenant, key)))
    }

    async fn set_action_state(
        &self,
        tenant: &TenantId,
        key: &ActionKey,
        state: ActionState,
        now: Timestamp,
    ) -> Result<Option<Action>> {
        let k = action_key(tenant, key);
        self.write(|tx| {
            let Some(mut action) = get::<Action>(tx, TableId::Actions, &k)? else {
                return Ok(None);
            };
            action.state = state;
            action.state_updated_at = now;
            put(tx, TableId::Actions, &k, &action)?;
            Ok(Some(action))
        })
        .await
    }

    async fn list_actions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<Vec<Action>> {
        self.read(|tx| user_actions_in(tx, tenant, user, since))
    }

    async fn list_user_activity(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<(Vec<Credential>, Vec<Action>, Vec<PasskeyRecord>)> {
        self.read(|tx| {
            Ok((
                user_credentials_in(tx, tenant, user)?,
                user_actions_in(tx, tenant, user, since)?,
                user_passkeys_in(tx, tenant, user)?,
            ))
        })
    }
}

// ---------------------------------------------------------------- action configs

#[async_trait]
impl ActionConfigStore for EmbeddedStore {
    async fn get_decision_inputs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
        user: &UserId,
    ) -> Result<DecisionInputs> {
        self.read(|tx| {
            Ok(DecisionInputs {
                own: get(
                    tx,
                    TableId::ActionConfigs,
                    &config_key(tenant, &ConfigKey::Action(code.clone())),
                )?,
                tenant_default: get(
                    tx,
                    TableId::ActionConfigs,
                    &config_key(tenant, &ConfigKey::TenantDefault),
                )?,
                enrolment: enrolment_in(tx, tenant, user)?,
            })
        })
    }

    async fn get_action_config(
        &self,
        tenant: &TenantId,
        key: &ConfigKey,
    ) -> Result<Option<ActionConfig>> {
        self.read(|tx| get(tx, TableId::ActionConfigs, &config_key(tenant, key)))
    }

    async fn put_action_config(&self, tenant: &TenantId, config: &ActionConfig) -> Result<()> {
        let k = config_key(tenant, &config.key()?);
        self.write(|tx| put(tx, TableId::ActionConfigs, &k, config))
            .await
    }

    async fn list_action_configs(&self, tenant: &TenantId) -> Result<Vec<ActionConfig>> {
        self.read(|tx| {
            let mut configs: Vec<ActionConfig> =
                scan::<ActionConfig>(tx, TableId::ActionConfigs, &[tenant.as_str()])?
                    .into_iter()
                    .map(|(_, config)| config)
                    .collect();
            configs.sort_by(|a, b| a.action_code.cmp(&b.action_code));
            Ok(configs)
        })
    }

    async fn delete_action_config(&self, tenant: &TenantId, key: &ConfigKey) -> Result<bool> {
        let k = config_key(tenant, key);
        self.write(|tx| {
            let existed = tx.get(TableId::ActionConfigs, &k)?.is_some();
            tx.remove(TableId::ActionConfigs, &k)?;
            Ok(existed)
        })
        .await
    }
}

// ---------------------------------------------------------------- users

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn get_user(&self, tenant: &TenantId, user: &UserId) -> Result<Option<UserProfile>> {
        self.read(|tx| get(tx, TableId::Users, &key(&[tenant.as_str(), user.as_str()])))
    }

    async fn put_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        profile: &UserProfile,
    ) -> Result<()> {
        let k = key(&[tenant.as_str(), user.as_str()]);
        self.write(|tx| {
            let old = get::<UserProfile>(tx, TableId::Users, &k)?;
            sessions::replace_lookups(tx, tenant, user, old.as_ref(), Some(profile))?;
            put(tx, TableId::Users, &k, profile)
        })
        .await
    }

    async fn delete_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        self.write(|tx| {
            let prefix = [tenant.as_str(), user.as_str()];
            let old = get::<UserProfile>(tx, TableId::Users, &key(&prefix))?;
            sessions::replace_lookups(tx, tenant, user, old.as_ref(), None)?;
            for (k, _) in scan::<serde_json::Value>(tx, TableId::Sessions, &prefix)? {
                tx.remove(TableId::Sessions, &k)?;
            }
            tx.remove(TableId::Users, &key(&prefix))?;
            tx.remove(TableId::UsedChallenges, &key(&prefix))?;
            tx.remove(
                TableId::Approvals,
                &approval_key(tenant, &ApprovalSlot::Push(user.clone())),
            )?;
            for (index_key, pointer) in
                scan::<CredentialPointer>(tx, TableId::UserCredentials, &prefix)?
            {
                tx.remove(
                    TableId::Credentials,
                    &credential_key(tenant, pointer.namespace, &pointer.fingerprint),
                )?;
                tx.remove(TableId::UserCredentials, &index_key)?;
            }
            for (k, _) in scan::<serde_json::Value>(tx, TableId::Actions, &prefix)? {
                tx.remove(TableId::Actions, &k)?;
            }
            for (index_key, credential_id) in scan::<String>(tx, TableId::UserPasskeys, &prefix)? {
                tx.remove(TableId::Passkeys, &key(&[tenant.as_str(), &credential_id]))?;
                tx.remove(TableId::UserPasskeys, &index_key)?;
            }
            Ok(())
        })
        .await
    }
}

// ---------------------------------------------------------------- verification

#[async_trait]
impl VerificationStore for EmbeddedStore {
    async fn complete_verification(&self, commit: &VerificationCommit) -> Result<ActionKey> {
        self.write(|tx| {
            let tenant = &commit.tenant_id;
            let now = commit.now;

            // The challenge: unexpired, and used now for the first time.
            if commit.single_use.expires_at() <= now {
                return Err(Error::ChallengeExpired);
            }
            use_once(tx, tenant, &commit.credential.user_id, &commit.single_use)?;

            // The action: completed if still challengeable, or created succeeded. Checked before
            // the credential, in the DynamoDB adapter's order of errors.
            let mut action = match &commit.action {
                ActionWrite::Complete(key) => {
                    let action = get::<Action>(tx, TableId::Actions, &action_key(tenant, key))?
                        .filter(|a| a.expires_at > now)
                        .ok_or(Error::ActionNotFound)?;
                    if !action.state.is_challengeable() {
                        return Err(Error::ActionNotChallengeable(action.state.as_str()));
                    }
                    action
                }
                ActionWrite::Create(action) => {
                    if tx
                        .get(TableId::Actions, &action_key(tenant, &action.key))?
                        .is_some()
                    {
                        return Err(Error::Internal);
                    }
                    action.clone()
                }
            };
            // The credential: still registered, still the same one.
            let credential_key = credential_key(
                tenant,
                commit.credential.namespace,
                &commit.credential.key_fingerprint,
            );
            let mut credential = get::<Credential>(tx, TableId::Credentials, &credential_key)?
                .filter(|c| c.id == commit.credential.id)
                .ok_or(Error::InvalidCredential)?;

            action.state = ActionState::ChallengeSucceeded;
            action.state_updated_at = now;
            action.verification_method = Some(commit.method);
            action.verified_by_authenticator_id = Some(credential.id.clone());

            credential.last_verified_at = Some(now);

            put(tx, TableId::Credentials, &credential_key, &credential)?;
            put(
                tx,
                TableId::Actions,
                &action_key(tenant, &action.key),
                &action,
            )?;
            Ok(action.key)
        })
        .await
    }

    async fn update_credential_once(&self, update: &CredentialUpdate) -> Result<()> {
        self.write(|tx| {
            let tenant = &update.tenant_id;
            if update.challenge.expires_at <= update.now {
                return Err(Error::ChallengeExpired);
            }
            use_mark(tx, tenant, &update.challenge)?;
            let new = &update.credential;
            let credential_key = credential_key(tenant, new.namespace, &new.key_fingerprint);
            get::<Credential>(tx, TableId::Credentials, &credential_key)?
                .filter(|c| c.id == new.id)
                .ok_or(Error::InvalidCredential)?;
            put(tx, TableId::Credentials, &credential_key, new)
        })
        .await
    }
}

#[async_trait]
impl ApprovalStore for EmbeddedStore {
    async fn get_approval(
        &self,
        tenant: &TenantId,
        slot: &ApprovalSlot,
    ) -> Result<Option<ApprovalChallenge>> {
        self.read(|tx| get(tx, TableId::Approvals, &approval_key(tenant, slot)))
    }

    async fn put_approval(
        &self,
        next: &ApprovalChallenge,
        expected_version: Option<u64>,
    ) -> Result<bool> {
        self.write(|tx| {
            let slot_key = approval_key(&next.tenant_id, &next.slot());
            let current = get::<ApprovalChallenge>(tx, TableId::Approvals, &slot_key)?;
            if current.map(|c| c.version) != expected_version {
                return Ok(false);
            }
            put(tx, TableId::Approvals, &slot_key, next)?;
            Ok(true)
        })
        .await
    }
}

// ---------------------------------------------------------------- passkeys

fn passkey_key(tenant: &TenantId, credential_id: &str) -> String {
    key(&[tenant.as_str(), credential_id])
}

fn user_passkey_key(tenant: &TenantId, user: &UserId, id: &CredentialId) -> String {
    key(&[tenant.as_str(), user.as_str(), id.as_str()])
}

fn ceremony_key(tenant: &TenantId, id: &str) -> String {
    key(&[tenant.as_str(), id])
}

/// How many credentials and passkeys `user` has: counted from the rows themselves, in the
/// read transaction (the DynamoDB adapter keeps a summary item instead).
fn enrolment_in(tx: &Tx<'_>, tenant: &TenantId, user: &UserId) -> Result<Enrolment> {
    let mut passkeys = 0;
    for (_, credential_id) in
        scan::<String>(tx, TableId::UserPasskeys, &[tenant.as_str(), user.as_str()])?
    {
        if tx
            .get(TableId::Passkeys, &passkey_key(tenant, &credential_id))?
            .is_some()
        {
            passkeys += 1;
        }
    }
    Ok(Enrolment::of(
        &user_credentials_in(tx, tenant, user)?,
        passkeys,
    ))
}

fn has_passkeys_in(tx: &Tx<'_>, tenant: &TenantId, user: &UserId) -> Result<bool> {
    Ok(!scan::<String>(tx, TableId::UserPasskeys, &[tenant.as_str(), user.as_str()])?.is_empty())
}

/// Marks a ceremony consumed: the single-use step of every passkey ceremony.
fn consume_ceremony(tx: &mut Tx<'_>, tenant: &TenantId, id: &str, now: Timestamp) -> Result<()> {
    let k = ceremony_key(tenant, id);
    let mut ceremony =
        get::<Ceremony>(tx, TableId::Ceremonies, &k)?.ok_or(Error::ChallengeNotFound)?;
    if ceremony.expires_at <= now {
        return Err(Error::ChallengeExpired);
    }
    if ceremony.consumed {
        return Err(Error::ChallengeAlreadyUsed);
    }
    ceremony.consumed = true;
    put(tx, TableId::Ceremonies, &k, &ceremony)
}

#[async_trait]
impl PasskeyStore for EmbeddedStore {
    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<()> {
        self.write(|tx| {
            let k = ceremony_key(&ceremony.tenant_id, &ceremony.id);
            if tx.get(TableId::Ceremonies, &k)?.is_some() {
                return Err(Error::Internal);
            }
            put(tx, TableId::Ceremonies, &k, ceremony)
        })
        .await
    }

    async fn get_ceremony(
        &self,
        tenant: &TenantId,
        id: &str,
        _now: Timestamp,
    ) -> Result<Option<Ceremony>> {
        Ok(self.read(|tx| get::<Ceremony>(tx, TableId::Ceremonies, &ceremony_key(tenant, id)))?)
    }

    async fn get_passkey(
        &self,
        tenant: &TenantId,
        credential_id: &str,
    ) -> Result<Option<PasskeyRecord>> {
        self.read(|tx| get(tx, TableId::Passkeys, &passkey_key(tenant, credential_id)))
    }

    async fn list_user_passkeys(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<PasskeyRecord>> {
        self.read(|tx| user_passkeys_in(tx, tenant, user))
    }

    /// One read transaction for both (every track asks): each transaction that begins after
    /// another connection's commit starts with an empty page cache (SQLite's WAL mode), so
    /// fewer transactions are fewer pages read again (docs/performance.md).
    async fn list_user_authenticators(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(Vec<Credential>, Vec<PasskeyRecord>)> {
        self.read(|tx| {
            Ok((
                user_credentials_in(tx, tenant, user)?,
                user_passkeys_in(tx, tenant, user)?,
            ))
        })
    }

    async fn enrol_passkey(&self, enrolment: &PasskeyEnrolment) -> Result<()> {
        self.write(|tx| {
            let passkey = &enrolment.passkey;
            let tenant = &passkey.tenant_id;
            let guard = &enrolment.guard;
            consume_ceremony(tx, tenant, &enrolment.ceremony_id, guard.now)?;
            let action_k = action_key(tenant, &guard.action);
            let mut action = get::<Action>(tx, TableId::Actions, &action_k)?
                .filter(|action| action.expires_at > guard.now)
                .ok_or(Error::ActionNotFound)?;
            // spec 3.5: one registration per token's action.
            if action.enrolled_passkey_id.is_some() {
                return Err(Error::PasskeyTokenAlreadyUsed);
            }
            if !action.state.allows_enrolment() {
                return Err(Error::ActionForbidsEnrolment(action.state.as_str()));
            }
            if !enrolment.expected_states().contains(&action.state) {
                return Err(Error::ActionNotChallengeable(action.state.as_str()));
            }
            if guard.first_credential_only
                && (!user_credentials_in(tx, tenant, &passkey.user_id)?.is_empty()
                    || has_passkeys_in(tx, tenant, &passkey.user_id)?)
            {
                return Err(Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE));
            }
            let k = passkey_key(tenant, &passkey.credential_id);
            if tx.get(TableId::Passkeys, &k)?.is_some() {
                return Err(Error::CredentialConflict);
            }
            put(tx, TableId::Passkeys, &k, passkey)?;
            put(
                tx,
                TableId::UserPasskeys,
                &user_passkey_key(tenant, &passkey.user_id, &passkey.id),
                &passkey.credential_id,
            )?;
            if enrolment.completes_action {
                action.state = ActionState::ChallengeSucceeded;
                action.state_updated_at = guard.now;
                action.verification_method = Some(crate::domain::VerificationMethod::Passkey);
                action.verified_by_authenticator_id = Some(passkey.id.clone());
            }
            action.enrolled_passkey_id = Some(passkey.id.clone());
            put(tx, TableId::Actions, &action_k, &action)
        })
        .await
    }

    async fn complete_passkey_sign_in(&self, sign_in: &PasskeySignIn) -> Result<ActionKey> {
        self.write(|tx| {
            let tenant = &sign_in.tenant_id;
            let now = sign_in.now;
            consume_ceremony(tx, tenant, &sign_in.ceremony_id, now)?;
            let k = passkey_key(tenant, &sign_in.passkey.credential_id);
            let stored = get::<PasskeyRecord>(tx, TableId::Passkeys, &k)?
                .filter(|p| p.id == sign_in.passkey.id)
                .ok_or(Error::PasskeyNotRegistered)?;
            if stored.counter != sign_in.previous_counter {
                return Err(Error::PasskeyRejected(PasskeyCheck::CounterRegression));
            }
            let mut action = match &sign_in.action {
                ActionWrite::Complete(key) => {
                    let action = get::<Action>(tx, TableId::Actions, &action_key(tenant, key))?
                        .filter(|a| a.expires_at > now)
                        .ok_or(Error::ActionNotFound)?;
                    if !action.state.is_challengeable() {
                        return Err(Error::ActionNotChallengeable(action.state.as_str()));
                    }
                    action
                }
                ActionWrite::Create(action) => {
                    if tx
                        .get(TableId::Actions, &action_key(tenant, &action.key))?
                        .is_some()
                    {
                        return Err(Error::Internal);
                    }
                    action.clone()
                }
            };
            action.state = ActionState::ChallengeSucceeded;
            action.state_updated_at = now;
            action.verification_method = Some(crate::domain::VerificationMethod::Passkey);
            action.verified_by_authenticator_id = Some(sign_in.passkey.id.clone());
            put(tx, TableId::Passkeys, &k, &sign_in.passkey)?;
            put(
                tx,
                TableId::Actions,
                &action_key(tenant, &action.key),
                &action,
            )?;
            Ok(action.key)
        })
        .await
    }

    async fn delete_passkey(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<Option<PasskeyRecord>> {
        self.write(|tx| {
            let index = user_passkey_key(tenant, user, id);
            let Some(credential_id) = get::<String>(tx, TableId::UserPasskeys, &index)? else {
                return Ok(None);
            };
            let k = passkey_key(tenant, &credential_id);
            let passkey = get::<PasskeyRecord>(tx, TableId::Passkeys, &k)?;
            tx.remove(TableId::Passkeys, &k)?;
            tx.remove(TableId::UserPasskeys, &index)?;
            Ok(passkey)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal written by the engine before SQLite (`fixtures/`, made with that engine's
    /// own code): a tenant and its secret index, a user, a user deleted again, a live and an
    /// expired challenge mark.
    const OLD_JOURNAL: &[u8] = include_bytes!("fixtures/journal-engine.journal");

    fn data_dir_with_journal(bytes: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_JOURNAL_FILE), bytes).unwrap();
        dir
    }

    #[tokio::test]
    async fn an_old_journal_is_imported_once_then_renamed_aside() {
        let dir = data_dir_with_journal(OLD_JOURNAL);
        let (store, import) = EmbeddedStore::open_data_dir(dir.path(), Durability::Normal).unwrap();
        let import = import.expect("imported");
        assert!(!dir.path().join(LEGACY_JOURNAL_FILE).exists());
        assert_eq!(
            std::fs::read(&import.renamed_to).unwrap(),
            OLD_JOURNAL,
            "kept"
        );

        let tenant = TenantId::parse("legacy-tenant").unwrap();
        assert_eq!(
            store.get_tenant(&tenant).await.unwrap().map(|t| t.id),
            Some(tenant.clone())
        );
        assert_eq!(
            store
                .find_tenant_by_secret_hash("legacy-secret-hash")
                .await
                .unwrap()
                .map(|t| t.id),
            Some(tenant.clone())
        );
        let alice = UserId::parse("alice").unwrap();
        let profile = store.get_user(&tenant, &alice).await.unwrap().unwrap();
        assert_eq!(profile.email.as_deref(), Some("alice@example.com"));
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(store.get_user(&tenant, &bob).await.unwrap(), None);
        let live = ChallengeId::parse("c1.legacylive.mac").unwrap();
        let dead = ChallengeId::parse("c1.legacydead.mac").unwrap();
        let mark = store
            .get_challenge_mark(&tenant, &live)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mark.failed_attempts, 1);
        // Expiry came along: the purge finds the expired mark through the index.
        assert_eq!(store.purge_expired(Timestamp(2_000)).await.unwrap(), 1);
        assert_eq!(
            store.get_challenge_mark(&tenant, &dead).await.unwrap(),
            None
        );
        drop(store);

        // A second open finds no journal: nothing imported again, the data still there.
        let (store, import) = EmbeddedStore::open_data_dir(dir.path(), Durability::Normal).unwrap();
        assert_eq!(import, None);
        assert!(store.get_user(&tenant, &alice).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_journal_imported_but_not_renamed_is_not_imported_over_newer_data() {
        let dir = data_dir_with_journal(OLD_JOURNAL);
        let (store, import) = EmbeddedStore::open_data_dir(dir.path(), Durability::Normal).unwrap();
        // As if the process died between the import's commit and the rename.
        std::fs::rename(
            import.unwrap().renamed_to,
            dir.path().join(LEGACY_JOURNAL_FILE),
        )
        .unwrap();
        let tenant = TenantId::parse("legacy-tenant").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let newer = UserProfile {
            email: Some("new@example.com".into()),
            ..UserProfile::default()
        };
        store.put_user(&tenant, &alice, &newer).await.unwrap();
        drop(store);
        let (store, import) = EmbeddedStore::open_data_dir(dir.path(), Durability::Normal).unwrap();
        assert!(import.is_some(), "renamed this time");
        assert_eq!(store.get_user(&tenant, &alice).await.unwrap(), Some(newer));
    }

    #[tokio::test]
    async fn a_journal_with_a_torn_tail_imports_what_was_acknowledged() {
        let mut bytes = OLD_JOURNAL.to_vec();
        let torn = legacy_journal::encode_record(&[((TableId::Users, "t"), Some(&b"{}"[..]))]);
        bytes.extend_from_slice(&torn[..torn.len() - 1]);
        let dir = data_dir_with_journal(&bytes);
        let (store, import) = EmbeddedStore::open_data_dir(dir.path(), Durability::Normal).unwrap();
        assert!(import.is_some());
        let tenant = TenantId::parse("legacy-tenant").unwrap();
        assert!(store.get_tenant(&tenant).await.unwrap().is_some());
    }

    #[test]
    fn a_journal_corrupt_in_the_middle_is_refused_and_left_in_place() {
        let mut bytes = OLD_JOURNAL.to_vec();
        bytes[40] ^= 0xff; // inside the first record's body
        let dir = data_dir_with_journal(&bytes);
        let error = EmbeddedStore::open_data_dir(dir.path(), Durability::Normal)
            .err()
            .unwrap();
        assert!(matches!(error, OpenError::Import { .. }), "{error}");
        assert!(
            error.to_string().contains("corrupt in the middle"),
            "{error}"
        );
        assert_eq!(
            std::fs::read(dir.path().join(LEGACY_JOURNAL_FILE)).unwrap(),
            bytes
        );
        // Nothing of it was imported either.
        let store = EmbeddedStore::open(&dir.path().join(DB_FILE)).unwrap();
        assert!(store.engine.read(|tx| tx.is_empty()).unwrap());
    }

    /// Two stores on one file stand for two processes (the server and the CLI): each its own
    /// SQLite connections. Concurrent read-modify-write steps lose no update.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conditional_steps_are_atomic_across_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let first = EmbeddedStore::open(&path).unwrap();
        let second = EmbeddedStore::open(&path).unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let challenge = crate::store::samples::sample_challenge_id();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let (tenant, challenge) = (tenant.clone(), challenge.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .record_failed_attempt(&tenant, &challenge, Timestamp(i64::MAX), 1_000)
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let mark = first
            .get_challenge_mark(&tenant, &challenge)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mark.failed_attempts, 40);
    }

    /// A secret key is accepted only if the tenant the index leads to lists its hash (spec
    /// 2.1): an index entry that outlived its secret, or was written by hand, leads nowhere.
    /// The store comes back with the tenant's record, the use case compares the hashes.
    #[tokio::test]
    async fn an_index_entry_whose_tenant_does_not_list_the_secret_is_refused() {
        use crate::usecase::tenants::ApiSecret;
        let store = Arc::new(EmbeddedStore::in_memory().unwrap());
        let settings = crate::config::Settings::default();
        let app = crate::App::new(
            crate::Ports {
                store: store.clone(),
                clock: Arc::new(crate::clock::SystemClock),
                notifier: Arc::new(crate::webhook::WebhookNotifier::for_settings(&settings)),
            },
            settings,
        );
        let id = TenantId::parse("index-test").unwrap();
        let accepted = "sk_accepted_0123456789abcdef";
        let stray = ApiSecret::parse("sk_stray_0123456789abcdef").unwrap();
        app.ensure_tenant(&id, &ApiSecret::parse(accepted).unwrap())
            .await
            .unwrap();
        store
            .write(|tx| put(tx, TableId::SecretIndex, &stray.hash(), &id))
            .await
            .unwrap();
        assert_eq!(
            store
                .find_tenant_by_secret_hash(&stray.hash())
                .await
                .unwrap()
                .map(|t| t.id),
            Some(id.clone()),
            "the stray entry leads to the tenant"
        );
        assert_eq!(
            app.tenant_by_secret(stray.expose())
                .await
                .map(|t| t.id.clone()),
            Err(Error::Unauthorized)
        );
        assert_eq!(
            app.tenant_by_secret(accepted).await.map(|t| t.id.clone()),
            Ok(id)
        );
    }

    #[tokio::test]
    async fn a_fault_fails_the_write_whole_and_the_store_serves_again_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join(DB_FILE)).unwrap();
        let tenant = crate::store::samples::sample_tenant("fault");
        store.set_read_only_fault(true).unwrap();
        assert_eq!(
            store.put_tenant(&tenant).await,
            Err(Error::StoreUnavailable)
        );
        assert_eq!(store.get_tenant(&tenant.id).await.unwrap(), None);
        assert_eq!(
            store
                .find_tenant_by_secret_hash(&tenant.secret_key_hashes[0])
                .await
                .unwrap(),
            None,
            "not the index without the tenant"
        );
        store.set_read_only_fault(false).unwrap();
        store.put_tenant(&tenant).await.unwrap();
        assert!(store.get_tenant(&tenant.id).await.unwrap().is_some());
    }

    #[test]
    fn prefix_ranges_cover_exactly_the_prefix() {
        let (start, end) = prefix_range(&["t", "u"]);
        let inside = key(&["t", "u", "anything"]);
        let longer_user = key(&["t", "u2", "x"]);
        assert!(start.as_str() <= inside.as_str() && inside.as_str() < end.as_str());
        assert!(!(start.as_str() <= longer_user.as_str() && longer_user.as_str() < end.as_str()));
    }

    #[tokio::test]
    async fn purge_keeps_a_push_slot_until_its_retention_not_its_expiry() {
        use crate::domain::ApprovalKind;
        let store = EmbeddedStore::in_memory().unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let user = UserId::parse("alice").unwrap();
        let push = crate::store::samples::approval(&tenant, Some(&user), ApprovalKind::Push);
        assert!(push.expires_at < push.retain_until);
        assert!(store.put_approval(&push, None).await.unwrap());
        // Past the challenge's expiry the slot stays: it holds the rate limit's start history.
        store.purge_expired(push.expires_at).await.unwrap();
        assert!(
            store
                .get_approval(&tenant, &push.slot())
                .await
                .unwrap()
                .is_some()
        );
        store.purge_expired(push.retain_until).await.unwrap();
        assert!(
            store
                .get_approval(&tenant, &push.slot())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn purge_removes_only_expired_records() {
        let store = EmbeddedStore::in_memory().unwrap();
        let tenant = TenantId::parse("t1").unwrap();
        let live = crate::store::samples::sample_challenge_id();
        let dead = crate::store::samples::sample_challenge_id();
        store
            .record_failed_attempt(&tenant, &live, Timestamp(10_000), 5)
            .await
            .unwrap();
        store
            .record_failed_attempt(&tenant, &dead, Timestamp(5_000), 5)
            .await
            .unwrap();
        assert_eq!(store.purge_expired(Timestamp(6_000)).await.unwrap(), 1);
        assert!(
            store
                .get_challenge_mark(&tenant, &live)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .get_challenge_mark(&tenant, &dead)
                .await
                .unwrap()
                .is_none()
        );
    }
}
