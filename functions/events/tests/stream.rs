//! The events function on what the DynamoDB store really writes (issue #19, DESIGN 10): a
//! table on the local DynamoDB-compatible server with its stream on (new and old images), the
//! use cases run on the DynamoDB store (enrol, sign in and verify, remove the device), the
//! stream read back with the DynamoDB Streams API (ListStreams, DescribeStream,
//! GetShardIterator, GetRecords), and those records handed to the real `events` binary as
//! Lambda's event source mapping hands them: the deliveries are exactly the events of those
//! changes. The fixtures of `bootstrap.rs` are hand-written; this proves the item images the
//! store writes decode. The same for a passkey (spec 3.5): registered, used to sign in, removed.

use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};
use serde_json::{Value, json};
use shared::App;
use shared::domain::{
    ActionCode, IdempotencyKey, Namespace, PasskeyConfig, TenantId, TrackContext, UserId,
    UserVerification,
};
use shared::passkey::proto::{PublicKeyCredential, RegisterPublicKeyCredential};
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::usecase::challenges::ChallengeStarter;
use shared::usecase::passkeys::RegistrationOptions;
use shared::usecase::tenants::{Tenant, TenantSettingsChange};
use shared::usecase::track::TrackCommand;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};
use testkit::soft_passkey::SoftPasskey;
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

/// A table with its stream on (new and old images), a tenant with an events webhook (and
/// `settings` besides) on the DynamoDB store, and the receiver the events go to.
struct Stage {
    local: LocalDynamo,
    table: String,
    app: App,
    tenant: Arc<Tenant>,
    arrived: Arrived,
}

async fn stage(settings: TenantSettingsChange) -> Stage {
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
        TenantSettingsChange {
            events_webhook: Some(Some(shared::domain::WebhookEndpoint {
                url,
                secret: "whsec_stream_0123456789abcdef".into(),
            })),
            ..settings
        },
    )
    .await
    .unwrap();
    let tenant = app.tenant_by_id(&id).await.unwrap();
    Stage {
        local,
        table,
        app,
        tenant,
        arrived,
    }
}

fn track(code: &str, key: &str, scope: Option<&str>) -> TrackCommand {
    TrackCommand {
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
    }
}

/// The table's whole stream, read back and handed to the real `events` binary as one batch,
/// as Lambda's event source mapping hands it: the events that arrived, in order.
async fn run_events_function(stage: &Stage) -> Vec<Value> {
    let records = stream_records(&stage.local.endpoint(), &stage.table).await;
    assert!(records.len() > 5, "{} records", records.len());
    let runtime = RuntimeApi::start().await.unwrap();
    let mut child = runtime
        .command(
            std::path::Path::new(env!("CARGO_BIN_EXE_events")),
            "events",
            &stage.table,
            &stage.local.endpoint(),
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
    child.kill().unwrap();
    let _ = child.wait();
    let Outcome::Response(answer) = outcome else {
        panic!("the function failed: {outcome:?}")
    };
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    stage.arrived.lock().unwrap().clone()
}

/// (type, what it is about) of each event: the action's key and state, or the authenticator.
fn summary(arrived: &[Value]) -> Vec<(String, String)> {
    arrived
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
        .collect()
}

fn owned(expected: Vec<(&str, String)>) -> Vec<(String, String)> {
    expected
        .into_iter()
        .map(|(kind, about)| (kind.to_owned(), about))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_real_stream_records_become_exactly_their_events() {
    let stage = stage(TenantSettingsChange::default()).await;
    let (app, tenant) = (&stage.app, &stage.tenant);

    // Enrol, sign in and verify, remove the device: on the DynamoDB store.
    let enrol = app
        .track(
            tenant,
            track("addAuthenticator", "enrol-1", Some("add:authenticators")),
        )
        .await
        .unwrap();
    let token = tenant.keys.verify(&enrol.token, app.now()).unwrap();
    let device = Device::new(Namespace::InApp);
    let credential = app
        .add_credential(tenant, &token, device.add_command())
        .await
        .unwrap();
    let sign_in = app
        .track(tenant, track("signIn", "sign-in-1", None))
        .await
        .unwrap();
    let token = tenant.keys.verify(&sign_in.token, app.now()).unwrap();
    let challenge = app
        .start_challenge(tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();
    app.verify_challenge(tenant, Some(&token), device.verify_command(&challenge))
        .await
        .unwrap();
    app.delete_authenticator(tenant, &credential.user_id, &credential.id)
        .await
        .unwrap();

    let arrived = run_events_function(&stage).await;
    let expected = owned(vec![
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
    ]);
    assert_eq!(
        summary(&arrived),
        expected,
        "one event per change, in the stream's order"
    );
}

const PASSKEY_ORIGIN: &str = "https://app.example.com";
const PASSKEY_RP_ID: &str = "example.com";

/// spec 3.5, DESIGN 10: a passkey's registration writes its two copies and completes the
/// action in one transaction; a sign-in rewrites both copies (counter, last use) and completes
/// its action; a removal deletes both. The stream holds every one of those items, and they are
/// exactly `authenticator.created` (with the action's change), the sign-in's action changes and
/// `authenticator.deleted`: one event per passkey change, none for the sign-in's new counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkeys_real_stream_records_become_authenticator_events() {
    let stage = stage(TenantSettingsChange {
        passkey: Some(Some(PasskeyConfig {
            rp_id: PASSKEY_RP_ID.into(),
            rp_name: "Example".into(),
            origins: vec![PASSKEY_ORIGIN.into()],
            user_verification: UserVerification::Required,
            require_attestation: false,
            attestation_cas: Vec::new(),
        })),
        ..TenantSettingsChange::default()
    })
    .await;
    let (app, tenant) = (&stage.app, &stage.tenant);

    // `passkey.signUp({token})` after a track, on the DynamoDB store.
    let sign_up = app
        .track(tenant, track("signUp", "sign-up-1", None))
        .await
        .unwrap();
    let token = tenant.keys.verify(&sign_up.token, app.now()).unwrap();
    let start = app
        .passkey_registration_options(tenant, &token, RegistrationOptions::default())
        .await
        .unwrap();
    let mut soft = SoftPasskey::new(PASSKEY_ORIGIN, PASSKEY_RP_ID);
    let response: RegisterPublicKeyCredential =
        serde_json::from_value(soft.create(&start.options)).unwrap();
    let passkey = app
        .add_passkey(tenant, &token, &start.challenge_id, &response)
        .await
        .unwrap()
        .passkey;

    // A sign-in with it: the counter goes from 0 to 1.
    let sign_in = app
        .track(tenant, track("signIn", "sign-in-1", None))
        .await
        .unwrap();
    let token = tenant.keys.verify(&sign_in.token, app.now()).unwrap();
    let start = app
        .passkey_authentication_options(tenant, Some(&token), None, None)
        .await
        .unwrap();
    let assertion: PublicKeyCredential = serde_json::from_value(soft.get(&start.options)).unwrap();
    let signed_in = app
        .verify_passkey(tenant, Some(&token), &start.challenge_id, &assertion)
        .await
        .unwrap();
    assert_eq!(signed_in.passkey.counter, 1);

    // `deleteAuthenticator` with the id `getAuthenticators` shows.
    app.delete_authenticator(tenant, &passkey.user_id, &passkey.id)
        .await
        .unwrap();

    let arrived = run_events_function(&stage).await;
    let id = passkey.id.as_str().to_owned();
    let sign_up_completed = owned(vec![
        (
            "action.state_changed",
            "sign-up-1 CHALLENGE_SUCCEEDED".to_owned(),
        ),
        ("authenticator.created", id.clone()),
    ]);
    let mut expected = owned(vec![(
        "action.state_changed",
        format!("sign-up-1 {}", sign_up.action.state.as_str()),
    )]);
    // One transaction's items are in the stream in no order of ours: the registration's two
    // events may come either way round.
    let seen = summary(&arrived);
    let mut registration: Vec<_> = seen.get(1..3).unwrap_or_default().to_vec();
    registration.sort();
    assert_eq!(registration, sign_up_completed, "{seen:?}");
    expected.extend(seen[1..3].iter().cloned());
    expected.extend(owned(vec![
        (
            "action.state_changed",
            "sign-in-1 CHALLENGE_REQUIRED".to_owned(),
        ),
        (
            "action.state_changed",
            "sign-in-1 CHALLENGE_SUCCEEDED".to_owned(),
        ),
        ("authenticator.deleted", id.clone()),
    ]));
    assert_eq!(seen, expected, "one event per change, none for the sign-in");

    for event in arrived.iter().filter(|event| {
        event["type"]
            .as_str()
            .unwrap()
            .starts_with("authenticator.")
    }) {
        let data = &event["data"];
        assert_eq!(data["verificationMethod"], "PASSKEY", "{event}");
        assert_eq!(data["userId"], "alice", "{event}");
        assert_eq!(
            data["webauthnCredential"]["credentialId"],
            soft.id(),
            "{event}"
        );
        assert_eq!(
            event["id"].as_str().unwrap(),
            shared::events::derived_id(&tenant.id, event["type"].as_str().unwrap(), &[&id]),
            "the id the embedded outbox gives the same change"
        );
    }
    let completed = &arrived
        .iter()
        .find(|event| event["data"]["state"] == "CHALLENGE_SUCCEEDED")
        .unwrap()["data"];
    assert_eq!(completed["verificationMethod"], "PASSKEY");
    assert_eq!(completed["userAuthenticatorId"], id.as_str());
}
