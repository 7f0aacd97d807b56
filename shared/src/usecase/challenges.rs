//! One-time challenges and the in-app verify (spec 3.4.4, 6.2; DESIGN 6).

use super::limits::{Source, signature_checked};
use super::tenants::Tenant;
use super::track::DecisionSubject;
use crate::App;
use crate::domain::policy::Provenance;
use crate::domain::{
    Action, ActionCode, ActionKey, ActionOrigin, ActionState, Challenge, ChallengeId,
    ChallengeOrder, ChallengeTarget, Credential, IdempotencyKey, Namespace, Outcome, TrackContext,
};
use crate::encoding;
use crate::error::{Error, Result, Throttled};
use crate::metric::{self, FlowMethod};
use crate::signature::PublicKey;
use crate::store::{ActionWrite, SingleUse, VerificationCommit};
use crate::token::{TokenRequest, VerifiedToken};

/// The action code given to an in-app verify that names no action and has no token (the
/// SDK's `verify()` without arguments). The backend can validate it with this `action`.
pub const DEFAULT_VERIFY_ACTION_CODE: &str = "inAppVerification";

/// The next number of the challenges this process seals: it orders those issued in the same
/// millisecond (a fast local client, or a test's frozen clock), which the time alone cannot
/// ([`ChallengeOrder`]). Process-wide, so the servers of one test process agree.
pub(crate) fn next_issue_sequence() -> u64 {
    static ISSUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    ISSUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// How the caller of `POST /client/challenge` authenticated (spec 3.1).
#[derive(Debug, Clone)]
pub enum ChallengeStarter {
    /// A track token: the challenge completes that action, and carries an attestation nonce.
    Token(VerifiedToken),
    /// Tenant Basic: anonymous; the action, if any, comes from the body.
    Tenant,
}

/// A verify request, parsed (spec 3.3 #5).
#[derive(Debug, Clone)]
pub struct VerifyCommand {
    pub namespace: Namespace,
    pub challenge_id: ChallengeId,
    pub public_key: PublicKey,
    pub signature: String,
    /// Where the request came from: bad signatures are rate-limited per address (DESIGN 6).
    pub source: Source,
}

/// A successful verify: the token for `/validate`, the credential and the action completed.
#[derive(Debug, Clone)]
pub struct VerifyResult {
    pub token: String,
    pub credential: Credential,
    pub action: ActionKey,
}

impl App {
    /// Starts a challenge: an id sealed with the tenant's key that names what it may complete
    /// and until when, with 128 random bits in it, valid for `challenge_lifetime_seconds`,
    /// usable once. Nothing is written: an abandoned challenge costs no storage, and the
    /// in-app flow saves a request (docs/dynamodb.md).
    pub async fn start_challenge(
        &self,
        tenant: &Tenant,
        starter: ChallengeStarter,
        action: Option<ActionCode>,
    ) -> Result<Challenge> {
        let challenge = self
            .start_challenge_unrecorded(tenant, starter, action)
            .await?;
        metric::flow_started(FlowMethod::DeviceKey);
        Ok(challenge)
    }

    /// The use case above without its metrics.
    async fn start_challenge_unrecorded(
        &self,
        tenant: &Tenant,
        starter: ChallengeStarter,
        action: Option<ActionCode>,
    ) -> Result<Challenge> {
        let (target, nonce) = match starter {
            ChallengeStarter::Token(token) => {
                if action
                    .as_ref()
                    .is_some_and(|code| *code != token.action.action_code)
                {
                    return Err(Error::invalid_request(
                        "The action does not match the action of the token.",
                    ));
                }
                // Play Integrity wants a URL-safe base64 nonce of 16 to 500 characters.
                let nonce = encoding::encode_url_safe(&self.random_bytes::<32>()?);
                (ChallengeTarget::TrackedAction(token.action), Some(nonce))
            }
            ChallengeStarter::Tenant => match action {
                Some(code) => (ChallengeTarget::NewAction(code), None),
                None => (ChallengeTarget::Unbound, None),
            },
        };
        let now = self.now();
        let expires_at = now.plus_seconds(self.settings.challenge_lifetime_seconds);
        tenant.keys.seal_challenge(
            &target,
            nonce,
            now,
            next_issue_sequence(),
            expires_at,
            self.random_bytes()?,
        )
    }

    /// Verifies a device signature over a challenge id and completes the action it stands
    /// for. Using the challenge up, moving the action to `CHALLENGE_SUCCEEDED` and setting
    /// the credential's `lastVerifiedAt` happen in one store transaction (DESIGN 4). A user's
    /// challenges are used in the order they were issued ([`ChallengeOrder`]): a replay is
    /// `ChallengeAlreadyUsed`, an older challenge after a newer one `ChallengeSuperseded`.
    pub async fn verify_challenge(
        &self,
        tenant: &Tenant,
        bearer: Option<&VerifiedToken>,
        command: VerifyCommand,
    ) -> Result<VerifyResult> {
        let result = self
            .verify_challenge_unrecorded(tenant, bearer, command)
            .await;
        metric::verification_outcome(FlowMethod::DeviceKey, &result);
        result
    }

    /// The use case above without its metrics.
    async fn verify_challenge_unrecorded(
        &self,
        tenant: &Tenant,
        bearer: Option<&VerifiedToken>,
        command: VerifyCommand,
    ) -> Result<VerifyResult> {
        let now = self.now();
        let challenge = tenant.keys.open_challenge(&command.challenge_id)?;
        // Checked here for a prompt answer, and again inside the commit.
        if challenge.expires_at <= now {
            return Err(Error::ChallengeExpired);
        }

        let credential = self
            .store
            .get_credential_for_signature(
                &tenant.id,
                command.namespace,
                &command.public_key.fingerprint(),
            )
            .await?
            .ok_or(Error::InvalidCredential)?;

        // A challenge issued before this credential was registered is not for it: a signature
        // made under an earlier registration of the same key (a removed credential, a deleted
        // user, a key moved to another user) must not verify again, whatever the new
        // registration's last used challenge is (docs/dynamodb.md, "The verify transaction").
        // Challenges sealed before the issue time was (issued at 0) are refused the same way.
        if challenge.issued_at < credential.created_at {
            return Err(Error::ChallengeSuperseded);
        }

        self.check_challenge_signature(
            tenant,
            &challenge,
            &command.public_key,
            &command.signature,
            command.source,
        )
        .await?;

        let mut action = self.action_to_complete(&challenge.target, bearer, &credential)?;
        self.admit_created_action(tenant, &mut action).await?;
        if let ActionWrite::Create(_) = action {
            // Kept for `action_retention_days` without any token: bounded per credential.
            // Charged once the rules admitted it, so refused attempts spend no budget.
            self.charge_device_action(&tenant.id, &credential.id)
                .await?;
        }
        let commit = VerificationCommit {
            tenant_id: tenant.id.clone(),
            single_use: SingleUse::InOrder {
                order: ChallengeOrder::of(&challenge),
                expires_at: challenge.expires_at,
            },
            credential: credential.clone(),
            method: command.namespace.verification_method(),
            action,
            now,
        };
        let action = self.store.complete_verification(&commit).await?;
        let token = tenant.keys.issue(
            TokenRequest {
                redirect_url: None,
                redirect_to_settings: false,
                action: &action,
                scope: None,
                username: None,
                jti: &hex::encode(self.random_bytes::<16>()?),
            },
            now,
            self.settings.token_lifetime_seconds,
        );
        Ok(VerifyResult {
            token,
            credential,
            action,
        })
    }

    /// An action a device creates without a track (in-app verify with tenant Basic, an
    /// anonymous QR code) is still decided by the rules (spec 7): a `BLOCK` or `REVIEW`
    /// outcome refuses it, as a track would have, and the deciding rule is recorded on it.
    /// Without this, a blocked action could be completed by any enrolled device. No backend
    /// vouched for this action's data points, so a rule that reads one fails closed
    /// ([`Provenance::DeviceCreated`]): a rule that blocks `pay` over `custom.amount` blocks
    /// every device-created `pay`.
    pub(crate) async fn admit_created_action(
        &self,
        tenant: &Tenant,
        write: &mut ActionWrite,
    ) -> Result<()> {
        let ActionWrite::Create(action) = write else {
            return Ok(());
        };
        let (decision, _) = self
            .decide(
                tenant,
                DecisionSubject {
                    user: &action.key.user_id,
                    action_code: &action.key.action_code,
                    context: &action.context,
                    email: None,
                    phone_number: None,
                    provenance: Provenance::DeviceCreated {
                        // Only ever set from what the platform saw (QR start), never claimed.
                        ip_observed: action.context.ip_address.is_some(),
                    },
                },
            )
            .await?;
        action.rule_ids = decision.rule_ids();
        action.rules = decision.rules();
        match decision.outcome {
            Outcome::Block | Outcome::Review => Err(Error::ActionNotChallengeable(
                decision.outcome.state().as_str(),
            )),
            Outcome::Allow | Outcome::Challenge => Ok(()),
        }
    }

    /// Spec 4.4: the device signs the challenge id itself. The signature is verified first,
    /// so a valid one is never throttled. One that does not verify is charged to the source
    /// address and the tenant (it writes: the mark is a new item), then counted on the
    /// challenge's mark; past `max_failed_attempts` further bad ones get 429 until the
    /// challenge expires. The challenge is never used up by them (DESIGN 6). The
    /// verify-then-count order is [`super::limits::signature_checked`], shared with push and
    /// QR codes.
    pub(crate) async fn check_challenge_signature(
        &self,
        tenant: &Tenant,
        challenge: &Challenge,
        key: &PublicKey,
        signature: &str,
        source: Source,
    ) -> Result<()> {
        let count_failure = async {
            let throttled = || {
                Error::throttled(
                    Throttled::FAILED_SIGNATURES,
                    challenge.expires_at.seconds_after(self.now()),
                )
            };
            // Past the per-challenge count nothing more is charged or written, as for push
            // and QR codes: the address's and the tenant's budgets are for failures that
            // can still write something.
            let max = self.settings.max_failed_attempts;
            if self
                .store
                .get_challenge_mark(&tenant.id, &challenge.id)
                .await?
                .is_some_and(|mark| mark.failed_attempts >= max)
            {
                return Err(throttled());
            }
            self.charge_failed_signature(&tenant.id, source).await?;
            let counted = self
                .store
                .record_failed_attempt(
                    &tenant.id,
                    &challenge.id,
                    challenge.expires_at,
                    self.settings.max_failed_attempts,
                )
                .await?;
            if !counted {
                return Err(throttled());
            }
            Ok(())
        };
        signature_checked(key.verify(challenge.id.as_str(), signature), count_failure).await
    }

    /// Which action a verify completes (spec 3.4.4): the tracked action the challenge or the
    /// Bearer token names, or a new action for the key's owner. The token, the challenge and
    /// the credential must all agree on the user.
    fn action_to_complete(
        &self,
        target: &ChallengeTarget,
        bearer: Option<&VerifiedToken>,
        credential: &Credential,
    ) -> Result<ActionWrite> {
        let owned_by_key_owner = |key: &ActionKey| {
            if key.user_id == credential.user_id {
                Ok(())
            } else {
                Err(Error::UserMismatch)
            }
        };
        match (target, bearer) {
            // A challenge issued for a push credential update is for nothing else.
            (ChallengeTarget::PushCredentialUpdate { .. }, _) => Err(Error::ChallengeMismatch),
            (ChallengeTarget::TrackedAction(key), bearer) => {
                if bearer.is_some_and(|token| token.action != *key) {
                    return Err(Error::ChallengeMismatch);
                }
                owned_by_key_owner(key)?;
                Ok(ActionWrite::Complete(key.clone()))
            }
            (ChallengeTarget::NewAction(code), Some(token)) => {
                if token.action.action_code != *code {
                    return Err(Error::ChallengeMismatch);
                }
                owned_by_key_owner(&token.action)?;
                Ok(ActionWrite::Complete(token.action.clone()))
            }
            (ChallengeTarget::Unbound, Some(token)) => {
                owned_by_key_owner(&token.action)?;
                Ok(ActionWrite::Complete(token.action.clone()))
            }
            (ChallengeTarget::NewAction(code), None) => self.new_action(code.clone(), credential),
            (ChallengeTarget::Unbound, None) => {
                self.new_action(ActionCode::parse(DEFAULT_VERIFY_ACTION_CODE)?, credential)
            }
        }
    }

    pub(crate) fn new_action(
        &self,
        code: ActionCode,
        credential: &Credential,
    ) -> Result<ActionWrite> {
        self.new_user_action(code, &credential.tenant_id, &credential.user_id)
    }

    /// A new action for `user`, created by a device or passkey without a track.
    pub(crate) fn new_user_action(
        &self,
        code: ActionCode,
        tenant: &crate::domain::TenantId,
        user: &crate::domain::UserId,
    ) -> Result<ActionWrite> {
        let now = self.now();
        Ok(ActionWrite::Create(Action {
            tenant_id: tenant.clone(),
            key: ActionKey {
                user_id: user.clone(),
                action_code: code,
                idempotency_key: IdempotencyKey::parse(self.random_uuid()?)?,
            },
            state: ActionState::ChallengeRequired,
            created_at: now,
            state_updated_at: now,
            verification_method: None,
            verified_by_authenticator_id: None,
            context: TrackContext::default(),
            rule_ids: Vec::new(),
            rules: Vec::new(),
            origin: ActionOrigin::DeviceVerification,
            enrolled_passkey_id: None,
            expires_at: now.plus_seconds(self.settings.action_retention_days * 24 * 3600),
        }))
    }
}
