//! QR codes over the WebSocket (spec 3.8), the browser SDK's default path: the same QR-code
//! use cases as the REST routes ([`App::start_qr_code`], [`App::claim_qr_code`],
//! [`App::answer_challenge`]), with the states pushed to the socket instead of polled.
//!
//! | step | here | then |
//! |---|---|---|
//! | handshake | [`App::open_socket`]: the sub-protocol's token or tenant, checked | a [`SocketSession`], kept by the local socket task or stored for API Gateway |
//! | `CREATE_CHALLENGE` | [`App::socket_message`]: a QR code started as the REST start does, with the session's credential, and the connection stored with it | `CHALLENGE_CREATED` |
//! | claim, answer | the device's REST routes, unchanged; on each state change they call [`App::push_socket_state`] | `STATE_CHANGE` to the connection stored with the code |
//!
//! Rules, all the REST path's own: a token-started code only that user's devices may claim
//! (and the action must still be challengeable); anonymous starts count against the
//! per-address and per-tenant limits (the address is the handshake's); number matching and
//! decision signatures apply to the answer as ever; and the access token is issued once, at
//! the approval, for the socket: the approved record is written with `token_delivered`, so no
//! poll gets another.
//!
//! Ours: at most [`CREATES_PER_WINDOW`] creates per connection per
//! [`CREATE_WINDOW_SECONDS`] (the SDK makes one every 9 minutes), counted in the store so the
//! limit holds across Lambda instances. A refresh does not cancel the previous code: it lives
//! out its lifetime, and a phone that scanned it in its last minute may still finish; its
//! `STATE_CHANGE` carries its own `challengeId`, which the SDK ignores after a refresh.
//!
//! A state that cannot be pushed (the socket is gone, API Gateway's 410) never fails the
//! device's request: the session is forgotten and the device is answered as usual.

use super::approvals::{QrStarter, StartQrCode};
use crate::App;
use crate::clock::Timestamp;
use crate::domain::origin::is_same_origin;
use crate::domain::{ActionCode, ApprovalChallenge, TenantId};
use crate::error::{Error, Result};
use crate::store::RateBucket;
use crate::store::{SocketSession, SocketStarter};
use crate::token::{self, VerifiedToken};
use crate::websocket::{
    self, CREATE_WINDOW_SECONDS, CREATES_PER_WINDOW, ClientMessage, ConnectionId,
    MAX_CONNECTION_SECONDS, Posted, ServerMessage, SocketCredential, SocketState,
};
use std::net::IpAddr;

/// What a handshake brings: the offered sub-protocols and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Handshake<'a> {
    /// Every `Sec-WebSocket-Protocol` header value.
    pub subprotocols: Vec<&'a str>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    /// The `Origin` header: a browser always sends it with a handshake (one that is not
    /// text is given as `""`, which no tenant allows).
    pub origin: Option<&'a str>,
    /// The `Host` header: an `Origin` of the server itself needs no allowed origin.
    pub host: Option<&'a str>,
}

impl App {
    /// Checks a handshake's credential (spec 3.8): a valid, unexpired track token of a known
    /// tenant, or a known tenant id; then its origin. Anything else is refused before the
    /// socket opens: `unauthorized`, `invalid_token`, `expired_token` or
    /// `origin_not_allowed`.
    pub async fn open_socket(
        &self,
        connection: ConnectionId,
        handshake: Handshake<'_>,
    ) -> Result<SocketSession> {
        let now = self.now();
        let (tenant, starter) =
            match websocket::credential_from_subprotocols(handshake.subprotocols)? {
                SocketCredential::Token(token) => {
                    let tenant_id = token::claimed_tenant(&token).ok_or(Error::InvalidToken)?;
                    let tenant =
                        self.tenant_by_id(&tenant_id)
                            .await
                            .map_err(|error| match error {
                                Error::Unauthorized => Error::InvalidToken,
                                other => other,
                            })?;
                    let verified = tenant.keys.verify(&token, now)?;
                    let starter = SocketStarter::Token {
                        action: verified.action,
                        scopes: verified.scopes,
                    };
                    (tenant, starter)
                }
                SocketCredential::Tenant(id) => {
                    let id = TenantId::parse(id).map_err(|_| Error::Unauthorized)?;
                    (self.tenant_by_id(&id).await?, SocketStarter::Tenant)
                }
            };
        // DESIGN 9: browsers apply no CORS to WebSockets, so the handshake's `Origin` is the
        // only check a page of another site meets: one of the tenant's allowed origins, or
        // the server's own, as for the Client API's state-changing calls. No `Origin`: not a
        // browser, nothing to check.
        if let Some(origin) = handshake.origin
            && !tenant.allows_origin(origin)
            && !is_same_origin(origin, handshake.host)
        {
            tracing::warn!(
                tenant = tenant.id.as_str(),
                origin,
                "QR-code WebSocket from an origin the tenant does not allow"
            );
            return Err(Error::OriginNotAllowed);
        }
        Ok(SocketSession {
            connection,
            tenant_id: tenant.id.clone(),
            starter,
            ip_address: handshake.ip.map(|ip| ip.to_string()),
            user_agent: handshake
                .user_agent
                .map(|ua| ua.chars().take(512).collect()),
            connected_at: now,
            expires_at: now.plus_seconds(MAX_CONNECTION_SECONDS),
        })
    }

    /// One message from an open socket; returns what to answer it. The transports answer a
    /// failure with an `ERROR` message ([`ServerMessage::error`]: the REST error body), never
    /// by ending the connection.
    pub async fn socket_message(
        &self,
        session: &SocketSession,
        text: &str,
    ) -> Result<ServerMessage> {
        let now = self.now();
        if session.expires_at <= now {
            return Err(Error::Unauthorized);
        }
        let ClientMessage::CreateChallenge(create) = websocket::parse_client_message(text)?;
        self.charge_socket_create(session, now).await?;
        let tenant = self.tenant_by_id(&session.tenant_id).await?;
        let starter = match &session.starter {
            SocketStarter::Token { action, scopes } => QrStarter::Token(VerifiedToken {
                tenant_id: session.tenant_id.clone(),
                action: action.clone(),
                scopes: scopes.clone(),
                redirect_url: None,
                redirect_to_settings: false,
                // Its token was checked at the handshake; it asks for no settings screen.
                issued_at: session.connected_at,
            }),
            SocketStarter::Tenant => QrStarter::Tenant,
        };
        let ip = session
            .ip_address
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        let command = StartQrCode {
            action: Some(ActionCode::parse(create.action_code)?),
            custom: create.custom,
            user_agent: session.user_agent.clone(),
            ip_address: session.ip_address.clone(),
            source: ip,
            number_matching: create.number_matching,
        };
        let started = self
            .start_qr_code_on(&tenant, starter, command, Some(session.connection.clone()))
            .await?;
        Ok(ServerMessage::ChallengeCreated {
            challenge_id: started.challenge_id.into(),
            challenge_type: "QR_CODE",
            expires_at: started.expires_at.to_iso8601(),
            state: SocketState::Unclaimed,
            verification_code: started.verification_code,
        })
    }

    /// At most [`CREATES_PER_WINDOW`] creates per connection per window, in the store.
    async fn charge_socket_create(&self, session: &SocketSession, now: Timestamp) -> Result<()> {
        let window = now.unix_seconds().div_euclid(CREATE_WINDOW_SECONDS);
        let bucket = RateBucket {
            key: format!(
                "ws-create#conn#{}#{CREATE_WINDOW_SECONDS}#{window}",
                session.connection
            ),
            limit: CREATES_PER_WINDOW,
            expires_at: Timestamp::from_unix_seconds((window + 1) * CREATE_WINDOW_SECONDS),
        };
        if self.store.hit(&session.tenant_id, &bucket, now).await? {
            Ok(())
        } else {
            Err(Error::throttled(
                THROTTLED_CREATES,
                bucket.expires_at.seconds_after(now),
            ))
        }
    }

    /// Keeps an API Gateway connection's session until `$disconnect` (or its expiry).
    pub async fn remember_socket(&self, session: &SocketSession) -> Result<()> {
        self.store.put_socket_session(session).await
    }

    /// Forgets a connection's session (`$disconnect`); a missing one is no error.
    pub async fn forget_socket(&self, connection: &ConnectionId) -> Result<()> {
        self.store.delete_socket_session(connection).await
    }

    /// Sends `message` to a connection through the socket port (API Gateway's
    /// `PostToConnection`); a gone connection's session is forgotten.
    pub async fn send_to_socket(
        &self,
        connection: &ConnectionId,
        message: &ServerMessage,
    ) -> Posted {
        match self.sockets.post(connection, message.to_text()).await {
            Ok(Posted::Sent) => Posted::Sent,
            Ok(Posted::Gone) => {
                if let Err(error) = self.store.delete_socket_session(connection).await {
                    tracing::warn!(error = %error, "could not delete a gone socket's session");
                }
                Posted::Gone
            }
            Err(error) => {
                tracing::warn!(error = %error, "could not send to a socket");
                Posted::Gone
            }
        }
    }

    /// Closes a connection through the socket port (a client with no session).
    pub async fn close_socket(&self, connection: &ConnectionId) {
        if let Err(error) = self.sockets.close(connection).await {
            tracing::warn!(error = %error, "could not close a socket");
        }
    }

    /// The session of an API Gateway connection, if it is open and unexpired.
    pub async fn socket_session(&self, connection: &ConnectionId) -> Result<Option<SocketSession>> {
        let now = self.now();
        Ok(self
            .store
            .get_socket_session(connection)
            .await?
            .filter(|s| s.expires_at > now))
    }

    /// Pushes a QR code's new state to the socket that created it, if one did. Never fails:
    /// the device's request succeeded whatever happens to the kiosk's socket.
    pub(crate) async fn push_socket_state(
        &self,
        challenge: &ApprovalChallenge,
        state: SocketState,
        access_token: Option<String>,
    ) {
        let Some(connection) = &challenge.socket else {
            return;
        };
        let message = ServerMessage::StateChange {
            challenge_id: challenge.id.to_string(),
            state,
            access_token,
        };
        if self.send_to_socket(connection, &message).await == Posted::Gone {
            tracing::info!(connection = %connection, "QR-code state not delivered: the socket is gone");
        }
    }

    /// An approval of a QR code created over a socket: its access token, issued once, goes
    /// to the socket ([`App::answer_challenge`] wrote it delivered).
    pub(crate) async fn push_socket_approval(
        &self,
        tenant: &super::tenants::Tenant,
        approved: &ApprovalChallenge,
    ) {
        if approved.socket.is_none() {
            return;
        }
        let token = match approved
            .action
            .as_ref()
            .map(|a| self.issue_token_for(tenant, a))
        {
            Some(Ok(token)) => Some(token),
            Some(Err(error)) => {
                tracing::warn!(error = %error, "could not issue the socket's access token");
                None
            }
            None => None,
        };
        self.push_socket_state(approved, SocketState::Approved, token)
            .await;
    }
}

/// Why a socket's create was refused (429 in the REST shape).
pub const THROTTLED_CREATES: &str =
    "too many QR codes were created on this connection recently; try again later";
