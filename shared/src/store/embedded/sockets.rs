//! [`SocketStore`] on the embedded store: table `SocketSessions`, keyed by connection id,
//! expiring with the session. The local server itself keeps its sessions in memory; this is
//! for parity (the conformance suite) and for tools that run the Lambda handlers on it.

use super::engine::TableId;
use super::{EmbeddedStore, Stored, get, put};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::store::{SocketSession, SocketStore};
use crate::websocket::ConnectionId;
use async_trait::async_trait;

impl Stored for SocketSession {
    fn expires_at(&self) -> Option<Timestamp> {
        Some(self.expires_at)
    }
}

#[async_trait]
impl SocketStore for EmbeddedStore {
    async fn put_socket_session(&self, session: &SocketSession) -> Result<()> {
        self.write(|tx| {
            put(
                tx,
                TableId::SocketSessions,
                session.connection.as_str(),
                session,
            )
        })
        .await
    }

    async fn get_socket_session(&self, connection: &ConnectionId) -> Result<Option<SocketSession>> {
        self.read(|tx| get(tx, TableId::SocketSessions, connection.as_str()))
    }

    async fn delete_socket_session(&self, connection: &ConnectionId) -> Result<()> {
        self.write(|tx| tx.remove(TableId::SocketSessions, connection.as_str()))
            .await
    }
}
