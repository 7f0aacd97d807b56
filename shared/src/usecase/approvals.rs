//! Push and QR-code approval (spec 3.4.5 to 3.4.7, 6.3, 6.4; DESIGN 6).
//!
//! | step | push | QR code |
//! |---|---|---|
//! | start | browser, Bearer track token: [`App::start_push`] | kiosk, tenant Basic or Bearer: [`App::start_qr_code`] |
//! | find / claim | app, signed by the key: [`App::pending_push`] | app, signed: [`App::claim_qr_code`] |
//! | answer | app, signed: [`App::answer_challenge`] | the claimer, signed: [`App::answer_challenge`] |
//! | poll | browser, Bearer: [`App::poll_push`] | kiosk, device code: [`App::poll_qr_code`] |
//!
//! Rules that protect users, each enforced here:
//! - ids are 384 random bits, expire, and end at the first answer;
//! - only a credential the push was sent to may answer it; only the claimer may answer a QR
//!   code, and a token-started QR code only a device of that token's user may claim;
//! - one pending push per user: a new start replaces it; starts per user are rate limited;
//! - failed signatures are counted and throttled (429 past `max_failed_attempts` per
//!   challenge, and per address and tenant), but never end or reject a live challenge: the
//!   valid signature is checked first and always goes through (DESIGN 6);
//! - anonymous QR starts are rate-limited per address and capped per tenant (DESIGN 6);
//! - the access token is handed to the poller once.
//!
//! Beyond the contract (ours, additive): number matching (`verificationCode`) and a
//! `decisionSignature` over `challengeId|approved|verificationCode`.

use super::limits::Source;
use super::tenants::Tenant;
use crate::App;
use crate::clock::Timestamp;
use crate::domain::ChallengeTarget;
use crate::domain::{
    ActionCode, ActionKey, ApprovalChallenge, ApprovalId, ApprovalKind, ApprovalSlot,
    ApprovalState, ChallengeId, Credential, CredentialId, Namespace, TrackContext, UserId,
    UserProfile,
};
use crate::error::{Error, Result, Throttled};
use crate::signature::PublicKey;
use crate::store::{ActionWrite, CredentialUpdate, SingleUse, VerificationCommit};
use crate::token::{TokenRequest, VerifiedToken};
use crate::webhook::{self, Envelope};
use crate::websocket::SocketState;
use serde::Serialize;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// How long a signed-read nonce stays fresh: it is valid in its own window and the next.
pub const PUSH_READ_NONCE_WINDOW_SECONDS: i64 = 60;

/// How many times a compare-and-swap is retried after losing to a concurrent writer.
const CAS_ATTEMPTS: usize = 3;

/// A browser's push start (spec 3.3 #12).
#[derive(Debug, Clone)]
pub struct StartPush {
    pub action: Option<ActionCode>,
    /// Only this credential may answer (spec 3.4.6).
    pub credential: Option<CredentialId>,
    /// Ours: return a code for the browser to show, that the approver must type.
    pub number_matching: bool,
}

#[derive(Debug, Clone)]
pub struct PushStarted {
    pub challenge_id: ApprovalId,
    pub sent_to: Vec<CredentialId>,
    pub verification_code: Option<String>,
    pub expires_at: Timestamp,
}

/// Who started a QR code (spec 3.3 #14).
#[derive(Debug, Clone)]
pub enum QrStarter {
    /// A known user: only that user's device may claim it.
    Token(VerifiedToken),
    /// An anonymous kiosk: the claimer's user signs in.
    Tenant,
}

#[derive(Debug, Clone)]
pub struct StartQrCode {
    pub action: Option<ActionCode>,
    pub custom: Option<serde_json::Value>,
    /// The kiosk's own request, shown to the approver: its `User-Agent`, and its address as
    /// the platform saw it.
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// The same address, for the per-address limit of anonymous starts (DESIGN 6).
    pub source: Source,
    pub number_matching: bool,
}

#[derive(Debug, Clone)]
pub struct QrCodeStarted {
    pub challenge_id: ApprovalId,
    pub expires_at: Timestamp,
    /// The secret the kiosk must present to poll; only its hash is stored.
    pub device_code: String,
    pub verification_code: Option<String>,
}

/// A device's signed request about a challenge (spec 3.3 #10, #11).
#[derive(Debug, Clone)]
pub struct SignedChallengeRequest {
    pub namespace: Namespace,
    pub challenge_id: ApprovalId,
    pub public_key: PublicKey,
    /// Over the challenge id (spec 4.4).
    pub signature: String,
    /// Where the request came from: bad signatures are rate-limited per address (DESIGN 6).
    pub source: Source,
}

/// An approve or reject (spec 3.3 #10).
#[derive(Debug, Clone)]
pub struct Answer {
    pub request: SignedChallengeRequest,
    pub approved: bool,
    pub verification_code: Option<String>,
    /// Ours: a signature over `challengeId|approved|verificationCode`.
    pub decision_signature: Option<String>,
}

/// What a poll reports (spec 3.4.6, 3.4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollStatus {
    pub is_claimed: bool,
    pub is_consumed: bool,
    pub is_verified: bool,
    /// Only in the first poll after approval.
    pub access_token: Option<String>,
}

/// What an app sees about its pending push (spec 3.4.5).
#[derive(Debug, Clone)]
pub struct PendingPush {
    pub credential: Credential,
    pub challenge: Option<ApprovalChallenge>,
    /// The custom data points, only for a request signed over a fresh nonce.
    pub signed: Option<SignedExtras>,
}

/// What a claim or a signed read reveals beyond the initiator context (spec 3.4.5, 3.4.7).
#[derive(Debug, Clone, Default)]
pub struct SignedExtras {
    pub user: Option<UserProfile>,
}

/// A push credential's new push token and expiry (spec 3.4.5).
#[derive(Debug, Clone)]
pub struct UpdatePushCredential {
    pub challenge_id: ChallengeId,
    pub public_key: PublicKey,
    pub signature: String,
    pub push_token: Option<String>,
    pub reset_expiry: bool,
    /// Where the request came from: bad signatures are rate-limited per address.
    pub source: Source,
}

/// The `push.created` data (spec 2.11), plus, additively, the credentials to notify.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PushCreated<'a> {
    challenge_id: &'a str,
    user_id: &'a str,
    idempotency_key: &'a str,
    action_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<&'a str>,
    authenticators: Vec<PushTarget<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PushTarget<'a> {
    user_authenticator_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    push_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_platform: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_name: Option<&'a str>,
}

fn hash_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

fn same_secret(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The message a `decisionSignature` signs (ours, DESIGN 6).
pub fn decision_message(
    challenge_id: &str,
    approved: bool,
    verification_code: Option<&str>,
) -> String {
    format!(
        "{challenge_id}|{approved}|{}",
        verification_code.unwrap_or_default()
    )
}

impl App {
    // ------------------------------------------------------------ push: browser side

    /// Starts a push for the token's action (spec 3.4.6), replacing the user's pending push
    /// if there is one, and delivers `push.created` when the tenant has a webhook.
    pub async fn start_push(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
        command: StartPush,
    ) -> Result<PushStarted> {
        let now = self.now();
        let action = self
            .challengeable_action(tenant, token, command.action.as_ref())
            .await?;
        let user = &token.action.user_id;
        let targets: Vec<Credential> = self
            .store
            .list_user_credentials(&tenant.id, user)
            .await?
            .into_iter()
            .filter(|c| matches!(c.namespace, Namespace::Push | Namespace::Device))
            .filter(|c| c.expires_at.is_none_or(|at| at > now))
            .collect();
        let targets = match &command.credential {
            Some(id) => vec![
                targets
                    .into_iter()
                    .find(|c| c.id == *id)
                    .ok_or(Error::AuthenticatorNotFound)?,
            ],
            None if targets.is_empty() => return Err(Error::NoPushCredential),
            None => targets,
        };

        let verification_code = command
            .number_matching
            .then(|| self.verification_code())
            .transpose()?;
        let mut started = None;
        for _ in 0..CAS_ATTEMPTS {
            let slot = ApprovalSlot::Push(user.clone());
            let previous = self.store.get_approval(&tenant.id, &slot).await?;
            // DESIGN 6: at most `push_starts_per_window` starts per user per window.
            let window_start = now.plus_seconds(-self.settings.push_start_window_seconds);
            let mut recent_starts: Vec<Timestamp> = previous
                .iter()
                .flat_map(|p| p.recent_starts.iter().copied())
                .filter(|at| *at > window_start)
                .collect();
            if recent_starts.len() >= self.settings.push_starts_per_window as usize {
                // Retry when the oldest start in the window leaves it.
                let oldest = recent_starts.iter().min().copied().unwrap_or(now);
                let free_at = oldest.plus_seconds(self.settings.push_start_window_seconds);
                return Err(Error::throttled(
                    Throttled::PUSH_STARTS,
                    free_at.seconds_after(now),
                ));
            }
            recent_starts.push(now);
            let challenge = ApprovalChallenge {
                id: ApprovalId::from_random(self.random_bytes()?),
                tenant_id: tenant.id.clone(),
                kind: ApprovalKind::Push,
                state: ApprovalState::Pending,
                action_code: token.action.action_code.clone(),
                action: Some(token.action.clone()),
                user_id: Some(user.clone()),
                target_credentials: targets.iter().map(|c| c.id.clone()).collect(),
                answered_by: None,
                device_code_hash: None,
                verification_code: verification_code.clone(),
                context: action.context.clone(),
                failed_attempts: 0,
                token_delivered: false,
                recent_starts,
                created_at: now,
                state_updated_at: now,
                expires_at: now.plus_seconds(self.settings.push_challenge_lifetime_seconds),
                // The start history must outlive the challenge for the rate limit to hold.
                retain_until: now.plus_seconds(
                    self.settings
                        .push_challenge_lifetime_seconds
                        .max(self.settings.push_start_window_seconds),
                ),
                version: previous.as_ref().map_or(1, |p| p.version + 1),
                socket: None,
            };
            let expected = previous.as_ref().map(|p| p.version);
            if self.store.put_approval(&challenge, expected).await? {
                started = Some(challenge);
                break;
            }
        }
        // Lost the compare-and-swap every time: other starts for this user at this moment.
        let challenge = started.ok_or(Error::throttled(Throttled::PUSH_STARTS, 1))?;

        if let Some(endpoint) = &tenant.push_webhook
            && let Err(problem) = self
                .deliver_push_created(tenant, endpoint, &challenge, &targets)
                .await
        {
            // Spec 2.11: a failed delivery fails the challenge; it must not stay answerable.
            let cancelled = challenge.moved_to(ApprovalState::Rejected, now);
            let answered_meanwhile = !self
                .store
                .put_approval(&cancelled, Some(challenge.version))
                .await?
                && self
                    .store
                    .get_approval(&tenant.id, &challenge.slot())
                    .await?
                    .is_some_and(|c| c.id == challenge.id && c.state == ApprovalState::Approved);
            tracing::warn!(problem = %problem, answered_meanwhile, "push.created webhook failed");
            // An app that found the push by polling may have approved it during the wait: then
            // the approval stands and the browser is told so, not that the push failed.
            if !answered_meanwhile {
                return Err(Error::WebhookFailed(problem.into()));
            }
        }
        Ok(PushStarted {
            challenge_id: challenge.id,
            sent_to: challenge.target_credentials,
            verification_code,
            expires_at: challenge.expires_at,
        })
    }

    async fn deliver_push_created(
        &self,
        tenant: &Tenant,
        endpoint: &crate::domain::WebhookEndpoint,
        challenge: &ApprovalChallenge,
        targets: &[Credential],
    ) -> std::result::Result<(), String> {
        let action = challenge.action.as_ref().ok_or("no action")?;
        let now = self.now();
        let envelope = Envelope {
            version: 1,
            id: self.random_uuid().map_err(|e| e.to_string())?,
            source: "https://authsignal.com",
            time: now.to_iso8601(),
            tenant_id: tenant.id.to_string(),
            kind: "push.created",
            data: PushCreated {
                challenge_id: challenge.id.as_str(),
                user_id: action.user_id.as_str(),
                idempotency_key: action.idempotency_key.as_str(),
                action_code: action.action_code.as_str(),
                user_agent: challenge.context.user_agent.as_deref(),
                ip_address: challenge.context.ip_address.as_deref(),
                authenticators: targets
                    .iter()
                    .map(|c| PushTarget {
                        user_authenticator_id: c.id.as_str(),
                        push_token: c.push_token.as_deref(),
                        device_platform: c.device_platform.as_deref(),
                        device_name: c.device_name.as_deref(),
                    })
                    .collect(),
            },
        };
        let body = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
        let signature = webhook::signature_header(&endpoint.secret, now, &body);
        self.webhooks
            .send(
                &endpoint.url,
                &signature,
                body,
                Duration::from_millis(self.settings.webhook_timeout_ms),
            )
            .await
    }

    /// The browser's poll (spec 3.4.6): only with a token for the action it was started for.
    pub async fn poll_push(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
        id: &ApprovalId,
    ) -> Result<PollStatus> {
        let slot = ApprovalSlot::Push(token.action.user_id.clone());
        let challenge = self
            .store
            .get_approval(&tenant.id, &slot)
            .await?
            .filter(|c| c.id == *id)
            // Unknown, or replaced by a newer start for this user.
            .ok_or(Error::ChallengeNotFound)?;
        if challenge.action.as_ref() != Some(&token.action) {
            return Err(Error::ChallengeMismatch);
        }
        self.poll_status(tenant, challenge).await
    }

    // ------------------------------------------------------------ push: app side

    /// The nonce an app signs to read its pending push with the custom data (spec 3.4.5).
    pub async fn push_read_nonce(&self, tenant: &Tenant, key: &PublicKey) -> Result<String> {
        let credential = self.credential_for(tenant, Namespace::Push, key).await?;
        let window = self
            .now()
            .unix_seconds()
            .div_euclid(PUSH_READ_NONCE_WINDOW_SECONDS);
        Ok(tenant
            .keys
            .push_read_nonce(&credential.key_fingerprint, window))
    }

    /// The app's view of its pending push (spec 3.4.5): the credential always, the
    /// challenge when one is pending for this credential, and the custom data only when
    /// `signature` signs a fresh nonce.
    pub async fn pending_push(
        &self,
        tenant: &Tenant,
        namespace: Namespace,
        key: &PublicKey,
        signature: Option<&str>,
    ) -> Result<PendingPush> {
        let now = self.now();
        let credential = self.credential_for(tenant, namespace, key).await?;
        let challenge = self
            .store
            .get_approval(&tenant.id, &ApprovalSlot::Push(credential.user_id.clone()))
            .await?
            .filter(|c| c.state == ApprovalState::Pending && !c.is_expired(now))
            .filter(|c| c.target_credentials.contains(&credential.id));
        let window = now
            .unix_seconds()
            .div_euclid(PUSH_READ_NONCE_WINDOW_SECONDS);
        let fresh = |signature: &str| {
            [window, window - 1].into_iter().any(|w| {
                tenant
                    .keys
                    .push_read_nonces(&credential.key_fingerprint, w)
                    .any(|nonce| key.verify(&nonce, signature).is_ok())
            })
        };
        let signed = match signature {
            Some(signature) if challenge.is_some() && fresh(signature) => Some(SignedExtras {
                user: self.store.get_user(&tenant.id, &credential.user_id).await?,
            }),
            _ => None,
        };
        Ok(PendingPush {
            credential,
            challenge,
            signed,
        })
    }

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

    /// [`App::start_qr_code`], for a code whose states are pushed to `socket` (spec 3.8).
    pub(crate) async fn start_qr_code_on(
        &self,
        tenant: &Tenant,
        starter: QrStarter,
        command: StartQrCode,
        socket: Option<crate::websocket::ConnectionId>,
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

    // ------------------------------------------------------------ answers

    /// Approves or rejects a push or a claimed QR code (spec 3.3 #10). Returns `isVerified`:
    /// whether the challenge is now approved.
    ///
    /// Bad signatures only bump the challenge's failure count (a new version), so an answer
    /// that loses its compare-and-swap to one is tried again on the new version: nobody's bad
    /// signatures can make the owner's answer fail (DESIGN 6).
    pub async fn answer_challenge(&self, tenant: &Tenant, answer: Answer) -> Result<bool> {
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
    async fn answer_version(
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
                if request.public_key.verify(&message, signature).is_err() {
                    self.count_failed_signature(challenge, request.source, now)
                        .await?;
                    return Err(Error::InvalidSignature);
                }
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

    // ------------------------------------------------------------ push credential update

    /// A one-time challenge for a push credential update (spec 3.4.5): the app signs the
    /// returned message, which is the challenge id.
    pub async fn push_update_challenge(
        &self,
        tenant: &Tenant,
        key: &PublicKey,
    ) -> Result<ChallengeId> {
        self.credential_for(tenant, Namespace::Push, key).await?;
        let expires_at = self
            .now()
            .plus_seconds(self.settings.challenge_lifetime_seconds);
        let challenge = tenant.keys.seal_challenge(
            &ChallengeTarget::PushCredentialUpdate,
            None,
            expires_at,
            self.random_bytes()?,
        )?;
        Ok(challenge.id)
    }

    /// Sets a push credential's push token and/or resets its expiry (spec 3.4.5), once per
    /// signed challenge.
    pub async fn update_push_credential(
        &self,
        tenant: &Tenant,
        command: UpdatePushCredential,
    ) -> Result<Credential> {
        let now = self.now();
        let challenge = tenant.keys.open_challenge(&command.challenge_id)?;
        // Only a challenge from `push/sign` may update a credential.
        if challenge.target != ChallengeTarget::PushCredentialUpdate {
            return Err(Error::ChallengeMismatch);
        }
        if challenge.expires_at <= now {
            return Err(Error::ChallengeExpired);
        }
        let mut credential = self
            .credential_for(tenant, Namespace::Push, &command.public_key)
            .await?;
        self.check_challenge_signature(
            tenant,
            &challenge,
            &command.public_key,
            &command.signature,
            command.source,
        )
        .await?;
        if let Some(push_token) = command.push_token {
            credential.push_token = Some(push_token);
        }
        if command.reset_expiry {
            credential.expires_at =
                Some(now.plus_seconds(self.settings.push_credential_lifetime_days * 24 * 3600));
        }
        credential.last_verified_at = Some(now);
        self.store
            .update_credential_once(&CredentialUpdate {
                tenant_id: tenant.id.clone(),
                challenge: SingleUse::Mark {
                    challenge_id: challenge.id,
                    expires_at: challenge.expires_at,
                },
                credential: credential.clone(),
                now,
            })
            .await?;
        Ok(credential)
    }

    // ------------------------------------------------------------ server side

    /// A push or QR challenge for the backend (spec 2.2 get challenge). A push is found
    /// under its user, so `user` is needed for it; an expired challenge is gone.
    pub async fn get_approval_challenge(
        &self,
        tenant: &Tenant,
        id: &ApprovalId,
        user: Option<&UserId>,
    ) -> Result<ApprovalChallenge> {
        let mut slots = vec![ApprovalSlot::QrCode(id.clone())];
        if let Some(user) = user {
            slots.insert(0, ApprovalSlot::Push(user.clone()));
        }
        for slot in slots {
            if let Some(challenge) = self
                .store
                .get_approval(&tenant.id, &slot)
                .await?
                .filter(|c| c.id == *id && !c.is_expired(self.now()))
            {
                return Ok(challenge);
            }
        }
        Err(Error::ChallengeNotFound)
    }

    // ------------------------------------------------------------ shared steps

    /// The tracked action a token-started push or QR code is for: the body's `action`, if
    /// any, must be the token's, and the action must still be open to a challenge (a
    /// blocked, reviewed or failed action is not worth a person's attention).
    async fn challengeable_action(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
        requested: Option<&ActionCode>,
    ) -> Result<crate::domain::Action> {
        if requested.is_some_and(|code| *code != token.action.action_code) {
            return Err(Error::invalid_request(
                "The action does not match the action of the token.",
            ));
        }
        let action = self.get_action(tenant, &token.action).await?;
        if !action.state.is_challengeable() {
            return Err(Error::ActionNotChallengeable(action.state.as_str()));
        }
        Ok(action)
    }

    /// The credential of this key in this namespace; an expired push credential is gone.
    async fn credential_for(
        &self,
        tenant: &Tenant,
        namespace: Namespace,
        key: &PublicKey,
    ) -> Result<Credential> {
        let now = self.now();
        self.store
            .get_credential(&tenant.id, namespace, &key.fingerprint())
            .await?
            .filter(|c| c.expires_at.is_none_or(|at| at > now))
            .ok_or(Error::InvalidCredential)
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
            Namespace::InApp => Err(Error::RouteNotFound),
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

    /// The challenge `id` in `slot`, if it is there and has not expired. A push slot holds
    /// only the user's latest push: an older id is not found.
    async fn live_challenge(
        &self,
        tenant: &Tenant,
        slot: &ApprovalSlot,
        id: &ApprovalId,
    ) -> Result<ApprovalChallenge> {
        let challenge = self
            .store
            .get_approval(&tenant.id, slot)
            .await?
            .filter(|c| c.id == *id)
            .ok_or(Error::ChallengeNotFound)?;
        if challenge.is_expired(self.now()) {
            return Err(Error::ChallengeExpired);
        }
        Ok(challenge)
    }

    /// Spec 4.4: the device signs the challenge id. The signature is verified first, so a
    /// valid one is never throttled; a bad one is counted and throttled (see
    /// [`App::count_failed_signature`]).
    async fn check_device_signature(
        &self,
        challenge: &ApprovalChallenge,
        request: &SignedChallengeRequest,
        now: Timestamp,
    ) -> Result<()> {
        match request
            .public_key
            .verify(challenge.id.as_str(), &request.signature)
        {
            Ok(()) => Ok(()),
            Err(Error::InvalidSignature) => {
                self.count_failed_signature(challenge, request.source, now)
                    .await?;
                Err(Error::InvalidSignature)
            }
            Err(other) => Err(other),
        }
    }

    /// A bad signature over a push or QR code (DESIGN 6: throttled, but it never ends or
    /// rejects a live challenge, so whoever knows only a public key cannot cancel the
    /// owner's approval). The first `max_failed_attempts` are counted on the challenge and
    /// answered `invalid_signature`; later ones get 429 until the challenge expires, and write
    /// nothing. Each counted one is also charged to the source address and the tenant.
    async fn count_failed_signature(
        &self,
        challenge: &ApprovalChallenge,
        source: Source,
        now: Timestamp,
    ) -> Result<()> {
        // An ended challenge stays as it ended, and counts nothing more.
        if challenge.state.is_final() {
            return Ok(());
        }
        if challenge.failed_attempts >= self.settings.max_failed_attempts {
            return Err(Error::throttled(
                Throttled::FAILED_SIGNATURES,
                challenge.expires_at.seconds_after(now),
            ));
        }
        self.charge_failed_signature(&challenge.tenant_id, source)
            .await?;
        let next = ApprovalChallenge {
            failed_attempts: challenge.failed_attempts + 1,
            version: challenge.version + 1,
            ..challenge.clone()
        };
        // Losing this race to another writer is fine: the count is a throttle, not a lock.
        self.store
            .put_approval(&next, Some(challenge.version))
            .await?;
        Ok(())
    }

    /// What a poller sees, handing out the access token on the first poll after approval.
    async fn poll_status(
        &self,
        tenant: &Tenant,
        mut challenge: ApprovalChallenge,
    ) -> Result<PollStatus> {
        let now = self.now();
        for _ in 0..CAS_ATTEMPTS {
            let mut status = PollStatus {
                is_claimed: challenge.state != ApprovalState::Pending,
                is_consumed: challenge.state.is_final(),
                is_verified: challenge.state == ApprovalState::Approved,
                access_token: None,
            };
            let awaiting_token =
                challenge.state == ApprovalState::Approved && !challenge.token_delivered;
            // An ended challenge is reported as ended; one still open past its expiry, or an
            // approval whose token was never collected in time, is expired.
            if challenge.is_expired(now) && (awaiting_token || !challenge.state.is_final()) {
                return Err(Error::ChallengeExpired);
            }
            if !awaiting_token {
                return Ok(status);
            }
            let action = challenge.action.clone().ok_or(Error::Internal)?;
            let mut delivered = challenge.clone();
            delivered.token_delivered = true;
            delivered.version += 1;
            if self
                .store
                .put_approval(&delivered, Some(challenge.version))
                .await?
            {
                status.access_token = Some(self.issue_token_for(tenant, &action)?);
                return Ok(status);
            }
            // Someone polled at the same moment: read again; they got the token.
            challenge = self
                .store
                .get_approval(&tenant.id, &challenge.slot())
                .await?
                .filter(|c| c.id == challenge.id)
                .ok_or(Error::ChallengeNotFound)?;
        }
        Err(Error::StoreUnavailable)
    }

    pub(crate) fn issue_token_for(&self, tenant: &Tenant, action: &ActionKey) -> Result<String> {
        Ok(tenant.keys.issue(
            TokenRequest {
                action,
                scope: None,
                username: None,
                jti: &hex::encode(self.random_bytes::<16>()?),
            },
            self.now(),
            self.settings.token_lifetime_seconds,
        ))
    }

    /// A two-digit code (10 to 99) for number matching, as the common authenticator apps
    /// show: one wrong answer rejects the challenge, so it need not be longer.
    fn verification_code(&self) -> Result<String> {
        let [a, b] = self.random_bytes::<2>()?;
        let value = u16::from_be_bytes([a, b]) % 90 + 10;
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usecase::testkit::{Device, Kit};

    /// A bad signature's failure count is a new version of the push. An answer that read
    /// the version before it loses its compare-and-swap (`ChallengeAlreadyUsed`), which
    /// `answer_challenge` takes as "read again", so the owner's approval still goes through
    /// (DESIGN 6: bad signatures never end a live challenge, nor make its answer fail).
    #[tokio::test]
    async fn an_answer_that_read_before_a_failure_count_is_tried_again() {
        let kit = Kit::new().await;
        let phone = Device::new(Namespace::Push);
        let enrol = kit
            .track_token("alice", "addAuthenticator", Some("add:authenticators"))
            .await;
        let credential = kit
            .app
            .add_credential(&kit.tenant, &enrol, phone.add_command())
            .await
            .unwrap();
        let token = kit.track_token("alice", "signIn", None).await;
        let start = StartPush {
            action: None,
            credential: None,
            number_matching: false,
        };
        let started = kit
            .app
            .start_push(&kit.tenant, &token, start)
            .await
            .unwrap();
        let slot = ApprovalSlot::Push(kit.user("alice"));
        let read_before = kit
            .app
            .store
            .get_approval(&kit.tenant.id, &slot)
            .await
            .unwrap()
            .unwrap();
        let answer = |signature: String| Answer {
            request: SignedChallengeRequest {
                namespace: Namespace::Push,
                challenge_id: started.challenge_id.clone(),
                public_key: phone.public_key.clone(),
                signature,
                source: None,
            },
            approved: true,
            verification_code: None,
            decision_signature: None,
        };
        // Someone who knows only the public key: a signature by another key.
        let impostor = Device::new(Namespace::Push);
        assert_eq!(
            kit.app
                .answer_challenge(
                    &kit.tenant,
                    answer(impostor.sign(started.challenge_id.as_str()))
                )
                .await
                .unwrap_err(),
            Error::InvalidSignature
        );
        let owner = answer(phone.sign(started.challenge_id.as_str()));
        assert_eq!(
            kit.app
                .answer_version(&kit.tenant, &owner, &credential, &read_before)
                .await
                .unwrap_err(),
            Error::ChallengeAlreadyUsed,
            "the stale read loses"
        );
        assert!(kit.app.answer_challenge(&kit.tenant, owner).await.unwrap());
        let approved = kit
            .app
            .store
            .get_approval(&kit.tenant.id, &slot)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(approved.state, ApprovalState::Approved);
        assert_eq!(approved.failed_attempts, 1);
    }

    /// The rate limit counts starts over a window longer than a push lives, so the record
    /// that holds them must outlive the push (DynamoDB TTL and the embedded sweep delete by
    /// `retain_until`).
    #[tokio::test]
    async fn a_push_slot_is_kept_for_the_whole_rate_limit_window() {
        let kit = Kit::new().await;
        let phone = Device::new(Namespace::Push);
        let enrol = kit
            .track_token("alice", "addAuthenticator", Some("add:authenticators"))
            .await;
        kit.app
            .add_credential(&kit.tenant, &enrol, phone.add_command())
            .await
            .unwrap();
        let token = kit.track_token("alice", "signIn", None).await;
        let start = StartPush {
            action: None,
            credential: None,
            number_matching: false,
        };
        kit.app
            .start_push(&kit.tenant, &token, start)
            .await
            .unwrap();
        let slot = kit
            .app
            .store
            .get_approval(&kit.tenant.id, &ApprovalSlot::Push(kit.user("alice")))
            .await
            .unwrap()
            .unwrap();
        let settings = kit.app.settings();
        assert_eq!(
            slot.retain_until,
            kit.app
                .now()
                .plus_seconds(settings.push_start_window_seconds)
        );
        assert!(slot.retain_until > slot.expires_at);
    }
}
