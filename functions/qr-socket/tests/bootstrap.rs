//! The `qr-socket` function's real binary, run the way Lambda runs a `bootstrap`: started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a local Runtime API, on a DynamoDB-compatible server,
//! with `TRUSTED_DEVICE_WEBSOCKET_ENDPOINT` at a local stand-in of API Gateway's management API
//! that records what was posted, and invoked with the WebSocket events from `events/`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};

const FIXTURE_SECRET: &str = "sk_fixture_0123456789abcdef";

fn event(name: &str) -> String {
    std::fs::read_to_string(format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

type Posts = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn record(
    State(posts): State<Posts>,
    Path((stage, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> StatusCode {
    posts
        .lock()
        .unwrap()
        .push((stage, id, serde_json::from_slice(&body).unwrap()));
    StatusCode::OK
}

fn response(outcome: Outcome) -> Value {
    let Outcome::Response(text) = outcome else {
        panic!("the function failed: {outcome:?}")
    };
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_binary_serves_connect_message_and_disconnect() {
    let local = LocalDynamo::start().await;
    let table = local
        .table_with_tenant("qr-socket", "fixture-tenant", FIXTURE_SECRET)
        .await;
    let posts = Posts::default();
    let stand_in = axum::Router::new()
        .route("/{stage}/@connections/{id}", axum::routing::post(record))
        .with_state(posts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/ws-v1-challenge", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, stand_in).await });

    let runtime = RuntimeApi::start().await.unwrap();
    let mut child = runtime
        .command(
            std::path::Path::new(env!("CARGO_BIN_EXE_qr-socket")),
            "qr-socket",
            &table,
            &local.endpoint(),
        )
        .env("TRUSTED_DEVICE_WEBSOCKET_ENDPOINT", &endpoint)
        // The management client's credentials and region, as Lambda's environment gives them.
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let connected = response(
        runtime
            .invoke(&event("connect"), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    assert_eq!(connected["statusCode"], 200, "{connected}");
    assert_eq!(
        connected["headers"]["Sec-WebSocket-Protocol"],
        "authsignal-ws"
    );

    let answered = response(
        runtime
            .invoke(&event("message-create-challenge"), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    assert_eq!(answered["statusCode"], 200, "{answered}");
    {
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 1, "{posts:?}");
        let (stage, id, message) = &posts[0];
        assert_eq!(stage, "ws-v1-challenge");
        assert_eq!(id, "L0SM9cOFvHcCIhw=");
        assert_eq!(message["type"], "CHALLENGE_CREATED", "{message}");
        assert_eq!(message["data"]["challengeType"], "QR_CODE");
    }

    let gone = response(
        runtime
            .invoke(&event("disconnect"), Duration::from_secs(30))
            .await
            .unwrap(),
    );
    assert_eq!(gone["statusCode"], 200);
    child.kill().unwrap();
    let _ = child.wait();
}
