//! The real `trusted-device serve` on the embedded store, killed with SIGKILL at random moments
//! while users run full in-app flows (track, challenge, verify, validate), and restarted each
//! time. Afterwards:
//! - every write answered 200 is there: each acknowledged track's action exists, each
//!   acknowledged verify's action is `CHALLENGE_SUCCEEDED`;
//! - nothing half-done is visible: an action is `CHALLENGE_SUCCEEDED` only with its challenge
//!   used up (the challenge cannot verify again), and an action still `CHALLENGE_REQUIRED`
//!   never has its challenge used up (a retry of that verify succeeds);
//! - no challenge verified twice, across the crashes.
//!
//! Half the starts run at `--durability full`, whose writes go through group commit.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_trusted-device");
const TENANT: &str = "crash-tenant";

/// A random secret: the server refuses a guessable `--secret-key`.
fn secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| format!("sk_crash_{:016x}{:016x}", random_u64(), random_u64()))
}
const USERS: usize = 6;
const KILLS: usize = 16;

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

/// Every other start runs at `--durability full` (group commit), the others at the default.
fn start_server(port: u16, data_dir: &std::path::Path, full: bool) -> Child {
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
        .args(["--durability", if full { "full" } else { "normal" }])
        .env("TRUSTED_DEVICE_TENANT_ID", TENANT)
        .env("TRUSTED_DEVICE_SECRET_KEY", secret())
        .env("RUST_LOG", "warn")
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
    child
}

struct Device {
    pair: EcdsaKeyPair,
    public_key: String,
}

impl Device {
    fn new() -> Device {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public_key = STANDARD.encode(shared::signature::p256_spki(pair.public_key().as_ref()));
        Device { pair, public_key }
    }

    fn sign(&self, message: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        STANDARD.encode(self.pair.sign(&rng, message.as_bytes()).unwrap().as_ref())
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Secret,
    Tenant,
    Bearer(&'a str),
}

/// One request; `Err` when the server did not answer (killed, restarting).
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut request = http.request(method, format!("{base}{path}"));
    request = match auth {
        Auth::Secret => request.basic_auth(secret(), Some("")),
        Auth::Tenant => request.basic_auth(TENANT, Some("")),
        Auth::Bearer(token) => request.bearer_auth(token),
    };
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// What one user's flows did, as the clients saw it.
#[derive(Default)]
struct Seen {
    /// Idempotency keys of tracks answered 200, with their track token.
    tracked: Vec<(String, String)>,
    /// Idempotency keys whose verify was answered 200.
    verified: Vec<String>,
    /// Every challenge sent to verify, with the key of its action and the track token.
    attempted: Vec<(String, String, String)>,
    /// How many 200s each challenge got.
    verify_successes: HashMap<String, u32>,
    /// Verifies refused when sent again after getting no answer, by the key of their action,
    /// with the error: sent before any newer challenge of the user, so a refusal can only
    /// mean the first send committed.
    refused_retries: Vec<(String, String)>,
    flows_completed: u32,
}

async fn run_user(
    user: String,
    device: Arc<Device>,
    base: String,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
) -> Seen {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut seen = Seen::default();
    let pause = || tokio::time::sleep(Duration::from_millis(10));
    while !stop.load(Ordering::SeqCst) {
        let key = format!("k{:016x}", random_u64());
        let tracked = call(
            &http,
            &base,
            reqwest::Method::POST,
            &format!("/users/{user}/actions/signIn"),
            Auth::Secret,
            Some(json!({"idempotencyKey": key})),
        )
        .await;
        let token = match tracked {
            Ok((200, body)) => {
                assert_eq!(body["state"], "CHALLENGE_REQUIRED", "{body}");
                let token = body["token"].as_str().unwrap().to_owned();
                seen.tracked.push((key.clone(), token.clone()));
                answered.fetch_add(1, Ordering::SeqCst);
                token
            }
            Ok((status, body)) => panic!("track answered {status}: {body}"),
            Err(_) => {
                pause().await;
                continue;
            }
        };
        let challenge_id = match call(
            &http,
            &base,
            reqwest::Method::POST,
            "/client/challenge",
            Auth::Tenant,
            Some(json!({})),
        )
        .await
        {
            Ok((200, body)) => body["challengeId"].as_str().unwrap().to_owned(),
            Ok((status, body)) => panic!("challenge answered {status}: {body}"),
            Err(_) => {
                pause().await;
                continue;
            }
        };
        let verify_body = json!({
            "challengeId": challenge_id,
            "publicKey": device.public_key,
            "signature": device.sign(&challenge_id),
        });
        seen.attempted
            .push((challenge_id.clone(), key.clone(), token.clone()));
        // A client whose verify got no answer sends it again, as an app retrying would, until
        // it gets one (the server may be restarting), before it starts a newer challenge.
        let mut new_token = None;
        let retry_until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < retry_until {
            match call(
                &http,
                &base,
                reqwest::Method::POST,
                "/client/verify/in-app",
                Auth::Bearer(&token),
                Some(verify_body.clone()),
            )
            .await
            {
                Ok((200, body)) => {
                    *seen
                        .verify_successes
                        .entry(challenge_id.clone())
                        .or_default() += 1;
                    seen.verified.push(key.clone());
                    new_token = Some(body["token"].as_str().unwrap().to_owned());
                    break;
                }
                // The retry of a verify that did commit: refused, as it must be.
                Ok((_, body)) => {
                    let error = body["error"].as_str().unwrap_or_default().to_owned();
                    seen.refused_retries.push((key.clone(), error));
                    break;
                }
                Err(_) => pause().await,
            }
        }
        let Some(new_token) = new_token else {
            continue;
        };
        if let Ok((status, body)) = call(
            &http,
            &base,
            reqwest::Method::POST,
            "/validate",
            Auth::Secret,
            Some(json!({"token": new_token})),
        )
        .await
        {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["isValid"], true, "{body}");
            assert_eq!(body["state"], "CHALLENGE_SUCCEEDED", "{body}");
            seen.flows_completed += 1;
            answered.fetch_add(1, Ordering::SeqCst);
        }
    }
    seen
}

#[test]
fn answered_writes_survive_sigkill_and_nothing_is_half_done() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let mut server = start_server(port, dir.path(), false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();

    // Each user registers a device before the crashes begin.
    let devices: Vec<(String, Arc<Device>)> = (0..USERS)
        .map(|i| (format!("user-{i}"), Arc::new(Device::new())))
        .collect();
    runtime.block_on(async {
        for (user, device) in &devices {
            let (status, tracked) = call(
                &http,
                &base,
                reqwest::Method::POST,
                &format!("/users/{user}/actions/addAuthenticator"),
                Auth::Secret,
                Some(json!({"scope": "add:authenticators"})),
            )
            .await
            .unwrap();
            assert_eq!(status, 200, "{tracked}");
            let (status, added) = call(
                &http,
                &base,
                reqwest::Method::POST,
                "/client/user-authenticators/in-app",
                Auth::Bearer(tracked["token"].as_str().unwrap()),
                Some(json!({"publicKey": device.public_key, "deviceName": "Pixel", "devicePlatform": "android"})),
            )
            .await
            .unwrap();
            assert_eq!(status, 200, "{added}");
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    // Tracks and flows answered so far: each kill waits until the restarted server is busy.
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = devices
        .iter()
        .map(|(user, device)| {
            runtime.spawn(run_user(
                user.clone(),
                device.clone(),
                base.clone(),
                stop.clone(),
                answered.clone(),
            ))
        })
        .collect();

    let kills_done = Arc::new(Mutex::new(0));
    // Waits (20 s at most) until the clients have had 20 more answers from the server.
    let wait_for_answers = || {
        let since = answered.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(20);
        while answered.load(Ordering::SeqCst) < since + 20 {
            assert!(Instant::now() < deadline, "no progress after a restart");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    for kill in 0..KILLS {
        // Once the clients have had 20 answers from this start, kill at a random moment of
        // the next 100 ms: always in the middle of requests, tracks and verifies among them.
        wait_for_answers();
        std::thread::sleep(Duration::from_millis(random_u64() % 100));
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        *kills_done.lock().unwrap() += 1;
        server = start_server(port, dir.path(), kill % 2 == 0);
    }
    // The last start serves too before the clients stop.
    wait_for_answers();
    stop.store(true, Ordering::SeqCst);
    let seen: Vec<Seen> = runtime.block_on(async {
        let mut all = Vec::new();
        for client in clients {
            all.push(client.await.unwrap());
        }
        all
    });

    let completed: u32 = seen.iter().map(|s| s.flows_completed).sum();
    assert!(completed > 0, "the clients completed no flow at all");

    // After the last restart: check everything the clients were told.
    let action_of = |user: &str, key: &str| {
        let path = format!("/users/{user}/actions/signIn/{key}");
        let (http, base) = (&http, &base);
        async move {
            call(http, base, reqwest::Method::GET, &path, Auth::Secret, None)
                .await
                .unwrap()
        }
    };
    runtime.block_on(async {
        for ((user, device), seen) in devices.iter().zip(&seen) {
            // A retried verify refused: its first send committed whole, action included.
            for (key, error) in &seen.refused_retries {
                let (_, action) = action_of(user, key).await;
                assert_eq!(error, "challenge_already_used", "retry of {key}");
                assert_eq!(
                    action["state"], "CHALLENGE_SUCCEEDED",
                    "the verify of {key} used its challenge up without its action: {action}"
                );
            }
            for (challenge, successes) in &seen.verify_successes {
                assert_eq!(
                    *successes, 1,
                    "challenge {challenge} verified {successes} times"
                );
            }
            for (key, _) in &seen.tracked {
                let (status, action) = action_of(user, key).await;
                assert_eq!(status, 200, "answered track {key} lost: {action}");
                if seen.verified.contains(key) {
                    assert_eq!(
                        action["state"], "CHALLENGE_SUCCEEDED",
                        "answered verify of {key} lost: {action}"
                    );
                }
            }
            for (challenge, key, token) in &seen.attempted {
                let (_, action) = action_of(user, key).await;
                let again = call(
                    &http,
                    &base,
                    reqwest::Method::POST,
                    "/client/verify/in-app",
                    Auth::Bearer(token),
                    Some(json!({
                        "challengeId": challenge,
                        "publicKey": device.public_key,
                        "signature": device.sign(challenge),
                    })),
                )
                .await
                .unwrap();
                match action["state"].as_str() {
                    // Succeeded: its challenge is used up, it cannot verify again.
                    Some("CHALLENGE_SUCCEEDED") => {
                        assert_ne!(again.0, 200, "{challenge} verified again: {}", again.1)
                    }
                    // Not succeeded: the challenge must not have been used up without it. It
                    // completes the action now, or is refused as superseded: the user's later
                    // flows used newer challenges (a user's in-app challenges are used in the
                    // order they were issued). `challenge_already_used` would be the
                    // half-done verify this test looks for: this very challenge recorded as
                    // the user's last used, its action not completed.
                    Some("CHALLENGE_REQUIRED") => assert!(
                        again.0 == 200
                            || (again.0 == 409 && again.1["error"] == "challenge_superseded"),
                        "{challenge} used up but its action not succeeded: {}",
                        again.1
                    ),
                    _ => panic!("the action of an answered track: {action}"),
                }
            }
        }
    });

    server.kill().unwrap();
    server.wait().unwrap();
    let tracked: usize = seen.iter().map(|s| s.tracked.len()).sum();
    eprintln!(
        "{KILLS} kills in {:.1} s: {tracked} tracks and {completed} full flows answered",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(*kills_done.lock().unwrap(), KILLS);
}
