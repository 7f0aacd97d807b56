//! The QR-code WebSocket on the local server (spec 3.8): `GET /ws-v1-challenge` upgraded on the
//! same address and port as the HTTP API, so the browser SDK's derived URL works unchanged
//! (`http://HOST:PORT/v1` → `ws://HOST:PORT/ws-v1-challenge`). The protocol and the use cases
//! are `shared::websocket` and `shared::usecase::qr_socket`, which the Lambda function
//! `qr-socket` serves on AWS; this file is only the transport.
//!
//! - **Handshake**: the sub-protocols are checked before the upgrade; a missing or bad
//!   credential is answered `401` in the error shape, a browser `Origin` the tenant does not
//!   allow `403`, and no socket opens. The answer echoes `authsignal-ws`.
//! - **States** from claims and answers arrive through [`LocalSockets`], the in-process
//!   registry keyed by connection id: at most one socket per connection slot of the server,
//!   and a queue of [`shared::websocket::LOCAL_QUEUE`] messages each (a socket that reads
//!   nothing is closed, not buffered for).
//! - **Limits per socket**: messages and frames of at most [`MAX_MESSAGE_BYTES`] (larger: closed
//!   with 1009; text that is not UTF-8: 1007; broken framing: 1002), a 4 KiB read buffer and a
//!   bounded write buffer; the first message within
//!   [`SocketLimits::first_message`], then one at least every [`SocketLimits::idle`] (the SDK
//!   sends one every 9 minutes; API Gateway's idle limit is 10), and at most
//!   [`SocketLimits::lifetime`] in all (API Gateway's 2 hours); past
//!   [`SocketLimits::max_errors`] error answers it is closed with 1008. Each socket holds its
//!   connection's slot, so the server's connection caps (total and per address) count it.
//!
//! Shutdown closes every socket with 1001 ("going away").

use crate::server::{ConnectionHold, ServerClosing};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shared::App;
use shared::error::Error;
use shared::http::PeerIp;
use shared::store::SocketSession;
use shared::usecase::qr_socket::Handshake;
use shared::websocket::{
    self, ConnectionId, LocalDelivery, LocalRegistration, LocalSockets, MAX_MESSAGE_BYTES,
    ServerMessage,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The local socket limits (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub first_message: Duration,
    pub idle: Duration,
    pub lifetime: Duration,
    pub max_errors: u32,
    /// How long a message may take to be written before the socket is given up.
    pub write_timeout: Duration,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            first_message: Duration::from_secs(30),
            idle: Duration::from_secs(600),
            lifetime: Duration::from_secs(websocket::MAX_CONNECTION_SECONDS as u64),
            max_errors: 20,
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
struct Context {
    app: Arc<App>,
    sockets: LocalSockets,
    limits: SocketLimits,
}

/// The WebSocket route, for the local server's router.
pub fn router(app: Arc<App>, sockets: LocalSockets, limits: SocketLimits) -> Router {
    Router::new()
        .route(websocket::PATH, get(upgrade))
        .with_state(Context {
            app,
            sockets,
            limits,
        })
}

async fn upgrade(
    State(context): State<Context>,
    PeerIp(ip): PeerIp,
    hold: Option<Extension<ConnectionHold>>,
    closing: Option<Extension<ServerClosing>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return Error::invalid_request("This route is a WebSocket: send a WebSocket handshake.")
            .into_response();
    };
    let subprotocols: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let random: [u8; 16] = match random_id() {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let Ok(connection) = ConnectionId::parse(hex::encode(random)) else {
        return Error::Internal.into_response();
    };
    let handshake = Handshake {
        subprotocols,
        ip,
        user_agent,
        origin: headers
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or_default()),
        host: headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    };
    let session = match context.app.open_socket(connection.clone(), handshake).await {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    let Some((registration, deliveries)) = context.sockets.register(connection) else {
        return Error::throttled("too many WebSockets are open; retry later", 1).into_response();
    };
    let limits = context.limits;
    let app = context.app.clone();
    upgrade
        .protocols([websocket::SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            let closing = closing.map(|Extension(c)| c.0);
            run(
                socket,
                Running {
                    app,
                    session,
                    _registration: registration,
                    deliveries,
                    limits,
                    _hold: hold.map(|Extension(h)| h),
                },
                closing,
            )
            .await;
        })
}

fn random_id() -> Result<[u8; 16], Error> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal)?;
    Ok(bytes)
}

/// What a socket's task owns; dropping it unregisters the socket and frees its slot.
struct Running {
    app: Arc<App>,
    session: SocketSession,
    _registration: LocalRegistration,
    deliveries: mpsc::Receiver<LocalDelivery>,
    limits: SocketLimits,
    _hold: Option<ConnectionHold>,
}

/// The close frame for a read that failed (RFC 6455 7.4.1): 1009 for a message or frame over
/// the size limit, 1007 for text that is not UTF-8, 1002 for broken framing (an unmasked
/// frame, reserved bits or opcodes, a bad close code); none when the connection itself broke.
fn read_failure_close(error: axum::Error) -> Option<Message> {
    use tungstenite::Error as Ws;
    match error.into_inner().downcast_ref::<Ws>() {
        Some(Ws::Capacity(_)) => Some(close(close_code::SIZE, "message too big")),
        Some(Ws::Utf8(_)) => Some(close(close_code::INVALID, "text that is not UTF-8")),
        Some(Ws::Protocol(_)) => Some(close(close_code::PROTOCOL, "protocol error")),
        _ => None,
    }
}

/// Why a socket ends, and the close frame it gets.
fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn run(
    mut socket: WebSocket,
    mut running: Running,
    mut closing: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let limits = running.limits;
    let opened = Instant::now();
    let end_of_life = opened + limits.lifetime;
    let mut read_deadline = (opened + limits.first_message).min(end_of_life);
    let mut errors = 0u32;
    let connection = running.session.connection.clone();
    let ending: Option<Message> = loop {
        let shutdown = async {
            match closing.as_mut() {
                Some(rx) => {
                    while !*rx.borrow() {
                        if rx.changed().await.is_err() {
                            break;
                        }
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = tokio::time::timeout_at(read_deadline, socket.recv()) => {
                let message = match received {
                    Err(_) if Instant::now() >= end_of_life => {
                        break Some(close(close_code::NORMAL, "connection lifetime reached"));
                    }
                    Err(_) => break Some(close(close_code::NORMAL, "idle timeout")),
                    Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break None,
                    Ok(Some(Err(error))) => {
                        tracing::debug!(%error, connection = %connection, "socket read failed");
                        // Say why if it still listens (RFC 6455 7.4.1).
                        break read_failure_close(error);
                    }
                    Ok(Some(Ok(message))) => message,
                };
                let reply = match message {
                    Message::Text(text) => {
                        read_deadline = (Instant::now() + limits.idle).min(end_of_life);
                        ServerMessage::answer(
                            running.app.socket_message(&running.session, text.as_str()).await,
                        )
                    }
                    Message::Binary(_) => {
                        read_deadline = (Instant::now() + limits.idle).min(end_of_life);
                        ServerMessage::error(&Error::invalid_request(
                            "Messages are JSON text, not binary.",
                        ))
                    }
                    // Answered by the library; they do not keep a socket alive.
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Close(_) => break None,
                };
                if matches!(reply, ServerMessage::Error(_)) {
                    errors += 1;
                }
                if !send(&mut socket, Message::text(reply.to_text()), limits).await {
                    break None;
                }
                if errors > limits.max_errors {
                    break Some(close(close_code::POLICY, "too many bad messages"));
                }
            }
            delivery = running.deliveries.recv() => match delivery {
                Some(LocalDelivery::Text(text)) => {
                    if !send(&mut socket, Message::text(text), limits).await {
                        break None;
                    }
                }
                Some(LocalDelivery::Close) => {
                    break Some(close(close_code::POLICY, "closed by the server"));
                }
                // Dropped from the registry: its queue overflowed.
                None => break Some(close(close_code::POLICY, "not reading its messages")),
            },
            () = shutdown => break Some(close(close_code::AWAY, "server shutting down")),
        }
    };
    if let Some(frame) = ending {
        let _ = send(&mut socket, frame, limits).await;
    }
    tracing::debug!(connection = %connection, "socket closed");
}

/// Sends within the write timeout; `false` if the socket is gone or does not read.
async fn send(socket: &mut WebSocket, message: Message, limits: SocketLimits) -> bool {
    matches!(
        tokio::time::timeout(limits.write_timeout, socket.send(message)).await,
        Ok(Ok(()))
    )
}
