//! The `track` function's real binary, run the way Lambda runs a `bootstrap`: started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a local Runtime API, on a DynamoDB-compatible server,
//! and invoked with API Gateway events from `events/`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};

/// The secret of the fixture tenant the events in `events/` authenticate as.
const FIXTURE_SECRET: &str = "sk_fixture_0123456789abcdef";

fn event(name: &str) -> String {
    std::fs::read_to_string(format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The API Gateway response the runtime posted back: status, headers, JSON body.
fn api_gateway_response(outcome: Outcome) -> (u64, Value, Value) {
    let Outcome::Response(text) = outcome else {
        panic!("the function failed: {outcome:?}")
    };
    let response: Value = serde_json::from_str(&text).unwrap();
    let body = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    (
        response["statusCode"].as_u64().unwrap(),
        response["headers"].clone(),
        body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_binary_answers_api_gateway_events_through_the_runtime_api() {
    let local = LocalDynamo::start().await;
    let table = local
        .table_with_tenant("bootstrap", "fixture-tenant", FIXTURE_SECRET)
        .await;

    let runtime = RuntimeApi::start().await.unwrap();
    let mut child = runtime
        .command(
            std::path::Path::new(env!("CARGO_BIN_EXE_track")),
            "track",
            &table,
            &local.endpoint(),
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        })
    })
    .collect();

    let outcome = runtime
        .invoke(&event("track"), Duration::from_secs(30))
        .await;
    let (status, headers, body) = api_gateway_response(outcome.unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["state"], "ALLOW");
    let token = body["token"].as_str().unwrap().to_owned();

    let outcome = runtime
        .invoke(&event("track-wrong-secret"), Duration::from_secs(30))
        .await;
    let (status, _, body) = api_gateway_response(outcome.unwrap());
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");

    child.kill().unwrap();
    let _ = child.wait();
    // The process is gone, so both pipes reach their end: every line it wrote has been read
    // once the readers return.
    for reader in readers {
        reader.join().unwrap();
    }
    let logs = logs.lock().unwrap().join("\n");
    // One JSON log line per request, with the Lambda request id, and no secret or token (the
    // other lines with a route are the metrics' EMF lines, DESIGN 11).
    let request_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"message\":\"request\""))
        .collect();
    assert_eq!(
        logs.lines().filter(|l| l.starts_with("{\"_aws\"")).count(),
        5,
        "two requests' EMF lines: responses and latencies, and the 401's error code: {logs}"
    );
    assert_eq!(request_lines.len(), 2, "{logs}");
    for line in &request_lines {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            record["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("00000000-0000-4000-8000-")),
            "{line}"
        );
    }
    assert!(
        !logs.contains(FIXTURE_SECRET) && !logs.contains(&token),
        "{logs}"
    );
}
