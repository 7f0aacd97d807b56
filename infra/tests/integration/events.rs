//! Events to the tenant's backend on the local server (issue #19, DESIGN 10): the real
//! `trusted-device serve` on the embedded store, a tenant configured with `tenant configure
//! --events-webhook-url`, and a receiver that is down (connections refused) while users enrol,
//! sign in, fail a challenge too often and remove their device, with the server SIGKILLed and
//! restarted in the middle. When the receiver comes up, every event arrives, signed with the
//! tenant's events secret, with a stable id: nothing was lost.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::rand::SecureRandom;
use serde_json::{Value, json};
use shared::domain::Namespace;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::usecase::Device;

use crate::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_trusted-device");
const TENANT: &str = "events-tenant";

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data_dir: &std::path::Path, secret: &str) -> Server {
    let port = free_port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("server.log"))
        .unwrap();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir.join("data"))
        .env("TRUSTED_DEVICE_TENANT_ID", TENANT)
        .env("TRUSTED_DEVICE_SECRET_KEY", secret)
        // Retries every 50 ms doubling to 400 ms, so the test does not wait minutes.
        .env("TRUSTED_DEVICE_EVENTS_RETRY_BASE_MS", "50")
        .env("TRUSTED_DEVICE_EVENTS_RETRY_MAX_MS", "400")
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    Server {
        child,
        base: format!("http://127.0.0.1:{port}/v1"),
    }
}

enum Auth<'a> {
    Secret(&'a str),
    Tenant,
    Bearer(&'a str),
}

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    auth: Auth<'_>,
    body: Value,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut request = http.request(method, format!("{base}{path}"));
    request = match auth {
        Auth::Secret(secret) => request.basic_auth(secret, Some("")),
        Auth::Tenant => request.basic_auth(TENANT, Some("")),
        Auth::Bearer(token) => request.bearer_auth(token),
    };
    let response = request
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `X-Signature-V2: t=<unix seconds>,v2=<base64 HMAC-SHA256(secret, "t.body")>` (spec 2.11),
/// checked here independently of the server's code.
fn signature_is_valid(header: &str, secret: &str, body: &[u8]) -> bool {
    let Some((t, v2)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v2="))
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    STANDARD_NO_PAD.encode(ring::hmac::sign(&key, &message).as_ref()) == v2
}

/// Waits until the server answers with its tenant in place: it listens before it has made the
/// tenant, and answers queued connections only afterwards.
async fn ready(base: &str, secret: &str) {
    let (status, body) = call(
        base,
        reqwest::Method::GET,
        "/users/readiness-probe",
        Auth::Secret(secret),
        json!({}),
    )
    .await;
    assert_ne!(status, 401, "the tenant exists: {body}");
}

type Received = tokio::sync::mpsc::UnboundedSender<(String, Vec<u8>)>;

async fn receive(
    axum::extract::State(received): axum::extract::State<Received>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let signature = headers
        .get("x-signature-v2")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = received.send((signature, body.to_vec()));
    axum::http::StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_after_the_receiver_was_down_and_the_server_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = format!("sk_events_{}", random_hex());
    let events_secret = format!("whsec_{}", random_hex());
    // Nothing listens here until the receiver starts: deliveries are refused.
    let receiver_port = free_port();
    let server = start_server(dir.path(), &secret);
    ready(&server.base, &secret).await;
    let configured = Command::new(BIN)
        .args(["tenant", "configure", "--tenant-id", TENANT, "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--events-webhook-url",
            &format!("http://127.0.0.1:{receiver_port}/events"),
        ])
        .env("TRUSTED_DEVICE_EVENTS_WEBHOOK_SECRET", &events_secret)
        .output()
        .unwrap();
    assert!(
        configured.status.success(),
        "{}",
        String::from_utf8_lossy(&configured.stderr)
    );

    // What the backend and the device do, as the SDKs would.
    let base = server.base.clone();
    let device = Device::new(Namespace::InApp);
    let post = reqwest::Method::POST;
    let (status, enrol) = call(
        &base,
        post.clone(),
        "/users/alice/actions/addAuthenticator",
        Auth::Secret(&secret),
        json!({"idempotencyKey": "enrol-1"}),
    )
    .await;
    assert_eq!(status, 200, "{enrol}");
    let (status, added) = call(
        &base,
        post.clone(),
        "/client/user-authenticators/in-app",
        Auth::Bearer(enrol["token"].as_str().unwrap()),
        json!({"publicKey": device.public_key.to_base64(), "deviceName": "Pixel 9"}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let authenticator = added["userAuthenticatorId"].as_str().unwrap().to_owned();

    // A sign-in, verified.
    let (status, sign_in) = call(
        &base,
        post.clone(),
        "/users/alice/actions/signIn",
        Auth::Secret(&secret),
        json!({"idempotencyKey": "sign-in-1"}),
    )
    .await;
    assert_eq!(
        (status, sign_in["state"].as_str()),
        (200, Some("CHALLENGE_REQUIRED"))
    );
    let (_, challenge) = call(
        &base,
        post.clone(),
        "/client/challenge",
        Auth::Tenant,
        json!({}),
    )
    .await;
    let challenge_id = challenge["challengeId"].as_str().unwrap();
    let (status, verified) = call(
        &base,
        post.clone(),
        "/client/verify/in-app",
        Auth::Bearer(sign_in["token"].as_str().unwrap()),
        json!({
            "challengeId": challenge_id,
            "publicKey": device.public_key.to_base64(),
            "signature": device.sign(challenge_id),
        }),
    )
    .await;
    assert_eq!(status, 200, "{verified}");

    // A second sign-in whose challenge gets five bad signatures (the default limit).
    let (_, attacked) = call(
        &base,
        post.clone(),
        "/users/alice/actions/signIn",
        Auth::Secret(&secret),
        json!({"idempotencyKey": "sign-in-2"}),
    )
    .await;
    let (_, challenge) = call(
        &base,
        post.clone(),
        "/client/challenge",
        Auth::Tenant,
        json!({}),
    )
    .await;
    let attacked_challenge = challenge["challengeId"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let (status, refused) = call(
            &base,
            post.clone(),
            "/client/verify/in-app",
            Auth::Bearer(attacked["token"].as_str().unwrap()),
            json!({
                "challengeId": attacked_challenge,
                "publicKey": device.public_key.to_base64(),
                "signature": device.sign("something else"),
            }),
        )
        .await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["errorCode"], "invalid_signature", "{refused}");
    }

    // The receiver is still down: the changes wait in the outbox, having been tried.
    let (store, _) = shared::store::embedded::EmbeddedStore::open_data_dir(
        &dir.path().join("data"),
        shared::store::embedded::Durability::Normal,
    )
    .unwrap();
    assert!(store.outbox_len().unwrap() >= 6, "the outbox holds them");
    drop(store);

    // The server dies with undelivered events and comes back.
    drop(server);
    let server = start_server(dir.path(), &secret);
    let base = server.base.clone();
    ready(&base, &secret).await;
    let (status, removed) = call(
        &base,
        reqwest::Method::DELETE,
        &format!("/users/alice/authenticators/{authenticator}"),
        Auth::Secret(&secret),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{removed}");

    // The receiver comes up.
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(sender);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // (type, what it is about) → the ids it was delivered with.
    let enrolled = format!("enrol-1 {}", enrol["state"].as_str().unwrap());
    let expected: BTreeSet<(String, String)> = [
        ("authenticator.created", authenticator.as_str()),
        ("authenticator.deleted", authenticator.as_str()),
        ("action.state_changed", enrolled.as_str()),
        ("action.state_changed", "sign-in-1 CHALLENGE_REQUIRED"),
        ("action.state_changed", "sign-in-1 CHALLENGE_SUCCEEDED"),
        ("action.state_changed", "sign-in-2 CHALLENGE_REQUIRED"),
        ("challenge.attempts_exceeded", "IN_APP 5"),
    ]
    .into_iter()
    .map(|(kind, about)| (kind.to_owned(), about.to_owned()))
    .collect();
    let mut seen: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !expected.iter().all(|key| seen.contains_key(key)) {
        let (signature, body) = tokio::time::timeout_at(deadline, received.recv())
            .await
            .unwrap_or_else(|_| panic!("events missing; got {seen:?}"))
            .unwrap();
        assert!(
            signature_is_valid(&signature, &events_secret, &body),
            "signed with the events secret: {signature}"
        );
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["version"], 1, "{event}");
        assert_eq!(event["tenantId"], TENANT, "{event}");
        assert_eq!(event["source"], "https://authsignal.com", "{event}");
        let data = &event["data"];
        let about = match event["type"].as_str().unwrap() {
            "authenticator.created" | "authenticator.deleted" => {
                assert_eq!(data["userId"], "alice", "{event}");
                assert_eq!(data["verificationMethod"], "DEVICE", "{event}");
                data["userAuthenticatorId"].as_str().unwrap().to_owned()
            }
            "action.state_changed" => format!(
                "{} {}",
                data["idempotencyKey"].as_str().unwrap(),
                data["state"].as_str().unwrap()
            ),
            "challenge.attempts_exceeded" => format!(
                "{} {}",
                data["challengeType"].as_str().unwrap(),
                data["failedAttempts"]
            ),
            other => panic!("unexpected event type {other}: {event}"),
        };
        seen.entry((event["type"].as_str().unwrap().to_owned(), about))
            .or_default()
            .insert(event["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "exactly these events"
    );
    // At least once, never under two ids: a redelivery carries the id of the first delivery.
    for (key, ids) in &seen {
        assert_eq!(ids.len(), 1, "{key:?} arrived with ids {ids:?}");
    }
    let all_ids: BTreeSet<&String> = seen.values().flatten().collect();
    assert_eq!(all_ids.len(), expected.len(), "every event has its own id");
    drop(server);
}

const PASSKEY_ORIGIN: &str = "http://localhost:5173";
const PASSKEY_RP_ID: &str = "localhost";

/// What `@authsignal/browser`'s `passkey.signUp({token})` sends: registration options, then
/// `navigator.credentials.create()` (the software authenticator) and the registration.
async fn sign_up_with_passkey(
    base: &str,
    token: &str,
    passkey: &mut testkit::soft_passkey::SoftPasskey,
) -> Value {
    let post = reqwest::Method::POST;
    let (status, options) = call(
        base,
        post.clone(),
        "/client/user-authenticators/passkey/registration-options",
        Auth::Bearer(token),
        json!({"username": "alice@example.com", "authenticatorAttachment": "platform"}),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let credential = passkey.create(&options["options"]);
    let (status, added) = call(
        base,
        post,
        "/client/user-authenticators/passkey",
        Auth::Bearer(token),
        json!({
            "registrationCredential": credential,
            "challengeId": options["challengeId"],
            "conditionalCreate": false,
        }),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    added
}

/// spec 3.5, DESIGN 10: a passkey is an authenticator, so registering one and removing it
/// (`deleteAuthenticator` of the Server API) are `authenticator.created` and
/// `authenticator.deleted` with `PASSKEY` and the id `getAuthenticators` shows, while a
/// sign-in with it (a new counter and last use) is no authenticator event.
///
/// The receiver answers every delivery with 200, so nothing is redelivered. The worker
/// delivers the rows of a pass at once, in any order, so once the removal has arrived the test
/// waits for the outbox to be empty: then every change has been delivered (a row goes only
/// after its receiver answered), and a second `authenticator.created` would be among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_registered_and_removed_is_reported_and_its_sign_in_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let secret = format!("sk_events_{}", random_hex());
    let events_secret = format!("whsec_{}", random_hex());
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let receiver_port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(sender);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = start_server(dir.path(), &secret);
    let base = server.base.clone();
    ready(&base, &secret).await;
    let configured = Command::new(BIN)
        .args(["tenant", "configure", "--tenant-id", TENANT, "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--events-webhook-url",
            &format!("http://127.0.0.1:{receiver_port}/events"),
            "--passkey-rp-id",
            PASSKEY_RP_ID,
            "--passkey-origin",
            PASSKEY_ORIGIN,
        ])
        .env("TRUSTED_DEVICE_EVENTS_WEBHOOK_SECRET", &events_secret)
        .output()
        .unwrap();
    assert!(
        configured.status.success(),
        "{}",
        String::from_utf8_lossy(&configured.stderr)
    );

    // The backend tracks a sign-up; the browser registers a passkey with its token.
    let post = reqwest::Method::POST;
    let (status, sign_up) = call(
        &base,
        post.clone(),
        "/users/alice/actions/signUp",
        Auth::Secret(&secret),
        json!({"idempotencyKey": "sign-up-1"}),
    )
    .await;
    assert_eq!(status, 200, "{sign_up}");
    let mut passkey = testkit::soft_passkey::SoftPasskey::new(PASSKEY_ORIGIN, PASSKEY_RP_ID);
    let added = sign_up_with_passkey(&base, sign_up["token"].as_str().unwrap(), &mut passkey).await;
    assert_eq!(added["userAuthenticator"]["verificationMethod"], "PASSKEY");
    let authenticator = added["userAuthenticator"]["userAuthenticatorId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The Server API lists the passkey under that id (`getAuthenticators`).
    let (status, listed) = call(
        &base,
        reqwest::Method::GET,
        "/users/alice/authenticators",
        Auth::Secret(&secret),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["userAuthenticatorId"], authenticator.as_str());

    // A sign-in with the passkey: its counter and last use change.
    let (status, sign_in) = call(
        &base,
        post.clone(),
        "/users/alice/actions/signIn",
        Auth::Secret(&secret),
        json!({"idempotencyKey": "sign-in-1"}),
    )
    .await;
    assert_eq!(
        (status, sign_in["state"].as_str()),
        (200, Some("CHALLENGE_REQUIRED")),
        "{sign_in}"
    );
    let token = sign_in["token"].as_str().unwrap();
    let (status, options) = call(
        &base,
        post.clone(),
        "/client/user-authenticators/passkey/authentication-options",
        Auth::Bearer(token),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let assertion = passkey.get(&options["options"]);
    let (status, verified) = call(
        &base,
        post.clone(),
        "/client/verify/passkey",
        Auth::Bearer(token),
        json!({
            "authenticationCredential": assertion,
            "challengeId": options["challengeId"],
            "deviceId": "anonymous-id",
        }),
    )
    .await;
    assert_eq!(
        (status, &verified["isVerified"]),
        (200, &json!(true)),
        "{verified}"
    );

    // The backend removes it, as `@authsignal/node`'s `deleteAuthenticator` does.
    let (status, removed) = call(
        &base,
        reqwest::Method::DELETE,
        &format!("/users/alice/authenticators/{authenticator}"),
        Auth::Secret(&secret),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{removed}");

    // Every delivery, in the order received, until the removal.
    let mut deliveries: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !deliveries
        .iter()
        .any(|event| event["type"] == "authenticator.deleted")
    {
        let (signature, body) = tokio::time::timeout_at(deadline, received.recv())
            .await
            .unwrap_or_else(|_| panic!("the removal did not arrive; got {deliveries:?}"))
            .unwrap();
        assert!(
            signature_is_valid(&signature, &events_secret, &body),
            "signed with the events secret: {signature}"
        );
        deliveries.push(serde_json::from_slice(&body).unwrap());
    }
    let (store, _) = shared::store::embedded::EmbeddedStore::open_data_dir(
        &dir.path().join("data"),
        shared::store::embedded::Durability::Normal,
    )
    .unwrap();
    while store.outbox_len().unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox did not empty; got {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(store);
    while let Ok((_, body)) = received.try_recv() {
        deliveries.push(serde_json::from_slice(&body).unwrap());
    }
    let of_type = |kind: &str| -> Vec<&Value> {
        deliveries
            .iter()
            .filter(|event| event["type"] == kind)
            .collect()
    };
    let created = of_type("authenticator.created");
    assert_eq!(
        created.len(),
        1,
        "one, not one more at the sign-in: {deliveries:?}"
    );
    let deleted = of_type("authenticator.deleted");
    assert_eq!(deleted.len(), 1, "{deliveries:?}");
    for event in [created[0], deleted[0]] {
        assert_eq!(event["version"], 1, "{event}");
        assert_eq!(event["tenantId"], TENANT, "{event}");
        assert_eq!(event["source"], "https://authsignal.com", "{event}");
        let data = &event["data"];
        assert_eq!(data["userId"], "alice", "{event}");
        assert_eq!(
            data["userAuthenticatorId"],
            authenticator.as_str(),
            "{event}"
        );
        assert_eq!(data["verificationMethod"], "PASSKEY", "{event}");
        assert_eq!(
            data["webauthnCredential"]["credentialId"],
            passkey.id(),
            "{event}"
        );
    }
    assert!(
        deleted[0]["data"]["deletedAt"].is_string(),
        "{}",
        deleted[0]
    );
    assert_ne!(created[0]["id"], deleted[0]["id"]);

    // The registration completed the sign-up (spec 3.5) and the sign-in completed its action,
    // each reported once with the passkey as how; no other event was made.
    let states: BTreeSet<String> = of_type("action.state_changed")
        .iter()
        .map(|event| {
            let data = &event["data"];
            if data["state"] == "CHALLENGE_SUCCEEDED" {
                assert_eq!(data["verificationMethod"], "PASSKEY", "{event}");
                assert_eq!(
                    data["userAuthenticatorId"],
                    authenticator.as_str(),
                    "{event}"
                );
            }
            format!(
                "{} {}",
                data["idempotencyKey"].as_str().unwrap(),
                data["state"].as_str().unwrap()
            )
        })
        .collect();
    let signed_up = format!("sign-up-1 {}", sign_up["state"].as_str().unwrap());
    assert_eq!(
        states,
        [
            signed_up.as_str(),
            "sign-up-1 CHALLENGE_SUCCEEDED",
            "sign-in-1 CHALLENGE_REQUIRED",
            "sign-in-1 CHALLENGE_SUCCEEDED",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect(),
        "{deliveries:?}"
    );
    assert_eq!(
        deliveries.len(),
        2 + states.len(),
        "nothing else, nothing twice: {deliveries:?}"
    );
    drop(server);
}
