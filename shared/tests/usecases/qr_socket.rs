//! `shared::usecase::qr_socket`, through the public API: the WebSocket QR flow at the use-case
//! level (handshake, create, and the states the REST claim and answer push), through the local
//! registry of sockets.

use super::prelude::*;
use shared::store::{ApprovalStore, SocketSession, SocketStarter, SocketStore};
use shared::usecase::approvals::{Answer, SignedChallengeRequest};
use shared::usecase::qr_socket::Handshake;
use shared::websocket::{
    CREATE_WINDOW_SECONDS, CREATES_PER_WINDOW, ConnectionId, LocalDelivery, LocalSockets,
    ServerMessage,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use testkit::usecase::{Device, Kit};
use tokio::sync::mpsc;

type Result<T> = std::result::Result<T, Error>;

struct Socket {
    session: SocketSession,
    rx: mpsc::Receiver<LocalDelivery>,
    _registration: shared::websocket::LocalRegistration,
}

async fn kit() -> (Kit, LocalSockets) {
    let mut kit = Kit::new().await;
    let sockets = LocalSockets::new(16);
    kit.app.set_socket_notifier(Arc::new(sockets.clone()));
    (kit, sockets)
}

async fn open(kit: &Kit, sockets: &LocalSockets, offer: &str) -> Result<Socket> {
    open_from(kit, sockets, offer, None).await
}

/// A handshake from a page on `origin` (a browser sends its `Origin`), or from no page.
async fn open_from(
    kit: &Kit,
    sockets: &LocalSockets,
    offer: &str,
    origin: Option<&str>,
) -> Result<Socket> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = ConnectionId::parse(format!("c{}", NEXT.fetch_add(1, Ordering::SeqCst)))?;
    let session = kit
        .app
        .open_socket(
            id.clone(),
            Handshake {
                subprotocols: vec![offer],
                ip: Some("198.51.100.4".parse().unwrap()),
                user_agent: Some("kiosk"),
                origin,
                host: Some("auth.example"),
            },
        )
        .await?;
    let (registration, rx) = sockets.register(id).unwrap();
    Ok(Socket {
        session,
        rx,
        _registration: registration,
    })
}

fn create(action: &str) -> String {
    format!(
        r#"{{"type":"CREATE_CHALLENGE","data":{{"challengeType":"QR_CODE","actionCode":"{action}"}}}}"#
    )
}

async fn created(kit: &Kit, socket: &Socket, text: &str) -> (ApprovalId, serde_json::Value) {
    let reply = ServerMessage::answer(kit.app.socket_message(&socket.session, text).await);
    let json: serde_json::Value = serde_json::from_str(&reply.to_text()).unwrap();
    assert_eq!(json["type"], "CHALLENGE_CREATED", "{json}");
    let id = ApprovalId::parse(json["data"]["challengeId"].as_str().unwrap()).unwrap();
    (id, json)
}

async fn next_state(socket: &mut Socket) -> serde_json::Value {
    match socket.rx.try_recv() {
        Ok(LocalDelivery::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("no state pushed: {other:?}"),
    }
}

async fn enrolled(kit: &Kit, user: &str) -> Device {
    let phone = Device::new(Namespace::QrCode);
    let enrol = kit
        .track_token(user, "addAuthenticator", Some("add:authenticators"))
        .await;
    kit.app
        .add_credential(&kit.tenant, &enrol, phone.add_command())
        .await
        .unwrap();
    phone
}

fn signed(phone: &Device, id: &ApprovalId) -> SignedChallengeRequest {
    SignedChallengeRequest {
        namespace: Namespace::QrCode,
        challenge_id: id.clone(),
        public_key: phone.public_key.clone(),
        signature: phone.sign(id.as_str()),
        source: None,
    }
}

fn answer(phone: &Device, id: &ApprovalId, approved: bool, code: Option<&str>) -> Answer {
    Answer {
        request: signed(phone, id),
        approved,
        verification_code: code.map(str::to_owned),
        decision_signature: None,
    }
}

#[tokio::test]
async fn an_anonymous_code_is_claimed_and_approved_with_one_token_on_the_socket() {
    let (kit, sockets) = kit().await;
    let mut socket = open(
        &kit,
        &sockets,
        "authsignal-ws, x.authsignal.tenant.tenant-test",
    )
    .await
    .unwrap();
    assert_eq!(socket.session.starter, SocketStarter::Tenant);
    let (id, json) = created(&kit, &socket, &create("signIn")).await;
    assert_eq!(json["data"]["state"], "unclaimed");
    assert_eq!(json["data"]["challengeType"], "QR_CODE");
    let expires = json["data"]["expiresAt"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.contains('T'), "{expires}");

    let phone = enrolled(&kit, "alice").await;
    let (claimed, _) = kit
        .app
        .claim_qr_code(&kit.tenant, signed(&phone, &id))
        .await
        .unwrap();
    // The kiosk's context is the handshake's.
    assert_eq!(claimed.context.ip_address.as_deref(), Some("198.51.100.4"));
    assert_eq!(claimed.context.user_agent.as_deref(), Some("kiosk"));
    let state = next_state(&mut socket).await;
    assert_eq!(state["type"], "STATE_CHANGE");
    assert_eq!(state["data"]["state"], "claimed");
    assert_eq!(state["data"]["challengeId"], id.as_str());
    // Claiming again is harmless and pushes nothing new.
    kit.app
        .claim_qr_code(&kit.tenant, signed(&phone, &id))
        .await
        .unwrap();
    assert!(socket.rx.try_recv().is_err());

    assert!(
        kit.app
            .answer_challenge(&kit.tenant, answer(&phone, &id, true, None))
            .await
            .unwrap()
    );
    let state = next_state(&mut socket).await;
    assert_eq!(state["data"]["state"], "approved");
    let token = state["data"]["accessToken"].as_str().unwrap();
    let verified = kit.tenant.keys.verify(token, kit.app.now()).unwrap();
    assert_eq!(verified.action.user_id.as_str(), "alice");
    assert_eq!(verified.action.action_code.as_str(), "signIn");

    // One token per code: the record says it was delivered.
    let stored = kit
        .store
        .get_approval(&kit.tenant.id, &ApprovalSlot::QrCode(id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, ApprovalState::Approved);
    assert!(stored.token_delivered);
    assert_eq!(stored.socket.as_ref(), Some(&socket.session.connection));
    // And nothing more is pushed.
    assert!(socket.rx.try_recv().is_err());
}

#[tokio::test]
async fn a_rejection_and_a_wrong_code_are_pushed_as_rejected() {
    let (kit, sockets) = kit().await;
    let mut socket = open(
        &kit,
        &sockets,
        "authsignal-ws,x.authsignal.tenant.tenant-test",
    )
    .await
    .unwrap();
    let phone = enrolled(&kit, "bob").await;

    let (id, _) = created(&kit, &socket, &create("signIn")).await;
    kit.app
        .claim_qr_code(&kit.tenant, signed(&phone, &id))
        .await
        .unwrap();
    assert_eq!(next_state(&mut socket).await["data"]["state"], "claimed");
    assert!(
        !kit.app
            .answer_challenge(&kit.tenant, answer(&phone, &id, false, None))
            .await
            .unwrap()
    );
    let state = next_state(&mut socket).await;
    assert_eq!(state["data"]["state"], "rejected");
    assert!(state["data"].get("accessToken").is_none());

    // Number matching (ours): the code is shown on the socket; a wrong one rejects.
    let text = r#"{"type":"CREATE_CHALLENGE","data":{"challengeType":"QR_CODE","actionCode":"signIn","numberMatching":true}}"#;
    let (id, json) = created(&kit, &socket, text).await;
    let code = json["data"]["verificationCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = if code == "10" { "11" } else { "10" };
    kit.app
        .claim_qr_code(&kit.tenant, signed(&phone, &id))
        .await
        .unwrap();
    next_state(&mut socket).await;
    assert_eq!(
        kit.app
            .answer_challenge(&kit.tenant, answer(&phone, &id, true, Some(wrong)))
            .await
            .unwrap_err(),
        Error::InvalidVerificationCode
    );
    assert_eq!(next_state(&mut socket).await["data"]["state"], "rejected");

    // The right code approves.
    let (id, _) = created(&kit, &socket, text).await;
    let stored = kit
        .store
        .get_approval(&kit.tenant.id, &ApprovalSlot::QrCode(id.clone()))
        .await
        .unwrap()
        .unwrap();
    let code = stored.verification_code.clone().unwrap();
    kit.app
        .claim_qr_code(&kit.tenant, signed(&phone, &id))
        .await
        .unwrap();
    next_state(&mut socket).await;
    assert!(
        kit.app
            .answer_challenge(&kit.tenant, answer(&phone, &id, true, Some(&code)))
            .await
            .unwrap()
    );
    let state = next_state(&mut socket).await;
    assert_eq!(state["data"]["state"], "approved");
    assert!(state["data"]["accessToken"].is_string());
}

#[tokio::test]
async fn a_token_socket_is_for_its_user_and_its_action() {
    let (kit, sockets) = kit().await;
    let alice = enrolled(&kit, "alice").await;
    let mallory = enrolled(&kit, "mallory").await;
    let tracked = kit.track("alice", "signIn", None).await;
    let offer = format!("authsignal-ws, x.authsignal.token.{}", tracked.token);
    let mut socket = open(&kit, &sockets, &offer).await.unwrap();
    assert!(matches!(
        socket.session.starter,
        SocketStarter::Token { .. }
    ));

    // Another action than the token's is refused, as on the REST start.
    let reply = kit
        .app
        .socket_message(&socket.session, &create("pay"))
        .await;
    let reply = ServerMessage::answer(reply);
    let json: serde_json::Value = serde_json::from_str(&reply.to_text()).unwrap();
    assert_eq!(json["type"], "ERROR");
    assert_eq!(json["data"]["errorCode"], "invalid_request");

    let (id, _) = created(&kit, &socket, &create("signIn")).await;
    assert_eq!(
        kit.app
            .claim_qr_code(&kit.tenant, signed(&mallory, &id))
            .await
            .unwrap_err(),
        Error::UserMismatch
    );
    kit.app
        .claim_qr_code(&kit.tenant, signed(&alice, &id))
        .await
        .unwrap();
    assert_eq!(next_state(&mut socket).await["data"]["state"], "claimed");
    assert!(
        kit.app
            .answer_challenge(&kit.tenant, answer(&alice, &id, true, None))
            .await
            .unwrap()
    );
    let state = next_state(&mut socket).await;
    let token = state["data"]["accessToken"].as_str().unwrap();
    let verified = kit.tenant.keys.verify(token, kit.app.now()).unwrap();
    // The token is for the tracked action itself.
    assert_eq!(
        verified.action.idempotency_key.as_str(),
        tracked.action.key.idempotency_key.as_str()
    );
}

#[tokio::test]
async fn bad_handshakes_are_refused() {
    let (kit, sockets) = kit().await;
    for (offer, expected) in [
        ("x.authsignal.tenant.tenant-test", Error::Unauthorized),
        ("authsignal-ws", Error::Unauthorized),
        (
            "authsignal-ws, x.authsignal.tenant.nobody",
            Error::Unauthorized,
        ),
        (
            "authsignal-ws, x.authsignal.tenant.a b",
            Error::Unauthorized,
        ),
        (
            "authsignal-ws, x.authsignal.token.not-a-jwt",
            Error::InvalidToken,
        ),
    ] {
        assert_eq!(
            open(&kit, &sockets, offer).await.err(),
            Some(expected),
            "{offer}"
        );
    }
    // A token past its lifetime.
    let tracked = kit.track("alice", "signIn", None).await;
    kit.clock
        .advance_seconds(kit.app.settings().token_lifetime_seconds + 1);
    let offer = format!("authsignal-ws, x.authsignal.token.{}", tracked.token);
    assert_eq!(
        open(&kit, &sockets, &offer).await.err(),
        Some(Error::ExpiredToken)
    );
    assert!(sockets.is_empty());
}

/// Browsers apply no CORS to WebSockets: a handshake from a page of an origin the tenant does
/// not allow is refused (`origin_not_allowed`), whether it offers the tenant or a token, and
/// opens nothing; one from an allowed origin, or with no `Origin` (not a browser), opens.
#[tokio::test]
async fn a_handshake_from_an_origin_the_tenant_does_not_allow_is_refused() {
    use shared::domain::AllowedOrigin;
    use shared::usecase::tenants::TenantSettingsChange;
    let (kit, sockets) = kit().await;
    let tenant_offer = format!(
        "authsignal-ws, x.authsignal.tenant.{}",
        kit.tenant.id.as_str()
    );
    let tracked = kit.track("alice", "signIn", None).await;
    let token_offer = format!("authsignal-ws, x.authsignal.token.{}", tracked.token);
    for offer in [&tenant_offer, &token_offer] {
        assert_eq!(
            open_from(&kit, &sockets, offer, Some("https://evil.example"))
                .await
                .err(),
            Some(Error::OriginNotAllowed),
            "no origin allowed yet: {offer}"
        );
    }
    kit.app
        .configure_tenant(
            &kit.tenant.id,
            TenantSettingsChange {
                allowed_origins: Some(vec![AllowedOrigin::parse("https://app.example").unwrap()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for offer in [&tenant_offer, &token_offer] {
        // `""`: an `Origin` header that is not text, as the transports pass it.
        for origin in [
            "https://evil.example",
            "https://app.example.evil",
            "null",
            "",
        ] {
            assert_eq!(
                open_from(&kit, &sockets, offer, Some(origin)).await.err(),
                Some(Error::OriginNotAllowed),
                "{origin}: {offer}"
            );
        }
    }
    assert!(sockets.is_empty(), "nothing opened");
    for offer in [&tenant_offer, &token_offer] {
        let from_page = open_from(&kit, &sockets, offer, Some("https://app.example")).await;
        assert!(from_page.is_ok(), "{offer}");
        assert!(
            open(&kit, &sockets, offer).await.is_ok(),
            "no Origin: {offer}"
        );
        // The server's own origin (its `Host`), as a native socket library may send it.
        let own = open_from(&kit, &sockets, offer, Some("wss://auth.example")).await;
        assert!(own.is_ok(), "own origin: {offer}");
    }
}

#[tokio::test]
async fn bad_messages_and_floods_get_error_messages() {
    let (kit, sockets) = kit().await;
    let socket = open(
        &kit,
        &sockets,
        "authsignal-ws, x.authsignal.tenant.tenant-test",
    )
    .await
    .unwrap();
    for text in [
        "nope",
        r#"{"type":"HELLO"}"#,
        r#"{"type":"CREATE_CHALLENGE","data":{"actionCode":"bad code!"}}"#,
    ] {
        let reply = ServerMessage::answer(kit.app.socket_message(&socket.session, text).await);
        let json: serde_json::Value = serde_json::from_str(&reply.to_text()).unwrap();
        assert_eq!(json["type"], "ERROR", "{text}");
        assert_eq!(json["data"]["errorCode"], "invalid_request", "{text}");
    }
    // The SDK's pace is one create per 9 minutes; a flood is refused past the limit.
    let mut refused = 0;
    for _ in 0..CREATES_PER_WINDOW + 3 {
        let reply = ServerMessage::answer(
            kit.app
                .socket_message(&socket.session, &create("signIn"))
                .await,
        );
        let json: serde_json::Value = serde_json::from_str(&reply.to_text()).unwrap();
        if json["type"] == "ERROR" {
            assert_eq!(json["data"]["errorCode"], "too_many_requests");
            refused += 1;
        }
    }
    // The last invalid_request ones counted too: the bad action code passed parsing.
    assert!(refused >= 3, "{refused}");
    // A new window admits again.
    kit.clock.advance_seconds(CREATE_WINDOW_SECONDS);
    created(&kit, &socket, &create("signIn")).await;
}

#[tokio::test]
async fn anonymous_sockets_count_against_the_anonymous_start_limit() {
    let (kit, sockets) = kit().await;
    let limit = kit.app.settings().anonymous_qr_starts_per_source;
    let mut created_count = 0;
    let mut throttled = false;
    // Many sockets from one address, each under its own per-connection limit.
    'outer: for _ in 0..limit {
        let socket = open(
            &kit,
            &sockets,
            "authsignal-ws, x.authsignal.tenant.tenant-test",
        )
        .await
        .unwrap();
        for _ in 0..CREATES_PER_WINDOW {
            let reply = ServerMessage::answer(
                kit.app
                    .socket_message(&socket.session, &create("signIn"))
                    .await,
            );
            let json: serde_json::Value = serde_json::from_str(&reply.to_text()).unwrap();
            if json["type"] == "ERROR" {
                assert_eq!(json["data"]["errorCode"], "too_many_requests");
                throttled = true;
                break 'outer;
            }
            created_count += 1;
        }
    }
    assert!(throttled);
    assert_eq!(created_count, limit);
}

#[tokio::test]
async fn a_gone_socket_never_fails_the_device() {
    let (kit, sockets) = kit().await;
    let socket = open(
        &kit,
        &sockets,
        "authsignal-ws, x.authsignal.tenant.tenant-test",
    )
    .await
    .unwrap();
    let (id, _) = created(&kit, &socket, &create("signIn")).await;
    let connection = socket.session.connection.clone();
    kit.store.put_socket_session(&socket.session).await.unwrap();
    drop(socket);
    let phone = enrolled(&kit, "carol").await;
    kit.app
        .claim_qr_code(&kit.tenant, signed(&phone, &id))
        .await
        .unwrap();
    // The gone socket's session is forgotten.
    assert_eq!(
        kit.store.get_socket_session(&connection).await.unwrap(),
        None
    );
    assert!(
        kit.app
            .answer_challenge(&kit.tenant, answer(&phone, &id, true, None))
            .await
            .unwrap()
    );
}

/// The answer's rules are the REST path's: the action's rules decide an anonymous code's new
/// action (a refusal is pushed as `rejected`), and a tenant that requires a decision signature
/// gets no approval without one (and nothing is pushed for the refused answer).
#[tokio::test]
async fn the_actions_rules_and_decision_signatures_hold_over_the_socket() {
    use shared::store::TenantStore;
    use shared::tenant::Tenant;
    use shared::usecase::approvals::decision_message;
    use shared::usecase::tenants::TenantSettingsChange;

    let (kit, sockets) = kit().await;
    let mut socket = open(
        &kit,
        &sockets,
        "authsignal-ws, x.authsignal.tenant.tenant-test",
    )
    .await
    .unwrap();
    let phone = enrolled(&kit, "dave").await;

    kit.app
        .put_action_config(
            &kit.tenant,
            None,
            serde_json::json!({"actionCode": "kioskPay", "defaultOutcome": "BLOCK"}),
        )
        .await
        .unwrap();
    let (id, _) = created(&kit, &socket, &create("kioskPay")).await;
    kit.app
        .claim_qr_code(&kit.tenant, signed(&phone, &id))
        .await
        .unwrap();
    assert_eq!(next_state(&mut socket).await["data"]["state"], "claimed");
    assert!(
        kit.app
            .answer_challenge(&kit.tenant, answer(&phone, &id, true, None))
            .await
            .is_err(),
        "the rules block the action"
    );
    let state = next_state(&mut socket).await;
    assert_eq!(state["data"]["state"], "rejected");
    assert!(state["data"].get("accessToken").is_none());

    kit.app
        .configure_tenant(
            &kit.tenant.id,
            TenantSettingsChange {
                require_decision_signature: Some(true),
                ..TenantSettingsChange::default()
            },
        )
        .await
        .unwrap();
    let record = kit.store.get_tenant(&kit.tenant.id).await.unwrap().unwrap();
    let tenant = Tenant::from_record(&record, kit.app.now()).unwrap();
    assert!(tenant.require_decision_signature);
    let (id, _) = created(&kit, &socket, &create("signIn")).await;
    kit.app
        .claim_qr_code(&tenant, signed(&phone, &id))
        .await
        .unwrap();
    assert_eq!(next_state(&mut socket).await["data"]["state"], "claimed");
    assert_eq!(
        kit.app
            .answer_challenge(&tenant, answer(&phone, &id, true, None))
            .await
            .unwrap_err(),
        Error::DecisionSignatureRequired
    );
    assert!(
        socket.rx.try_recv().is_err(),
        "a refused answer pushes nothing"
    );
    let mut signed_answer = answer(&phone, &id, true, None);
    signed_answer.decision_signature = Some(phone.sign(&decision_message(id.as_str(), true, None)));
    assert!(
        kit.app
            .answer_challenge(&tenant, signed_answer)
            .await
            .unwrap()
    );
    let state = next_state(&mut socket).await;
    assert_eq!(state["data"]["state"], "approved");
    assert!(state["data"]["accessToken"].is_string());
}
