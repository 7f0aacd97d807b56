//! Passkeys (spec 3.5, issue #15): registration with a track token, sign-in with a token or,
//! for a discoverable passkey, with tenant Basic alone; each ceremony's state in the store,
//! used once.
//!
//! | step | SDK call (`@authsignal/browser` 1.16) | method |
//! |---|---|---|
//! | registration options | `POST /client/user-authenticators/passkey/registration-options` | [`App::passkey_registration_options`] |
//! | registration | `POST /client/user-authenticators/passkey` | [`App::add_passkey`] |
//! | sign-in options | `POST /client/user-authenticators/passkey/authentication-options` | [`App::passkey_authentication_options`] |
//! | sign-in | `POST /client/verify/passkey` | [`App::verify_passkey`] |
//! | "is this passkey known" | `GET /client/user-authenticators/passkey?credentialIds=` | [`App::find_passkey`] |

use super::tenants::Tenant;
use crate::App;
use crate::domain::{
    ADD_AUTHENTICATORS_SCOPE, Action, ActionCode, ActionKey, ActionState, Ceremony,
    CeremonyPurpose, ChallengeId, ChallengeTarget, CredentialId, DEFAULT_PASSKEY_ACTION_CODE,
    PASSKEY_CEREMONY_SECONDS, PasskeyCheck, PasskeyRecord, UserId,
};
use crate::encoding;
use crate::error::{Error, Result};
use crate::metric::{self, FlowMethod};
use crate::passkey::proto::{
    AuthenticatorAttachment, Credential as WebauthnCredential, PublicKeyCredential,
    RegisterPublicKeyCredential,
};
use crate::store::{ActionWrite, EnrolmentGuard, PasskeyEnrolment, PasskeySignIn};
use crate::token::VerifiedToken;
use crate::usecase::limits::Source;

/// The longest ceremony id looked up (ours are 43 base64url characters).
const MAX_CEREMONY_ID_LENGTH: usize = 64;
/// WebAuthn L3 5.1: a credential id is at most 1023 bytes.
const MAX_CREDENTIAL_ID_BYTES: usize = 1023;
/// [`MAX_CREDENTIAL_ID_BYTES`] as unpadded base64url.
const MAX_CREDENTIAL_ID_BASE64_LENGTH: usize = MAX_CREDENTIAL_ID_BYTES.div_ceil(3) * 4;

/// The options the browser passes to `navigator.credentials.create()` / `.get()`, and the
/// `challengeId` to send back with its answer.
#[derive(Debug, Clone)]
pub struct CeremonyStart {
    pub challenge_id: String,
    pub options: serde_json::Value,
}

/// A registration-options request, parsed.
#[derive(Debug, Clone, Default)]
pub struct RegistrationOptions {
    pub username: Option<String>,
    pub display_name: Option<String>,
    /// `platform` or `cross-platform`.
    pub attachment: Option<String>,
}

/// A registered passkey and, if the registration completed the token's action (spec 3.5),
/// the token for `/validate` (the answer's `accessToken`).
#[derive(Debug, Clone)]
pub struct PasskeyRegistration {
    pub passkey: PasskeyRecord,
    pub token: Option<String>,
}

/// A successful sign-in: the token for `/validate`, the passkey and the action completed.
#[derive(Debug, Clone)]
pub struct PasskeySignInResult {
    pub token: String,
    pub passkey: PasskeyRecord,
    pub action: ActionKey,
}

fn decode_state<T: serde::de::DeserializeOwned>(ceremony: &Ceremony) -> Result<T> {
    serde_json::from_value(ceremony.state.clone()).map_err(|_| Error::Internal)
}

fn stored_credential(passkey: &PasskeyRecord) -> Result<WebauthnCredential> {
    serde_json::from_value(passkey.credential.clone()).map_err(|_| Error::Internal)
}

impl App {
    /// The user handle given to authenticators: a digest of tenant and user, so that it names
    /// no user in the clear and is the same for every passkey of one user (an authenticator
    /// then replaces, rather than adds, a second passkey of that user for this RP).
    fn user_handle(tenant: &Tenant, user: &UserId) -> Vec<u8> {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("trusted-device passkey user\n{}\n{}", tenant.id, user).as_bytes(),
        );
        digest.as_ref()[..16].to_vec()
    }

    /// The token's action, if it may still register a passkey, and whether the token may add
    /// only a first authenticator (the rule of device credentials, `usecase::credentials`:
    /// more with `add:authenticators`, or for a tracked action completed by a challenge).
    pub(crate) async fn enrolment_rule(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
    ) -> Result<(Action, bool)> {
        let action = self.get_action(tenant, &token.action).await?;
        let first_only = enrolment_rule_of(&action, token)?;
        Ok((action, first_only))
    }

    async fn has_any_authenticator(&self, tenant: &Tenant, user: &UserId) -> Result<bool> {
        Ok(!self
            .store
            .list_user_credentials(&tenant.id, user)
            .await?
            .is_empty()
            || !self
                .store
                .list_user_passkeys(&tenant.id, user)
                .await?
                .is_empty())
    }

    async fn new_ceremony(
        &self,
        tenant: &Tenant,
        purpose: CeremonyPurpose,
        state: serde_json::Value,
    ) -> Result<String> {
        let ceremony = Ceremony {
            id: encoding::encode_url_safe(&self.random_bytes::<32>()?),
            tenant_id: tenant.id.clone(),
            purpose,
            state,
            consumed: false,
            expires_at: self.now().plus_seconds(PASSKEY_CEREMONY_SECONDS),
        };
        self.store.put_ceremony(&ceremony).await?;
        Ok(ceremony.id)
    }

    /// A live, unused ceremony of this tenant.
    async fn open_ceremony(&self, tenant: &Tenant, id: &str) -> Result<Ceremony> {
        // Ours are 43 characters; anything much longer is no ceremony, and must not reach a
        // store key (DynamoDB refuses keys over 2 KB, which would be a 500).
        if id.is_empty() || id.len() > MAX_CEREMONY_ID_LENGTH {
            return Err(Error::ChallengeNotFound);
        }
        let ceremony = self
            .store
            .get_ceremony(&tenant.id, id, self.now())
            .await?
            .ok_or(Error::ChallengeNotFound)?;
        if ceremony.expires_at <= self.now() {
            return Err(Error::ChallengeExpired);
        }
        if ceremony.consumed {
            return Err(Error::ChallengeAlreadyUsed);
        }
        Ok(ceremony)
    }

    /// Registration options for the token's user (`passkey.signUp`).
    pub async fn passkey_registration_options(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
        request: RegistrationOptions,
    ) -> Result<CeremonyStart> {
        let rp = tenant.relying_party()?;
        let user = &token.action.user_id;
        let (_, first_only) = self.enrolment_rule(tenant, token).await?;
        if first_only && self.has_any_authenticator(tenant, user).await? {
            return Err(Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE));
        }
        let attachment = match request.attachment.as_deref() {
            None | Some("") => None,
            Some("platform") => Some(AuthenticatorAttachment::Platform),
            Some("cross-platform") => Some(AuthenticatorAttachment::CrossPlatform),
            Some(_) => {
                return Err(Error::invalid_request(
                    "authenticatorAttachment must be platform or cross-platform.",
                ));
            }
        };
        let exclude = self
            .store
            .list_user_passkeys(&tenant.id, user)
            .await?
            .iter()
            .map(|p| stored_credential(p).map(|c| c.cred_id))
            .collect::<Result<Vec<_>>>()?;
        let username = request
            .username
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| user.as_str().to_owned());
        let display_name = request
            .display_name
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| username.clone());
        let (options, state) = rp.start_registration(
            &Self::user_handle(tenant, user),
            &username,
            &display_name,
            exclude,
            attachment,
        )?;
        let state = serde_json::to_value(&state).map_err(|_| Error::Internal)?;
        let challenge_id = self
            .new_ceremony(
                tenant,
                CeremonyPurpose::Registration {
                    action: token.action.clone(),
                    scoped: !first_only,
                    name: Some(display_name),
                },
                state,
            )
            .await?;
        Ok(CeremonyStart {
            challenge_id,
            options: serde_json::to_value(&options.public_key).map_err(|_| Error::Internal)?,
        })
    }

    /// Registers the passkey the browser created for a registration ceremony: the library
    /// checks origin, RP id, challenge, flags and attestation; the store consumes the
    /// ceremony and inserts the passkey in one step.
    pub async fn add_passkey(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
        challenge_id: &str,
        response: &RegisterPublicKeyCredential,
    ) -> Result<PasskeyRegistration> {
        let rp = tenant.relying_party()?;
        let ceremony = self.open_ceremony(tenant, challenge_id).await?;
        let CeremonyPurpose::Registration { action, name, .. } = &ceremony.purpose else {
            return Err(Error::ChallengeMismatch);
        };
        if *action != token.action {
            return Err(Error::ChallengeMismatch);
        }
        let credential = rp.finish_registration(response, &decode_state(&ceremony)?)?;
        // WebAuthn L3 5.1: a credential id is 16 to 1023 bytes; longer or empty is malformed
        // (and a longer one would not fit a store key).
        if credential.cred_id.is_empty() || credential.cred_id.len() > MAX_CREDENTIAL_ID_BYTES {
            return Err(Error::PasskeyRejected(PasskeyCheck::Malformed));
        }
        let credential_id = encoding::encode_url_safe(&credential.cred_id);
        // Recomputed at the write: the action may have been blocked since the options.
        let (action, first_only) = self.enrolment_rule(tenant, token).await?;
        // spec 3.5: registering completes an action that was not completed yet; one that a
        // challenge completed already keeps its method, and no second token is issued.
        let completes_action = matches!(
            action.state,
            ActionState::Allow | ActionState::ChallengeRequired
        );
        let now = self.now();
        let passkey = PasskeyRecord {
            id: CredentialId::parse(self.random_uuid()?)?,
            tenant_id: tenant.id.clone(),
            user_id: token.action.user_id.clone(),
            credential_id,
            user_handle: encoding::encode_url_safe(&Self::user_handle(
                tenant,
                &token.action.user_id,
            )),
            counter: credential.counter,
            backed_up: credential.backup_state,
            aaguid: None,
            name: name.clone(),
            credential: serde_json::to_value(&credential).map_err(|_| Error::Internal)?,
            created_at: now,
            last_verified_at: None,
        };
        self.store
            .enrol_passkey(&PasskeyEnrolment {
                ceremony_id: ceremony.id.clone(),
                passkey: passkey.clone(),
                guard: EnrolmentGuard {
                    action: token.action.clone(),
                    first_credential_only: first_only,
                    now,
                },
                completes_action,
            })
            .await?;
        let token = if completes_action {
            Some(self.issue_token_at(tenant, &token.action, now)?)
        } else {
            None
        };
        Ok(PasskeyRegistration { passkey, token })
    }

    /// Sign-in options. With a token: that user's passkeys are allowed and the token's action
    /// is the one completed. Without: a discoverable sign-in (no allowed list), completing a
    /// new action with the code of `challenge_id` (from `POST /client/challenge {action}`)
    /// or [`DEFAULT_PASSKEY_ACTION_CODE`].
    pub async fn passkey_authentication_options(
        &self,
        tenant: &Tenant,
        bearer: Option<&VerifiedToken>,
        challenge_id: Option<&ChallengeId>,
        source: Source,
    ) -> Result<CeremonyStart> {
        let start = self
            .passkey_authentication_options_unrecorded(tenant, bearer, challenge_id, source)
            .await?;
        metric::flow_started(FlowMethod::Passkey);
        Ok(start)
    }

    /// The use case above without its metrics.
    async fn passkey_authentication_options_unrecorded(
        &self,
        tenant: &Tenant,
        bearer: Option<&VerifiedToken>,
        challenge_id: Option<&ChallengeId>,
        source: Source,
    ) -> Result<CeremonyStart> {
        let rp = tenant.relying_party()?;
        let (target, user, allowed) = match bearer {
            Some(token) => {
                let action = self.get_action(tenant, &token.action).await?;
                if !action.state.is_challengeable() {
                    return Err(Error::ActionNotChallengeable(action.state.as_str()));
                }
                let passkeys = self
                    .store
                    .list_user_passkeys(&tenant.id, &token.action.user_id)
                    .await?;
                if passkeys.is_empty() {
                    return Err(Error::NoPasskey);
                }
                let allowed = passkeys
                    .iter()
                    .map(stored_credential)
                    .collect::<Result<Vec<_>>>()?;
                (
                    ChallengeTarget::TrackedAction(token.action.clone()),
                    Some(token.action.user_id.clone()),
                    allowed,
                )
            }
            None => {
                // DESIGN 6: with only the public tenant id, each call stores a ceremony, so
                // it is counted per address and against the tenant's live cap.
                self.charge_anonymous_passkey_options(&tenant.id, source)
                    .await?;
                let target = match challenge_id {
                    Some(id) => {
                        let challenge = tenant.keys.open_challenge(id)?;
                        if challenge.expires_at <= self.now() {
                            return Err(Error::ChallengeExpired);
                        }
                        match challenge.target {
                            target @ (ChallengeTarget::NewAction(_) | ChallengeTarget::Unbound) => {
                                target
                            }
                            _ => return Err(Error::ChallengeMismatch),
                        }
                    }
                    None => ChallengeTarget::Unbound,
                };
                (target, None, Vec::new())
            }
        };
        let (options, state) = rp.start_authentication(allowed)?;
        let state = serde_json::to_value(&state).map_err(|_| Error::Internal)?;
        let challenge_id = self
            .new_ceremony(
                tenant,
                CeremonyPurpose::Authentication { target, user },
                state,
            )
            .await?;
        Ok(CeremonyStart {
            challenge_id,
            options: serde_json::to_value(&options.public_key).map_err(|_| Error::Internal)?,
        })
    }

    /// Verifies an assertion and completes the ceremony's action: the ceremony consumed, the
    /// counter moved and the action `CHALLENGE_SUCCEEDED` with method `PASSKEY`, in one store
    /// step. Returns a token `/v1/validate` accepts.
    pub async fn verify_passkey(
        &self,
        tenant: &Tenant,
        bearer: Option<&VerifiedToken>,
        challenge_id: &str,
        response: &PublicKeyCredential,
    ) -> Result<PasskeySignInResult> {
        let result = self
            .verify_passkey_unrecorded(tenant, bearer, challenge_id, response)
            .await;
        metric::verification_outcome(FlowMethod::Passkey, &result);
        result
    }

    /// The use case above without its metrics.
    async fn verify_passkey_unrecorded(
        &self,
        tenant: &Tenant,
        bearer: Option<&VerifiedToken>,
        challenge_id: &str,
        response: &PublicKeyCredential,
    ) -> Result<PasskeySignInResult> {
        let rp = tenant.relying_party()?;
        let ceremony = self.open_ceremony(tenant, challenge_id).await?;
        let CeremonyPurpose::Authentication { target, user } = &ceremony.purpose else {
            return Err(Error::ChallengeMismatch);
        };
        // No registered passkey has a longer id (WebAuthn L3 5.1, checked at registration).
        if response.raw_id.is_empty() || response.raw_id.len() > MAX_CREDENTIAL_ID_BYTES {
            return Err(Error::PasskeyNotRegistered);
        }
        let credential_id = encoding::encode_url_safe(&response.raw_id);
        let passkey = self
            .store
            .get_passkey(&tenant.id, &credential_id)
            .await?
            .ok_or(Error::PasskeyNotRegistered)?;
        if user.as_ref().is_some_and(|u| *u != passkey.user_id) {
            return Err(Error::PasskeyRejected(PasskeyCheck::CredentialNotAllowed));
        }
        match (user, response.get_user_unique_id()) {
            (_, Some(handle)) if encoding::encode_url_safe(handle) != passkey.user_handle => {
                return Err(Error::PasskeyRejected(PasskeyCheck::CredentialNotAllowed));
            }
            // WebAuthn L2 7.2 step 6: a user not identified before the ceremony (a
            // discoverable sign-in) is identified by the user handle, which must be there.
            (None, None) => {
                return Err(Error::PasskeyRejected(PasskeyCheck::CredentialNotAllowed));
            }
            _ => {}
        }
        let mut credential = stored_credential(&passkey)?;
        let result = rp.finish_authentication(response, &decode_state(&ceremony)?, &credential)?;

        let mut action = self.passkey_action(target, bearer, &passkey)?;
        self.admit_created_action(tenant, &mut action).await?;
        if let ActionWrite::Create(_) = action {
            self.charge_device_action(&tenant.id, &passkey.id).await?;
        }

        let now = self.now();
        credential.counter = credential.counter.max(result.counter());
        credential.backup_state = result.backup_state();
        let updated = PasskeyRecord {
            counter: credential.counter,
            backed_up: credential.backup_state,
            credential: serde_json::to_value(&credential).map_err(|_| Error::Internal)?,
            last_verified_at: Some(now),
            ..passkey.clone()
        };
        let action = self
            .store
            .complete_passkey_sign_in(&PasskeySignIn {
                tenant_id: tenant.id.clone(),
                ceremony_id: ceremony.id.clone(),
                passkey: updated.clone(),
                previous_counter: passkey.counter,
                action,
                now,
            })
            .await?;
        let token = self.issue_token_at(tenant, &action, now)?;
        Ok(PasskeySignInResult {
            token,
            passkey: updated,
            action,
        })
    }

    /// Which action a passkey sign-in completes: as for an in-app verify (spec 3.4.4), with
    /// the passkey's owner in place of the key's.
    fn passkey_action(
        &self,
        target: &ChallengeTarget,
        bearer: Option<&VerifiedToken>,
        passkey: &PasskeyRecord,
    ) -> Result<ActionWrite> {
        let owned = |key: &ActionKey| {
            if key.user_id == passkey.user_id {
                Ok(())
            } else {
                Err(Error::UserMismatch)
            }
        };
        match (target, bearer) {
            (ChallengeTarget::TrackedAction(key), bearer) => {
                if bearer.is_some_and(|token| token.action != *key) {
                    return Err(Error::ChallengeMismatch);
                }
                owned(key)?;
                Ok(ActionWrite::Complete(key.clone()))
            }
            (ChallengeTarget::NewAction(code), None) => {
                self.new_user_action(code.clone(), &passkey.tenant_id, &passkey.user_id)
            }
            (ChallengeTarget::Unbound, None) => self.new_user_action(
                ActionCode::parse(DEFAULT_PASSKEY_ACTION_CODE)?,
                &passkey.tenant_id,
                &passkey.user_id,
            ),
            // Options without a token, answered with one: the ceremony decides.
            (ChallengeTarget::NewAction(_) | ChallengeTarget::Unbound, Some(_)) => {
                Err(Error::ChallengeMismatch)
            }
            (ChallengeTarget::PushCredentialUpdate { .. }, _) => Err(Error::ChallengeMismatch),
        }
    }

    /// The passkey with one of these credential ids (the SDK's `isAvailableOnDevice`), or
    /// `PasskeyNotRegistered`.
    pub async fn find_passkey(
        &self,
        tenant: &Tenant,
        credential_ids: &[String],
    ) -> Result<PasskeyRecord> {
        tenant.relying_party()?;
        // An id longer than any registered one (base64url of 1023 bytes) cannot be found.
        let possible = credential_ids
            .iter()
            .filter(|id| !id.is_empty() && id.len() <= MAX_CREDENTIAL_ID_BASE64_LENGTH);
        for id in possible.take(20) {
            if let Some(passkey) = self.store.get_passkey(&tenant.id, id).await? {
                return Ok(passkey);
            }
        }
        Err(Error::PasskeyNotRegistered)
    }
}

/// [`App::enrolment_rule`] for an action already read: whether `token` may still register a
/// passkey for it, and whether only as the user's first authenticator.
pub(crate) fn enrolment_rule_of(action: &Action, token: &VerifiedToken) -> Result<bool> {
    // spec 3.5: a token registers one passkey (its action is then completed).
    if action.enrolled_passkey_id.is_some() {
        return Err(Error::PasskeyTokenAlreadyUsed);
    }
    if !action.state.allows_enrolment() {
        return Err(Error::ActionForbidsEnrolment(action.state.as_str()));
    }
    Ok(!token.has_scope(ADD_AUTHENTICATORS_SCOPE) && !action.challenged_after_track())
}
