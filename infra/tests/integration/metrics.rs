//! `trusted-device serve --metrics-addr`: the counters in the Prometheus text format on an
//! address of their own, scraped before and after a real sign-in (a device key, with one
//! forged signature), a QR code approved by a phone and a push it rejects. The counts move by exactly those
//! requests' events; nothing private is in them; `/metrics` is not on the API's address; and
//! without the flag there is no second listener at all (DESIGN 11).

use crate::cli::Served;
use crate::free_port;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use trusted_device::device::DeviceKey;

const TENANT: &str = "metrics-tenant";
const SECRET: &str = "sk_metrics_e3b9c1f07a4d2865b1c9e4d7a0f3b6c2";
const USER: &str = "metrics-user-91c2";

/// How an HTTP call authenticates.
enum Auth<'a> {
    Secret,
    /// The tenant id, as the mobile SDKs send it (`Basic base64(id:)`).
    Tenant,
    Bearer(&'a str),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn post(url: &str, auth: Auth<'_>, body: Value) -> (u16, Value) {
    runtime().block_on(async {
        let request = reqwest::Client::new().post(url).json(&body);
        let request = match auth {
            Auth::Secret => request.basic_auth(SECRET, Some("")),
            Auth::Tenant => request.header(
                "Authorization",
                format!("Basic {}", STANDARD.encode(format!("{TENANT}:"))),
            ),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    })
}

/// The text at `url`, with its status and `Content-Type`.
fn scrape(url: &str) -> (u16, String, String) {
    runtime().block_on(async {
        let response = reqwest::get(url).await.unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (
            response.status().as_u16(),
            content_type,
            response.text().await.unwrap(),
        )
    })
}

/// The samples of a Prometheus text exposition: `name{labels}` → value. Comment lines must
/// be `# HELP` or `# TYPE`; every other line is a sample with a number.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// What moved between two scrapes (series that did not exist count from 0). Sums and
/// histogram buckets are left out: they hold times, which no test can predict.
fn moved(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(series, _)| !series.contains("_sum{") && !series.contains("_bucket{"))
        .filter_map(|(series, value)| {
            let delta = value - before.get(series).copied().unwrap_or(0.0);
            (delta != 0.0).then(|| (series.clone(), delta))
        })
        .collect()
}

/// The TCP ports `pid` listens on: its socket descriptors matched against the kernel's
/// table of listening sockets.
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 (`ADDR:PORT` in hex), st field 3 (0A: LISTEN),
            // inode field 9.
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                let port = fields[1].rsplit_once(':').unwrap().1;
                ports.insert(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

fn port_of(base_url: &str) -> u16 {
    base_url
        .trim_end_matches("/v1")
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

#[test]
fn metrics_count_a_sign_in_a_forged_signature_a_qr_approval_and_a_push_rejection_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let served = Served::start(
        dir.path(),
        &[
            "--tenant-id",
            TENANT,
            "--secret-key",
            SECRET,
            "--metrics-addr",
            &metrics_addr,
        ],
    );
    let base = served.base_url.clone();
    let metrics_url = format!("http://{metrics_addr}/metrics");
    assert!(
        served.seen.iter().any(|l| l.contains(&metrics_url)),
        "{:?}",
        served.seen
    );
    assert_eq!(
        listening_ports(served.child.id()),
        BTreeSet::from([port_of(&base), metrics_port])
    );
    // Not on the API's address.
    let (status, api_metrics) = post(
        &format!("{}/metrics", base.trim_end_matches("/v1")),
        Auth::Secret,
        json!({}),
    );
    assert_eq!(
        (status, api_metrics["error"].as_str()),
        (404, Some("not_found"))
    );

    let (status, content_type, text) = scrape(&metrics_url);
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let before = samples(&text);

    // A phone registers an in-app key and a QR-code key.
    let (in_app, _) = DeviceKey::generate().unwrap();
    let (qr_phone, _) = DeviceKey::generate().unwrap();
    let (push_phone, _) = DeviceKey::generate().unwrap();
    for (key, namespace) in [
        (&in_app, "in-app"),
        (&qr_phone, "qr-code"),
        (&push_phone, "push"),
    ] {
        let (status, tracked) = post(
            &format!("{base}/users/{USER}/actions/addAuthenticator"),
            Auth::Secret,
            json!({"scope": "add:authenticators"}),
        );
        assert_eq!(status, 200, "{tracked}");
        let (status, added) = post(
            &format!("{base}/client/user-authenticators/{namespace}"),
            Auth::Bearer(tracked["token"].as_str().unwrap()),
            json!({"publicKey": key.public_key(), "deviceName": "Pixel", "devicePlatform": "android"}),
        );
        assert_eq!(status, 200, "{added}");
    }
    // Sign-in: a forged signature, then the device's own.
    let (status, tracked) = post(
        &format!("{base}/users/{USER}/actions/signIn"),
        Auth::Secret,
        json!({}),
    );
    assert_eq!(
        (status, tracked["state"].as_str()),
        (200, Some("CHALLENGE_REQUIRED"))
    );
    let token = tracked["token"].as_str().unwrap().to_owned();
    let (status, challenge) = post(
        &format!("{base}/client/challenge"),
        Auth::Bearer(&token),
        json!({}),
    );
    assert_eq!(status, 200, "{challenge}");
    let challenge_id = challenge["challengeId"].as_str().unwrap().to_owned();
    let forged = qr_phone.sign(&challenge_id).unwrap();
    let (status, refused) = post(
        &format!("{base}/client/verify/in-app"),
        Auth::Bearer(&token),
        json!({"challengeId": challenge_id, "publicKey": in_app.public_key(), "signature": forged}),
    );
    assert_eq!(
        (status, refused["errorCode"].as_str()),
        (400, Some("invalid_signature"))
    );
    let signature = in_app.sign(&challenge_id).unwrap();
    let (status, verified) = post(
        &format!("{base}/client/verify/in-app"),
        Auth::Bearer(&token),
        json!({"challengeId": challenge_id, "publicKey": in_app.public_key(), "signature": signature}),
    );
    assert_eq!(status, 200, "{verified}");
    let verified_token = verified["token"].as_str().unwrap().to_owned();
    // A kiosk's QR code, claimed and approved by the phone.
    let (status, qr) = post(
        &format!("{base}/client/challenge/qr-code"),
        Auth::Tenant,
        json!({"action": "kioskSignIn"}),
    );
    assert_eq!(status, 200, "{qr}");
    let qr_id = qr["challengeId"].as_str().unwrap().to_owned();
    let qr_body = |approved: Option<bool>| {
        let mut body = json!({
            "challengeId": qr_id,
            "publicKey": qr_phone.public_key(),
            "signature": qr_phone.sign(&qr_id).unwrap(),
        });
        if let Some(approved) = approved {
            body["approved"] = json!(approved);
        }
        body
    };
    let (status, claimed) = post(
        &format!("{base}/client/user-authenticators/qr-code/challenge/claim"),
        Auth::Tenant,
        qr_body(None),
    );
    assert_eq!(status, 200, "{claimed}");
    let (status, answered) = post(
        &format!("{base}/client/user-authenticators/qr-code/challenge"),
        Auth::Tenant,
        qr_body(Some(true)),
    );
    assert_eq!(
        (status, answered["isVerified"].as_bool()),
        (200, Some(true)),
        "{answered}"
    );

    // A push for another sign-in, which the phone rejects.
    let (status, tracked) = post(
        &format!("{base}/users/{USER}/actions/signIn"),
        Auth::Secret,
        json!({}),
    );
    assert_eq!(status, 200, "{tracked}");
    let push_token = tracked["token"].as_str().unwrap().to_owned();
    let (status, push) = post(
        &format!("{base}/client/challenge/push"),
        Auth::Bearer(&push_token),
        json!({"action": "signIn"}),
    );
    assert_eq!(status, 200, "{push}");
    let push_id = push["challengeId"].as_str().unwrap().to_owned();
    let (status, answered) = post(
        &format!("{base}/client/user-authenticators/push/challenge"),
        Auth::Tenant,
        json!({
            "challengeId": push_id,
            "publicKey": push_phone.public_key(),
            "signature": push_phone.sign(&push_id).unwrap(),
            "approved": false,
        }),
    );
    assert_eq!(status, 200, "{answered}");

    let (_, _, text) = scrape(&metrics_url);
    let after = samples(&text);
    let track = "/v1/users/{userId}/actions/{action}";
    let add = "/v1/client/user-authenticators/{namespace}";
    let verify = "/v1/client/verify/in-app";
    let requests = |route: &str, class: &str| {
        format!(r#"http_requests_total{{route="{route}",method="POST",status_class="{class}"}}"#)
    };
    let latencies = |route: &str| {
        format!(r#"http_request_duration_milliseconds_count{{route="{route}",method="POST"}}"#)
    };
    let expected: BTreeMap<String, f64> = [
        (requests(track, "2xx"), 5.0),
        (requests(add, "2xx"), 3.0),
        (requests("/v1/client/challenge/push", "2xx"), 1.0),
        (requests("/v1/client/challenge", "2xx"), 1.0),
        (requests(verify, "4xx"), 1.0),
        (requests(verify, "2xx"), 1.0),
        (requests("/v1/client/challenge/qr-code", "2xx"), 1.0),
        (
            requests(
                "/v1/client/user-authenticators/{namespace}/challenge/claim",
                "2xx",
            ),
            1.0,
        ),
        (
            requests(
                "/v1/client/user-authenticators/{namespace}/challenge",
                "2xx",
            ),
            2.0,
        ),
        (latencies(track), 5.0),
        (latencies(add), 3.0),
        (latencies("/v1/client/challenge/push"), 1.0),
        (latencies("/v1/client/challenge"), 1.0),
        (latencies(verify), 2.0),
        (latencies("/v1/client/challenge/qr-code"), 1.0),
        (
            latencies("/v1/client/user-authenticators/{namespace}/challenge/claim"),
            1.0,
        ),
        (
            latencies("/v1/client/user-authenticators/{namespace}/challenge"),
            2.0,
        ),
        (
            r#"error_responses_total{code="invalid_signature"}"#.into(),
            1.0,
        ),
        (r#"flows_started_total{method="device-key"}"#.into(), 1.0),
        (r#"flows_started_total{method="qr-code"}"#.into(), 1.0),
        (r#"flows_started_total{method="push"}"#.into(), 1.0),
        (
            r#"approvals_answered_total{method="push",outcome="rejected"}"#.into(),
            1.0,
        ),
        (r#"flows_completed_total{method="device-key"}"#.into(), 1.0),
        (r#"flows_completed_total{method="qr-code"}"#.into(), 1.0),
        (
            r#"verifications_failed_total{method="device-key",code="invalid_signature"}"#.into(),
            1.0,
        ),
        (
            r#"approvals_answered_total{method="qr-code",outcome="approved"}"#.into(),
            1.0,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(moved(&before, &after), expected, "{text}");

    // Privacy: no user, tenant, secret, token, key, challenge, signature or address.
    for private in [
        USER,
        TENANT,
        SECRET,
        &token,
        &verified_token,
        &challenge_id,
        &qr_id,
        &signature,
        &forged,
        &push_token,
        &push_id,
        in_app.public_key(),
        qr_phone.public_key(),
        push_phone.public_key(),
        "127.0.0.1",
    ] {
        assert!(
            !text.contains(private),
            "/metrics holds {private:?}:\n{text}"
        );
    }
    served.stop();
}

#[test]
fn without_metrics_addr_there_is_no_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &["--tenant-id", TENANT, "--secret-key", SECRET]);
    assert_eq!(
        listening_ports(served.child.id()),
        BTreeSet::from([port_of(&served.base_url)])
    );
    assert!(
        !served.seen.iter().any(|l| l.contains("/metrics")),
        "{:?}",
        served.seen
    );
    served.stop();
}

#[test]
fn the_metrics_address_cannot_be_the_apis() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trusted-device"))
        .args([
            "serve",
            "--addr",
            &addr,
            "--metrics-addr",
            &addr,
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is the API's address"), "{stderr}");
}
