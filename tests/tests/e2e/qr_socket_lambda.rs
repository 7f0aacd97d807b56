//! The QR-code WebSocket on AWS (spec 3.8, issue #14): the `qr-socket` function's `$connect`,
//! `$default` and `$disconnect` fixture events (`functions/qr-socket/events/`) through its
//! Lambda handler, the device's claim and answer through the `challenge` function's Lambda
//! entry path, and every message to the browser through `PostToConnection` to a local stand-in
//! of API Gateway's management endpoint that records what it got. On both stores.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use e2e_tests::lambda_events::{self, FIXTURE_TIME};
use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};
use shared::App;
use shared::clock::ManualClock;
use shared::config::Settings;
use shared::sockets_aws::ApiGatewaySockets;
use shared::store::Store;
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::store::embedded::EmbeddedStore;
use shared::websocket::ConnectionId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use testkit::dynamodb as local;
use tower::ServiceExt as _;

const CONNECTION: &str = "L0SM9cOFvHcCIhw=";
const STAGE: &str = "ws-v1-challenge";

/// What API Gateway's management API received: `PostToConnection` bodies and
/// `DeleteConnection`s, by connection id; connections in `gone` answer 410.
#[derive(Clone, Default)]
struct StandIn {
    posts: Arc<Mutex<Vec<(String, Value)>>>,
    deletes: Arc<Mutex<Vec<String>>>,
    gone: Arc<Mutex<HashSet<String>>>,
}

impl StandIn {
    async fn start() -> (StandIn, String) {
        let stand_in = StandIn::default();
        let router = axum::Router::new()
            .route(
                "/{stage}/@connections/{id}",
                axum::routing::post(post).delete(delete),
            )
            .with_state(stand_in.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/{STAGE}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (stand_in, endpoint)
    }

    /// The messages posted to `connection` since the last call.
    fn take(&self, connection: &str) -> Vec<Value> {
        let mut posts = self.posts.lock().unwrap();
        let (mine, others): (Vec<_>, Vec<_>) =
            posts.drain(..).partition(|(id, _)| id == connection);
        *posts = others;
        mine.into_iter().map(|(_, body)| body).collect()
    }
}

async fn post(
    State(stand_in): State<StandIn>,
    Path((stage, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    assert_eq!(stage, STAGE);
    if stand_in.gone.lock().unwrap().contains(&id) {
        return (
            StatusCode::GONE,
            [("x-amzn-errortype", "GoneException")],
            "{}",
        )
            .into_response();
    }
    let body: Value = serde_json::from_slice(&body).expect("a JSON message");
    stand_in.posts.lock().unwrap().push((id, body));
    StatusCode::OK.into_response()
}

async fn delete(
    State(stand_in): State<StandIn>,
    Path((_, id)): Path<(String, String)>,
) -> StatusCode {
    stand_in.deletes.lock().unwrap().push(id);
    StatusCode::NO_CONTENT
}

/// The fixtures' clock and the production notifier (no tenant here has a webhook).
fn ports(store: Arc<dyn Store>) -> shared::Ports {
    shared::Ports {
        store,
        clock: Arc::new(ManualClock::new(FIXTURE_TIME)),
        notifier: Arc::new(shared::webhook::WebhookNotifier::for_settings(
            &Settings::default(),
        )),
    }
}

struct Setup {
    app: Arc<App>,
    stand_in: StandIn,
    _dynamo: Option<local::LocalDynamo>,
}

async fn setup(on_dynamodb: bool) -> Setup {
    let (stand_in, endpoint) = StandIn::start().await;
    let (store, dynamo): (Arc<dyn Store>, _) = if on_dynamodb {
        let server = local::LocalDynamo::start().await;
        let client = dynamodb::client(
            &DynamoConfig {
                endpoint_url: Some(server.endpoint()),
            },
            UsageMeter::default(),
        )
        .await;
        let table = local::unique_table("ws");
        dynamodb::create_table(&client, &table).await.unwrap();
        (
            Arc::new(DynamoStore::new(client, table, UsageMeter::default())),
            Some(server),
        )
    } else {
        (Arc::new(EmbeddedStore::in_memory().unwrap()), None)
    };
    let sockets = ApiGatewaySockets::with_dummy_credentials(&endpoint).await;
    let app =
        App::new(ports(store.clone()), Settings::default()).with_socket_notifier(Arc::new(sockets));
    lambda_events::seed(&app, &*store).await;
    Setup {
        app: Arc::new(app),
        stand_in,
        _dynamo: dynamo,
    }
}

fn fixture(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/qr-socket/events/"
    );
    serde_json::from_str(&std::fs::read_to_string(format!("{path}{name}.json")).unwrap()).unwrap()
}

/// An event through the function's handler, as the Lambda runtime hands it over (the JSON
/// deserialized into the event type, then `qr_socket::handler`).
async fn invoke(app: &App, event: &Value) -> Value {
    let payload: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(event.clone()).expect("an API Gateway WebSocket event");
    qr_socket::handler(app, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap()
}

fn with_connection(mut event: Value, id: &str) -> Value {
    event["requestContext"]["connectionId"] = id.into();
    event
}

fn with_protocols(mut event: Value, protocols: &str) -> Value {
    event["headers"]["Sec-WebSocket-Protocol"] = protocols.into();
    event["multiValueHeaders"]["Sec-WebSocket-Protocol"] = json!([protocols]);
    event
}

fn with_body(mut event: Value, body: &str) -> Value {
    event["body"] = body.into();
    event
}

/// A device call through the `challenge` function's Lambda entry path, built from its claim
/// fixture: `path` under `/v1/client/user-authenticators/qr-code/`, signed by the fixture key.
async fn device_call(app: &Arc<App>, path: &str, body: Value) -> (u16, Value) {
    let claim = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/challenge/events/claim-qr-code.json"
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(claim).unwrap()).unwrap();
    let raw = format!("/v1/client/user-authenticators/qr-code/{path}");
    event["rawPath"] = raw.clone().into();
    event["requestContext"]["http"]["path"] = raw.into();
    let route = format!("POST /v1/client/user-authenticators/{{namespace}}/{path}");
    event["routeKey"] = route.clone().into();
    event["requestContext"]["routeKey"] = route.into();
    event["body"] = body.to_string().into();
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let handler = shared::lambda::handler(challenge::router(app.clone()));
    let response = handler.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn signed(challenge_id: &str) -> Value {
    json!({
        "challengeId": challenge_id,
        "publicKey": lambda_events::device_public_key(),
        "signature": lambda_events::sign(challenge_id),
    })
}

/// `$connect`, `$default` with CREATE_CHALLENGE: the code's id from what was posted.
async fn connect_and_create(setup: &Setup, connection: &str) -> String {
    let connected = invoke(&setup.app, &with_connection(fixture("connect"), connection)).await;
    assert_eq!(connected["statusCode"], 200, "{connected}");
    assert_eq!(
        connected["headers"]["Sec-WebSocket-Protocol"], "authsignal-ws",
        "the sub-protocol is echoed"
    );
    let answered = invoke(
        &setup.app,
        &with_connection(fixture("message-create-challenge"), connection),
    )
    .await;
    assert_eq!(answered["statusCode"], 200);
    let posted = setup.stand_in.take(connection);
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0]["type"], "CHALLENGE_CREATED", "{}", posted[0]);
    assert_eq!(posted[0]["data"]["state"], "unclaimed");
    posted[0]["data"]["challengeId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn the_whole_flow(on_dynamodb: bool) {
    let setup = setup(on_dynamodb).await;
    let id = connect_and_create(&setup, CONNECTION).await;
    let session = setup
        .app
        .socket_session(&ConnectionId::parse(CONNECTION).unwrap())
        .await
        .unwrap()
        .expect("the session is stored at $connect");
    assert_eq!(session.ip_address.as_deref(), Some("203.0.113.7"));

    // The device claims through the challenge function: the claim is pushed.
    let (status, claimed) = device_call(&setup.app, "challenge/claim", signed(&id)).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["actionCode"], "kioskSignIn");
    assert_eq!(claimed["ipAddress"], "203.0.113.7", "the kiosk's address");
    let posted = setup.stand_in.take(CONNECTION);
    assert_eq!(
        posted,
        vec![json!({"type": "STATE_CHANGE", "data": {"challengeId": id, "state": "claimed"}})]
    );

    // It approves: the token goes to the socket, once.
    let mut approve = signed(&id);
    approve["approved"] = true.into();
    let (status, answered) = device_call(&setup.app, "challenge", approve).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["isVerified"], true);
    let posted = setup.stand_in.take(CONNECTION);
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0]["data"]["state"], "approved");
    let token = posted[0]["data"]["accessToken"].as_str().unwrap();
    let tenant = setup
        .app
        .tenant_by_id(&shared::domain::TenantId::parse(lambda_events::TENANT_ID).unwrap())
        .await
        .unwrap();
    let verified = tenant.keys.verify(token, setup.app.now()).unwrap();
    assert_eq!(verified.action.user_id.as_str(), lambda_events::USER_ID);

    // A rejection on a second code of the same connection.
    let answered = invoke(
        &setup.app,
        &with_connection(fixture("message-create-challenge"), CONNECTION),
    )
    .await;
    assert_eq!(answered["statusCode"], 200);
    let second = setup.stand_in.take(CONNECTION)[0]["data"]["challengeId"]
        .as_str()
        .unwrap()
        .to_owned();
    device_call(&setup.app, "challenge/claim", signed(&second)).await;
    let mut reject = signed(&second);
    reject["approved"] = false.into();
    let (status, answered) = device_call(&setup.app, "challenge", reject).await;
    assert_eq!(
        (status, answered["isVerified"].clone()),
        (200, json!(false))
    );
    let states: Vec<Value> = setup
        .stand_in
        .take(CONNECTION)
        .iter()
        .map(|m| m["data"]["state"].clone())
        .collect();
    assert_eq!(states, vec![json!("claimed"), json!("rejected")]);

    // $disconnect forgets the session; a message after it is refused and the connection closed.
    let gone = invoke(&setup.app, &fixture("disconnect")).await;
    assert_eq!(gone["statusCode"], 200);
    assert!(
        setup
            .app
            .socket_session(&ConnectionId::parse(CONNECTION).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    invoke(
        &setup.app,
        &with_connection(fixture("message-create-challenge"), CONNECTION),
    )
    .await;
    let posted = setup.stand_in.take(CONNECTION);
    assert_eq!(posted[0]["type"], "ERROR");
    assert_eq!(posted[0]["data"]["errorCode"], "unauthorized");
    assert_eq!(
        *setup.stand_in.deletes.lock().unwrap(),
        vec![CONNECTION.to_owned()]
    );
}

#[tokio::test]
async fn connect_create_claim_approve_reject_disconnect_on_the_embedded_store() {
    the_whole_flow(false).await;
}

#[tokio::test]
async fn connect_create_claim_approve_reject_disconnect_on_dynamodb() {
    the_whole_flow(true).await;
}

/// API Gateway's 410 for a connection that went away: the device's claim and answer succeed,
/// and the session is deleted.
#[tokio::test]
async fn a_gone_connection_is_cleaned_up_and_never_fails_the_device() {
    for on_dynamodb in [false, true] {
        let setup = setup(on_dynamodb).await;
        let connection = "Gone9cOFvHcCIhw=";
        let id = connect_and_create(&setup, connection).await;
        setup
            .stand_in
            .gone
            .lock()
            .unwrap()
            .insert(connection.to_owned());
        let (status, body) = device_call(&setup.app, "challenge/claim", signed(&id)).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            setup
                .app
                .socket_session(&ConnectionId::parse(connection).unwrap())
                .await
                .unwrap()
                .is_none(),
            "the gone connection's session is deleted"
        );
        let mut approve = signed(&id);
        approve["approved"] = true.into();
        let (status, body) = device_call(&setup.app, "challenge", approve).await;
        assert_eq!((status, body["isVerified"].clone()), (200, json!(true)));
    }
}

#[tokio::test]
async fn bad_handshakes_are_refused_at_connect() {
    let setup = setup(false).await;
    for protocols in [
        "",
        "authsignal-ws",
        "x.authsignal.tenant.fixture-tenant",
        "authsignal-ws, x.authsignal.tenant.no-such-tenant",
        "authsignal-ws, x.authsignal.token.not-a-token",
    ] {
        let event = with_protocols(
            with_connection(fixture("connect"), "Bad9cOFvHcCIhw="),
            protocols,
        );
        let refused = invoke(&setup.app, &event).await;
        assert_eq!(refused["statusCode"], 401, "{protocols}: {refused}");
        let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
        assert!(body["errorCode"].is_string());
        assert!(refused["headers"].get("Sec-WebSocket-Protocol").is_none());
    }
    assert!(
        setup
            .app
            .socket_session(&ConnectionId::parse("Bad9cOFvHcCIhw=").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing stored for a refused handshake"
    );
}

/// A browser's handshake carries its page's `Origin`; browsers apply no CORS to WebSockets, so
/// one the tenant does not allow (the fixture tenant allows none) is refused at `$connect`.
#[tokio::test]
async fn a_handshake_from_an_origin_the_tenant_does_not_allow_is_refused_at_connect() {
    let setup = setup(false).await;
    let mut event = with_protocols(
        with_connection(fixture("connect"), "Evil9cOFvHcCIhw="),
        "authsignal-ws, x.authsignal.tenant.fixture-tenant",
    );
    event["headers"]["Origin"] = "https://evil.example".into();
    event["multiValueHeaders"]["Origin"] = json!(["https://evil.example"]);
    let refused = invoke(&setup.app, &event).await;
    assert_eq!(refused["statusCode"], 403, "{refused}");
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["errorCode"], "origin_not_allowed", "{body}");
    assert!(refused["headers"].get("Sec-WebSocket-Protocol").is_none());
    assert!(
        setup
            .app
            .socket_session(&ConnectionId::parse("Evil9cOFvHcCIhw=").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing stored for a refused handshake"
    );
}

#[tokio::test]
async fn bad_messages_get_error_messages_and_floods_are_refused() {
    let setup = setup(false).await;
    let connection = "Flood9cOFvHcCIh=";
    connect_and_create(&setup, connection).await;
    let event = with_connection(fixture("message-create-challenge"), connection);
    let big = "x".repeat(shared::websocket::MAX_MESSAGE_BYTES + 1);
    for body in ["", "not json", r#"{"type":"NOPE"}"#, big.as_str()] {
        invoke(&setup.app, &with_body(event.clone(), body)).await;
        let posted = setup.stand_in.take(connection);
        assert_eq!(posted[0]["type"], "ERROR", "{body:.40}");
        assert_eq!(posted[0]["data"]["errorCode"], "invalid_request");
    }
    let mut binary = event.clone();
    binary["isBase64Encoded"] = true.into();
    invoke(&setup.app, &binary).await;
    assert_eq!(setup.stand_in.take(connection)[0]["type"], "ERROR");
    // One create was made at connect; the rest of the window's allowance, then 429s.
    let mut kinds = Vec::new();
    for _ in 0..shared::websocket::CREATES_PER_WINDOW + 2 {
        invoke(&setup.app, &event).await;
        let posted = setup.stand_in.take(connection);
        kinds.push(match posted[0]["type"].as_str().unwrap() {
            "ERROR" => posted[0]["data"]["errorCode"].as_str().unwrap().to_owned(),
            other => other.to_owned(),
        });
    }
    let created = kinds.iter().filter(|k| *k == "CHALLENGE_CREATED").count();
    assert_eq!(
        created as u32,
        shared::websocket::CREATES_PER_WINDOW - 1,
        "{kinds:?}"
    );
    assert!(
        kinds.ends_with(&[
            "too_many_requests".to_owned(),
            "too_many_requests".to_owned(),
            "too_many_requests".to_owned()
        ]),
        "{kinds:?}"
    );
}

/// The DynamoDB actions `template.yaml` grants a function (its first policy statement).
fn granted_actions(resource: &str) -> std::collections::BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let template: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    template["Resources"][resource]["Properties"]["Policies"][0]["Statement"][0]["Action"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// On DynamoDB, every socket event asks only for what the qr-socket function's IAM policy
/// grants, and a claim whose push finds the connection gone (and deletes its session) only for
/// what the challenge function's grants: a missing action would be an `AccessDenied` in AWS.
#[tokio::test]
async fn each_function_uses_only_the_dynamodb_actions_its_iam_policy_grants() {
    let (stand_in, endpoint) = StandIn::start().await;
    let server = local::LocalDynamo::start().await;
    let meter = UsageMeter::default();
    let client = dynamodb::client(
        &DynamoConfig {
            endpoint_url: Some(server.endpoint()),
        },
        meter.clone(),
    )
    .await;
    let table = local::unique_table("ws-iam");
    dynamodb::create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoStore::new(client, table, meter.clone()));
    let app = App::new(ports(store.clone()), Settings::default()).with_socket_notifier(Arc::new(
        ApiGatewaySockets::with_dummy_credentials(&endpoint).await,
    ));
    lambda_events::seed(&app, &*store).await;
    let app = Arc::new(app);
    meter.take();

    let mut socket_actions = std::collections::BTreeSet::new();
    let requests = |usage: &shared::store::dynamodb::Usage| {
        usage
            .requests
            .iter()
            .map(|(op, n)| format!("{op}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    invoke(&app, &fixture("connect")).await;
    let usage = meter.take();
    // docs/dynamodb.md, "QR codes over the WebSocket": the request counts per event.
    assert_eq!(requests(&usage), "PutItem:1", "$connect (tenant cached)");
    socket_actions.extend(usage.iam_actions());
    invoke(&app, &fixture("message-create-challenge")).await;
    let usage = meter.take();
    assert_eq!(
        requests(&usage),
        "GetItem:1 PutItem:1 UpdateItem:3",
        "an anonymous create: the session, the connection's counter, the two anonymous-start counters, the code"
    );
    socket_actions.extend(usage.iam_actions());
    let id = stand_in.take(CONNECTION)[0]["data"]["challengeId"]
        .as_str()
        .unwrap()
        .to_owned();
    // A token-started socket reads the token's action too.
    let mut token_connect = with_connection(fixture("connect"), "Tok9cOFvHcCIhw=");
    let tracked = app
        .track(
            &app.tenant_by_id(&shared::domain::TenantId::parse(lambda_events::TENANT_ID).unwrap())
                .await
                .unwrap(),
            shared::usecase::track::TrackCommand {
                redirect_url: None,
                redirect_to_settings: false,
                user_id: shared::domain::UserId::parse(lambda_events::USER_ID).unwrap(),
                action_code: shared::domain::ActionCode::parse("kioskSignIn").unwrap(),
                idempotency_key: None,
                context: Default::default(),
                username: None,
                email: None,
                phone_number: None,
            },
        )
        .await
        .unwrap();
    token_connect = with_protocols(
        token_connect,
        &format!("authsignal-ws, x.authsignal.token.{}", tracked.token),
    );
    meter.take();
    assert_eq!(invoke(&app, &token_connect).await["statusCode"], 200);
    invoke(
        &app,
        &with_connection(fixture("message-create-challenge"), "Tok9cOFvHcCIhw="),
    )
    .await;
    let usage = meter.take();
    assert_eq!(
        requests(&usage),
        "GetItem:2 PutItem:2 UpdateItem:1",
        "$connect, then a token-started create: the session, the connection's counter, the action, the code"
    );
    socket_actions.extend(usage.iam_actions());
    assert_eq!(
        stand_in.take("Tok9cOFvHcCIhw=")[0]["type"],
        "CHALLENGE_CREATED"
    );
    invoke(&app, &fixture("disconnect")).await;
    let usage = meter.take();
    assert_eq!(requests(&usage), "DeleteItem:1", "$disconnect");
    socket_actions.extend(usage.iam_actions());

    let granted = granted_actions("QrSocketFunction");
    let missing: Vec<&String> = socket_actions.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "qr-socket uses {missing:?}, not granted ({granted:?})"
    );

    // The connection is gone now: the claim's push gets 410 and deletes the session.
    stand_in.gone.lock().unwrap().insert(CONNECTION.to_owned());
    invoke(&app, &fixture("connect")).await;
    meter.take();
    let (status, _) = device_call(&app, "challenge/claim", signed(&id)).await;
    assert_eq!(status, 200);
    let used = meter.take().iam_actions();
    assert!(used.contains("dynamodb:DeleteItem"), "{used:?}");
    let granted = granted_actions("ChallengeFunction");
    let missing: Vec<&String> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "challenge uses {missing:?}, not granted ({granted:?})"
    );
}
