//! What the store keeps about an open QR-code WebSocket (spec 3.8), for API Gateway: a
//! message event carries only the connection id, so the credential checked at `$connect` is
//! kept here until `$disconnect` (or its TTL, after API Gateway's 2-hour connection limit).
//! The local server keeps the same thing in the socket's task and stores nothing.
//!
//! The other half, which connection a QR code's states go to, is stored with the code itself
//! ([`crate::domain::ApprovalChallenge::socket`]).

use crate::clock::Timestamp;
use crate::domain::{ActionKey, TenantId};
use crate::error::Result;
use crate::websocket::ConnectionId;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who opened a socket, as its handshake proved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SocketStarter {
    /// A track token's action (verified at the handshake): only its user's devices may claim.
    #[serde(rename_all = "camelCase")]
    Token {
        action: ActionKey,
        #[serde(default)]
        scopes: Vec<String>,
    },
    /// Anonymous: the tenant id alone, as a tenant-Basic QR start.
    Tenant,
}

/// An open socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketSession {
    pub connection: ConnectionId,
    pub tenant_id: TenantId,
    pub starter: SocketStarter,
    /// The client's address and user agent at the handshake: the anonymous-start limit counts
    /// the address, and the approver is shown both (spec 3.4.7).
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub connected_at: Timestamp,
    /// After this the session is gone, whether or not it was deleted (TTL).
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait SocketStore: Send + Sync {
    /// Creates or replaces the session of its connection.
    async fn put_socket_session(&self, session: &SocketSession) -> Result<()>;
    /// The session of `connection`, whatever its expiry: callers check it.
    async fn get_socket_session(&self, connection: &ConnectionId) -> Result<Option<SocketSession>>;
    /// Deletes it; deleting a missing one is no error.
    async fn delete_socket_session(&self, connection: &ConnectionId) -> Result<()>;
}
