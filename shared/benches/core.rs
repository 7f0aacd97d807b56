//! CPU cost of the pieces of a request and of the in-app flow's use cases, on the in-memory
//! store (no disk, no network): `cargo bench -p trusted-device-shared --bench core`.
//! Results and method: docs/performance.md.

use criterion::{Criterion, criterion_group, criterion_main};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use shared::App;
use shared::clock::SystemClock;
use shared::config::Settings;
use shared::domain::{
    ActionCode, ActionKey, IdempotencyKey, Namespace, TenantId, TrackContext, UserId,
};
use shared::encoding;
use shared::signature::PublicKey;
use shared::store::embedded::EmbeddedStore;
use shared::token::{TenantKeys, TokenRequest};
use shared::usecase::challenges::{ChallengeStarter, VerifyCommand};
use shared::usecase::credentials::AddCredential;
use shared::usecase::tenants::{ApiSecret, Tenant};
use shared::usecase::track::TrackCommand;
use shared::usecase::validate::ValidateCommand;
use std::hint::black_box;
use std::sync::Arc;

struct DeviceKey {
    pair: EcdsaKeyPair,
    public_key: PublicKey,
}

impl DeviceKey {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = shared::signature::p256_spki(pair.public_key().as_ref());
        DeviceKey {
            public_key: PublicKey::from_spki_der(&spki).unwrap(),
            pair,
        }
    }

    fn sign(&self, message: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        encoding::encode_standard(self.pair.sign(&rng, message.as_bytes()).unwrap().as_ref())
    }
}

fn action() -> ActionKey {
    ActionKey {
        user_id: UserId::parse("bench-user").unwrap(),
        action_code: ActionCode::parse("signIn").unwrap(),
        idempotency_key: IdempotencyKey::parse("bench-key").unwrap(),
    }
}

fn tokens_and_signatures(c: &mut Criterion) {
    let record = shared::domain::SigningKeyRecord {
        kid: "k".into(),
        secret: encoding::encode_standard(&[3; 32]),
        created_at: None,
        retire_at: None,
    };
    let keys = TenantKeys::new(&TenantId::parse("bench").unwrap(), &[record]).unwrap();
    let now = shared::clock::Clock::now(&SystemClock);
    let key = action();
    let request = || TokenRequest {
        redirect_url: None,
        redirect_to_settings: false,
        action: &key,
        scope: None,
        username: None,
        jti: "0123456789abcdef",
    };
    c.bench_function("token/issue", |b| {
        b.iter(|| black_box(keys.issue(request(), now, 600)))
    });
    let token = keys.issue(request(), now, 600);
    c.bench_function("token/verify", |b| {
        b.iter(|| black_box(keys.verify(black_box(&token), now).unwrap()))
    });

    let device = DeviceKey::new();
    let message = "c1.eyJ0IjoiYmVuY2gifQ.bWFj";
    let signature = device.sign(message);
    c.bench_function("signature/p256_verify", |b| {
        b.iter(|| {
            device
                .public_key
                .verify(black_box(message), black_box(&signature))
                .unwrap()
        })
    });
}

const BENCH_SECRET: &str = "sk_bench_0123456789abcdef";

struct Flow {
    app: App,
    tenant: Arc<Tenant>,
    device: DeviceKey,
}

async fn flow_setup() -> Flow {
    let store = Arc::new(EmbeddedStore::in_memory().unwrap());
    let app = testkit::app(store, Arc::new(SystemClock), Settings::default());
    let id = TenantId::parse("bench").unwrap();
    app.ensure_tenant(&id, &ApiSecret::parse(BENCH_SECRET).unwrap())
        .await
        .unwrap();
    let tenant = app.tenant_by_id(&id).await.unwrap();
    let device = DeviceKey::new();
    let enrol = app
        .track(&tenant, track_command("addAuthenticator"))
        .await
        .unwrap();
    let token = tenant.keys.verify(&enrol.token, app.now()).unwrap();
    let add = AddCredential {
        namespace: Namespace::InApp,
        public_key: device.public_key.clone(),
        device_name: None,
        device_platform: None,
        push_token: None,
    };
    app.add_credential(&tenant, &token, add).await.unwrap();
    Flow {
        app,
        tenant,
        device,
    }
}

fn track_command(code: &str) -> TrackCommand {
    TrackCommand {
        redirect_url: None,
        redirect_to_settings: false,
        user_id: UserId::parse("bench-user").unwrap(),
        action_code: ActionCode::parse(code).unwrap(),
        idempotency_key: None,
        context: TrackContext::default(),
        username: None,
        email: None,
        phone_number: None,
    }
}

/// One whole in-app flow: track, challenge, device signature (not timed work of the server,
/// but done here), verify, validate.
async fn full_flow(flow: &Flow, signature_for: impl Fn(&str) -> String) {
    let app = &flow.app;
    let tracked = app
        .track(&flow.tenant, track_command("signIn"))
        .await
        .unwrap();
    let token = flow.tenant.keys.verify(&tracked.token, app.now()).unwrap();
    let challenge = app
        .start_challenge(&flow.tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();
    let command = VerifyCommand {
        namespace: Namespace::InApp,
        signature: signature_for(challenge.id.as_str()),
        challenge_id: challenge.id,
        public_key: flow.device.public_key.clone(),
        source: None,
    };
    let verified = app
        .verify_challenge(&flow.tenant, Some(&token), command)
        .await
        .unwrap();
    let validated = app
        .validate(
            &flow.tenant,
            ValidateCommand {
                token: verified.token,
                user_id: None,
                action: None,
            },
        )
        .await
        .unwrap();
    black_box(validated);
}

fn use_cases(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let flow = runtime.block_on(flow_setup());
    let flow = &flow;

    // Who is calling, as every request of a flow asks it (spec 2.1): with the tenant cached,
    // the embedded store checks the stored revision so that a change made by the CLI applies
    // at once (DESIGN 5). Four of these per full flow.
    c.bench_function("tenant/by_secret_cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(flow.app.tenant_by_secret(BENCH_SECRET).await.unwrap()) })
    });
    c.bench_function("usecase/track", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                flow.app
                    .track(&flow.tenant, track_command("signIn"))
                    .await
                    .unwrap(),
            )
        })
    });
    c.bench_function("usecase/start_challenge", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                flow.app
                    .start_challenge(&flow.tenant, ChallengeStarter::Tenant, None)
                    .await
                    .unwrap(),
            )
        })
    });
    let validate_token = {
        let tracked = runtime
            .block_on(flow.app.track(&flow.tenant, track_command("signIn")))
            .unwrap();
        tracked.token
    };
    c.bench_function("usecase/validate", |b| {
        b.to_async(&runtime).iter(|| async {
            let command = ValidateCommand {
                token: validate_token.clone(),
                user_id: None,
                action: None,
            };
            black_box(flow.app.validate(&flow.tenant, command).await.unwrap())
        })
    });
    c.bench_function("usecase/verify_challenge", |b| {
        b.to_async(&runtime).iter_custom(|iterations| async move {
            let mut timed = std::time::Duration::ZERO;
            for _ in 0..iterations {
                // Not timed: the track, the challenge and the device's signature.
                let tracked = flow
                    .app
                    .track(&flow.tenant, track_command("signIn"))
                    .await
                    .unwrap();
                let token = flow
                    .tenant
                    .keys
                    .verify(&tracked.token, flow.app.now())
                    .unwrap();
                let challenge = flow
                    .app
                    .start_challenge(&flow.tenant, ChallengeStarter::Tenant, None)
                    .await
                    .unwrap();
                let command = VerifyCommand {
                    namespace: Namespace::InApp,
                    signature: flow.device.sign(challenge.id.as_str()),
                    challenge_id: challenge.id,
                    public_key: flow.device.public_key.clone(),
                    source: None,
                };
                let started = std::time::Instant::now();
                black_box(
                    flow.app
                        .verify_challenge(&flow.tenant, Some(&token), command)
                        .await
                        .unwrap(),
                );
                timed += started.elapsed();
            }
            timed
        })
    });
    // A whole flow with a precomputed signature cost removed from the device side is not
    // possible (the challenge is new each time), so this includes one device ECDSA *sign*.
    c.bench_function("usecase/full_in_app_flow_including_device_sign", |b| {
        b.to_async(&runtime)
            .iter(|| full_flow(flow, |id| flow.device.sign(id)))
    });
}

/// Push and QR-code approval, the server's side only: the device's signatures are made
/// outside the timed part. The push rate limit's window is zero, so that one user can be
/// pushed to without end (and the slot's start history stays empty, as for a real user).
fn approvals(c: &mut Criterion) {
    use shared::domain::ApprovalId;
    use shared::usecase::approvals::{
        Answer, QrStarter, SignedChallengeRequest, StartPush, StartQrCode,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The flows are timed, not the limits: lift the per-address and per-tenant ones (the
    // bench starts thousands of QR codes from one process), keep their cost (one write each).
    let settings = Settings {
        push_start_window_seconds: 0,
        anonymous_qr_starts_per_source: u32::MAX,
        anonymous_qr_live_cap: u32::MAX,
        ..Settings::default()
    };
    let (app, tenant, device) = runtime.block_on(async {
        let store = Arc::new(EmbeddedStore::in_memory().unwrap());
        let app = testkit::app(store, Arc::new(SystemClock), settings);
        let id = TenantId::parse("bench").unwrap();
        app.ensure_tenant(&id, &ApiSecret::parse(BENCH_SECRET).unwrap())
            .await
            .unwrap();
        let tenant = app.tenant_by_id(&id).await.unwrap();
        let device = DeviceKey::new();
        let mut enrol = track_command("addAuthenticator");
        enrol.context.scope = Some("add:authenticators".into());
        let enrol = app.track(&tenant, enrol).await.unwrap();
        let token = tenant.keys.verify(&enrol.token, app.now()).unwrap();
        for namespace in [Namespace::Push, Namespace::QrCode] {
            let add = AddCredential {
                namespace,
                public_key: device.public_key.clone(),
                device_name: None,
                device_platform: None,
                push_token: None,
            };
            app.add_credential(&tenant, &token, add).await.unwrap();
        }
        (app, tenant, device)
    });
    let (app, tenant, device) = (&app, &tenant, &device);
    let signed = |namespace: Namespace, id: &ApprovalId| SignedChallengeRequest {
        namespace,
        challenge_id: id.clone(),
        public_key: device.public_key.clone(),
        signature: device.sign(id.as_str()),
        source: None,
    };

    c.bench_function("usecase/push_flow_server_side", |b| {
        b.to_async(&runtime).iter_custom(|iterations| async move {
            let mut timed = std::time::Duration::ZERO;
            for _ in 0..iterations {
                let tracked = app.track(tenant, track_command("signIn")).await.unwrap();
                let token = tenant.keys.verify(&tracked.token, app.now()).unwrap();
                let started_at = std::time::Instant::now();
                let start = StartPush {
                    action: None,
                    credential: None,
                    number_matching: false,
                };
                let started = app.start_push(tenant, &token, start).await.unwrap();
                black_box(
                    app.pending_push(tenant, Namespace::Push, &device.public_key, None)
                        .await
                        .unwrap(),
                );
                timed += started_at.elapsed();
                let request = signed(Namespace::Push, &started.challenge_id);
                let answer = Answer {
                    request,
                    approved: true,
                    verification_code: None,
                    decision_signature: None,
                };
                let answered_at = std::time::Instant::now();
                assert!(app.answer_challenge(tenant, answer).await.unwrap());
                let polled = app
                    .poll_push(tenant, &token, &started.challenge_id)
                    .await
                    .unwrap();
                timed += answered_at.elapsed();
                black_box(polled);
            }
            timed
        })
    });
    c.bench_function("usecase/qr_code_flow_server_side", |b| {
        b.to_async(&runtime).iter_custom(|iterations| async move {
            let mut timed = std::time::Duration::ZERO;
            for _ in 0..iterations {
                let started_at = std::time::Instant::now();
                let start = StartQrCode {
                    action: Some(ActionCode::parse("kioskSignIn").unwrap()),
                    custom: None,
                    user_agent: None,
                    ip_address: None,
                    source: None,
                    number_matching: false,
                };
                let started = app
                    .start_qr_code(tenant, QrStarter::Tenant, start)
                    .await
                    .unwrap();
                timed += started_at.elapsed();
                let claim = signed(Namespace::QrCode, &started.challenge_id);
                let answer = Answer {
                    request: signed(Namespace::QrCode, &started.challenge_id),
                    approved: true,
                    verification_code: None,
                    decision_signature: None,
                };
                let claimed_at = std::time::Instant::now();
                black_box(app.claim_qr_code(tenant, claim).await.unwrap());
                assert!(app.answer_challenge(tenant, answer).await.unwrap());
                let polled = app
                    .poll_qr_code(tenant, &started.challenge_id, &started.device_code)
                    .await
                    .unwrap();
                timed += claimed_at.elapsed();
                black_box(polled);
            }
            timed
        })
    });
}

criterion_group!(benches, tokens_and_signatures, use_cases, approvals);
criterion_main!(benches);
