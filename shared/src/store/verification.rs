//! The one atomic step of a verify or an approval, and of a push-credential update.

use crate::clock::Timestamp;
use crate::domain::{
    Action, ActionKey, ApprovalChallenge, ChallengeId, ChallengeOrder, Credential, TenantId,
    VerificationMethod,
};
use crate::error::Result;
use async_trait::async_trait;

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

/// What makes a verification single-use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per request, never stored in bulk"
)]
pub enum SingleUse {
    /// An in-app challenge (sealed, not stored): it is used only if no challenge of the
    /// credential's user at or after `order` was used (`ChallengeAlreadyUsed` for the same
    /// one, a replay; `ChallengeSuperseded` for a newer one), and `order` becomes the user's
    /// last used. No record per challenge: on DynamoDB this is a condition on the user's
    /// enrolment item, which the commit writes anyway (docs/dynamodb.md, "The verify
    /// transaction"). Failed signatures, counted on the challenge's
    /// [`ChallengeMark`](crate::domain::ChallengeMark), do not stop it (DESIGN 6).
    InOrder {
        order: ChallengeOrder,
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
            SingleUse::InOrder { expires_at, .. } => *expires_at,
            SingleUse::Approval { approved } => approved.expires_at,
        }
    }
}

/// A challenge used once through a record of its own, its mark: created consumed, unless it
/// was consumed (`ChallengeAlreadyUsed`). For the push credential update, whose challenges are
/// few and whose user may hold an in-app challenge at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeMark {
    pub challenge_id: ChallengeId,
    pub expires_at: Timestamp,
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
    /// credential; the credential (still registered under its id) gets `lastVerifiedAt` =
    /// `now`, as the listings and [`CredentialStore::get_credential`] then show it. Returns the
    /// key of the action completed (a DynamoDB transaction returns no items, and reading them
    /// back would cost a request).
    ///
    /// Errors, each from one failed condition: `ChallengeExpired`, `ChallengeAlreadyUsed`,
    /// `ChallengeSuperseded`, `ActionNotFound`, `ActionNotChallengeable`, `InvalidCredential`.
    ///
    /// [`CredentialStore::get_credential`]: crate::store::CredentialStore::get_credential
    async fn complete_verification(&self, commit: &VerificationCommit) -> Result<ActionKey>;

    /// In one transaction: the mark of `update.challenge` is created consumed (see
    /// [`OneTimeMark`]) and the credential (still registered under the same id) is
    /// replaced by `update.credential` (spec 3.4.5, push credential update).
    async fn update_credential_once(&self, update: &CredentialUpdate) -> Result<()>;
}

/// A push credential's new push token or expiry, proven by a signature over a one-time
/// challenge (spec 3.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUpdate {
    pub tenant_id: TenantId,
    pub challenge: OneTimeMark,
    pub credential: Credential,
    pub now: Timestamp,
}
