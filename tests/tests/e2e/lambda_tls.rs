//! The functions' AWS clients trust only Amazon Trust Services' roots (`shared::aws_tls`),
//! never the platform's: a DynamoDB endpoint whose certificate chains to any other authority
//! is refused, even one the platform trusts. The CLI, which keeps the platform's roots, is the
//! control: through the same TLS front, with the same trust, it reaches the table.

use crate::lambda_conformance::{bin_dir, build_packages};
use e2e_tests::lambda_events::{FIXTURES, SECRET_KEY, TENANT_ID, fixture_path};
use std::process::Stdio;
use std::time::Duration;
use testkit::dynamodb::{LocalDynamo, unique_table};
use testkit::runtime_api::{Outcome, RuntimeApi};

/// Runs the `validate` function once on `endpoint` with `SSL_CERT_FILE` set to `ca`, and
/// returns its answer's status and what it logged.
async fn validate_once(table: &str, endpoint: &str, ca: &std::path::Path) -> (u64, String) {
    let fixture = FIXTURES.iter().find(|f| f.name == "validate").unwrap();
    let event = std::fs::read_to_string(fixture_path(fixture)).unwrap();
    let runtime = RuntimeApi::start().await.unwrap();
    let mut child = runtime
        .command(&bin_dir().join("validate"), "validate", table, endpoint)
        .env("SSL_CERT_FILE", ca)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let outcome = runtime.invoke(&event, Duration::from_secs(60)).await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let Ok(Outcome::Response(response)) = outcome else {
        panic!("no answer: {outcome:?}\n{logs}");
    };
    let response: serde_json::Value = serde_json::from_str(&response).unwrap();
    (response["statusCode"].as_u64().unwrap(), logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_refuse_a_dynamodb_endpoint_whose_certificate_amazon_did_not_issue() {
    tokio::task::spawn_blocking(|| build_packages(&["validate", "trusted-device"]))
        .await
        .unwrap();
    let local = LocalDynamo::start().await;
    let table = local
        .table_with_tenant("lambda-tls", TENANT_ID, SECRET_KEY)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = testkit::tls::certificates(dir.path());
    let upstream = local
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let (front, relay) = testkit::tls::front(upstream, cert, key).await;
    let https = format!("https://127.0.0.1:{}", front.port());

    // The control: a client on the platform's roots (the CLI's) reaches DynamoDB through the
    // front when those roots include the test authority, and is refused when they do not.
    let create = |roots: std::path::PathBuf| {
        let https = https.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin_dir().join("trusted-device"))
                .args(["table", "create", "--table", &unique_table("tls-control")])
                .args(["--endpoint-url", &https])
                .env("SSL_CERT_FILE", roots)
                .output()
                .unwrap()
        })
    };
    let trusted = create(ca.clone()).await.unwrap();
    let stderr = String::from_utf8_lossy(&trusted.stderr);
    assert!(trusted.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("created"));
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let untrusted = create(empty).await.unwrap();
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success());
    assert!(stderr.contains("The data store is unavailable"), "{stderr}");

    // The function, with the same platform trust, refuses the front: the request fails as
    // the store being unavailable, and the log says it was the certificate.
    let (status, logs) = validate_once(&table, &https, &ca).await;
    assert_eq!(status, 503, "{logs}");
    assert!(logs.to_lowercase().contains("certificate"), "{logs}");

    // The same function and event over plain HTTP to the same table: answered, so the
    // refusal above is the trust store's and nothing else's.
    let (status, logs) = validate_once(&table, &local.endpoint(), &ca).await;
    assert_eq!(status, 200, "{logs}");
    relay.abort();
}
