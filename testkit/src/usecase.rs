//! Test helpers for the use cases: an app on the in-memory store with a manual clock and a
//! recording notifier, a tenant, and devices that hold real P-256 keys and sign the way the
//! SDKs do. Only the public API of `shared`: the tests that use it are integration tests
//! (`shared/tests/usecases`).

use crate::notify::RecordingNotifier;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use shared::App;
use shared::clock::{ManualClock, Timestamp};
use shared::config::Settings;
use shared::domain::{
    ActionCode, Challenge, Credential, IdempotencyKey, Namespace, TenantId, TrackContext, UserId,
};
use shared::encoding;
use shared::error::Result;
use shared::signature::PublicKey;
use shared::store::embedded::EmbeddedStore;
use shared::token::VerifiedToken;
use shared::usecase::challenges::{ChallengeStarter, VerifyCommand, VerifyResult};
use shared::usecase::credentials::AddCredential;
use shared::usecase::tenants::{ApiSecret, Tenant};
use shared::usecase::track::{TrackCommand, TrackResult};
use std::sync::Arc;

pub struct Kit {
    pub app: App,
    /// The app's store, for what a test reads or arranges below the use cases.
    pub store: Arc<EmbeddedStore>,
    pub clock: Arc<ManualClock>,
    /// What the app notified (`push.created`); it accepts everything unless told to fail.
    pub notifier: Arc<RecordingNotifier>,
    pub tenant: Arc<Tenant>,
    pub secret: ApiSecret,
}

impl Kit {
    pub async fn new() -> Kit {
        Self::with_settings(Settings::default()).await
    }

    pub async fn with_settings(settings: Settings) -> Kit {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_seconds(
            1_790_000_000,
        )));
        let store = Arc::new(EmbeddedStore::in_memory().unwrap());
        let notifier = Arc::new(RecordingNotifier::default());
        let app = App::new(
            shared::Ports {
                store: store.clone(),
                clock: clock.clone(),
                notifier: notifier.clone(),
            },
            settings,
        );
        let secret = ApiSecret::parse("sk_test_0123456789abcdef").unwrap();
        let id = TenantId::parse("tenant-test").unwrap();
        app.ensure_tenant(&id, &secret).await.unwrap();
        let tenant = app.tenant_by_id(&id).await.unwrap();
        Kit {
            app,
            store,
            clock,
            notifier,
            tenant,
            secret,
        }
    }

    pub fn user(&self, name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    pub async fn track(
        &self,
        user: &str,
        code: &str,
        idempotency_key: Option<&str>,
    ) -> TrackResult {
        self.track_with_scope(user, code, idempotency_key, None)
            .await
    }

    async fn track_with_scope(
        &self,
        user: &str,
        code: &str,
        idempotency_key: Option<&str>,
        scope: Option<&str>,
    ) -> TrackResult {
        let command = TrackCommand {
            redirect_url: None,
            redirect_to_settings: false,
            user_id: self.user(user),
            action_code: ActionCode::parse(code).unwrap(),
            idempotency_key: idempotency_key.map(|k| IdempotencyKey::parse(k).unwrap()),
            context: TrackContext {
                scope: scope.map(str::to_owned),
                ..Default::default()
            },
            username: None,
            email: None,
            phone_number: None,
        };
        self.app.track(&self.tenant, command).await.unwrap()
    }

    pub async fn track_token(&self, user: &str, code: &str, scope: Option<&str>) -> VerifiedToken {
        let tracked = self.track_with_scope(user, code, None, scope).await;
        self.tenant
            .keys
            .verify(&tracked.token, self.app.now())
            .unwrap()
    }

    /// Registers a new in-app device for `user`.
    pub async fn enroll(&self, user: &str) -> EnrolledDevice {
        let device = Device::new(Namespace::InApp);
        let token = self
            .track_token(user, "addAuthenticator", Some("add:authenticators"))
            .await;
        let credential = self
            .app
            .add_credential(&self.tenant, &token, device.add_command())
            .await
            .unwrap();
        EnrolledDevice { device, credential }
    }

    /// The in-app flow of spec 3.4.4: an anonymous challenge, then verify with the token.
    pub async fn verify_with(
        &self,
        device: &Device,
        token: &VerifiedToken,
    ) -> Result<VerifyResult> {
        let challenge = self
            .app
            .start_challenge(&self.tenant, ChallengeStarter::Tenant, None)
            .await?;
        self.app
            .verify_challenge(&self.tenant, Some(token), device.verify_command(&challenge))
            .await
    }
}

/// A device key pair, as the Secure Enclave or Android Keystore would hold it.
pub struct Device {
    pub namespace: Namespace,
    pair: EcdsaKeyPair,
    pub public_key: PublicKey,
}

impl Device {
    pub fn new(namespace: Namespace) -> Device {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = shared::signature::p256_spki(pair.public_key().as_ref());
        let public_key = PublicKey::from_spki_der(&spki).unwrap();
        Device {
            namespace,
            pair,
            public_key,
        }
    }

    /// Standard base64 of a DER signature over the UTF-8 message (spec 4.4).
    pub fn sign(&self, message: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        let signature = self.pair.sign(&rng, message.as_bytes()).unwrap();
        encoding::encode_standard(signature.as_ref())
    }

    pub fn add_command(&self) -> AddCredential {
        AddCredential {
            namespace: self.namespace,
            public_key: self.public_key.clone(),
            device_name: Some("Test phone".into()),
            device_platform: Some("ios".into()),
            push_token: None,
        }
    }

    pub fn verify_command(&self, challenge: &Challenge) -> VerifyCommand {
        VerifyCommand {
            namespace: self.namespace,
            challenge_id: challenge.id.clone(),
            public_key: self.public_key.clone(),
            signature: self.sign(challenge.id.as_str()),
            source: None,
        }
    }
}

pub struct EnrolledDevice {
    pub device: Device,
    pub credential: Credential,
}

impl std::ops::Deref for EnrolledDevice {
    type Target = Device;
    fn deref(&self) -> &Device {
        &self.device
    }
}
