//! Passkeys (by credential id, and by user) and the WebAuthn ceremonies in progress.

use super::{ActionWrite, EnrolmentGuard};
use crate::clock::Timestamp;
use crate::domain::{
    ActionKey, ActionState, Ceremony, CredentialId, PasskeyRecord, TenantId, UserId,
};
use crate::error::Result;
use async_trait::async_trait;

/// A passkey registration, applied together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyEnrolment {
    /// The registration ceremony, marked consumed now (`ChallengeAlreadyUsed` if it was,
    /// `ChallengeNotFound` if it is gone, `ChallengeExpired` past its expiry).
    pub ceremony_id: String,
    pub passkey: PasskeyRecord,
    /// As for a device credential: the action must still allow enrolment and, for a token
    /// that may add only a first authenticator, the user must have none (of any kind).
    pub guard: EnrolmentGuard,
    /// spec 3.5: `true` if the action is to be completed by this registration (it is `ALLOW`
    /// or `CHALLENGE_REQUIRED`: moved to `CHALLENGE_SUCCEEDED` by `PASSKEY`); `false` if it
    /// was already completed by a challenge (`CHALLENGE_SUCCEEDED` or `REVIEW_SUCCEEDED`: left
    /// as it is). Either way the action records the passkey as the one its token registered;
    /// a second registration with it is `PasskeyTokenAlreadyUsed`. A state that no longer
    /// matches is `ActionNotChallengeable`.
    pub completes_action: bool,
}

impl PasskeyEnrolment {
    /// The action states this enrolment expects (see [`Self::completes_action`]).
    pub fn expected_states(&self) -> [ActionState; 2] {
        if self.completes_action {
            [ActionState::Allow, ActionState::ChallengeRequired]
        } else {
            [
                ActionState::ChallengeSucceeded,
                ActionState::ReviewSucceeded,
            ]
        }
    }
}

/// A passkey sign-in, applied together or not at all (DESIGN 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySignIn {
    pub tenant_id: TenantId,
    /// The authentication ceremony, marked consumed now.
    pub ceremony_id: String,
    /// The passkey with its new counter and `last_verified_at`; written only if the stored
    /// counter is still `previous_counter` (`PasskeyRejected(CounterRegression)` otherwise: a
    /// concurrent sign-in with the same counter value, which only a clone produces).
    pub passkey: PasskeyRecord,
    pub previous_counter: u32,
    pub action: ActionWrite,
    pub now: Timestamp,
}

#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Stores a new ceremony (kept until its `expires_at`).
    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<()>;
    /// A ceremony by id, consumed or not, expired or not (until the store purges it): the
    /// caller checks expiry, so that an expired ceremony is told apart from an unknown one.
    async fn get_ceremony(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Ceremony>>;
    /// A passkey by its WebAuthn credential id (base64url).
    async fn get_passkey(
        &self,
        tenant: &TenantId,
        credential_id: &str,
    ) -> Result<Option<PasskeyRecord>>;
    async fn list_user_passkeys(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<PasskeyRecord>>;
    /// A user's device credentials and passkeys: what track needs to know the user's
    /// methods. One request on DynamoDB (both sit in the user's partition), so track costs
    /// what it did before passkeys.
    async fn list_user_authenticators(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<(Vec<crate::domain::Credential>, Vec<PasskeyRecord>)>;
    /// In one step: the ceremony consumed, the action still allowing enrolment (and the
    /// first-authenticator rule) and registering no passkey yet, the passkey stored under its
    /// credential id if no passkey has it (`CredentialConflict` otherwise), and the action
    /// completed or marked as [`PasskeyEnrolment::completes_action`] says.
    async fn enrol_passkey(&self, enrolment: &PasskeyEnrolment) -> Result<()>;
    /// In one step: the ceremony consumed, the passkey's counter moved from
    /// `previous_counter`, the action completed or created. Errors as
    /// [`VerificationStore::complete_verification`](super::VerificationStore::complete_verification),
    /// plus `PasskeyNotRegistered` if the passkey was removed meanwhile.
    async fn complete_passkey_sign_in(&self, sign_in: &PasskeySignIn) -> Result<ActionKey>;
    /// Deletes a user's passkey by its authenticator id; returns what was deleted.
    async fn delete_passkey(
        &self,
        tenant: &TenantId,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<Option<PasskeyRecord>>;
}
