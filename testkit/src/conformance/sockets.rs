//! The store conformance cases of the QR-code WebSocket (spec 3.8): the socket sessions, and
//! the connection kept with a QR code. Run by `conformance::run_all` on both adapters.

use super::approval;
use shared::clock::Timestamp;
use shared::domain::{
    ActionCode, ActionKey, ApprovalChallenge, ApprovalKind, ApprovalState, IdempotencyKey,
    TenantId, UserId,
};
use shared::store::{SocketSession, SocketStarter, Store};
use shared::websocket::ConnectionId;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);
const NOW: Timestamp = Timestamp(1_800_000_000_000);

/// A session of a connection id no other test uses, unless `id` is given.
pub fn socket_session(id: &str) -> SocketSession {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    SocketSession {
        connection: ConnectionId::parse(format!("{id}{n}x{}", std::process::id())).unwrap(),
        tenant_id: TenantId::parse(format!("ws-tenant-{n}-{}", std::process::id())).unwrap(),
        starter: SocketStarter::Tenant,
        ip_address: Some("203.0.113.9".into()),
        user_agent: Some("Mozilla/5.0".into()),
        connected_at: NOW,
        expires_at: NOW.plus_seconds(7200),
    }
}

pub(super) async fn run(store: &dyn Store) {
    sessions(store).await;
    a_qr_code_keeps_its_connection(store).await;
}

async fn sessions(store: &dyn Store) {
    let anonymous = socket_session("anon");
    let token = SocketSession {
        starter: SocketStarter::Token {
            action: ActionKey {
                user_id: UserId::parse("alice").unwrap(),
                action_code: ActionCode::parse("signIn").unwrap(),
                idempotency_key: IdempotencyKey::parse("k-1").unwrap(),
            },
            scopes: vec!["read:authenticators".into()],
        },
        ..socket_session("tok")
    };
    for session in [&anonymous, &token] {
        assert_eq!(
            store.get_socket_session(&session.connection).await.unwrap(),
            None
        );
        store.put_socket_session(session).await.unwrap();
        assert_eq!(
            store.get_socket_session(&session.connection).await.unwrap(),
            Some(session.clone()),
            "read back as written"
        );
    }
    // A put replaces (API Gateway may retry `$connect`'s integration).
    let replaced = SocketSession {
        user_agent: None,
        ..anonymous.clone()
    };
    store.put_socket_session(&replaced).await.unwrap();
    assert_eq!(
        store
            .get_socket_session(&anonymous.connection)
            .await
            .unwrap(),
        Some(replaced)
    );
    store
        .delete_socket_session(&anonymous.connection)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_socket_session(&anonymous.connection)
            .await
            .unwrap(),
        None
    );
    // Deleting again (a `$disconnect` after a 410 clean-up) is no error; the other is kept.
    store
        .delete_socket_session(&anonymous.connection)
        .await
        .unwrap();
    assert!(
        store
            .get_socket_session(&token.connection)
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_qr_code_keeps_its_connection(store: &dyn Store) {
    let tenant = TenantId::parse(format!(
        "ws-qr-{}-{}",
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::process::id()
    ))
    .unwrap();
    let connection = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
    let qr = ApprovalChallenge {
        socket: Some(connection.clone()),
        ..approval(&tenant, None, ApprovalKind::QrCode)
    };
    assert!(store.put_approval(&qr, None).await.unwrap());
    let read = store
        .get_approval(&tenant, &qr.slot())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.socket.as_ref(), Some(&connection));
    // Every later version keeps it: a claim and an approval are pushed to it.
    let claimed = read.moved_to(ApprovalState::Claimed, NOW.plus_seconds(1));
    assert!(store.put_approval(&claimed, Some(1)).await.unwrap());
    let read = store
        .get_approval(&tenant, &qr.slot())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.state, ApprovalState::Claimed);
    assert_eq!(read.socket, Some(connection));
    // A code without a socket reads back without one.
    let plain = approval(&tenant, None, ApprovalKind::QrCode);
    assert!(store.put_approval(&plain, None).await.unwrap());
    assert_eq!(
        store
            .get_approval(&tenant, &plain.slot())
            .await
            .unwrap()
            .unwrap()
            .socket,
        None
    );
}
