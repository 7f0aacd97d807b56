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
//!
//! | module | what it holds |
//! |---|---|
//! | this one | the commands and answers, and the steps the flows share (the live challenge, the device signature, the poll) |
//! | `push` | the browser's start and poll, the app's pending push; `push.created` through the [`crate::notify::Notifier`] port |
//! | `qr_code` | the kiosk's start and poll, the phone's claim |
//! | `answer` | approve or reject, for both |
//! | `push_credential` | the push token and expiry update (spec 3.4.5) |

use super::limits::{Source, signature_checked};
use super::tenants::Tenant;
use crate::App;
use crate::clock::Timestamp;
use crate::domain::{
    ActionCode, ActionKey, ApprovalChallenge, ApprovalId, ApprovalSlot, ApprovalState, ChallengeId,
    Credential, CredentialId, Namespace, UserId, UserProfile,
};
use crate::error::{Error, Result, Throttled};
use crate::signature::PublicKey;
use crate::token::{TokenRequest, VerifiedToken};
use subtle::ConstantTimeEq;

mod answer;
mod push;
mod push_credential;
mod qr_code;
pub mod server_claim;

/// How long a signed-read nonce stays fresh: it is valid in its own window and the next.
pub const PUSH_READ_NONCE_WINDOW_SECONDS: i64 = 60;

/// How many times a compare-and-swap is retried after losing to a concurrent writer.
pub(super) const CAS_ATTEMPTS: usize = 3;

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

pub(super) fn hash_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

pub(super) fn same_secret(a: &str, b: &str) -> bool {
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
            .get_credential_for_signature(&tenant.id, namespace, &key.fingerprint())
            .await?
            .filter(|c| c.expires_at.is_none_or(|at| at > now))
            .ok_or(Error::InvalidCredential)
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

    /// Spec 4.4: the device signs the challenge id. The rule every device signature follows
    /// (verified first, so a valid one is never throttled; only a bad one is counted) is
    /// [`signature_checked`]; what counting means for a push or QR code is
    /// [`App::count_failed_signature`].
    async fn check_device_signature(
        &self,
        challenge: &ApprovalChallenge,
        request: &SignedChallengeRequest,
        now: Timestamp,
    ) -> Result<()> {
        let verified = request
            .public_key
            .verify(challenge.id.as_str(), &request.signature);
        signature_checked(
            verified,
            self.count_failed_signature(challenge, request.source, now),
        )
        .await
    }

    /// A bad signature over a push or QR code (DESIGN 6: throttled, but it never ends or
    /// rejects a live challenge, so whoever knows only a public key cannot cancel the
    /// owner's approval). The first `max_failed_attempts` are counted on the challenge and
    /// answered `invalid_signature`; later ones get 429 until the challenge expires, and write
    /// nothing. Each counted one is also charged to the source address and the tenant.
    pub(super) async fn count_failed_signature(
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

    /// A token `/v1/validate` accepts for an action a challenge completed (push, QR code,
    /// passkey), issued now.
    pub(crate) fn issue_token_for(&self, tenant: &Tenant, action: &ActionKey) -> Result<String> {
        self.issue_token_at(tenant, action, self.now())
    }

    /// [`App::issue_token_for`] at `now`, for a use case that read its clock once.
    pub(crate) fn issue_token_at(
        &self,
        tenant: &Tenant,
        action: &ActionKey,
        now: crate::clock::Timestamp,
    ) -> Result<String> {
        Ok(tenant.keys.issue(
            TokenRequest {
                redirect_url: None,
                redirect_to_settings: false,
                action,
                scope: None,
                username: None,
                jti: &hex::encode(self.random_bytes::<16>()?),
            },
            now,
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
    //! `answer_version` is a private step: this test stays here, without the test kit (whose
    //! `shared::App` is another type than this crate's `App`), on the few lines of set-up it
    //! needs.

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Settings;
    use crate::domain::{ActionCode, TenantId, TrackContext};
    use crate::store::embedded::EmbeddedStore;
    use crate::usecase::credentials::AddCredential;
    use crate::usecase::tenants::ApiSecret;
    use crate::usecase::track::TrackCommand;
    use crate::webhook::WebhookNotifier;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use std::sync::Arc;

    /// An app on an in-memory store and a manual clock, and its one tenant (without a
    /// webhook: nothing is sent).
    async fn app_and_tenant() -> (App, Arc<Tenant>) {
        let settings = Settings::default();
        let app = App::new(
            crate::Ports {
                store: Arc::new(EmbeddedStore::in_memory().unwrap()),
                clock: Arc::new(ManualClock::new(Timestamp::from_unix_seconds(
                    1_790_000_000,
                ))),
                notifier: Arc::new(WebhookNotifier::for_settings(&settings)),
            },
            settings,
        );
        let id = TenantId::parse("tenant-test").unwrap();
        let secret = ApiSecret::parse("sk_test_0123456789abcdef").unwrap();
        app.ensure_tenant(&id, &secret).await.unwrap();
        let tenant = app.tenant_by_id(&id).await.unwrap();
        (app, tenant)
    }

    /// The token of a tracked `code` for alice, verified.
    async fn track_token(
        app: &App,
        tenant: &Tenant,
        code: &str,
        scope: Option<&str>,
    ) -> VerifiedToken {
        let command = TrackCommand {
            redirect_url: None,
            redirect_to_settings: false,
            user_id: UserId::parse("alice").unwrap(),
            action_code: ActionCode::parse(code).unwrap(),
            idempotency_key: None,
            context: TrackContext {
                scope: scope.map(str::to_owned),
                ..TrackContext::default()
            },
            username: None,
            email: None,
            phone_number: None,
        };
        let tracked = app.track(tenant, command).await.unwrap();
        tenant.keys.verify(&tracked.token, app.now()).unwrap()
    }

    /// A P-256 key pair and its public key; [`sign`] signs as the SDKs do (spec 4.4).
    fn key_pair() -> (EcdsaKeyPair, PublicKey) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = crate::signature::p256_spki(pair.public_key().as_ref());
        (pair, PublicKey::from_spki_der(&spki).unwrap())
    }

    fn sign(pair: &EcdsaKeyPair, message: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        let signature = pair.sign(&rng, message.as_bytes()).unwrap();
        crate::encoding::encode_standard(signature.as_ref())
    }

    /// A bad signature's failure count is a new version of the push. An answer that read
    /// the version before it loses its compare-and-swap (`ChallengeAlreadyUsed`), which
    /// `answer_challenge` takes as "read again", so the owner's approval still goes through
    /// (DESIGN 6: bad signatures never end a live challenge, nor make its answer fail).
    #[tokio::test]
    async fn an_answer_that_read_before_a_failure_count_is_tried_again() {
        let (app, tenant) = app_and_tenant().await;
        let (phone, phone_key) = key_pair();
        let enrol = track_token(
            &app,
            &tenant,
            "addAuthenticator",
            Some("add:authenticators"),
        )
        .await;
        let add = AddCredential {
            namespace: Namespace::Push,
            public_key: phone_key.clone(),
            device_name: Some("Test phone".into()),
            device_platform: Some("ios".into()),
            push_token: None,
        };
        let credential = app.add_credential(&tenant, &enrol, add).await.unwrap();
        let token = track_token(&app, &tenant, "signIn", None).await;
        let start = StartPush {
            action: None,
            credential: None,
            number_matching: false,
        };
        let started = app.start_push(&tenant, &token, start).await.unwrap();
        let slot = ApprovalSlot::Push(UserId::parse("alice").unwrap());
        let read = || app.store.get_approval(&tenant.id, &slot);
        let read_before = read().await.unwrap().unwrap();
        let answer = |signature: String| Answer {
            request: SignedChallengeRequest {
                namespace: Namespace::Push,
                challenge_id: started.challenge_id.clone(),
                public_key: phone_key.clone(),
                signature,
                source: None,
            },
            approved: true,
            verification_code: None,
            decision_signature: None,
        };
        // Someone who knows only the public key: a signature by another key.
        let (impostor, _) = key_pair();
        assert_eq!(
            app.answer_challenge(
                &tenant,
                answer(sign(&impostor, started.challenge_id.as_str()))
            )
            .await
            .unwrap_err(),
            Error::InvalidSignature
        );
        let owner = answer(sign(&phone, started.challenge_id.as_str()));
        assert_eq!(
            app.answer_version(&tenant, &owner, &credential, &read_before)
                .await
                .unwrap_err(),
            Error::ChallengeAlreadyUsed,
            "the stale read loses"
        );
        assert!(app.answer_challenge(&tenant, owner).await.unwrap());
        let approved = read().await.unwrap().unwrap();
        assert_eq!(approved.state, ApprovalState::Approved);
        assert_eq!(approved.failed_attempts, 1);
    }
}
