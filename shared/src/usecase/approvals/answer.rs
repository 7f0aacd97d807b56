//! Answers (spec 3.3 #10): approve or reject a push, or a QR code its claimer holds.

use super::{Answer, CAS_ATTEMPTS, decision_message, same_secret};
use crate::App;
use crate::domain::{
    ApprovalChallenge, ApprovalId, ApprovalKind, ApprovalSlot, ApprovalState, Credential, Namespace,
};
use crate::error::{Error, Result};
use crate::metric::{self, FlowMethod};
use crate::store::{ActionWrite, SingleUse, VerificationCommit};
use crate::tenant::Tenant;
use crate::usecase::limits::signature_checked;
use crate::websocket::SocketState;

impl App {
    // ------------------------------------------------------------ answers

    /// Approves or rejects a push or a claimed QR code (spec 3.3 #10). Returns `isVerified`:
    /// whether the challenge is now approved.
    ///
    /// Bad signatures only bump the challenge's failure count (a new version), so an answer
    /// that loses its compare-and-swap to one is tried again on the new version: nobody's bad
    /// signatures can make the owner's answer fail (DESIGN 6).
    pub async fn answer_challenge(&self, tenant: &Tenant, answer: Answer) -> Result<bool> {
        let method = FlowMethod::approval(answer.request.namespace);
        let approved = answer.approved;
        let result = self.answer_challenge_unrecorded(tenant, answer).await;
        match &result {
            Ok(_) => {
                metric::approval_answered(method, approved);
                if approved {
                    metric::flow_completed(method);
                }
            }
            Err(error) => metric::verification_failed(method, error),
        }
        result
    }

    /// The use case above without its metrics.
    async fn answer_challenge_unrecorded(&self, tenant: &Tenant, answer: Answer) -> Result<bool> {
        let request = &answer.request;
        let credential = self
            .credential_for(tenant, request.namespace, &request.public_key)
            .await?;
        let slot = self
            .answer_slot(tenant, &credential, &request.challenge_id)
            .await?;
        // Every lost race is another writer's change: an answer (then the challenge is final
        // and the loop ends), or a failure count, of which there are at most
        // `max_failed_attempts` per challenge. So this many attempts always get through.
        let attempts = CAS_ATTEMPTS + self.settings.max_failed_attempts as usize;
        for _ in 0..attempts {
            let challenge = self
                .live_challenge(tenant, &slot, &request.challenge_id)
                .await?;
            if challenge.state.is_final() {
                return Err(Error::ChallengeAlreadyUsed);
            }
            match self
                .answer_version(tenant, &answer, &credential, &challenge)
                .await
            {
                // Lost to a concurrent write: read again; if someone answered, it is final.
                Err(Error::ChallengeAlreadyUsed) => continue,
                other => return other,
            }
        }
        Err(Error::ChallengeAlreadyUsed)
    }

    /// One attempt of [`App::answer_challenge`] on one version of the challenge.
    pub(super) async fn answer_version(
        &self,
        tenant: &Tenant,
        answer: &Answer,
        credential: &Credential,
        challenge: &ApprovalChallenge,
    ) -> Result<bool> {
        let now = self.now();
        let request = &answer.request;
        // Who may answer (DESIGN 6).
        match (challenge.kind, challenge.state) {
            (_, ApprovalState::Approved | ApprovalState::Rejected) => {
                return Err(Error::ChallengeAlreadyUsed);
            }
            (ApprovalKind::Push, _) if !challenge.target_credentials.contains(&credential.id) => {
                return Err(Error::ChallengeMismatch);
            }
            (ApprovalKind::QrCode, ApprovalState::Pending) => {
                return Err(Error::ChallengeNotClaimed);
            }
            (ApprovalKind::QrCode, ApprovalState::Claimed)
                if challenge.answered_by.as_ref() != Some(&credential.id) =>
            {
                return Err(Error::ChallengeClaimedByAnotherDevice);
            }
            _ => {}
        }
        self.check_device_signature(challenge, request, now).await?;

        // Ours: the decision itself signed, so that a compromised channel cannot flip it.
        let code = answer.verification_code.as_deref();
        match &answer.decision_signature {
            Some(signature) => {
                let message = decision_message(challenge.id.as_str(), answer.approved, code);
                // A decision signature that cannot even be decoded counts as a bad one too.
                let verified = request
                    .public_key
                    .verify(&message, signature)
                    .map_err(|_| Error::InvalidSignature);
                signature_checked(
                    verified,
                    self.count_failed_signature(challenge, request.source, now),
                )
                .await?;
            }
            None if tenant.require_decision_signature => {
                return Err(Error::DecisionSignatureRequired);
            }
            None => {}
        }

        let mut next = challenge.moved_to(
            if answer.approved {
                ApprovalState::Approved
            } else {
                ApprovalState::Rejected
            },
            now,
        );
        next.answered_by = Some(credential.id.clone());

        // Ours: number matching. A wrong code ends the challenge, so it cannot be guessed;
        // only the targeted device, with a valid signature, gets this far.
        if answer.approved
            && let Some(expected) = &challenge.verification_code
            && !code.is_some_and(|given| same_secret(given, expected))
        {
            next.state = ApprovalState::Rejected;
            if !self
                .store
                .put_approval(&next, Some(challenge.version))
                .await?
            {
                return Err(Error::ChallengeAlreadyUsed);
            }
            self.push_socket_state(&next, SocketState::Rejected, None)
                .await;
            return Err(Error::InvalidVerificationCode);
        }

        if !answer.approved {
            return if self
                .store
                .put_approval(&next, Some(challenge.version))
                .await?
            {
                self.push_socket_state(&next, SocketState::Rejected, None)
                    .await;
                Ok(false)
            } else {
                Err(Error::ChallengeAlreadyUsed)
            };
        }

        let mut action = match &challenge.action {
            Some(key) => ActionWrite::Complete(key.clone()),
            // An anonymous QR code: the claimer's user signs in with a new action, which the
            // rules decide as a track would, on what the kiosk sent.
            None => self.new_action(challenge.action_code.clone(), credential)?,
        };
        if let ActionWrite::Create(created) = &mut action {
            created.context = challenge.context.clone();
            next.action = Some(created.key.clone());
        }
        if let Err(refused) = self.admit_created_action(tenant, &mut action).await {
            let mut rejected = next.clone();
            rejected.state = ApprovalState::Rejected;
            rejected.action = None;
            if !self
                .store
                .put_approval(&rejected, Some(challenge.version))
                .await?
            {
                return Err(Error::ChallengeAlreadyUsed);
            }
            self.push_socket_state(&rejected, SocketState::Rejected, None)
                .await;
            return Err(refused);
        }
        // Over the WebSocket the access token goes to the socket, issued once below: the
        // approval is written delivered, so no poll gets another (spec 3.8).
        next.token_delivered |= next.socket.is_some();
        let approved = next.socket.is_some().then(|| next.clone());
        let commit = VerificationCommit {
            tenant_id: tenant.id.clone(),
            single_use: SingleUse::Approval { approved: next },
            credential: credential.clone(),
            method: request.namespace.verification_method(),
            action,
            now,
        };
        self.store.complete_verification(&commit).await?;
        if let Some(approved) = &approved {
            self.push_socket_approval(tenant, approved).await;
        }
        Ok(true)
    }

    /// Where the challenge a device answers is stored: the push slot of the key's user when
    /// it holds this id, else the QR code of that id (the legacy `device` namespace does
    /// both, spec 3.4.8).
    async fn answer_slot(
        &self,
        tenant: &Tenant,
        credential: &Credential,
        id: &ApprovalId,
    ) -> Result<ApprovalSlot> {
        let push = ApprovalSlot::Push(credential.user_id.clone());
        let qr = ApprovalSlot::QrCode(id.clone());
        match credential.namespace {
            Namespace::Push => Ok(push),
            Namespace::QrCode => Ok(qr),
            // Spec 3.3: `in_app` has no approval routes.
            Namespace::InApp => Err(Error::NoApprovalsInNamespace),
            Namespace::Device => {
                let pending = self.store.get_approval(&tenant.id, &push).await?;
                Ok(if pending.is_some_and(|c| c.id == *id) {
                    push
                } else {
                    qr
                })
            }
        }
    }
}
