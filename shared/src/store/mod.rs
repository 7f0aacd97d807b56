//! Storage: small traits for what the use cases need, and the adapters behind them.
//!
//! | trait | holds |
//! |---|---|
//! | [`TenantStore`] | tenants, and the index from a secret key's hash to its tenant |
//! | [`CredentialStore`] | device credentials, by public key and by user; removal receipts |
//! | [`ChallengeStore`] | the single-use marks of challenges (challenges themselves are sealed ids, not stored) |
//! | [`ActionStore`] | tracked actions and their state; a user's credentials and actions in one read |
//! | [`ActionConfigStore`] | per-action rules configs and the tenant default (`*`) |
//! | [`UserStore`] | user attributes; deleting a user deletes what belongs to them |
//! | [`ApprovalStore`] | push and QR-code challenges, each a compare-and-swap on its version |
//! | [`VerificationStore`] | the one atomic step of a verify or an approval; the push-credential update |
//! | [`RateLimitStore`] | fixed-window counters of the rate limits, shared by every instance (DESIGN 6) |
//! | [`SocketStore`] | open QR-code WebSockets behind API Gateway: the handshake's credential per connection (spec 3.8) |
//!
//! Every single-use or state-changing step is one conditional write (or transaction) in the
//! adapter, and a failed condition comes back as the precise [`Error`]
//! (`ChallengeAlreadyUsed`, `ChallengeExpired`, ...), never as a generic failure. Expiry is
//! checked by the code that reads, not left to TTL deletion, which is late (DESIGN 4).
//!
//! Adapters: `embedded::EmbeddedStore` (SQLite on one machine, or in memory for tests; behind
//! the feature `embedded`, which the local server, the CLI and the tests enable and the Lambda
//! functions do not, so they never link SQLite) and [`dynamodb::DynamoStore`] (production).
//! Both run the same conformance suite (`conformance.rs`), the DynamoDB one against a real
//! DynamoDB-compatible server.

pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod sockets;

pub use sockets::SocketStore;

use crate::clock::Timestamp;
use crate::domain::policy::{ActionConfig, ConfigKey};
use crate::domain::{
    Action, ActionCode, ActionKey, ActionState, ApprovalChallenge, ApprovalSlot, ChallengeId,
    ChallengeMark, Credential, CredentialId, Namespace, TenantId, TenantRecord, UserId,
    UserProfile, VerificationMethod,
};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>>;
    /// The tenant whose API secret hashes to `secret_hash` (hex SHA-256).
    async fn find_tenant_by_secret_hash(&self, secret_hash: &str) -> Result<Option<TenantId>>;
    /// Creates or replaces a tenant, keeping the secret index in step with its hashes.
    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<()>;
}

/// The result of adding a credential whose key may already be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per request, never stored in bulk"
)]
pub enum InsertOutcome {
    Inserted,
    /// The key was already registered (to this user or another); nothing was written.
    AlreadyRegistered(Credential),
}

/// What must still hold when a credential is inserted, checked in the same atomic step as the
/// insert: a backend that blocks the action or deletes the user while an add is under way
/// withdraws it, and a token that may add only a first credential adds exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentGuard {
    /// The token's action: it must exist, be retained at `now`, and allow enrolment
    /// ([`ActionState::allows_enrolment`]).
    pub action: ActionKey,
    /// The token may add only the user's first credential: the user must have none.
    pub first_credential_only: bool,
    pub now: Timestamp,
}

/// A record that a removal signature for one time window was used (spec 4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalReceipt {
    pub window: i64,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn get_credential(
        &self,
        tenant: &TenantId,
        namespace: Namespace,
        key_fingerprint: &str,
    ) -> Result<Option<Credential>>;
    async fn list_user_credentials(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<Credential>>;
    /// Inserts `credential` if, in the same atomic step, `guard` still holds and no credential
    /// has this (tenant, namespace, key); otherwise returns the one that does. Concurrent
    /// inserts of one key leave exactly one credential.
    ///
    /// A public key belongs to one user per tenant whatever the namespace (DESIGN 4): if
    /// another user holds it in any namespace, `CredentialConflict`. The guard's failures:
    /// `ActionNotFound` (gone or past retention: the user was deleted), `ActionForbidsEnrolment`
    /// (blocked, under review or failed), `InsufficientScope` (a first credential only, and the
    /// user has one).
    async fn insert_credential(
        &self,
        credential: &Credential,
        guard: &EnrolmentGuard,
    ) -> Result<InsertOutcome>;
    /// Deletes a user's credential by id; returns what was deleted.
    async fn delete_credential(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<Option<Credential>>;
    /// Deletes `credential` and records `receipt`, only if no receipt exists yet for this key
    /// and window: `SignatureAlreadyUsed` otherwise, `InvalidCredential` if it is gone.
    async fn remove_credential_once(
        &self,
        credential: &Credential,
        receipt: &RemovalReceipt,
    ) -> Result<()>;
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Counts a failed signature against a challenge, creating its mark (kept until
    /// `expires_at`), up to `max_attempts`: `true` if counted, `false` once the count is at
    /// the limit, and then nothing more is written. The count throttles further bad
    /// signatures; it never ends the challenge (DESIGN 6): the commit ignores it.
    async fn record_failed_attempt(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
        expires_at: Timestamp,
        max_attempts: u32,
    ) -> Result<bool>;
    /// The challenge's mark, if it was ever used or failed.
    async fn get_challenge_mark(
        &self,
        tenant: &TenantId,
        challenge: &ChallengeId,
    ) -> Result<Option<ChallengeMark>>;
}

#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Creates the action unless one with the same key exists; returns the stored action
    /// either way, so a repeated idempotency key never makes a duplicate.
    async fn create_action(&self, action: &Action) -> Result<Action>;
    async fn get_action(&self, tenant: &TenantId, key: &ActionKey) -> Result<Option<Action>>;
    /// Sets the state of an existing action; `None` if there is no such action.
    async fn set_action_state(
        &self,
        tenant: &TenantId,
        key: &ActionKey,
        state: ActionState,
        now: Timestamp,
    ) -> Result<Option<Action>>;
    /// A user's actions created at or after `since`, newest first.
    async fn list_actions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<Vec<Action>>;
    /// A user's credentials (oldest first) and their actions created at or after `since`
    /// (newest first), in one read: what track needs when a rule reads the user's history.
    async fn list_user_activity(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<(Vec<Credential>, Vec<Action>)>;
}

/// The rules configs of a tenant (spec 7), one per action code plus the tenant default under
/// [`ConfigKey::TenantDefault`]. Configs are validated before they get here.
#[async_trait]
pub trait ActionConfigStore: Send + Sync {
    /// The config of `code` and the tenant default, in one read: track needs both.
    async fn get_action_configs(
        &self,
        tenant: &TenantId,
        code: &ActionCode,
    ) -> Result<(Option<ActionConfig>, Option<ActionConfig>)>;
    async fn get_action_config(
        &self,
        tenant: &TenantId,
        key: &ConfigKey,
    ) -> Result<Option<ActionConfig>>;
    /// Creates or replaces the config under its `actionCode`.
    async fn put_action_config(&self, tenant: &TenantId, config: &ActionConfig) -> Result<()>;
    /// Every config of the tenant, ordered by key (`*` first).
    async fn list_action_configs(&self, tenant: &TenantId) -> Result<Vec<ActionConfig>>;
    /// Deletes a config; `false` if there was none.
    async fn delete_action_config(&self, tenant: &TenantId, key: &ConfigKey) -> Result<bool>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn get_user(&self, tenant: &TenantId, user: &UserId) -> Result<Option<UserProfile>>;
    async fn put_user(&self, tenant: &TenantId, user: &UserId, profile: &UserProfile)
    -> Result<()>;
    /// Deletes the user's attributes, credentials and actions.
    async fn delete_user(&self, tenant: &TenantId, user: &UserId) -> Result<()>;
}

/// Which action a verification completes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per request, never stored in bulk"
)]
pub enum ActionWrite {
    /// An existing action moves to `CHALLENGE_SUCCEEDED` if it is still in a challengeable
    /// state (`ActionNotChallengeable` otherwise, `ActionNotFound` if gone).
    Complete(ActionKey),
    /// A new action is created already succeeded (in-app verify without a track, spec 3.4.4).
    Create(Action),
}

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// The push or QR-code challenge in `slot`, whatever its state and expiry: callers check
    /// both (DynamoDB TTL deletes late).
    async fn get_approval(
        &self,
        tenant: &TenantId,
        slot: &ApprovalSlot,
    ) -> Result<Option<ApprovalChallenge>>;
    /// Writes `next` into its slot only if the slot still holds version `expected_version`
    /// (`None`: the slot must be empty). `Ok(false)` if another writer got there first. Kept
    /// until `next.expires_at` (TTL).
    async fn put_approval(
        &self,
        next: &ApprovalChallenge,
        expected_version: Option<u64>,
    ) -> Result<bool>;
}

/// What makes a verification single-use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per request, never stored in bulk"
)]
pub enum SingleUse {
    /// An in-app challenge (sealed, not stored): its mark is created consumed, unless it
    /// was consumed (`ChallengeAlreadyUsed`). Failed signatures counted on the mark do not
    /// stop it (DESIGN 6: they are throttled, they never end a live challenge).
    Mark {
        challenge_id: ChallengeId,
        expires_at: Timestamp,
    },
    /// A push or QR-code challenge: `approved` (its next version, in state `APPROVED`)
    /// replaces the stored one only if that is still at `approved.version - 1`
    /// (`ChallengeAlreadyUsed` otherwise).
    Approval { approved: ApprovalChallenge },
}

impl SingleUse {
    pub fn expires_at(&self) -> Timestamp {
        match self {
            SingleUse::Mark { expires_at, .. } => *expires_at,
            SingleUse::Approval { approved } => approved.expires_at,
        }
    }
}

/// Everything a successful verify or approval changes, applied together or not at all
/// (DESIGN 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationCommit {
    pub tenant_id: TenantId,
    pub single_use: SingleUse,
    pub credential: Credential,
    pub method: VerificationMethod,
    pub action: ActionWrite,
    pub now: Timestamp,
}

#[async_trait]
pub trait VerificationStore: Send + Sync {
    /// In one transaction: the challenge (unexpired at `now`) is used up as its
    /// [`SingleUse`] says; the action becomes `CHALLENGE_SUCCEEDED` with the method and
    /// credential; the credential's `lastVerifiedAt` becomes `now`. Returns the key of the action completed
    /// (a DynamoDB transaction returns no items, and reading them back would cost a request).
    ///
    /// Errors, each from one failed condition: `ChallengeExpired`, `ChallengeAlreadyUsed`,
    /// `ActionNotFound`, `ActionNotChallengeable`, `InvalidCredential`.
    async fn complete_verification(&self, commit: &VerificationCommit) -> Result<ActionKey>;

    /// In one transaction: the in-app challenge mark of `update.challenge` is created consumed
    /// (as in [`SingleUse::Mark`]) and the credential (still registered under the same id) is
    /// replaced by `update.credential` (spec 3.4.5, push credential update).
    async fn update_credential_once(&self, update: &CredentialUpdate) -> Result<()>;
}

/// A push credential's new push token or expiry, proven by a signature over a one-time
/// challenge (spec 3.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUpdate {
    pub tenant_id: TenantId,
    /// Must be [`SingleUse::Mark`].
    pub challenge: SingleUse,
    pub credential: Credential,
    pub now: Timestamp,
}

/// One fixed-window counter of a rate limit (DESIGN 6, docs/api.md "Rate limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBucket {
    /// Scope, subject, window index and shard, e.g. `anon-qr#src#203.0.113.7#29445123`: a
    /// new window is a new key, so a counter never needs resetting.
    pub key: String,
    pub limit: u32,
    /// The end of the window: the counter is kept until then (TTL) and counts as empty from
    /// then on, whether or not it was deleted yet.
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one hit on `bucket` if it holds fewer than `bucket.limit` hits or has expired
    /// at `now` (then it starts again from one, whether or not TTL deleted it yet): `true`. `false` when it is full, and then nothing is written, so refused
    /// requests cost no storage. One conditional write: concurrent hits from any number of
    /// instances never count past the limit.
    async fn hit(&self, tenant: &TenantId, bucket: &RateBucket, now: Timestamp) -> Result<bool>;
}

/// Everything the use cases need from storage.
pub trait Store:
    TenantStore
    + CredentialStore
    + ChallengeStore
    + ActionStore
    + ActionConfigStore
    + UserStore
    + ApprovalStore
    + VerificationStore
    + RateLimitStore
    + SocketStore
{
}

impl<T> Store for T where
    T: TenantStore
        + CredentialStore
        + ChallengeStore
        + ActionStore
        + ActionConfigStore
        + UserStore
        + ApprovalStore
        + VerificationStore
        + RateLimitStore
        + SocketStore
{
}

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod sockets_conformance;
