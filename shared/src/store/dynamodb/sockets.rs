//! [`SocketStore`] on DynamoDB: one item per open QR-code socket behind API Gateway,
//! [`Key::socket_session`], the session as JSON in `data`, `ttl` at its expiry. One GetItem per
//! message, one PutItem per `$connect`, one DeleteItem per `$disconnect`.

use super::DynamoStore;
use super::attr::{Item, n};
use super::error::sdk_error;
use super::item::{data_item, from_json_attr};
use super::keys::Key;
use super::schema;
use super::store::one;
use crate::error::Result;
use crate::store::{SocketSession, SocketStore};
use crate::websocket::ConnectionId;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

/// The session as JSON in `data`, and `ttl` at its expiry.
fn session_item(session: &SocketSession) -> Result<Item> {
    let mut item = data_item(&Key::socket_session(&session.connection), session)?;
    item.insert(
        schema::TTL_ATTRIBUTE.into(),
        n(session.expires_at.unix_seconds()),
    );
    Ok(item)
}

#[async_trait]
impl SocketStore for DynamoStore {
    async fn put_socket_session(&self, session: &SocketSession) -> Result<()> {
        self.put_unconditionally(session_item(session)?).await
    }

    async fn get_socket_session(&self, connection: &ConnectionId) -> Result<Option<SocketSession>> {
        self.get_item(&Key::socket_session(connection))
            .await?
            .map(|item| from_json_attr(&item, "data"))
            .transpose()
    }

    async fn delete_socket_session(&self, connection: &ConnectionId) -> Result<()> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Key::socket_session(connection).item()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        self.meter.record_write(one(output.consumed_capacity()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::store::SocketStarter;

    #[test]
    fn a_session_item_expires_with_the_session() {
        let session = SocketSession {
            connection: ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap(),
            tenant_id: crate::domain::TenantId::parse("acme").unwrap(),
            starter: SocketStarter::Tenant,
            ip_address: None,
            user_agent: None,
            connected_at: Timestamp::from_unix_seconds(1_800_000_000),
            expires_at: Timestamp::from_unix_seconds(1_800_007_200),
        };
        let item = session_item(&session).unwrap();
        assert_eq!(item[schema::TTL_ATTRIBUTE].as_n().unwrap(), "1800007200");
        assert_eq!(item["pk"].as_s().unwrap(), "WS#L0SM9cOFvHcCIhw=");
        assert_eq!(item["sk"].as_s().unwrap(), "WS");
    }
}
