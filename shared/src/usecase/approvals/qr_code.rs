//! QR code (spec 3.4.7): the kiosk starts and polls with its device code, a phone claims.

use super::{
    CAS_ATTEMPTS, PollStatus, QrCodeStarted, QrStarter, SignedChallengeRequest, SignedExtras,
    StartQrCode, hash_hex, same_secret,
};
use crate::App;
use crate::domain::{
    ApprovalChallenge, ApprovalId, ApprovalKind, ApprovalSlot, ApprovalState, TrackContext,
};
use crate::error::{Error, Result};
use crate::metric::{self, FlowMethod};
use crate::tenant::Tenant;
use crate::websocket::{ConnectionId, SocketState};

impl App {
    // ------------------------------------------------------------ QR code

    /// Starts a QR code (spec 3.4.7): anonymous with tenant Basic, or for a known user.
    pub async fn start_qr_code(
        &self,
        tenant: &Tenant,
        starter: QrStarter,
        command: StartQrCode,
    ) -> Result<QrCodeStarted> {
        self.start_qr_code_on(tenant, starter, command, None).await
    }

    /// [`App::start_qr_code`], for a code whose states are pushed to `socket` (spec 3.8,
    /// `usecase::qr_socket`).
    pub(crate) async fn start_qr_code_on(
        &self,
        tenant: &Tenant,
        starter: QrStarter,
        command: StartQrCode,
        socket: Option<ConnectionId>,
    ) -> Result<QrCodeStarted> {
        let started = self
            .start_qr_code_unrecorded(tenant, starter, command, socket)
            .await?;
        metric::flow_started(FlowMethod::QrCode);
        Ok(started)
    }

    /// The use case above without its metrics.
    async fn start_qr_code_unrecorded(
        &self,
        tenant: &Tenant,
        starter: QrStarter,
        command: StartQrCode,
        socket: Option<ConnectionId>,
    ) -> Result<QrCodeStarted> {
        let now = self.now();
        let (action_code, action, user_id, mut context) = match &starter {
            QrStarter::Token(token) => {
                let action = self
                    .challengeable_action(tenant, token, command.action.as_ref())
                    .await?;
                (
                    token.action.action_code.clone(),
                    Some(token.action.clone()),
                    Some(token.action.user_id.clone()),
                    action.context,
                )
            }
            QrStarter::Tenant => {
                let code = command.action.clone().ok_or_else(|| {
                    Error::invalid_request("The action is required to start a QR code.")
                })?;
                // Needs no secret and no token, and is stored: bounded per address and per
                // tenant, across instances (DESIGN 6; docs/api.md "Rate limits").
                self.charge_anonymous_qr_start(&tenant.id, command.source)
                    .await?;
                let context = TrackContext {
                    user_agent: command.user_agent.clone(),
                    ip_address: command.ip_address.clone(),
                    ..TrackContext::default()
                };
                (code, None, None, context)
            }
        };
        if command.custom.is_some() {
            context.custom = command.custom;
        }
        let device_code = crate::encoding::encode_url_safe(&self.random_bytes::<32>()?);
        let verification_code = command
            .number_matching
            .then(|| self.verification_code())
            .transpose()?;
        let challenge = ApprovalChallenge {
            id: ApprovalId::from_random(self.random_bytes()?),
            tenant_id: tenant.id.clone(),
            kind: ApprovalKind::QrCode,
            state: ApprovalState::Pending,
            action_code,
            action,
            user_id,
            target_credentials: Vec::new(),
            answered_by: None,
            device_code_hash: Some(hash_hex(&device_code)),
            verification_code: verification_code.clone(),
            context,
            failed_attempts: 0,
            token_delivered: false,
            recent_starts: Vec::new(),
            created_at: now,
            state_updated_at: now,
            expires_at: now.plus_seconds(self.settings.qr_challenge_lifetime_seconds),
            retain_until: now.plus_seconds(self.settings.qr_challenge_lifetime_seconds),
            version: 1,
            // Over the WebSocket: the connection its states are pushed to (spec 3.8).
            socket,
        };
        if !self.store.put_approval(&challenge, None).await? {
            // 384 random bits do not collide; this is a broken random source.
            return Err(Error::Internal);
        }
        Ok(QrCodeStarted {
            challenge_id: challenge.id,
            expires_at: challenge.expires_at,
            device_code,
            verification_code,
        })
    }

    /// A phone claims a QR code (spec 3.4.7): it binds the code to the key's user, and only
    /// this credential may answer it. Claiming again with the same key is harmless.
    pub async fn claim_qr_code(
        &self,
        tenant: &Tenant,
        request: SignedChallengeRequest,
    ) -> Result<(ApprovalChallenge, SignedExtras)> {
        let now = self.now();
        let credential = self
            .credential_for(tenant, request.namespace, &request.public_key)
            .await?;
        let slot = ApprovalSlot::QrCode(request.challenge_id.clone());
        for _ in 0..CAS_ATTEMPTS {
            let challenge = self
                .live_challenge(tenant, &slot, &request.challenge_id)
                .await?;
            if challenge.kind != ApprovalKind::QrCode {
                return Err(Error::ChallengeNotFound);
            }
            // Who may claim, before the signature: a device that may not claim must not be
            // able to end the code with bad signatures (they are counted, DESIGN 6).
            match challenge.state {
                ApprovalState::Approved | ApprovalState::Rejected => {
                    return Err(Error::ChallengeAlreadyUsed);
                }
                ApprovalState::Claimed
                    if challenge.answered_by.as_ref() != Some(&credential.id) =>
                {
                    return Err(Error::ChallengeClaimedByAnotherDevice);
                }
                // A token-started code is for its user only. Once claimed, `user_id` is the
                // claimer's: any other device is told the code is taken, whoever its user.
                ApprovalState::Pending
                    if challenge
                        .user_id
                        .as_ref()
                        .is_some_and(|user| *user != credential.user_id) =>
                {
                    return Err(Error::UserMismatch);
                }
                _ => {}
            }
            self.check_device_signature(&challenge, &request, now)
                .await?;
            let claimed = if challenge.state == ApprovalState::Pending {
                let mut next = challenge.moved_to(ApprovalState::Claimed, now);
                next.answered_by = Some(credential.id.clone());
                next.user_id = Some(credential.user_id.clone());
                if !self
                    .store
                    .put_approval(&next, Some(challenge.version))
                    .await?
                {
                    continue;
                }
                self.push_socket_state(&next, SocketState::Claimed, None)
                    .await;
                next
            } else {
                // Claimed by this very device before: claiming again is harmless.
                challenge
            };
            let user = self.store.get_user(&tenant.id, &credential.user_id).await?;
            return Ok((claimed, SignedExtras { user }));
        }
        Err(Error::ChallengeAlreadyUsed)
    }

    /// The kiosk's poll (spec 3.4.7), with the device code it was given at start.
    pub async fn poll_qr_code(
        &self,
        tenant: &Tenant,
        id: &ApprovalId,
        device_code: &str,
    ) -> Result<PollStatus> {
        let challenge = self
            .store
            .get_approval(&tenant.id, &ApprovalSlot::QrCode(id.clone()))
            .await?
            .filter(|c| c.kind == ApprovalKind::QrCode)
            .ok_or(Error::ChallengeNotFound)?;
        let presented = hash_hex(device_code);
        if !challenge
            .device_code_hash
            .as_deref()
            .is_some_and(|stored| same_secret(stored, &presented))
        {
            return Err(Error::InvalidDeviceCode);
        }
        self.poll_status(tenant, challenge).await
    }
}
