//! The push credential update (spec 3.4.5): a one-time challenge, then a signed update of
//! the push token and/or the expiry.

use super::UpdatePushCredential;
use crate::App;
use crate::domain::{ChallengeId, ChallengeTarget, Credential, Namespace};
use crate::error::{Error, Result};
use crate::signature::PublicKey;
use crate::store::{CredentialUpdate, OneTimeMark};
use crate::tenant::Tenant;

impl App {
    // ------------------------------------------------------------ push credential update

    /// A one-time challenge for a push credential update (spec 3.4.5): the app signs the
    /// returned message, which is the challenge id.
    pub async fn push_update_challenge(
        &self,
        tenant: &Tenant,
        key: &PublicKey,
    ) -> Result<ChallengeId> {
        self.credential_for(tenant, Namespace::Push, key).await?;
        let now = self.now();
        let expires_at = now.plus_seconds(self.settings.challenge_lifetime_seconds);
        let challenge = tenant.keys.seal_challenge(
            &ChallengeTarget::PushCredentialUpdate {
                key_fingerprint: key.fingerprint(),
            },
            None,
            now,
            crate::usecase::challenges::next_issue_sequence(),
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
        // Only a challenge from `push/sign`, for this very key, may update a credential: one
        // seen by someone else cannot be used up with another key (spec 4.4 notes).
        match &challenge.target {
            ChallengeTarget::PushCredentialUpdate { key_fingerprint }
                if *key_fingerprint == command.public_key.fingerprint() => {}
            _ => return Err(Error::ChallengeMismatch),
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
                challenge: OneTimeMark {
                    challenge_id: challenge.id,
                    expires_at: challenge.expires_at,
                },
                credential: credential.clone(),
                now,
            })
            .await?;
        Ok(credential)
    }
}
