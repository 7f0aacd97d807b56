//! [`SocketStore`] on DynamoDB: one item per open socket, `pk = WS#<connection id>`,
//! `sk = WS`, the session as JSON in `data`, `ttl` at its expiry. API Gateway's connection
//! ids are unique per API, and only API Gateway hands them out, so the key needs no tenant.
//! One GetItem per message, one PutItem per `$connect`, one DeleteItem per `$disconnect`.

use super::{DynamoStore, Item, from_json_attr, item_key, json_attr, n, one, schema, sdk_error};
use crate::error::Result;
use crate::store::sockets::{SocketSession, SocketStore};
use crate::websocket::ConnectionId;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

const SORT_KEY: &str = "WS";

fn socket_pk(connection: &ConnectionId) -> String {
    format!("WS#{connection}")
}

fn session_item(session: &SocketSession) -> Result<Item> {
    let mut item = item_key(socket_pk(&session.connection), SORT_KEY);
    item.insert("data".into(), json_attr(session)?);
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
        self.get_item(socket_pk(connection), SORT_KEY)
            .await?
            .map(|item| from_json_attr(&item, "data"))
            .transpose()
    }

    async fn delete_socket_session(&self, connection: &ConnectionId) -> Result<()> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key(socket_pk(connection), SORT_KEY)))
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

    #[test]
    fn a_session_item_expires_with_the_session() {
        let session = crate::store::sockets_conformance::socket_session("L0SM9cOFvHcCIhw");
        let item = session_item(&session).unwrap();
        assert_eq!(
            item[schema::TTL_ATTRIBUTE].as_n().unwrap(),
            &session.expires_at.unix_seconds().to_string()
        );
        assert_eq!(
            item["pk"].as_s().unwrap(),
            &format!("WS#{}", session.connection)
        );
    }
}
