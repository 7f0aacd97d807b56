//! `trusted-device conformance` and `trusted-device device`, run as the binary an operator
//! runs, against the real server (all four routers) on the embedded store and on DynamoDB
//! (dynoxide), and against broken doubles of it that must make named checks fail.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::config::Settings;
use shared::domain::TenantId;
use shared::store::Store;
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::store::embedded::EmbeddedStore;
use shared::usecase::tenants::ApiSecret;
use std::sync::Arc;
use testkit::dynamodb::{LocalDynamo, unique_table};
use trusted_device::RunningServer;

const BIN: &str = env!("CARGO_BIN_EXE_trusted-device");
const TENANT: &str = "conformance-tenant";
const SECRET: &str = "sk_test_conformance_5f0c9a1e7b3d48a2b6e1c0d9f8a7b6c5";

struct Target {
    server: RunningServer,
    _dir: tempfile::TempDir,
    _dynamo: Option<LocalDynamo>,
}

async fn start(on_dynamodb: bool) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let (store, dynamo): (Arc<dyn Store>, _) = if on_dynamodb {
        let local = LocalDynamo::start().await;
        let config = DynamoConfig {
            endpoint_url: Some(local.endpoint()),
        };
        let meter = UsageMeter::default();
        let client = dynamodb::client(&config, meter.clone()).await;
        let table = unique_table("conformance");
        dynamodb::create_table(&client, &table).await.unwrap();
        (
            Arc::new(DynamoStore::new(client, table, meter)),
            Some(local),
        )
    } else {
        let store = EmbeddedStore::open(&dir.path().join("store.journal")).unwrap();
        (Arc::new(store), None)
    };
    let app = testkit::app(store, Arc::new(SystemClock), Settings::default());
    app.ensure_tenant(
        &TenantId::parse(TENANT).unwrap(),
        &ApiSecret::parse(SECRET).unwrap(),
    )
    .await
    .unwrap();
    Target {
        server: RunningServer::start(app).await.unwrap(),
        _dir: dir,
        _dynamo: dynamo,
    }
}

/// Runs the binary (off the async threads: the server under test runs on them).
async fn cli(args: Vec<String>, envs: Vec<(&'static str, String)>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(BIN)
            .args(&args)
            .env_remove("TRUSTED_DEVICE_SECRET_KEY")
            .env_remove("TRUSTED_DEVICE_TENANT_ID")
            .env_remove("TRUSTED_DEVICE_URL")
            .env_remove("TRUSTED_DEVICE_KEY_FILE")
            .env_remove("TRUSTED_DEVICE_PLATFORM")
            .env_remove("TRUSTED_DEVICE_TOKEN")
            .envs(envs)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `conformance --json` against `base_url`; the secret goes in the environment only.
async fn conformance(base_url: &str) -> (i32, Value, String) {
    let (code, stdout, stderr) = cli(
        vec![
            "conformance".into(),
            "--url".into(),
            base_url.into(),
            "--tenant-id".into(),
            TENANT.into(),
            "--json".into(),
        ],
        vec![("TRUSTED_DEVICE_SECRET_KEY", SECRET.into())],
    )
    .await;
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("not JSON: {stdout}\nstderr: {stderr}"));
    (code, report, stderr)
}

fn failed_checks(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "fail")
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

async fn secret_call(method: reqwest::Method, url: String) -> Value {
    reqwest::Client::new()
        .request(method, url)
        .basic_auth(SECRET, Some(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every user the run made is gone: no credential, not enrolled.
async fn assert_cleaned_up(base_url: &str, report: &Value) {
    let users = report["users"].as_array().unwrap();
    assert!(users.len() >= 3, "{report}");
    for user in users {
        let user = user.as_str().unwrap();
        assert!(user.starts_with("conformance-"), "{user}");
        let authenticators = secret_call(
            reqwest::Method::GET,
            format!("{base_url}/users/{user}/authenticators"),
        )
        .await;
        assert_eq!(authenticators, json!([]), "{user}");
        let read = secret_call(reqwest::Method::GET, format!("{base_url}/users/{user}")).await;
        assert_eq!(read["isEnrolled"], false, "{user}");
    }
}

async fn passes_against(on_dynamodb: bool) {
    let target = start(on_dynamodb).await;
    let base = target.server.base_url();
    let (code, report, stderr) = conformance(&base).await;
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["passed"], true);
    assert!(failed_checks(&report).is_empty());
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 14, "{report:#}");
    // Nothing was skipped: the action-config route is ours and present.
    assert!(checks.iter().all(|c| c["result"] == "pass"), "{report:#}");
    assert_cleaned_up(&base, &report).await;
    target.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_passes_against_the_local_server_on_the_embedded_store() {
    passes_against(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_passes_against_the_local_server_on_dynamodb() {
    passes_against(true).await;
}

// ------------------------------------------------------------------------------------ broken

/// What the broken double changes in an answer.
#[derive(Clone, Copy)]
enum Breakage {
    /// A replayed verify's 409 becomes a 200 with a token: replay "accepted".
    AcceptReplay,
    /// `Content-Type` dropped from the answers of `/validate`.
    DropContentType,
    /// `Content-Type: application/json; charset=utf-8` on the QR-code claim, which only the
    /// device calls.
    CharsetOnClaim,
    /// Nothing broken: every request is recorded, to read what went on the wire.
    Record,
    /// Not broken but not ours: no `/action-configs` routes, as on Authsignal's API (API
    /// Gateway's own 404).
    NoActionConfigs,
}

/// A request as it went on the wire: method, path with query, headers, body.
type Recorded = (String, String, Vec<(String, String)>, String);

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    breakage: Breakage,
    recorded: Arc<std::sync::Mutex<Vec<Recorded>>>,
}

/// A reverse proxy in front of the real server that breaks one thing.
async fn proxy(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    if matches!(proxy.breakage, Breakage::NoActionConfigs) && path.starts_with("/v1/action-configs")
    {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"message":"Not Found"}"#))
            .unwrap();
    }
    if matches!(proxy.breakage, Breakage::Record) {
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        proxy.recorded.lock().unwrap().push((
            parts.method.to_string(),
            path.clone(),
            headers,
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    let mut forward = proxy
        .http
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream));
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.body(body).send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes: Bytes = answer.bytes().await.unwrap();
    let (status, bytes) = match proxy.breakage {
        Breakage::AcceptReplay
            if path.ends_with("/client/verify/in-app") && status == StatusCode::CONFLICT =>
        {
            let fake = json!({"token": "x.y.z", "userId": "someone", "userAuthenticatorId": "id"});
            (StatusCode::OK, Bytes::from(fake.to_string()))
        }
        _ => (status, bytes),
    };
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name == "content-length" {
            continue;
        }
        if name == "content-type"
            && matches!(proxy.breakage, Breakage::DropContentType)
            && path.ends_with("/validate")
        {
            continue;
        }
        if name == "content-type"
            && matches!(proxy.breakage, Breakage::CharsetOnClaim)
            && path.ends_with("/challenge/claim")
        {
            response = response.header(name, "application/json; charset=utf-8");
            continue;
        }
        response = response.header(name, value.clone());
    }
    response
        .header("content-length", HeaderValue::from(bytes.len()))
        .body(Body::from(bytes))
        .unwrap()
}

async fn broken(breakage: Breakage) -> (Target, String, tokio::task::JoinHandle<()>) {
    let (target, base, task, _) = proxied(breakage).await;
    (target, base, task)
}

async fn proxied(
    breakage: Breakage,
) -> (
    Target,
    String,
    tokio::task::JoinHandle<()>,
    Arc<std::sync::Mutex<Vec<Recorded>>>,
) {
    let target = start(false).await;
    let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let state = Proxy {
        upstream: format!("http://{}", target.server.addr),
        http: reqwest::Client::new(),
        breakage,
        recorded: recorded.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(proxy).with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (target, format!("http://{addr}/v1"), task, recorded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_fails_naming_the_replay_check_when_a_replay_is_accepted() {
    let (target, base, proxy_task) = broken(Breakage::AcceptReplay).await;
    let (code, report, stderr) = conformance(&base).await;
    assert_ne!(code, 0, "{report:#}");
    assert!(stderr.contains("does not conform"), "{stderr}");
    assert_eq!(
        failed_checks(&report),
        vec!["a used challenge is refused: 409 challenge_already_used"],
        "{report:#}"
    );
    let failed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["result"] == "fail")
        .unwrap();
    assert_eq!(failed["request"]["method"], "POST");
    assert_eq!(failed["request"]["path"], "/v1/client/verify/in-app");
    assert_eq!(failed["request"]["status"], 200);
    // The token in the body shown is redacted.
    assert!(
        !failed["request"]["body"]
            .as_str()
            .unwrap()
            .contains("x.y.z")
    );
    // Cleaned up even so.
    assert_cleaned_up(&target.server.base_url(), &report).await;
    proxy_task.abort();
    target.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_fails_naming_the_content_type_check_when_it_is_dropped() {
    let (target, base, proxy_task) = broken(Breakage::DropContentType).await;
    let (code, report, _) = conformance(&base).await;
    assert_ne!(code, 0);
    assert_eq!(
        failed_checks(&report),
        vec!["Content-Type: application/json on every response"],
        "{report:#}"
    );
    proxy_task.abort();
    target.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_human_table_names_the_failed_request_and_never_the_secret() {
    let (target, base, proxy_task) = broken(Breakage::AcceptReplay).await;
    let (code, stdout, stderr) = cli(
        vec![
            "conformance".into(),
            "--url".into(),
            base,
            "--tenant-id".into(),
            TENANT.into(),
        ],
        vec![("TRUSTED_DEVICE_SECRET_KEY", SECRET.into())],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        stdout.contains("FAIL  a used challenge is refused: 409 challenge_already_used"),
        "{stdout}"
    );
    assert!(
        stdout.contains("POST /v1/client/verify/in-app → 200"),
        "{stdout}"
    );
    assert!(
        stdout.contains("13 passed, 1 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    proxy_task.abort();
    target.server.stop().await;
}

// ------------------------------------------------------------------------------------ device

struct Terminal {
    base: String,
    key_file: std::path::PathBuf,
}

impl Terminal {
    /// `trusted-device device <args> --json`, parsed; the exit code too.
    async fn device(&self, platform: &str, args: &[&str]) -> (i32, Value, String) {
        let mut all: Vec<String> = vec!["device".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(["--json".into(), "--platform".into(), platform.into()]);
        let (code, stdout, stderr) = cli(
            all,
            vec![
                ("TRUSTED_DEVICE_URL", self.base.clone()),
                ("TRUSTED_DEVICE_TENANT_ID", TENANT.into()),
                (
                    "TRUSTED_DEVICE_KEY_FILE",
                    self.key_file.display().to_string(),
                ),
            ],
        )
        .await;
        let value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|_| panic!("not JSON: {stdout}\nstderr: {stderr}"));
        (code, value, stderr)
    }

    async fn ok(&self, platform: &str, args: &[&str]) -> Value {
        let (code, value, stderr) = self.device(platform, args).await;
        assert_eq!(code, 0, "{args:?}: {value}\n{stderr}");
        value
    }
}

async fn track(base: &str, user: &str, action: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/users/{user}/actions/{action}"))
        .basic_auth(SECRET, Some(""))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn validate(base: &str, token: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/validate"))
        .basic_auth(SECRET, Some(""))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn client_post(base: &str, path: &str, auth: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("Authorization", auth)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_team_tests_every_flow_with_the_terminal_device() {
    use std::os::unix::fs::PermissionsExt as _;
    let target = start(false).await;
    let base = target.server.base_url();
    let dir = tempfile::tempdir().unwrap();
    let term = Terminal {
        base: base.clone(),
        key_file: dir.path().join("keys/device-key.pk8"),
    };

    // Before enrolment: no key, a plain-words error, nothing on stdout but the JSON error.
    let (code, error, _) = term.device("ios", &["list"]).await;
    assert_eq!(code, 1);
    assert!(error["message"].as_str().unwrap().contains("no device key"));

    // Enrol in all three namespaces; the key file is created 0600 and never printed.
    let enroll = track(
        &base,
        "alice",
        "addAuthenticator",
        json!({"scope": "add:authenticators"}),
    )
    .await;
    let token = enroll["token"].as_str().unwrap();
    let added = term.ok("ios", &["enroll", "--token", token]).await;
    assert_eq!(added["userId"], "alice");
    assert_eq!(added["keyCreated"], true);
    let mode = std::fs::metadata(&term.key_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for ns in ["push", "qr-code"] {
        let added = term
            .ok("android", &["enroll", "--token", token, "--namespace", ns])
            .await;
        assert_eq!(added["keyCreated"], false);
    }
    let listed = term.ok("android", &["list"]).await;
    for ns in ["in-app", "push", "qr-code"] {
        assert_eq!(listed["namespaces"][ns]["userId"], "alice", "{listed}");
    }

    // Verify with the tracked token (iOS), then tokenless with an action (Android).
    let sign_in = track(&base, "alice", "signIn", json!({})).await;
    assert_eq!(sign_in["state"], "CHALLENGE_REQUIRED");
    let verified = term
        .ok(
            "ios",
            &["verify", "--token", sign_in["token"].as_str().unwrap()],
        )
        .await;
    let validated = validate(&base, verified["token"].as_str().unwrap()).await;
    assert_eq!(validated["isValid"], true);
    assert_eq!(validated["idempotencyKey"], sign_in["idempotencyKey"]);
    let verified = term.ok("android", &["verify", "--action", "pay"]).await;
    let validated = validate(&base, verified["token"].as_str().unwrap()).await;
    assert_eq!(validated["isValid"], true);
    assert_eq!(validated["action"], "pay");

    // Push with number matching, approved from the terminal.
    let sign_in = track(
        &base,
        "alice",
        "signIn",
        json!({"ipAddress": "203.0.113.9"}),
    )
    .await;
    let bearer = format!("Bearer {}", sign_in["token"].as_str().unwrap());
    let started = client_post(
        &base,
        "/client/challenge/push",
        &bearer,
        json!({"action": "signIn", "numberMatching": true}),
    )
    .await;
    let challenge_id = started["challengeId"].as_str().unwrap();
    let code = started["verificationCode"].as_str().unwrap();
    let pending = term.ok("ios", &["pending"]).await;
    assert_eq!(pending["challengeId"], challenge_id);
    assert_eq!(pending["verificationCodeRequired"], true);
    assert_eq!(pending["ipAddress"], "203.0.113.9");
    // Without the code the terminal refuses rather than let the server reject the challenge.
    let (refused, _, _) = term.device("ios", &["approve"]).await;
    assert_eq!(refused, 1);
    let approved = term.ok("android", &["approve", "--code", code]).await;
    assert_eq!(approved["isVerified"], true);
    assert_eq!(approved["namespace"], "push");
    let poll = client_post(
        &base,
        "/client/verify/push",
        &bearer,
        json!({"challengeId": challenge_id}),
    )
    .await;
    let validated = validate(&base, poll["accessToken"].as_str().unwrap()).await;
    assert_eq!(validated["state"], "CHALLENGE_SUCCEEDED");
    assert_eq!(validated["verificationMethod"], "PUSH");

    // A QR code from a kiosk (browser tenant Basic), claimed by its URL and approved.
    let kiosk = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, TENANT)
    );
    let started = client_post(
        &base,
        "/client/challenge/qr-code",
        &kiosk,
        json!({"action": "kioskLogin", "custom": {"kiosk": "lobby"}}),
    )
    .await;
    let qr_id = started["challengeId"].as_str().unwrap();
    let url = format!("https://example.com/login/qr?challengeId={qr_id}");
    let claimed = term.ok("ios", &["claim", "--challenge-id", &url]).await;
    assert_eq!(claimed["success"], true);
    assert_eq!(claimed["custom"]["kiosk"], "lobby");
    let approved = term.ok("ios", &["approve"]).await;
    assert_eq!(approved["namespace"], "qr-code");
    assert_eq!(approved["challengeId"], qr_id);
    let poll = client_post(
        &base,
        "/client/verify/qr-code",
        &kiosk,
        json!({"challengeId": qr_id, "deviceCode": started["deviceCode"]}),
    )
    .await;
    let validated = validate(&base, poll["accessToken"].as_str().unwrap()).await;
    assert_eq!(validated["userId"], "alice");
    assert_eq!(validated["action"], "kioskLogin");

    // An error names the server's errorCode.
    let (code, error, stderr) = term.device("ios", &["reject"]).await;
    assert_eq!(code, 1);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no push challenge"),
        "{error}"
    );
    assert!(stderr.contains("error:"));
    let (code, error, _) = term
        .device("ios", &["verify", "--token", "not-a-token"])
        .await;
    assert_eq!(code, 1);
    assert_eq!(error["error"], "invalid_token");

    // Remove from every namespace; the server then knows the key nowhere.
    let removed = term.ok("ios", &["remove"]).await;
    assert_eq!(removed["removed"].as_array().unwrap().len(), 3);
    let listed = term.ok("ios", &["list"]).await;
    for ns in ["in-app", "push", "qr-code"] {
        assert!(listed["namespaces"][ns].is_null(), "{listed}");
    }

    // The key file's bytes never appear in any output.
    let key = std::fs::read(&term.key_file).unwrap();
    let key_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key);
    let (_, listed, stderr) = term.device("ios", &["list"]).await;
    assert!(!listed.to_string().contains(&key_b64) && !stderr.contains(&key_b64));
    target.server.stop().await;
}

/// What `device` sends is what each SDK sends (spec 1.2, 1.4, 3.1, 4.3), read off the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_device_sends_each_platforms_wire() {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let (target, base, proxy_task, recorded) = proxied(Breakage::Record).await;
    let upstream = target.server.base_url();
    let dir = tempfile::tempdir().unwrap();
    let term = Terminal {
        base: base.clone(),
        key_file: dir.path().join("device-key.pk8"),
    };
    let enroll = track(&upstream, "bob", "addAuthenticator", json!({})).await;
    let added = term
        .ok(
            "android",
            &[
                "enroll",
                "--token",
                enroll["token"].as_str().unwrap(),
                "--namespace",
                "push",
            ],
        )
        .await;
    assert_eq!(added["userId"], "bob");
    let listed = term.ok("ios", &["list"]).await;
    let public_key = listed["publicKey"].as_str().unwrap().to_owned();
    let _ = term.ok("android", &["list"]).await;
    let sign_in = track(&upstream, "bob", "signIn", json!({})).await;
    let bearer = format!("Bearer {}", sign_in["token"].as_str().unwrap());
    client_post(
        &upstream,
        "/client/challenge/push",
        &bearer,
        json!({"action": "signIn"}),
    )
    .await;
    let rejected = term.ok("android", &["reject"]).await;
    assert_eq!(rejected["isVerified"], false);
    let requests = recorded.lock().unwrap().clone();

    let header =
        |r: &Recorded, name: &str| r.2.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    // Enrol: Bearer, the Android body (devicePlatform lowercase, standard base64 SPKI).
    let add = requests
        .iter()
        .find(|r| r.0 == "POST" && r.1 == "/v1/client/user-authenticators/push")
        .unwrap();
    assert!(header(add, "authorization").unwrap().starts_with("Bearer "));
    let body: Value = serde_json::from_str(&add.3).unwrap();
    assert_eq!(body["devicePlatform"], "android");
    assert_eq!(body["publicKey"], public_key.as_str());
    assert_eq!(
        header(add, "content-type").as_deref(),
        Some("application/json")
    );
    // The reads: iOS and Android encodings of tenant Basic and ?publicKey=.
    let reads: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.0 == "GET" && r.1.starts_with("/v1/client/user-authenticators/in-app?"))
        .collect();
    assert_eq!(reads.len(), 2);
    let (ios, android) = (reads[0], reads[1]);
    let tenant = format!("{TENANT}:");
    assert_eq!(
        header(ios, "authorization").unwrap(),
        format!("Basic {}", URL_SAFE_NO_PAD.encode(&tenant))
    );
    assert_eq!(
        header(android, "authorization").unwrap(),
        format!("Basic {}", STANDARD.encode(&tenant))
    );
    assert!(
        ios.1.ends_with(&format!(
            "publicKey={}",
            URL_SAFE_NO_PAD.encode(&public_key)
        )),
        "{}",
        ios.1
    );
    assert!(
        android
            .1
            .ends_with(&format!("publicKey={}", STANDARD.encode(&public_key))),
        "{}",
        android.1
    );
    for (read, sdk) in [(ios, "ios"), (android, "android")] {
        assert_eq!(header(read, "x-authsignal-sdk").as_deref(), Some(sdk));
        assert_eq!(
            header(read, "x-authsignal-tenant-id").as_deref(),
            Some(TENANT)
        );
        assert!(header(read, "x-authsignal-version").is_some());
    }
    // The push read is signed (spec 3.4.5), and Android's answer carries an explicit null code.
    let read = requests
        .iter()
        .find(|r| {
            r.0 == "GET"
                && r.1
                    .starts_with("/v1/client/user-authenticators/push/challenge?")
        })
        .unwrap();
    assert!(header(read, "x-authsignal-signature").is_some());
    let answer = requests
        .iter()
        .find(|r| r.0 == "POST" && r.1 == "/v1/client/user-authenticators/push/challenge")
        .unwrap();
    let body: Value = serde_json::from_str(&answer.3).unwrap();
    assert_eq!(body["approved"], false);
    assert!(body.as_object().unwrap().contains_key("verificationCode"));
    assert!(body["verificationCode"].is_null());
    proxy_task.abort();
    target.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_and_conformance_speak_https_and_refuse_an_untrusted_certificate() {
    let target = start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = testkit::tls::certificates(dir.path());
    let (front_addr, front) = testkit::tls::front(target.server.addr, cert, key).await;
    let https_base = format!("https://127.0.0.1:{}/v1", front_addr.port());
    let key_file = dir.path().join("device-key.pk8").display().to_string();
    let device = |args: &[&str], trust: bool| {
        let mut all: Vec<String> = vec!["device".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut envs = vec![
            ("TRUSTED_DEVICE_URL", https_base.clone()),
            ("TRUSTED_DEVICE_TENANT_ID", TENANT.to_owned()),
            ("TRUSTED_DEVICE_KEY_FILE", key_file.clone()),
        ];
        if trust {
            // rustls-native-certs reads the roots from here instead of the system's.
            envs.push(("SSL_CERT_FILE", ca.display().to_string()));
        }
        cli(all, envs)
    };

    // Not trusted: a plain-words TLS error, exit 1, no panic.
    let enroll = track(
        &target.server.base_url(),
        "carol",
        "addAuthenticator",
        json!({}),
    )
    .await;
    let token = enroll["token"].as_str().unwrap();
    let (code, stdout, stderr) = device(&["enroll", "--token", token], false).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("cannot reach https://127.0.0.1"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Trusted: the whole exchange over TLS.
    let (code, stdout, stderr) = device(&["enroll", "--token", token, "--json"], true).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let added: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(added["userId"], "carol");
    let (code, stdout, _) = device(&["verify", "--action", "signIn", "--json"], true).await;
    assert_eq!(code, 0, "{stdout}");

    // And conformance, over the same front.
    let (code, stdout, stderr) = cli(
        vec![
            "conformance".into(),
            "--url".into(),
            https_base.clone(),
            "--tenant-id".into(),
            TENANT.into(),
            "--json".into(),
        ],
        vec![
            ("TRUSTED_DEVICE_SECRET_KEY", SECRET.into()),
            ("SSL_CERT_FILE", ca.display().to_string()),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    front.abort();
    target.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_secret_or_a_wrong_url_is_one_plain_error() {
    let target = start(false).await;
    let wrong = "sk_test_not_the_secret_0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let (code, stdout, stderr) = cli(
        vec![
            "conformance".into(),
            "--url".into(),
            target.server.base_url(),
            "--tenant-id".into(),
            TENANT.into(),
        ],
        vec![("TRUSTED_DEVICE_SECRET_KEY", wrong.into())],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("the secret key was refused"), "{stderr}");
    assert!(!stderr.contains(wrong));
    target.server.stop().await;

    // Nothing listens there any more.
    let (code, _, stderr) = cli(
        vec![
            "conformance".into(),
            "--url".into(),
            target_url_of_stopped(),
            "--tenant-id".into(),
            TENANT.into(),
        ],
        vec![("TRUSTED_DEVICE_SECRET_KEY", SECRET.into())],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot reach http://127.0.0.1"), "{stderr}");

    // The secret never goes in clear text over a network: plain http only to this machine.
    // (A closed port on 127.0.0.2 would answer "cannot reach"; this is refused before.)
    for (command, envs) in [
        (
            "conformance",
            vec![("TRUSTED_DEVICE_SECRET_KEY", SECRET.to_owned())],
        ),
        ("device", vec![]),
    ] {
        let mut args: Vec<String> = vec![
            command.into(),
            "--url".into(),
            "http://staging.example.com/v1".into(),
            "--tenant-id".into(),
            TENANT.into(),
        ];
        if command == "device" {
            args.push("list".into());
        }
        let (code, _, stderr) = cli(args, envs).await;
        assert_ne!(code, 0, "{command}");
        assert!(
            stderr.contains("plain http is only allowed to localhost"),
            "{command}: {stderr}"
        );
    }
}

fn target_url_of_stopped() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_action_config_routes_the_rules_check_is_skipped_with_a_note() {
    let (target, base, proxy_task) = broken(Breakage::NoActionConfigs).await;
    let (code, report, stderr) = conformance(&base).await;
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let skipped: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "skip")
        .collect();
    assert_eq!(skipped.len(), 1, "{report:#}");
    assert_eq!(
        skipped[0]["check"],
        "rules config round trip (/action-configs, ours)"
    );
    assert!(skipped[0]["note"].as_str().unwrap().contains("extension"));
    proxy_task.abort();
    target.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_content_type_check_covers_what_only_the_device_calls() {
    let (target, base, proxy_task) = broken(Breakage::CharsetOnClaim).await;
    let (code, report, _) = conformance(&base).await;
    assert_ne!(code, 0);
    assert_eq!(
        failed_checks(&report),
        vec!["Content-Type: application/json on every response"],
        "{report:#}"
    );
    let failed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["result"] == "fail")
        .unwrap();
    assert_eq!(
        failed["request"]["path"],
        "/v1/client/user-authenticators/qr-code/challenge/claim"
    );
    assert_eq!(
        failed["request"]["contentType"],
        "application/json; charset=utf-8"
    );
    proxy_task.abort();
    target.server.stop().await;
}
