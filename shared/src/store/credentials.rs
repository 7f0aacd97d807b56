//! Device credentials, by public key and by user; removal receipts.

use crate::clock::Timestamp;
use crate::domain::{ActionKey, Credential, CredentialId, Namespace, TenantId, UserId};
use crate::error::Result;
use async_trait::async_trait;

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
    /// ([`ActionState::allows_enrolment`](crate::domain::ActionState::allows_enrolment)).
    pub action: ActionKey,
    /// The token may add only the user's first credential: the user must have none.
    pub first_credential_only: bool,
    pub now: Timestamp,
}

/// A record that a removal signature for one time window was used (spec 4.4): the signature
/// by its [`replay_id`](crate::signature::replay_id), so neither it nor its malleated twin can
/// remove the key again, in any namespace, while a fresh signature by the device can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalReceipt {
    pub window: i64,
    pub signature_id: String,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The credential registered for this key in this namespace, with the time of its latest
    /// verification.
    async fn get_credential(
        &self,
        tenant: &TenantId,
        namespace: Namespace,
        key_fingerprint: &str,
    ) -> Result<Option<Credential>>;
    /// The same credential, as a signature check needs it: its `last_verified_at` may be older
    /// than its latest verification (on DynamoDB that time is kept on the user's enrolment
    /// item, which this read skips to stay one request: docs/dynamodb.md, "The verify
    /// transaction"). For the verify and approval paths, which set that time themselves.
    /// By default the same read as [`Self::get_credential`], for a store that keeps the time
    /// on the credential itself (the embedded store).
    async fn get_credential_for_signature(
        &self,
        tenant: &TenantId,
        namespace: Namespace,
        key_fingerprint: &str,
    ) -> Result<Option<Credential>> {
        self.get_credential(tenant, namespace, key_fingerprint)
            .await
    }
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
    /// Deletes `credential` and records `receipt`, only if no receipt exists yet for this key,
    /// window and signature: `SignatureAlreadyUsed` otherwise, `InvalidCredential` if it is
    /// gone.
    async fn remove_credential_once(
        &self,
        credential: &Credential,
        receipt: &RemovalReceipt,
    ) -> Result<()>;
}
