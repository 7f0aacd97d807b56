//! The QR-code WebSocket protocol (spec 3.8), free of any transport: what the browser SDK
//! sends and expects, the limits on it, and the port through which a state change reaches an
//! open socket.
//!
//! What `@authsignal/browser` 1.16.0 does (`src/api/websocket-client.ts`, read from the npm
//! package):
//! - the URL is its base URL with, each replaced once, `https://`→`wss://`, `http://`→`ws://`,
//!   the first `v1`→`ws-v1-challenge`, then the first `api`→`api-ws`: `http://127.0.0.1:8787/v1`
//!   becomes `ws://127.0.0.1:8787/ws-v1-challenge` ([`PATH`]);
//! - sub-protocols `authsignal-ws` and `x.authsignal.token.<token>` when it holds a track
//!   token, else `x.authsignal.tenant.<tenantId>`; nothing else identifies the client;
//! - it sends `{"type":"CREATE_CHALLENGE","data":{"challengeType":"QR_CODE","actionCode",
//!   "custom"?}}` right after the socket opens and again every 9 minutes (or `refreshInterval`),
//!   on the same socket;
//! - it waits for `CHALLENGE_CREATED` (no timeout: an answer that never comes hangs it), then
//!   calls `onStateChange(state, accessToken)` for every `STATE_CHANGE` whose `challengeId` is
//!   its current one; other types, and other ids, are ignored. So our `ERROR` message (below)
//!   is harmless to it and useful to other clients.
//!
//! Ours, additive: `data.numberMatching: true` in `CREATE_CHALLENGE` returns a
//! `verificationCode` in `CHALLENGE_CREATED` (as the REST start does), and `ERROR` messages in
//! the REST error shape (spec 1.3) for what cannot be answered otherwise.

use crate::error::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The path the browser SDK derives from the base URL `…/v1` (see the module docs).
pub const PATH: &str = "/ws-v1-challenge";
/// The sub-protocol the SDK always offers, and the one the server echoes.
pub const SUBPROTOCOL: &str = "authsignal-ws";
const TOKEN_PREFIX: &str = "x.authsignal.token.";
const TENANT_PREFIX: &str = "x.authsignal.tenant.";

/// The largest message a client may send. A `CREATE_CHALLENGE` carries at most
/// [`MAX_CUSTOM_BYTES`] of `custom`, an action code and a few keys; 8 KiB leaves room. API
/// Gateway's own limit is 128 KiB (32 KiB frames), so on AWS larger ones reach the function
/// and are refused here.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// The largest `custom` a QR code may carry, as in the REST start.
pub const MAX_CUSTOM_BYTES: usize = 4096;
/// Creates per connection per [`CREATE_WINDOW_SECONDS`]: the SDK sends one every 9 minutes
/// (and on `refresh()`); more is a flood, refused with `too_many_requests`.
pub const CREATES_PER_WINDOW: u32 = 6;
pub const CREATE_WINDOW_SECONDS: i64 = 60;
/// How long a connection may live: API Gateway's limit (2 hours), kept locally too.
pub const MAX_CONNECTION_SECONDS: i64 = 2 * 3600;

/// A WebSocket connection: API Gateway's connection id, or the local server's own random id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// API Gateway's ids are short base64 strings (`L0SM9cOFvHcCIhw=`); ours are hex. Anything
    /// else (empty, long, or with characters that would need escaping in a URL path) is refused.
    pub fn parse(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let valid = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'-' | b'_' | b'+'));
        if !valid {
            return Err(Error::invalid_request("invalid connection id"));
        }
        Ok(ConnectionId(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------- handshake

/// The credential a client offers in `Sec-WebSocket-Protocol` (spec 3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketCredential {
    /// A track token: only that user's devices may claim.
    Token(String),
    /// A tenant id: anonymous, like a tenant-Basic QR start.
    Tenant(String),
}

/// Reads the offered sub-protocols (every `Sec-WebSocket-Protocol` header, each a
/// comma-separated list). They must include [`SUBPROTOCOL`] and exactly one credential;
/// anything else is refused (`Unauthorized`), before any upgrade.
pub fn credential_from_subprotocols<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> Result<SocketCredential> {
    let mut ours = false;
    let mut credential = None;
    for offered in headers
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
    {
        let found = if offered == SUBPROTOCOL {
            ours = true;
            continue;
        } else if let Some(token) = offered.strip_prefix(TOKEN_PREFIX) {
            SocketCredential::Token(token.to_owned())
        } else if let Some(tenant) = offered.strip_prefix(TENANT_PREFIX) {
            SocketCredential::Tenant(tenant.to_owned())
        } else {
            // Another protocol is not ours to judge: ignored, as a server does.
            continue;
        };
        if credential.replace(found).is_some() {
            // Two credentials: which one is meant cannot be guessed.
            return Err(Error::Unauthorized);
        }
    }
    match credential {
        Some(SocketCredential::Token(t) | SocketCredential::Tenant(t)) if t.is_empty() => {
            Err(Error::Unauthorized)
        }
        Some(credential) if ours => Ok(credential),
        _ => Err(Error::Unauthorized),
    }
}

// ---------------------------------------------------------------- messages

/// A message from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    CreateChallenge(CreateChallenge),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateChallenge {
    pub action_code: String,
    pub custom: Option<serde_json::Value>,
    /// Ours: ask for a code to show (as the REST start's `numberMatching`).
    pub number_matching: bool,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateData {
    challenge_type: Option<String>,
    action_code: Option<String>,
    custom: Option<serde_json::Value>,
    number_matching: Option<bool>,
}

/// Parses one text message. Oversized, non-JSON, unknown types and bad fields are
/// `invalid_request` errors, answered with an `ERROR` message; none ends the connection.
pub fn parse_client_message(text: &str) -> Result<ClientMessage> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(Error::invalid_request(format!(
            "A message must be at most {MAX_MESSAGE_BYTES} bytes."
        )));
    }
    // The parser's own words (a syntax error, nesting too deep, a wrong type) say what is wrong.
    let envelope: Envelope = serde_json::from_str(text).map_err(|error| {
        Error::invalid_request(format!("A message must be a JSON object: {error}."))
    })?;
    match envelope.kind.as_deref() {
        Some("CREATE_CHALLENGE") => {}
        Some(_) => return Err(Error::invalid_request("Unknown message type.")),
        None => return Err(Error::invalid_request("A message needs a `type`.")),
    }
    let data: CreateData = serde_json::from_value(envelope.data.unwrap_or_default())
        .map_err(|_| Error::invalid_request("`data` must be an object with string fields."))?;
    match data.challenge_type.as_deref() {
        None | Some("QR_CODE") => {}
        Some(_) => {
            return Err(Error::invalid_request(
                "Only `QR_CODE` challenges are created over the WebSocket.",
            ));
        }
    }
    let action_code = data
        .action_code
        .ok_or_else(|| Error::invalid_request("`actionCode` is required."))?;
    if let Some(custom) = &data.custom {
        if custom.is_null() {
        } else if !custom.is_object() {
            return Err(Error::invalid_request("`custom` must be a JSON object."));
        } else if custom.to_string().len() > MAX_CUSTOM_BYTES {
            return Err(Error::invalid_request(format!(
                "`custom` must be at most {MAX_CUSTOM_BYTES} bytes of JSON."
            )));
        }
    }
    Ok(ClientMessage::CreateChallenge(CreateChallenge {
        action_code,
        custom: data.custom.filter(|c| !c.is_null()),
        number_matching: data.number_matching.unwrap_or(false),
    }))
}

/// A QR code's state as the SDK names it (`ChallengeState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketState {
    Unclaimed,
    Claimed,
    Approved,
    Rejected,
}

/// A message to the client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerMessage {
    #[serde(rename_all = "camelCase")]
    ChallengeCreated {
        challenge_id: String,
        challenge_type: &'static str,
        /// An ISO-8601 string: the SDK's type says `string` (spec 1.2, 3.8).
        expires_at: String,
        state: SocketState,
        #[serde(skip_serializing_if = "Option::is_none")]
        verification_code: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    StateChange {
        challenge_id: String,
        state: SocketState,
        #[serde(skip_serializing_if = "Option::is_none")]
        access_token: Option<String>,
    },
    /// Ours: the REST error body (spec 1.3) as a message.
    Error(serde_json::Value),
}

impl ServerMessage {
    /// An `ERROR` message: the error's REST body (spec 1.3), from the one mapping of errors
    /// to the wire (`http::error`). Built by the transports, never by the use cases.
    pub fn error(error: &Error) -> Self {
        ServerMessage::Error(crate::http::error::HttpError::from(error.clone()).body())
    }

    /// What a transport sends for a use case's answer: the message, or its failure as an
    /// `ERROR` message (a failure of ours is also logged).
    pub fn answer(result: Result<ServerMessage>) -> Self {
        result.unwrap_or_else(|error| {
            if matches!(error, Error::Internal | Error::StoreUnavailable) {
                tracing::warn!(error = %error, "socket message failed");
            }
            ServerMessage::error(&error)
        })
    }

    pub fn to_text(&self) -> String {
        // Serializing these types cannot fail: strings, bools and a JSON value.
        serde_json::to_string(self).unwrap_or_default()
    }
}

// ---------------------------------------------------------------- the port

/// Whether a message reached its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Sent,
    /// The connection is gone (API Gateway's 410, or no such local socket): forget it.
    Gone,
}

/// How a message reaches an open socket: in process on the local server ([`LocalSockets`]),
/// through API Gateway's `PostToConnection` on AWS (`shared::sockets_aws`).
#[async_trait]
pub trait SocketNotifier: Send + Sync {
    async fn post(&self, connection: &ConnectionId, text: String) -> Result<Posted>;
    /// Closes the connection (a client that broke the rules); a gone one is no error.
    async fn close(&self, connection: &ConnectionId) -> Result<()>;
}

/// No sockets at all (tools, tests of other things): every connection is gone.
#[derive(Debug, Default)]
pub struct NoSockets;

#[async_trait]
impl SocketNotifier for NoSockets {
    async fn post(&self, _: &ConnectionId, _: String) -> Result<Posted> {
        Ok(Posted::Gone)
    }

    async fn close(&self, _: &ConnectionId) -> Result<()> {
        Ok(())
    }
}

/// What the local server keeps per open socket: a bounded queue to the socket's task.
/// Messages posted while it is full are dropped and the socket is told to close (a client
/// that reads nothing must not make the server hold more).
pub const LOCAL_QUEUE: usize = 8;

/// A message for a local socket's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDelivery {
    Text(String),
    Close,
}

/// The local server's registry of open sockets, keyed by connection id, bounded.
#[derive(Debug, Clone)]
pub struct LocalSockets {
    inner: Arc<Mutex<HashMap<ConnectionId, mpsc::Sender<LocalDelivery>>>>,
    capacity: usize,
}

/// A socket in the registry; removed when dropped.
#[derive(Debug)]
pub struct LocalRegistration {
    sockets: LocalSockets,
    pub id: ConnectionId,
}

impl Drop for LocalRegistration {
    fn drop(&mut self) {
        self.sockets.lock().remove(&self.id);
    }
}

impl LocalSockets {
    /// A registry of at most `capacity` sockets.
    pub fn new(capacity: usize) -> Self {
        LocalSockets {
            inner: Arc::default(),
            capacity,
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, mpsc::Sender<LocalDelivery>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new socket under `id`; `None` when the registry is full (or the id is
    /// taken, which 128 random bits never are).
    pub fn register(
        &self,
        id: ConnectionId,
    ) -> Option<(LocalRegistration, mpsc::Receiver<LocalDelivery>)> {
        let mut sockets = self.lock();
        if sockets.len() >= self.capacity || sockets.contains_key(&id) {
            return None;
        }
        let (tx, rx) = mpsc::channel(LOCAL_QUEUE);
        sockets.insert(id.clone(), tx);
        drop(sockets);
        Some((
            LocalRegistration {
                sockets: self.clone(),
                id,
            },
            rx,
        ))
    }

    /// Sockets open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn deliver(&self, connection: &ConnectionId, delivery: LocalDelivery) -> Posted {
        let Some(sender) = self.lock().get(connection).cloned() else {
            return Posted::Gone;
        };
        match sender.try_send(delivery) {
            Ok(()) => Posted::Sent,
            Err(mpsc::error::TrySendError::Closed(_)) => Posted::Gone,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // It reads nothing: close it as soon as its task looks.
                tracing::info!(connection = %connection, "socket queue full; closing");
                self.lock().remove(connection);
                Posted::Gone
            }
        }
    }
}

#[async_trait]
impl SocketNotifier for LocalSockets {
    async fn post(&self, connection: &ConnectionId, text: String) -> Result<Posted> {
        Ok(self.deliver(connection, LocalDelivery::Text(text)))
    }

    async fn close(&self, connection: &ConnectionId) -> Result<()> {
        self.deliver(connection, LocalDelivery::Close);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_offers_are_read() {
        assert_eq!(
            credential_from_subprotocols(["authsignal-ws, x.authsignal.tenant.demo"]).unwrap(),
            SocketCredential::Tenant("demo".into())
        );
        assert_eq!(
            credential_from_subprotocols(["authsignal-ws", "x.authsignal.token.a.b.c"]).unwrap(),
            SocketCredential::Token("a.b.c".into())
        );
        // Other protocols offered beside ours are ignored.
        assert!(
            credential_from_subprotocols(["chat, authsignal-ws,x.authsignal.tenant.t"]).is_ok()
        );
    }

    #[test]
    fn bad_offers_are_refused() {
        for offer in [
            "",
            "authsignal-ws",
            "x.authsignal.tenant.demo",
            "authsignal-ws, x.authsignal.tenant.",
            "authsignal-ws, x.authsignal.token.",
            "authsignal-ws, x.authsignal.tenant.a, x.authsignal.token.b",
            "authsignal-ws, x.authsignal.tenant.a, x.authsignal.tenant.a",
            "authsignal-wss, x.authsignal.tenant.demo",
        ] {
            assert_eq!(
                credential_from_subprotocols([offer]),
                Err(Error::Unauthorized),
                "{offer:?}"
            );
        }
        assert_eq!(
            credential_from_subprotocols(std::iter::empty()),
            Err(Error::Unauthorized)
        );
    }

    #[test]
    fn the_sdk_create_message_parses() {
        let text = r#"{"type":"CREATE_CHALLENGE","data":{"challengeType":"QR_CODE","actionCode":"signIn","custom":{"k":1}}}"#;
        assert_eq!(
            parse_client_message(text).unwrap(),
            ClientMessage::CreateChallenge(CreateChallenge {
                action_code: "signIn".into(),
                custom: Some(serde_json::json!({"k": 1})),
                number_matching: false,
            })
        );
        // `custom: undefined` is left out by JSON.stringify; null reads as absent (spec 1.2).
        let text = r#"{"type":"CREATE_CHALLENGE","data":{"challengeType":"QR_CODE","actionCode":"a","custom":null,"numberMatching":true,"extra":1}}"#;
        let ClientMessage::CreateChallenge(create) = parse_client_message(text).unwrap();
        assert_eq!(create.custom, None);
        assert!(create.number_matching);
    }

    #[test]
    fn bad_messages_are_invalid_requests() {
        let big = format!(
            r#"{{"type":"CREATE_CHALLENGE","data":{{"actionCode":"a","custom":{{"x":"{}"}}}}}}"#,
            "y".repeat(MAX_MESSAGE_BYTES)
        );
        let too_much_custom = format!(
            r#"{{"type":"CREATE_CHALLENGE","data":{{"actionCode":"a","custom":{{"x":"{}"}}}}}}"#,
            "y".repeat(MAX_CUSTOM_BYTES)
        );
        for text in [
            "",
            "not json",
            "[]",
            "null",
            "{}",
            r#"{"type":"PING"}"#,
            r#"{"type":"STATE_CHANGE","data":{}}"#,
            r#"{"type":"CREATE_CHALLENGE"}"#,
            r#"{"type":"CREATE_CHALLENGE","data":[]}"#,
            r#"{"type":"CREATE_CHALLENGE","data":{"actionCode":7}}"#,
            r#"{"type":"CREATE_CHALLENGE","data":{"challengeType":"PUSH","actionCode":"a"}}"#,
            r#"{"type":"CREATE_CHALLENGE","data":{"actionCode":"a","custom":[1]}}"#,
            r#"{"type":7,"data":{"actionCode":"a"}}"#,
            big.as_str(),
            too_much_custom.as_str(),
        ] {
            let error = parse_client_message(text).unwrap_err();
            assert!(
                matches!(error, Error::InvalidRequest(_)),
                "{text:.80}: {error:?}"
            );
        }
    }

    #[test]
    fn server_messages_have_the_sdk_shapes() {
        let created = ServerMessage::ChallengeCreated {
            challenge_id: "c".into(),
            challenge_type: "QR_CODE",
            expires_at: "2026-12-02T16:00:00.000Z".into(),
            state: SocketState::Unclaimed,
            verification_code: None,
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&created.to_text()).unwrap(),
            serde_json::json!({"type": "CHALLENGE_CREATED", "data": {"challengeId": "c",
                "challengeType": "QR_CODE", "expiresAt": "2026-12-02T16:00:00.000Z",
                "state": "unclaimed"}})
        );
        let approved = ServerMessage::StateChange {
            challenge_id: "c".into(),
            state: SocketState::Approved,
            access_token: Some("t".into()),
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&approved.to_text()).unwrap(),
            serde_json::json!({"type": "STATE_CHANGE", "data": {"challengeId": "c",
                "state": "approved", "accessToken": "t"}})
        );
        let error = ServerMessage::error(&Error::invalid_request("x")).to_text();
        let error: serde_json::Value = serde_json::from_str(&error).unwrap();
        assert_eq!(error["type"], "ERROR");
        assert_eq!(error["data"]["errorCode"], "invalid_request");
        assert_eq!(error["data"]["error"], "invalid_request");
    }

    #[test]
    fn connection_ids_are_checked() {
        assert!(ConnectionId::parse("L0SM9cOFvHcCIhw=").is_ok());
        assert!(ConnectionId::parse("0123abcd").is_ok());
        for bad in ["", "a/b", "a b", "a%2F", &"a".repeat(129)] {
            assert!(ConnectionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_local_registry_is_bounded_and_forgets_closed_sockets() {
        let sockets = LocalSockets::new(2);
        let id = |s: &str| ConnectionId::parse(s).unwrap();
        let (a, mut a_rx) = sockets.register(id("a")).unwrap();
        let (_b, _b_rx) = sockets.register(id("b")).unwrap();
        assert!(sockets.register(id("c")).is_none(), "full");
        assert_eq!(
            sockets.post(&id("a"), "hi".into()).await.unwrap(),
            Posted::Sent
        );
        assert_eq!(a_rx.recv().await, Some(LocalDelivery::Text("hi".into())));
        // A socket that reads nothing: its queue fills, then it is dropped from the registry.
        for _ in 0..LOCAL_QUEUE {
            assert_eq!(
                sockets.post(&id("a"), "x".into()).await.unwrap(),
                Posted::Sent
            );
        }
        assert_eq!(
            sockets.post(&id("a"), "x".into()).await.unwrap(),
            Posted::Gone
        );
        assert_eq!(sockets.len(), 1);
        drop(a);
        assert_eq!(
            sockets.post(&id("zz"), "x".into()).await.unwrap(),
            Posted::Gone
        );
        let (_c, _) = sockets.register(id("c")).unwrap();
    }
}
