//! The `events` function's real binary, run the way Lambda runs a `bootstrap`: started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a local Runtime API, on a DynamoDB-compatible server
//! holding a tenant with an events webhook, and invoked with the DynamoDB Stream batch of
//! `events/stream-changes.json` (issue #19, DESIGN 10). A local HTTP receiver records what
//! arrives: the changes that are events, signed, and nothing for the others; a receiver that
//! refuses one delivery yields `batchItemFailures` from that record, and the batch retried from
//! there delivers the rest, the refused event with the same id.

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::Value;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};

const FIXTURE_SECRET: &str = "sk_fixture_0123456789abcdef";
const EVENTS_SECRET: &str = "whsec_fixture_events_0123456789abcdef";

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[derive(Default)]
struct Receiver {
    /// Every envelope that arrived, parsed, and whether its signature verified.
    arrived: Mutex<Vec<(Value, bool)>>,
    /// Answer 503 to `action.state_changed` into `CHALLENGE_SUCCEEDED`.
    refuse_success: AtomicBool,
}

/// `X-Signature-V2: t=<unix seconds>,v2=<base64 HMAC-SHA256(secret, "t.body")>` (spec 2.11),
/// computed here independently of the function's code.
fn signed(header: &str, body: &[u8]) -> bool {
    let Some((t, v2)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v2="))
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, EVENTS_SECRET.as_bytes());
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let expected = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(ring::hmac::sign(&key, &message).as_ref());
    expected == v2
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let signature = headers
        .get("x-signature-v2")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let event: Value = serde_json::from_slice(&body).unwrap();
    let refused = receiver.refuse_success.load(Ordering::SeqCst)
        && event["data"]["state"] == "CHALLENGE_SUCCEEDED";
    receiver
        .arrived
        .lock()
        .unwrap()
        .push((event, signed(signature, &body)));
    if refused {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

fn response(outcome: Outcome) -> Value {
    let Outcome::Response(text) = outcome else {
        panic!("the function failed: {outcome:?}")
    };
    serde_json::from_str(&text).unwrap()
}

/// What arrived since `from`: (type, a short description), with the envelope ids.
fn arrivals(receiver: &Receiver, from: usize) -> Vec<(String, String, String)> {
    receiver.arrived.lock().unwrap()[from..]
        .iter()
        .map(|(event, signed)| {
            assert!(signed, "signed with the events secret: {event}");
            assert_eq!(event["version"], 1);
            assert_eq!(event["tenantId"], "fixture-tenant");
            assert_eq!(event["source"], "https://authsignal.com");
            let data = &event["data"];
            let about = match event["type"].as_str().unwrap() {
                "action.state_changed" => data["state"].as_str().unwrap().to_owned(),
                "challenge.attempts_exceeded" => data["failedAttempts"].to_string(),
                _ => data["userAuthenticatorId"].as_str().unwrap().to_owned(),
            };
            (
                event["type"].as_str().unwrap().to_owned(),
                about,
                event["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_records_become_signed_deliveries_and_a_refused_one_is_retried_from_its_record() {
    let local = LocalDynamo::start().await;
    let table = local
        .table_with_tenant("events", "fixture-tenant", FIXTURE_SECRET)
        .await;
    let receiver = Arc::new(Receiver::default());
    let router = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The tenant's events webhook, set as `tenant configure --events-webhook-url` sets it.
    let config = shared::store::dynamodb::DynamoConfig {
        endpoint_url: Some(local.endpoint()),
    };
    let meter = shared::store::dynamodb::UsageMeter::default();
    let client = shared::store::dynamodb::client(&config, meter.clone()).await;
    let app = testkit::app(
        Arc::new(shared::store::dynamodb::DynamoStore::new(
            client, &table, meter,
        )),
        Arc::new(shared::clock::SystemClock),
        shared::config::Settings::default(),
    );
    app.configure_tenant(
        &shared::domain::TenantId::parse("fixture-tenant").unwrap(),
        shared::usecase::tenants::TenantSettingsChange {
            events_webhook: Some(Some(shared::domain::WebhookEndpoint {
                url,
                secret: EVENTS_SECRET.into(),
            })),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let runtime = RuntimeApi::start().await.unwrap();
    let mut child = runtime
        .command(
            std::path::Path::new(env!("CARGO_BIN_EXE_events")),
            "events",
            &table,
            &local.endpoint(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let batch = fixture("stream-changes");
    let records = batch["Records"].as_array().unwrap().clone();

    // 1. The whole batch, delivered: five of its eight changes are events.
    let answer = response(
        runtime
            .invoke(&batch.to_string(), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    let credential = "0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90";
    let first = arrivals(&receiver, 0);
    let kinds: Vec<(&str, &str)> = first
        .iter()
        .map(|(kind, about, _)| (kind.as_str(), about.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("authenticator.created", credential),
            ("action.state_changed", "CHALLENGE_REQUIRED"),
            ("action.state_changed", "CHALLENGE_SUCCEEDED"),
            ("challenge.attempts_exceeded", "5"),
            ("authenticator.deleted", credential),
        ],
        "the by-key copy, the counter and the TTL removal make none"
    );

    // 2. The same batch again while the receiver refuses the success: the records before it
    // are delivered (again, with the same ids), and the batch fails from its record.
    receiver.refuse_success.store(true, Ordering::SeqCst);
    let seen = receiver.arrived.lock().unwrap().len();
    let answer = response(
        runtime
            .invoke(&batch.to_string(), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    let failed_at = records
        .iter()
        .position(|r| r["dynamodb"]["NewImage"]["state"]["S"] == "CHALLENGE_SUCCEEDED")
        .unwrap();
    let sequence = records[failed_at]["dynamodb"]["SequenceNumber"].clone();
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([{ "itemIdentifier": sequence }]),
        "{answer}"
    );
    let second = arrivals(&receiver, seen);
    assert_eq!(second.len(), 3, "{second:?}");
    assert_eq!(second[..], first[..3], "the same events, with the same ids");

    // 3. What Lambda does next: the batch from the failed record on, the receiver back.
    receiver.refuse_success.store(false, Ordering::SeqCst);
    let seen = receiver.arrived.lock().unwrap().len();
    let retry = serde_json::json!({ "Records": records[failed_at..] });
    let answer = response(
        runtime
            .invoke(&retry.to_string(), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    let third = arrivals(&receiver, seen);
    assert_eq!(
        third[..],
        first[2..],
        "the rest, the refused one with its id"
    );

    child.kill().unwrap();
    let _ = child.wait();
}
