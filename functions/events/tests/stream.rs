//! The events function on what the DynamoDB store really writes (issue #19, DESIGN 10): a
//! table on the local DynamoDB-compatible server with its stream on (new and old images), the
//! use cases run on the DynamoDB store (enrol, sign in and verify, remove the device), the
//! stream read back with the DynamoDB Streams API (ListStreams, DescribeStream,
//! GetShardIterator, GetRecords), and those records handed to the real `events` binary as
//! Lambda's event source mapping hands them: the deliveries are exactly the events of those
//! changes. The fixtures of `bootstrap.rs` are hand-written; this proves the item images the
//! store writes decode.

use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};
use serde_json::{Value, json};
use shared::domain::{ActionCode, IdempotencyKey, Namespace, TenantId, TrackContext, UserId};
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::usecase::challenges::ChallengeStarter;
use shared::usecase::track::TrackCommand;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};
use testkit::usecase::Device;

const TENANT: &str = "stream-tenant";
const SECRET: &str = "sk_stream_0123456789abcdef";

/// One DynamoDB Streams call, as the SDKs make it (JSON 1.0 with `X-Amz-Target`).
async fn streams(endpoint: &str, operation: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("Content-Type", "application/x-amz-json-1.0")
        .header(
            "X-Amz-Target",
            format!("DynamoDBStreams_20120810.{operation}"),
        )
        // The local server wants an authorisation of SigV4's shape; it checks no signature.
        .header("X-Amz-Date", "20261201T000000Z")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=local/20261201/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-target, Signature=00",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{operation}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Every record of the table's stream, oldest first, with the `eventSourceARN` Lambda adds.
async fn stream_records(endpoint: &str, table: &str) -> Vec<Value> {
    let listed = streams(endpoint, "ListStreams", json!({ "TableName": table })).await;
    let arn = listed["Streams"][0]["StreamArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let described = streams(endpoint, "DescribeStream", json!({ "StreamArn": arn })).await;
    let mut records = Vec::new();
    for shard in described["StreamDescription"]["Shards"].as_array().unwrap() {
        let iterator = streams(
            endpoint,
            "GetShardIterator",
            json!({
                "StreamArn": arn,
                "ShardId": shard["ShardId"],
                "ShardIteratorType": "TRIM_HORIZON",
            }),
        )
        .await;
        let mut next = iterator["ShardIterator"].clone();
        while let Some(iterator) = next.as_str().map(str::to_owned) {
            let page = streams(endpoint, "GetRecords", json!({ "ShardIterator": iterator })).await;
            let batch = page["Records"].as_array().unwrap();
            if batch.is_empty() {
                break;
            }
            for record in batch {
                let mut record = record.clone();
                record["eventSourceARN"] = json!(arn);
                records.push(record);
            }
            next = page["NextShardIterator"].clone();
        }
    }
    records
}

type Arrived = Arc<Mutex<Vec<Value>>>;

async fn receive(
    axum::extract::State(arrived): axum::extract::State<Arrived>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    arrived
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    axum::http::StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_real_stream_records_become_exactly_their_events() {
    let local = LocalDynamo::start().await;
    let table = local.table_with_tenant("stream", TENANT, SECRET).await;
    let meter = UsageMeter::default();
    let config = DynamoConfig {
        endpoint_url: Some(local.endpoint()),
    };
    let client = dynamodb::client(&config, meter.clone()).await;
    client
        .update_table()
        .table_name(&table)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let arrived = Arrived::default();
    let router = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(arrived.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let app = testkit::app(
        Arc::new(DynamoStore::new(client, &table, meter)),
        Arc::new(shared::clock::SystemClock),
        shared::config::Settings::default(),
    );
    let id = TenantId::parse(TENANT).unwrap();
    app.configure_tenant(
        &id,
        shared::usecase::tenants::TenantSettingsChange {
            events_webhook: Some(Some(shared::domain::WebhookEndpoint {
                url,
                secret: "whsec_stream_0123456789abcdef".into(),
            })),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let tenant = app.tenant_by_id(&id).await.unwrap();
    let track = |code: &str, key: &str, scope: Option<&str>| TrackCommand {
        user_id: UserId::parse("alice").unwrap(),
        action_code: ActionCode::parse(code).unwrap(),
        idempotency_key: Some(IdempotencyKey::parse(key).unwrap()),
        context: TrackContext {
            scope: scope.map(str::to_owned),
            ..Default::default()
        },
        username: None,
        email: None,
        phone_number: None,
        redirect_url: None,
        redirect_to_settings: false,
    };

    // Enrol, sign in and verify, remove the device: on the DynamoDB store.
    let enrol = app
        .track(
            &tenant,
            track("addAuthenticator", "enrol-1", Some("add:authenticators")),
        )
        .await
        .unwrap();
    let token = tenant.keys.verify(&enrol.token, app.now()).unwrap();
    let device = Device::new(Namespace::InApp);
    let credential = app
        .add_credential(&tenant, &token, device.add_command())
        .await
        .unwrap();
    let sign_in = app
        .track(&tenant, track("signIn", "sign-in-1", None))
        .await
        .unwrap();
    let token = tenant.keys.verify(&sign_in.token, app.now()).unwrap();
    let challenge = app
        .start_challenge(&tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();
    app.verify_challenge(&tenant, Some(&token), device.verify_command(&challenge))
        .await
        .unwrap();
    app.delete_authenticator(&tenant, &credential.user_id, &credential.id)
        .await
        .unwrap();

    let records = stream_records(&local.endpoint(), &table).await;
    assert!(records.len() > 5, "{} records", records.len());
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
    let outcome = runtime
        .invoke(
            &json!({ "Records": records }).to_string(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let Outcome::Response(answer) = outcome else {
        panic!("the function failed: {outcome:?}")
    };
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");

    let arrived = arrived.lock().unwrap();
    let seen: Vec<(String, String)> = arrived
        .iter()
        .map(|event| {
            let data = &event["data"];
            let about = match event["type"].as_str().unwrap() {
                "action.state_changed" => format!(
                    "{} {}",
                    data["idempotencyKey"].as_str().unwrap(),
                    data["state"].as_str().unwrap()
                ),
                _ => data["userAuthenticatorId"].as_str().unwrap().to_owned(),
            };
            (event["type"].as_str().unwrap().to_owned(), about)
        })
        .collect();
    let expected: Vec<(String, String)> = [
        (
            "action.state_changed",
            format!("enrol-1 {}", enrol.action.state.as_str()),
        ),
        ("authenticator.created", credential.id.as_str().to_owned()),
        (
            "action.state_changed",
            "sign-in-1 CHALLENGE_REQUIRED".to_owned(),
        ),
        (
            "action.state_changed",
            "sign-in-1 CHALLENGE_SUCCEEDED".to_owned(),
        ),
        ("authenticator.deleted", credential.id.as_str().to_owned()),
    ]
    .into_iter()
    .map(|(kind, about)| (kind.to_owned(), about))
    .collect();
    assert_eq!(
        seen, expected,
        "one event per change, in the stream's order"
    );
    child.kill().unwrap();
    let _ = child.wait();
}
