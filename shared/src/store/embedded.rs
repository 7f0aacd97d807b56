//! The embedded store: one `redb` file on one machine (or memory, for tests).
//!
//! redb runs one write transaction at a time, so every conditional step below (check, then
//! write) is atomic without extra locking. Writes are durable when `commit` returns, which is
//! what lets the local server stop at any moment with nothing lost. Calls run on Tokio's
//! blocking pool because a commit waits for the disk.
//!
//! Keys are the parts of an identifier joined by [`KEY_SEPARATOR`] (a control character no
//! identifier may contain), so a prefix of parts is also a range of keys:
//!
//! | table | key | value |
//! |---|---|---|
//! | `tenants` | tenant | [`TenantRecord`] JSON |
//! | `secret_index` | hex SHA-256 of a secret | tenant id |
//! | `credentials` | tenant, namespace, key fingerprint | [`Credential`] JSON |
//! | `user_credentials` | tenant, user, credential id | namespace, fingerprint |
//! | `challenge_marks` | tenant, challenge fingerprint | [`ChallengeMark`] JSON |
//! | `actions` | tenant, user, action code, idempotency key | [`Action`] JSON |
//! | `users` | tenant, user | [`UserProfile`] JSON |
//! | `removal_receipts` | tenant, fingerprint, window | expiry (ms) |

use super::{
    ActionStore, ActionWrite, ChallengeStore, CredentialStore, InsertOutcome, RemovalReceipt,
    TenantStore, UserStore, VerificationCommit, VerificationStore,
};
use crate::clock::Timestamp;
use crate::domain::{
    Action, ActionKey, ActionState, ChallengeId, ChallengeMark, Credential, CredentialId,
    KEY_SEPARATOR, Namespace, TenantId, TenantRecord, UserId, UserProfile,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

const TENANTS: Table = TableDefinition::new("tenants");
const SECRET_INDEX: Table = TableDefinition::new("secret_index");
const CREDENTIALS: Table = TableDefinition::new("credentials");
const USER_CREDENTIALS: Table = TableDefinition::new("user_credentials");
const CHALLENGE_MARKS: Table = TableDefinition::new("challenge_marks");
const ACTIONS: Table = TableDefinition::new("actions");
const USERS: Table = TableDefinition::new("users");
const REMOVAL_RECEIPTS: Table = TableDefinition::new("removal_receipts");

const ALL_TABLES: [Table; 8] = [
    TENANTS,
    SECRET_INDEX,
    CREDENTIALS,
    USER_CREDENTIALS,
    CHALLENGE_MARKS,
    ACTIONS,
    USERS,
    REMOVAL_RECEIPTS,
];

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(unavailable)?;
        Self::with_database(db)
    }

    /// A store that lives in memory only: for unit tests.
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(unavailable)?;
        Self::with_database(db)
    }

    fn with_database(db: Database) -> Result<Self> {
        let txn = db.begin_write().map_err(unavailable)?;
        for table in ALL_TABLES {
            txn.open_table(table).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(unavailable)?;
            f(&txn)
        })
        .await
        .map_err(|_| Error::Internal)?
    }

    /// Runs `f` in a write transaction and commits only if it succeeds; an `Err` aborts, so
    /// nothing is ever half-written.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(unavailable)?;
            let value = f(&txn)?;
            txn.commit().map_err(unavailable)?;
            Ok(value)
        })
        .await
        .map_err(|_| Error::Internal)?
    }

    /// Deletes challenge marks, actions and removal receipts that expired before `now`: what
    /// DynamoDB's TTL does in production. Reads never depend on it having run.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |txn| {
            let mut purged = 0u64;
            purged += retain_live::<ChallengeMark>(txn, CHALLENGE_MARKS, now, |m| m.expires_at)?;
            purged += retain_live::<Action>(txn, ACTIONS, now, |a| a.expires_at)?;
            let mut receipts = txn.open_table(REMOVAL_RECEIPTS).map_err(unavailable)?;
            let before = receipts.len().map_err(unavailable)?;
            receipts
                .retain(|_, v| decode::<Timestamp>(v).is_ok_and(|at| at > now))
                .map_err(unavailable)?;
            purged += before - receipts.len().map_err(unavailable)?;
            Ok(purged)
        })
        .await
    }
}

fn retain_live<T: DeserializeOwned>(
    txn: &WriteTransaction,
    table: Table,
    now: Timestamp,
    expires_at: fn(&T) -> Timestamp,
) -> Result<u64> {
    let mut table = txn.open_table(table).map_err(unavailable)?;
    let before = table.len().map_err(unavailable)?;
    table
        .retain(|_, v| decode::<T>(v).is_ok_and(|record| expires_at(&record) > now))
        .map_err(unavailable)?;
    Ok(before - table.len().map_err(unavailable)?)
}

// ---------------------------------------------------------------- helpers

fn unavailable(error: impl std::fmt::Display) -> Error {
    tracing::error!(error = %error, "embedded store failure");
    Error::StoreUnavailable
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

fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key).map_err(unavailable)? {
        Some(guard) => decode(guard.value()).map(Some),
        None => Ok(None),
    }
}

fn put<T: Serialize>(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<()> {
    table
        .insert(key, encode(value)?.as_slice())
        .map_err(unavailable)?;
    Ok(())
}

fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &[&str],
) -> Result<Vec<(String, T)>> {
    let (start, end) = prefix_range(prefix);
    let mut out = Vec::new();
    for entry in table
        .range(start.as_str()..end.as_str())
        .map_err(unavailable)?
    {
        let (k, v) = entry.map_err(unavailable)?;
        out.push((k.value().to_owned(), decode(v.value())?));
    }
    Ok(out)
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

/// The pointer stored in `user_credentials`: where the credential itself lives.
#[derive(serde::Serialize, serde::Deserialize)]
struct CredentialPointer {
    namespace: Namespace,
    fingerprint: String,
}

fn delete_credential_in(txn: &WriteTransaction, credential: &Credential) -> Result<()> {
    let mut credentials = txn.open_table(CREDENTIALS).map_err(unavailable)?;
    let mut index = txn.open_table(USER_CREDENTIALS).map_err(unavailable)?;
    credentials
        .remove(
            credential_key(
                &credential.tenant_id,
                credential.namespace,
                &credential.key_fingerprint,
            )
            .as_str(),
        )
        .map_err(unavailable)?;
    index
        .remove(
            user_credential_key(&credential.tenant_id, &credential.user_id, &credential.id)
                .as_str(),
        )
        .map_err(unavailable)?;
    Ok(())
}

// ---------------------------------------------------------------- tenants

#[async_trait]
impl TenantStore for EmbeddedStore {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        let id = id.clone();
        self.read(move |txn| get(&txn.open_table(TENANTS).map_err(unavailable)?, id.as_str()))
            .await
    }

    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantId>> {
        let hash = secret_hash.to_owned();
        self.read(move |txn| get(&txn.open_table(SECRET_INDEX).map_err(unavailable)?, &hash))
            .await
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let tenant = tenant.clone();
        self.write(move |txn| {
            let mut tenants = txn.open_table(TENANTS).map_err(unavailable)?;
            let mut index = txn.open_table(SECRET_INDEX).map_err(unavailable)?;
            for hash in &tenant.secret_key_hashes {
                if let Some(owner) = get::<TenantId>(&index, hash)?
                    && owner != tenant.id
                {
                    return Err(Error::invalid_request(
                        "This secret key is already used by another tenant.",
                    ));
                }
            }
            if let Some(old) = get::<TenantRecord>(&tenants, tenant.id.as_str())? {
                for stale in old
                    .secret_key_hashes
                    .iter()
                    .filter(|h| !tenant.secret_key_hashes.contains(h))
                {
                    index.remove(stale.as_str()).map_err(unavailable)?;
                }
            }
            for hash in &tenant.secret_key_hashes {
                put(&mut index, hash, &tenant.id)?;
            }
            put(&mut tenants, tenant.id.as_str(), &tenant)
        })
        .await
    }
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
        let k = credential_key(tenant, namespace, key_fingerprint);
        self.read(move |txn| get(&txn.open_table(CREDENTIALS).map_err(unavailable)?, &k))
            .await
    }

    async fn list_user_credentials(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<Credential>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |txn| {
            let index = txn.open_table(USER_CREDENTIALS).map_err(unavailable)?;
            let credentials = txn.open_table(CREDENTIALS).map_err(unavailable)?;
            let mut out = Vec::new();
            for (_, pointer) in
                scan::<CredentialPointer>(&index, &[tenant.as_str(), user.as_str()])?
            {
                let k = credential_key(&tenant, pointer.namespace, &pointer.fingerprint);
                if let Some(credential) = get::<Credential>(&credentials, &k)? {
                    out.push(credential);
                }
            }
            out.sort_by_key(|c| c.created_at);
            Ok(out)
        })
        .await
    }

    async fn insert_credential(&self, credential: &Credential) -> Result<InsertOutcome> {
        let credential = credential.clone();
        self.write(move |txn| {
            let mut credentials = txn.open_table(CREDENTIALS).map_err(unavailable)?;
            let k = credential_key(
                &credential.tenant_id,
                credential.namespace,
                &credential.key_fingerprint,
            );
            if let Some(existing) = get::<Credential>(&credentials, &k)? {
                return Ok(InsertOutcome::AlreadyRegistered(existing));
            }
            put(&mut credentials, &k, &credential)?;
            let mut index = txn.open_table(USER_CREDENTIALS).map_err(unavailable)?;
            put(
                &mut index,
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
        let (tenant, user, id) = (tenant.clone(), user.clone(), id.clone());
        self.write(move |txn| {
            let pointer = {
                let index = txn.open_table(USER_CREDENTIALS).map_err(unavailable)?;
                get::<CredentialPointer>(&index, &user_credential_key(&tenant, &user, &id))?
            };
            let Some(pointer) = pointer else {
                return Ok(None);
            };
            let credential = {
                let credentials = txn.open_table(CREDENTIALS).map_err(unavailable)?;
                get::<Credential>(
                    &credentials,
                    &credential_key(&tenant, pointer.namespace, &pointer.fingerprint),
                )?
            };
            let Some(credential) = credential else {
                return Ok(None);
            };
            delete_credential_in(txn, &credential)?;
            Ok(Some(credential))
        })
        .await
    }

    async fn remove_credential_once(
        &self,
        credential: &Credential,
        receipt: &RemovalReceipt,
    ) -> Result<()> {
        let (credential, receipt) = (credential.clone(), receipt.clone());
        self.write(move |txn| {
            let mut receipts = txn.open_table(REMOVAL_RECEIPTS).map_err(unavailable)?;
            // Not per namespace: the signed window message names none, so a signature must not
            // be replayable against the same key in another namespace (spec 3.2, 4.4).
            let receipt_key = key(&[
                credential.tenant_id.as_str(),
                &credential.key_fingerprint,
                &receipt.window.to_string(),
            ]);
            if receipts
                .get(receipt_key.as_str())
                .map_err(unavailable)?
                .is_some()
            {
                return Err(Error::SignatureAlreadyUsed);
            }
            let stored = {
                let credentials = txn.open_table(CREDENTIALS).map_err(unavailable)?;
                get::<Credential>(
                    &credentials,
                    &credential_key(
                        &credential.tenant_id,
                        credential.namespace,
                        &credential.key_fingerprint,
                    ),
                )?
            };
            if stored.as_ref().map(|c| &c.id) != Some(&credential.id) {
                return Err(Error::InvalidCredential);
            }
            delete_credential_in(txn, &credential)?;
            put(&mut receipts, &receipt_key, &receipt.expires_at)
        })
        .await
    }
}

// ---------------------------------------------------------------- challenges

fn mark_key(tenant: &TenantId, challenge: &ChallengeId) -> String {
    key(&[tenant.as_str(), &challenge.fingerprint()])
}

#[async_trait]
impl ChallengeStore for EmbeddedStore {
    async fn record_failed_attempt(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
        expires_at: Timestamp,
        max_attempts: u32,
    ) -> Result<()> {
        let k = mark_key(tenant, challenge);
        self.write(move |txn| {
            let mut table = txn.open_table(CHALLENGE_MARKS).map_err(unavailable)?;
            let mut mark = get::<ChallengeMark>(&table, &k)?.unwrap_or(ChallengeMark {
                consumed: false,
                failed_attempts: 0,
                expires_at,
            });
            if mark.failed_attempts >= max_attempts {
                return Ok(());
            }
            mark.failed_attempts += 1;
            put(&mut table, &k, &mark)
        })
        .await
    }

    async fn get_challenge_mark(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
    ) -> Result<Option<ChallengeMark>> {
        let k = mark_key(tenant, challenge);
        self.read(move |txn| get(&txn.open_table(CHALLENGE_MARKS).map_err(unavailable)?, &k))
            .await
    }
}

// ---------------------------------------------------------------- actions

#[async_trait]
impl ActionStore for EmbeddedStore {
    async fn create_action(&self, action: &Action) -> Result<Action> {
        let action = action.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(ACTIONS).map_err(unavailable)?;
            let k = action_key(&action.tenant_id, &action.key);
            if let Some(existing) = get::<Action>(&table, &k)? {
                return Ok(existing);
            }
            put(&mut table, &k, &action)?;
            Ok(action)
        })
        .await
    }

    async fn get_action(&self, tenant: &TenantId, key: &ActionKey) -> Result<Option<Action>> {
        let k = action_key(tenant, key);
        self.read(move |txn| get(&txn.open_table(ACTIONS).map_err(unavailable)?, &k))
            .await
    }

    async fn set_action_state(
        &self,
        tenant: &TenantId,
        key: &ActionKey,
        state: ActionState,
        now: Timestamp,
    ) -> Result<Option<Action>> {
        let k = action_key(tenant, key);
        self.write(move |txn| {
            let mut table = txn.open_table(ACTIONS).map_err(unavailable)?;
            let Some(mut action) = get::<Action>(&table, &k)? else {
                return Ok(None);
            };
            action.state = state;
            action.state_updated_at = now;
            put(&mut table, &k, &action)?;
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
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |txn| {
            let table = txn.open_table(ACTIONS).map_err(unavailable)?;
            let mut actions: Vec<Action> =
                scan::<Action>(&table, &[tenant.as_str(), user.as_str()])?
                    .into_iter()
                    .map(|(_, action)| action)
                    .filter(|action| action.created_at >= since)
                    .collect();
            actions.sort_by_key(|action| std::cmp::Reverse(action.created_at));
            Ok(actions)
        })
        .await
    }
}

// ---------------------------------------------------------------- users

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn get_user(&self, tenant: &TenantId, user: &UserId) -> Result<Option<UserProfile>> {
        let k = key(&[tenant.as_str(), user.as_str()]);
        self.read(move |txn| get(&txn.open_table(USERS).map_err(unavailable)?, &k))
            .await
    }

    async fn put_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        profile: &UserProfile,
    ) -> Result<()> {
        let (k, profile) = (key(&[tenant.as_str(), user.as_str()]), profile.clone());
        self.write(move |txn| {
            put(
                &mut txn.open_table(USERS).map_err(unavailable)?,
                &k,
                &profile,
            )
        })
        .await
    }

    async fn delete_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.write(move |txn| {
            let prefix = [tenant.as_str(), user.as_str()];
            txn.open_table(USERS)
                .map_err(unavailable)?
                .remove(key(&prefix).as_str())
                .map_err(unavailable)?;

            let pointers = scan::<CredentialPointer>(
                &txn.open_table(USER_CREDENTIALS).map_err(unavailable)?,
                &prefix,
            )?;
            let mut credentials = txn.open_table(CREDENTIALS).map_err(unavailable)?;
            let mut index = txn.open_table(USER_CREDENTIALS).map_err(unavailable)?;
            for (index_key, pointer) in pointers {
                credentials
                    .remove(
                        credential_key(&tenant, pointer.namespace, &pointer.fingerprint).as_str(),
                    )
                    .map_err(unavailable)?;
                index.remove(index_key.as_str()).map_err(unavailable)?;
            }

            let mut actions = txn.open_table(ACTIONS).map_err(unavailable)?;
            let action_keys: Vec<String> = scan::<serde_json::Value>(&actions, &prefix)?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            for k in action_keys {
                actions.remove(k.as_str()).map_err(unavailable)?;
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
        let commit = commit.clone();
        self.write(move |txn| {
            let tenant = &commit.tenant_id;
            let now = commit.now;

            // The challenge: unexpired, never consumed, not ended by failures.
            if commit.challenge_expires_at <= now {
                return Err(Error::ChallengeExpired);
            }
            let mut marks = txn.open_table(CHALLENGE_MARKS).map_err(unavailable)?;
            let mark_key = mark_key(tenant, &commit.challenge_id);
            let mut mark = get::<ChallengeMark>(&marks, &mark_key)?.unwrap_or(ChallengeMark {
                consumed: false,
                failed_attempts: 0,
                expires_at: commit.challenge_expires_at,
            });
            if mark.consumed || mark.failed_attempts >= commit.max_failed_attempts {
                return Err(Error::ChallengeAlreadyUsed);
            }

            // The credential: still registered, still the same one.
            let mut credentials = txn.open_table(CREDENTIALS).map_err(unavailable)?;
            let credential_key = credential_key(
                tenant,
                commit.credential.namespace,
                &commit.credential.key_fingerprint,
            );
            let mut credential = get::<Credential>(&credentials, &credential_key)?
                .filter(|c| c.id == commit.credential.id)
                .ok_or(Error::InvalidCredential)?;

            // The action: completed if still challengeable, or created succeeded.
            let mut actions = txn.open_table(ACTIONS).map_err(unavailable)?;
            let mut action = match &commit.action {
                ActionWrite::Complete(action_key_ref) => {
                    let action = get::<Action>(&actions, &action_key(tenant, action_key_ref))?
                        .filter(|a| a.expires_at > now)
                        .ok_or(Error::ActionNotFound)?;
                    if !action.state.is_challengeable() {
                        return Err(Error::ActionNotChallengeable(action.state.as_str()));
                    }
                    action
                }
                ActionWrite::Create(action) => {
                    if actions
                        .get(action_key(tenant, &action.key).as_str())
                        .map_err(unavailable)?
                        .is_some()
                    {
                        return Err(Error::Internal);
                    }
                    action.clone()
                }
            };
            action.state = ActionState::ChallengeSucceeded;
            action.state_updated_at = now;
            action.verification_method = Some(commit.method);
            action.verified_by_authenticator_id = Some(credential.id.clone());

            mark.consumed = true;
            credential.last_verified_at = Some(now);

            put(&mut marks, &mark_key, &mark)?;
            put(&mut credentials, &credential_key, &credential)?;
            put(&mut actions, &action_key(tenant, &action.key), &action)?;
            Ok(action.key)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_in_memory() {
        crate::store::conformance::run_all(Arc::new(EmbeddedStore::in_memory().unwrap())).await;
    }

    #[tokio::test]
    async fn conformance_on_disk_and_data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = EmbeddedStore::open(&path).unwrap();
        crate::store::conformance::run_all(Arc::new(store.clone())).await;
        let tenant = crate::store::conformance::sample_tenant("reopen");
        store.put_tenant(&tenant).await.unwrap();
        drop(store);
        let reopened = EmbeddedStore::open(&path).unwrap();
        assert_eq!(reopened.get_tenant(&tenant.id).await.unwrap(), Some(tenant));
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
    async fn purge_removes_only_expired_records() {
        let store = EmbeddedStore::in_memory().unwrap();
        let tenant = TenantId::parse("t1").unwrap();
        let live = crate::store::conformance::sample_challenge_id();
        let dead = crate::store::conformance::sample_challenge_id();
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
