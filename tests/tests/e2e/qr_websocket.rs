//! The QR-code WebSocket on the local server (spec 3.8, issue #14), over a real socket: the
//! states a device's claim and answer push (on the store the suite runs on: embedded, or
//! DynamoDB with `TRUSTED_DEVICE_TEST_STORE=dynamodb`), and what bad clients get: refused
//! handshakes, `ERROR` messages, closes for oversized messages, floods and silence, sockets
//! that count against the connection caps, and a close at shutdown. Never a crash.

use e2e_tests::{Auth, Device, Harness};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use shared::App;
use shared::clock::SystemClock;
use shared::config::Settings;
use shared::domain::TenantId;
use shared::store::embedded::EmbeddedStore;
use shared::usecase::tenants::ApiSecret;
use shared::websocket::{CREATES_PER_WINDOW, MAX_MESSAGE_BYTES};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use trusted_device::{Limits, RunningServer, SocketLimits};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(url: &str, protocols: &str) -> Result<Socket, tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if !protocols.is_empty() {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "authsignal-ws",
        "the server echoes authsignal-ws"
    );
    Ok(socket)
}

/// The next text message as JSON; fails on anything else or after 5 seconds.
async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("the socket is open")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// How the server ended the socket: its close code, or `None` if it just dropped it.
async fn closed(socket: &mut Socket, within: Duration) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

fn create(action: &str) -> Message {
    Message::text(
        json!({"type": "CREATE_CHALLENGE", "data": {"challengeType": "QR_CODE", "actionCode": action}})
            .to_string(),
    )
}

fn tenant_offer(tenant: &str) -> String {
    format!("authsignal-ws, x.authsignal.tenant.{tenant}")
}

#[tokio::test]
async fn claims_and_answers_are_pushed_to_the_socket_that_created_the_code() {
    let h = Harness::start().await;
    let url = h.server.websocket_url();
    let mut socket = open(&url, &tenant_offer(&h.a.id)).await.unwrap();
    socket.send(create("kioskSignIn")).await.unwrap();
    let created = receive(&mut socket).await;
    assert_eq!(created["type"], "CHALLENGE_CREATED", "{created}");
    let id = created["data"]["challengeId"].as_str().unwrap().to_owned();

    let phone = Device::in_namespace("qr-code");
    h.register(&h.a, "alice-ws", &phone).await;
    let signed = |extra: Value| {
        let mut body =
            json!({"challengeId": id, "publicKey": phone.public_key, "signature": phone.sign(&id)});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    h.post(
        "/client/user-authenticators/qr-code/challenge/claim",
        Auth::TenantAndroid(&h.a.id),
        signed(json!({})),
    )
    .await
    .expect(200);
    assert_eq!(
        receive(&mut socket).await,
        json!({"type": "STATE_CHANGE", "data": {"challengeId": id, "state": "claimed"}})
    );
    h.post(
        "/client/user-authenticators/qr-code/challenge",
        Auth::TenantIos(&h.a.id),
        signed(json!({"approved": true})),
    )
    .await
    .expect(200);
    let approved = receive(&mut socket).await;
    assert_eq!(approved["data"]["state"], "approved");
    let token = approved["data"]["accessToken"].as_str().unwrap();
    let validated = h
        .validate(&h.a, json!({"token": token, "action": "kioskSignIn"}))
        .await;
    assert_eq!(validated["isValid"], true, "{validated}");
    assert_eq!(validated["userId"], "alice-ws");

    // Another tenant's socket hears nothing of it, and cannot claim into tenant A's codes.
    let mut other = open(&url, &tenant_offer(&h.b.id)).await.unwrap();
    other.send(create("kioskSignIn")).await.unwrap();
    assert_eq!(receive(&mut other).await["type"], "CHALLENGE_CREATED");
    socket.close(None).await.unwrap();
}

/// A server on the embedded store with short socket limits, for the misbehaving clients.
async fn strict_server(limits: Limits, socket_limits: SocketLimits) -> RunningServer {
    let app = App::new(
        shared::Ports {
            store: Arc::new(EmbeddedStore::in_memory().unwrap()),
            clock: Arc::new(SystemClock),
            notifier: Arc::new(shared::webhook::WebhookNotifier::for_settings(
                &Settings::default(),
            )),
        },
        Settings::default(),
    );
    app.ensure_tenant(
        &TenantId::parse("ws-tenant").unwrap(),
        &ApiSecret::parse("sk_test_ws_tenant_0123456789").unwrap(),
    )
    .await
    .unwrap();
    RunningServer::start_with_all_limits(app, limits, socket_limits)
        .await
        .unwrap()
}

fn short() -> SocketLimits {
    SocketLimits {
        first_message: Duration::from_millis(400),
        idle: Duration::from_millis(800),
        max_errors: 5,
        ..SocketLimits::default()
    }
}

#[tokio::test]
async fn bad_sub_protocols_are_refused_at_the_handshake_in_the_error_shape() {
    let server = strict_server(Limits::default(), short()).await;
    let url = server.websocket_url();
    for offer in [
        "",
        "authsignal-ws",
        "chat",
        "x.authsignal.tenant.ws-tenant",
        "authsignal-ws, x.authsignal.tenant.nobody",
        "authsignal-ws, x.authsignal.token.abc.def.ghi",
        "authsignal-ws, x.authsignal.tenant.ws-tenant, x.authsignal.tenant.ws-tenant",
    ] {
        match open(&url, offer).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{offer}");
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert!(body["errorCode"].is_string(), "{offer}: {body}");
            }
            other => panic!("{offer}: expected a refused handshake, got {other:?}"),
        }
    }
    // A plain GET of the route is a 400 in the error shape, not a crash.
    let response = reqwest::get(format!("http://{}/ws-v1-challenge", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn bad_messages_get_errors_then_too_many_close_the_socket() {
    let server = strict_server(Limits::default(), short()).await;
    let mut socket = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
        .await
        .unwrap();
    for text in [
        "not json",
        "{}",
        r#"{"type":"PING"}"#,
        r#"{"type":"CREATE_CHALLENGE","data":{"challengeType":"QR_CODE"}}"#,
    ] {
        socket.send(Message::text(text)).await.unwrap();
        let error = receive(&mut socket).await;
        assert_eq!(error["type"], "ERROR", "{text}");
        assert_eq!(error["data"]["errorCode"], "invalid_request");
    }
    socket.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_eq!(receive(&mut socket).await["type"], "ERROR");
    // Still usable.
    socket.send(create("kioskSignIn")).await.unwrap();
    assert_eq!(receive(&mut socket).await["type"], "CHALLENGE_CREATED");
    // One more error than max_errors (5 so far): answered, then closed with 1008.
    socket.send(Message::text("nope")).await.unwrap();
    assert_eq!(receive(&mut socket).await["type"], "ERROR");
    assert_eq!(
        closed(&mut socket, Duration::from_secs(2)).await,
        Some(CloseCode::Policy)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_creates_is_refused_past_the_limit() {
    let server = strict_server(
        Limits::default(),
        SocketLimits {
            max_errors: 100,
            ..short()
        },
    )
    .await;
    let mut socket = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
        .await
        .unwrap();
    let mut created = 0;
    let mut refused = 0;
    for _ in 0..CREATES_PER_WINDOW + 20 {
        socket.send(create("kioskSignIn")).await.unwrap();
    }
    for _ in 0..CREATES_PER_WINDOW + 20 {
        let answer = receive(&mut socket).await;
        match answer["type"].as_str().unwrap() {
            "CHALLENGE_CREATED" => created += 1,
            "ERROR" => {
                assert_eq!(answer["data"]["errorCode"], "too_many_requests");
                refused += 1;
            }
            other => panic!("{other}"),
        }
    }
    // A window boundary may fall inside the flood: at most two windows' worth get through.
    assert!(
        (CREATES_PER_WINDOW..=2 * CREATES_PER_WINDOW).contains(&created),
        "{created}"
    );
    assert_eq!(created + refused, CREATES_PER_WINDOW + 20);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_message_closes_the_socket_with_1009() {
    let server = strict_server(Limits::default(), short()).await;
    let mut socket = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
        .await
        .unwrap();
    let big = format!(
        r#"{{"type":"CREATE_CHALLENGE","data":{{"actionCode":"a","custom":{{"x":"{}"}}}}}}"#,
        "y".repeat(MAX_MESSAGE_BYTES)
    );
    socket.send(Message::text(big)).await.unwrap();
    let code = closed(&mut socket, Duration::from_secs(2)).await;
    assert!(code.is_none() || code == Some(CloseCode::Size), "{code:?}");
    // The server is fine.
    let mut again = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
        .await
        .unwrap();
    again.send(create("kioskSignIn")).await.unwrap();
    assert_eq!(receive(&mut again).await["type"], "CHALLENGE_CREATED");
    server.stop().await;
}

/// A read that fails closes the socket with the code RFC 6455 7.4.1 gives its cause: 1007 for
/// a text frame that is not UTF-8, 1002 for an unmasked frame from the client.
#[tokio::test]
async fn broken_frames_close_the_socket_with_the_code_for_their_cause() {
    use tokio::io::AsyncWriteExt as _;
    let server = strict_server(Limits::default(), short()).await;
    for (frame, expected) in [
        // FIN + text, masked (a zero key), two bytes that are not UTF-8.
        (
            &[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe][..],
            CloseCode::Invalid,
        ),
        // FIN + text, not masked: a client must mask (RFC 6455 5.1).
        (&[0x81, 0x02, b'h', b'i'][..], CloseCode::Protocol),
    ] {
        let mut socket = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
            .await
            .unwrap();
        let MaybeTlsStream::Plain(stream) = socket.get_mut() else {
            panic!("a plain TCP stream");
        };
        stream.write_all(frame).await.unwrap();
        let code = closed(&mut socket, Duration::from_secs(2)).await;
        assert_eq!(code, Some(expected), "{frame:02x?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn silent_sockets_are_closed_after_the_first_message_and_idle_timeouts() {
    let server = strict_server(Limits::default(), short()).await;
    // Never sends: closed after `first_message`.
    let started = std::time::Instant::now();
    let mut silent = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
        .await
        .unwrap();
    assert_eq!(
        closed(&mut silent, Duration::from_secs(3)).await,
        Some(CloseCode::Normal)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // Sends once, then nothing: closed after `idle`.
    let mut idle = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
        .await
        .unwrap();
    idle.send(create("kioskSignIn")).await.unwrap();
    assert_eq!(receive(&mut idle).await["type"], "CHALLENGE_CREATED");
    assert_eq!(
        closed(&mut idle, Duration::from_secs(3)).await,
        Some(CloseCode::Normal)
    );
    server.stop().await;
}

/// A socket keeps its connection's slot: the per-address cap counts it, and a closed socket
/// gives its slot back.
#[tokio::test]
async fn sockets_count_against_the_connection_caps() {
    let server = strict_server(
        Limits {
            max_connections_per_address: 2,
            ..Limits::default()
        },
        SocketLimits::default(),
    )
    .await;
    let url = server.websocket_url();
    let mut first = open(&url, &tenant_offer("ws-tenant")).await.unwrap();
    let _second = open(&url, &tenant_offer("ws-tenant")).await.unwrap();
    match open(&url, &tenant_offer("ws-tenant")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429 past the per-address cap, got {other:?}"),
    }
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    // The slot comes back once the server has seen the close.
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(socket) = open(&url, &tenant_offer("ws-tenant")).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a closed socket frees its slot");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_sockets_with_going_away() {
    let server = strict_server(Limits::default(), SocketLimits::default()).await;
    let mut socket = open(&server.websocket_url(), &tenant_offer("ws-tenant"))
        .await
        .unwrap();
    socket.send(create("kioskSignIn")).await.unwrap();
    assert_eq!(receive(&mut socket).await["type"], "CHALLENGE_CREATED");
    let stopping = tokio::spawn(server.stop());
    assert_eq!(
        closed(&mut socket, Duration::from_secs(5)).await,
        Some(CloseCode::Away)
    );
    drop(socket);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the server stops once its sockets are closed")
        .unwrap();
}
