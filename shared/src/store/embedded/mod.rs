//! The embedded store: one journal file on one machine (or memory, for tests), for the local
//! server. The engine ([`engine`]) keeps the tables in memory, runs one write transaction at a
//! time, and makes each transaction durable (group commit) before the write returns: every
//! conditional step below (check, then write) is atomic, and the server can stop at any moment
//! with nothing lost.
//!
//! Keys are the parts of an identifier joined by [`KEY_SEPARATOR`] (a control character no
//! identifier may contain), so a prefix of parts is also a range of keys:
//!
//! | table | key | value |
//! |---|---|---|
//! | `Tenants` | tenant | [`TenantRecord`] JSON |
//! | `SecretIndex` | hex SHA-256 of a secret | tenant id |
//! | `Credentials` | tenant, namespace, key fingerprint | [`Credential`] JSON |
//! | `UserCredentials` | tenant, user, credential id | namespace, fingerprint |
//! | `ChallengeMarks` | tenant, challenge fingerprint | [`ChallengeMark`] JSON |
//! | `Actions` | tenant, user, action code, idempotency key | [`Action`] JSON |
//! | `Users` | tenant, user | [`UserProfile`] JSON |
//! | `RemovalReceipts` | tenant, fingerprint, window | expiry (ms) |
//! | `ActionConfigs` | tenant, action code (or `*`, the tenant default) | [`ActionConfig`] JSON |
//! | `Approvals` | tenant, `push`, user / tenant, `qr`, challenge id | [`ApprovalChallenge`] JSON |
//! | `RateLimits` | tenant, bucket key (scope, subject, window, shard) | [`Counter`] JSON |

pub mod engine;

use super::{
    ActionConfigStore, ActionStore, ActionWrite, ApprovalStore, ChallengeStore, CredentialStore,
    CredentialUpdate, EnrolmentGuard, InsertOutcome, RateBucket, RateLimitStore, RemovalReceipt,
    SingleUse, TenantStore, UserStore, VerificationCommit, VerificationStore,
};
use crate::clock::Timestamp;
use crate::domain::ActionCode;
use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{
    ADD_AUTHENTICATORS_SCOPE, Action, ActionKey, ActionState, ApprovalChallenge, ApprovalSlot,
    ChallengeId, ChallengeMark, Credential, CredentialId, KEY_SEPARATOR, Namespace, TenantId,
    TenantRecord, UserId, UserProfile,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use engine::{Engine, TableId, Tx};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone)]
pub struct EmbeddedStore {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the journal at `path`; refuses if another process has it open.
    pub fn open(path: &Path) -> Result<Self> {
        let engine = Engine::open(path).map_err(unavailable)?;
        Ok(EmbeddedStore {
            engine: Arc::new(engine),
        })
    }

    /// A store that lives in memory only: for unit tests.
    pub fn in_memory() -> Result<Self> {
        Ok(EmbeddedStore {
            engine: Arc::new(Engine::in_memory()),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.engine.read(f, unavailable)
    }

    /// Runs `f` as one transaction: its changes are applied and made durable only if it
    /// succeeds, so nothing is ever half-written.
    async fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.engine.write(f, unavailable).await
    }

    /// How many records the store holds and their size in bytes: what it keeps in memory
    /// (docs/performance.md measures what anonymous requests can make it hold).
    pub fn live_counts(&self) -> (usize, usize) {
        self.engine.live_counts()
    }

    /// Deletes challenge marks, actions, approvals, rate-limit counters and removal receipts
    /// that expired before `now`: what DynamoDB's TTL does in production. Reads never depend on it having run.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let mut dead: Vec<(TableId, String)> = Vec::new();
            for (key, value) in tx.entries(TableId::ChallengeMarks) {
                if decode::<ChallengeMark>(value).is_ok_and(|m| m.expires_at <= now) {
                    dead.push((TableId::ChallengeMarks, key.clone()));
                }
            }
            for (key, value) in tx.entries(TableId::Actions) {
                if decode::<Action>(value).is_ok_and(|a| a.expires_at <= now) {
                    dead.push((TableId::Actions, key.clone()));
                }
            }
            for (key, value) in tx.entries(TableId::Approvals) {
                if decode::<ApprovalChallenge>(value).is_ok_and(|a| a.retain_until <= now) {
                    dead.push((TableId::Approvals, key.clone()));
                }
            }
            for (key, value) in tx.entries(TableId::RateLimits) {
                if decode::<Counter>(value).is_ok_and(|c| c.expires_at <= now) {
                    dead.push((TableId::RateLimits, key.clone()));
                }
            }
            for (key, value) in tx.entries(TableId::RemovalReceipts) {
                if decode::<Timestamp>(value).is_ok_and(|at| at <= now) {
                    dead.push((TableId::RemovalReceipts, key.clone()));
                }
            }
            for (table, key) in &dead {
                tx.remove(*table, key);
            }
            Ok(dead.len() as u64)
        })
        .await
    }
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

fn get<T: DeserializeOwned>(tx: &Tx<'_>, table: TableId, key: &str) -> Result<Option<T>> {
    tx.get(table, key).map(decode).transpose()
}

fn put<T: Serialize>(tx: &mut Tx<'_>, table: TableId, key: &str, value: &T) -> Result<()> {
    tx.put(table, key, encode(value)?);
    Ok(())
}

fn scan<T: DeserializeOwned>(
    tx: &Tx<'_>,
    table: TableId,
    prefix: &[&str],
) -> Result<Vec<(String, T)>> {
    let (start, end) = prefix_range(prefix);
    tx.range(table, &start, &end)
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

/// Uses up an in-app challenge's mark, or moves a push or QR challenge to its approved
/// version, inside a write transaction (see [`SingleUse`]).
fn use_once(tx: &mut Tx<'_>, tenant: &TenantId, single_use: &SingleUse) -> Result<()> {
    match single_use {
        SingleUse::Mark {
            challenge_id,
            expires_at,
        } => {
            let mark_key = mark_key(tenant, challenge_id);
            let mut mark = get::<ChallengeMark>(tx, TableId::ChallengeMarks, &mark_key)?.unwrap_or(
                ChallengeMark {
                    consumed: false,
                    failed_attempts: 0,
                    expires_at: *expires_at,
                },
            );
            if mark.consumed {
                return Err(Error::ChallengeAlreadyUsed);
            }
            mark.consumed = true;
            put(tx, TableId::ChallengeMarks, &mark_key, &mark)
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

fn delete_credential_in(tx: &mut Tx<'_>, credential: &Credential) {
    tx.remove(
        TableId::Credentials,
        &credential_key(
            &credential.tenant_id,
            credential.namespace,
            &credential.key_fingerprint,
        ),
    );
    tx.remove(
        TableId::UserCredentials,
        &user_credential_key(&credential.tenant_id, &credential.user_id, &credential.id),
    );
}

// ---------------------------------------------------------------- rate limits

/// A rate limit's counter (see [`RateLimitStore`]).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counter {
    hits: u32,
    expires_at: Timestamp,
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

    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantId>> {
        self.read(|tx| get(tx, TableId::SecretIndex, secret_hash))
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        self.write(|tx| {
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
                    tx.remove(TableId::SecretIndex, stale);
                }
            }
            for hash in &tenant.secret_key_hashes {
                put(tx, TableId::SecretIndex, hash, &tenant.id)?;
            }
            put(tx, TableId::Tenants, tenant.id.as_str(), tenant)
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
                && !user_credentials_in(tx, tenant, &credential.user_id)?.is_empty()
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
            delete_credential_in(tx, &credential);
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
            ]);
            if tx.get(TableId::RemovalReceipts, &receipt_key).is_some() {
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
            delete_credential_in(tx, credential);
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
    ) -> Result<(Vec<Credential>, Vec<Action>)> {
        self.read(|tx| {
            Ok((
                user_credentials_in(tx, tenant, user)?,
                user_actions_in(tx, tenant, user, since)?,
            ))
        })
    }
}

// ---------------------------------------------------------------- action configs

#[async_trait]
impl ActionConfigStore for EmbeddedStore {
    async fn get_action_configs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
    ) -> Result<(Option<ActionConfig>, Option<ActionConfig>)> {
        self.read(|tx| {
            Ok((
                get(
                    tx,
                    TableId::ActionConfigs,
                    &config_key(tenant, &ConfigKey::Action(code.clone())),
                )?,
                get(
                    tx,
                    TableId::ActionConfigs,
                    &config_key(tenant, &ConfigKey::TenantDefault),
                )?,
            ))
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
            let existed = tx.get(TableId::ActionConfigs, &k).is_some();
            tx.remove(TableId::ActionConfigs, &k);
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
        self.write(|tx| put(tx, TableId::Users, &k, profile)).await
    }

    async fn delete_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        self.write(|tx| {
            let prefix = [tenant.as_str(), user.as_str()];
            tx.remove(TableId::Users, &key(&prefix));
            tx.remove(
                TableId::Approvals,
                &approval_key(tenant, &ApprovalSlot::Push(user.clone())),
            );
            for (index_key, pointer) in
                scan::<CredentialPointer>(tx, TableId::UserCredentials, &prefix)?
            {
                tx.remove(
                    TableId::Credentials,
                    &credential_key(tenant, pointer.namespace, &pointer.fingerprint),
                );
                tx.remove(TableId::UserCredentials, &index_key);
            }
            for (k, _) in scan::<serde_json::Value>(tx, TableId::Actions, &prefix)? {
                tx.remove(TableId::Actions, &k);
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
            use_once(tx, tenant, &commit.single_use)?;

            // The credential: still registered, still the same one.
            let credential_key = credential_key(
                tenant,
                commit.credential.namespace,
                &commit.credential.key_fingerprint,
            );
            let mut credential = get::<Credential>(tx, TableId::Credentials, &credential_key)?
                .filter(|c| c.id == commit.credential.id)
                .ok_or(Error::InvalidCredential)?;

            // The action: completed if still challengeable, or created succeeded.
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
                        .get(TableId::Actions, &action_key(tenant, &action.key))
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
            if update.challenge.expires_at() <= update.now {
                return Err(Error::ChallengeExpired);
            }
            use_once(tx, tenant, &update.challenge)?;
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
        let path = dir.path().join("store.journal");
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
    async fn purge_keeps_a_push_slot_until_its_retention_not_its_expiry() {
        use crate::domain::ApprovalKind;
        let store = EmbeddedStore::in_memory().unwrap();
        let tenant = TenantId::parse("t").unwrap();
        let user = UserId::parse("alice").unwrap();
        let push = crate::store::conformance::approval(&tenant, Some(&user), ApprovalKind::Push);
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
