//! Push (spec 3.4.5, 3.4.6): the browser starts and polls with its track token, the app finds
//! its pending push; `push.created` goes out through the notifier port (spec 2.11).

use super::{
    CAS_ATTEMPTS, PUSH_READ_NONCE_WINDOW_SECONDS, PendingPush, PollStatus, PushStarted,
    SignedExtras, StartPush,
};
use crate::App;
use crate::clock::Timestamp;
use crate::domain::{
    ApprovalChallenge, ApprovalId, ApprovalKind, ApprovalSlot, ApprovalState, Credential,
    Namespace, WebhookEndpoint,
};
use crate::error::{Error, Result, Throttled};
use crate::metric::{self, FlowMethod};
use crate::notify::PushCreated;
use crate::signature::PublicKey;
use crate::tenant::Tenant;
use crate::token::VerifiedToken;

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
        let started = self.start_push_unrecorded(tenant, token, command).await?;
        metric::flow_started(FlowMethod::Push);
        Ok(started)
    }

    /// The use case above without its metrics.
    async fn start_push_unrecorded(
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
                .notify_push_created(endpoint, &challenge, &targets)
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

    /// Tells the tenant's endpoint about the push (spec 2.11), through the notifier port: the
    /// envelope, its signature and the delivery are the adapter's.
    async fn notify_push_created(
        &self,
        endpoint: &WebhookEndpoint,
        challenge: &ApprovalChallenge,
        targets: &[Credential],
    ) -> std::result::Result<(), String> {
        let action = challenge.action.as_ref().ok_or("no action")?;
        let event = PushCreated {
            tenant_id: &challenge.tenant_id,
            challenge,
            action,
            targets,
            at: self.now(),
        };
        self.notifier.push_created(endpoint, event).await
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
}
