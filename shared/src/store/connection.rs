//! Connection items of the live channel, in their user's partition: found
//! by one query per user when a stream batch pokes them.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use super::{Stored, Table, item_key};
use crate::keys::{self, ItemKey};
use crate::model::connection::{CONNECTION_TTL_SECONDS, Connection};
use crate::model::ids::UserId;
use crate::{Error, adapters::aws};

use std::collections::BTreeMap;

fn connection_key(user_id: &UserId, connection_id: &str) -> ItemKey {
    ItemKey::Connection {
        user: user_id.clone(),
        connection_id: connection_id.into(),
    }
}

/// The item of a connection, expiring (DynamoDB TTL) past API Gateway's
/// two hours, so one whose `$disconnect` never ran goes by itself.
fn connection_item(connection: &Connection) -> Result<super::Item, Error> {
    let key = connection_key(&connection.user_id, &connection.connection_id);
    let expires_at = connection.connected_at.timestamp() + CONNECTION_TTL_SECONDS;
    Stored::item(&key, connection, Some(expires_at))
}

fn presence_key(user_id: &UserId) -> ItemKey {
    ItemKey::Presence {
        user: user_id.clone(),
    }
}

impl Table {
    /// Adds (`ADD`) or removes (`DELETE`) connection ids of the user's
    /// presence item.
    async fn change_presence(
        &self,
        user_id: &UserId,
        action: &str,
        ids: Vec<String>,
    ) -> Result<(), Error> {
        self.change_id_set(&presence_key(user_id), action, ids)
            .await
    }

    /// Records a connection; DynamoDB's TTL removes it if `$disconnect`
    /// never comes. The item is written before its id joins the user's
    /// presence: a fan-out drops an id whose item it cannot find (one that
    /// expired without `$disconnect`), and must never find a connection
    /// half-made. A fan-out between the two misses the new connection, whose
    /// app pulls once connected anyway; a failure between them fails the
    /// `$connect`, and the lone item expires.
    pub async fn put_connection(&self, connection: &Connection) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(connection_item(connection)?))
            .send()
            .await
            .map_err(aws::classify)?;
        self.change_presence(
            &connection.user_id,
            "ADD",
            vec![connection.connection_id.clone()],
        )
        .await
    }

    pub async fn delete_connection(
        &self,
        user_id: &UserId,
        connection_id: &str,
    ) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&connection_key(user_id, connection_id))))
            .send()
            .await
            .map_err(aws::classify)?;
        self.change_presence(user_id, "DELETE", vec![connection_id.to_string()])
            .await
    }

    /// The open connections of each of `users`: their presence items, then
    /// the connections they name, each read 100 to a `BatchGetItem` (a
    /// fan-out to a thousand members is a few dozen calls, not a thousand
    /// queries). Ids whose item is gone (expired without `$disconnect`)
    /// are dropped from the presence.
    pub async fn connections_of(
        &self,
        users: &[UserId],
    ) -> Result<BTreeMap<UserId, Vec<Connection>>, Error> {
        let named = self.present(users).await?;
        Ok(super::by_user(
            self.connections_named(&named).await?,
            |c: &Connection| &c.user_id,
        ))
    }

    /// The connection ids each of `users`' presence item names, read 100
    /// users to a `BatchGetItem`.
    pub async fn present(&self, users: &[UserId]) -> Result<Vec<(UserId, String)>, Error> {
        let presences = self
            .get_items(users.iter().map(|u| item_key(&presence_key(u))).collect())
            .await?;
        let mut named: Vec<(UserId, String)> = Vec::new();
        for item in presences {
            let user = item
                .get(keys::PK)
                .and_then(|pk| pk.as_s().ok())
                .and_then(|pk| keys::parse_user_partition(pk));
            let ids = item.get("ids").and_then(|ids| ids.as_ss().ok());
            if let (Some(user), Some(ids)) = (user, ids) {
                named.extend(ids.iter().map(|id| (user.clone(), id.clone())));
            }
        }
        Ok(named)
    }

    /// The connection items of `named` ids, 100 to a `BatchGetItem`; ids
    /// whose item is gone are dropped from their user's presence.
    pub async fn connections_named(
        &self,
        named: &[(UserId, String)],
    ) -> Result<Vec<Connection>, Error> {
        if named.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<Connection> = super::decode_each(
            self.get_items(
                named
                    .iter()
                    .map(|(user, id)| item_key(&connection_key(user, id)))
                    .collect(),
            )
            .await?,
            "connection",
        );
        let found_ids: std::collections::HashSet<&str> =
            found.iter().map(|c| c.connection_id.as_str()).collect();
        for (user, id) in named {
            if !found_ids.contains(id.as_str()) {
                self.change_presence(user, "DELETE", vec![id.clone()])
                    .await?;
            }
        }
        Ok(found)
    }

    /// Every open connection of a user.
    pub async fn connections(&self, user_id: &UserId) -> Result<Vec<Connection>, Error> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("PK = :pk AND begins_with(SK, :connection)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::user_partition(user_id)))
            .expression_attribute_values(
                ":connection",
                AttributeValue::S(keys::connection_prefix().into()),
            )
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(aws::classify)?);
        }
        Ok(super::decode_each(items, "connection"))
    }

    /// Stores what these connections were poked for, 25 to a
    /// `BatchWriteItem` (a fan-out to many devices costs a few calls, not
    /// one per device), all sent at once: the stream's next batch waits
    /// for this one's handler. Items are rewritten whole, as the query read
    /// them.
    pub async fn save_pokes(&self, connections: &[Connection]) -> Result<(), Error> {
        let mut chunks = tokio::task::JoinSet::new();
        for chunk in connections.chunks(25) {
            let requests = chunk
                .iter()
                .map(|connection| {
                    let put = PutRequest::builder()
                        .set_item(Some(connection_item(connection)?))
                        .build()
                        .map_err(Error::internal)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let table = self.clone();
            chunks.spawn(async move { table.batch_write(requests).await });
        }
        while let Some(joined) = chunks.join_next().await {
            joined.map_err(Error::internal)??;
        }
        Ok(())
    }

    /// Forgets every connection of a user (sign-out): nothing more is sent
    /// to them. Returns how many there were.
    pub async fn forget_connections(&self, user_id: &UserId) -> Result<usize, Error> {
        let connections = self.connections(user_id).await?;
        for connection in &connections {
            self.delete_connection(user_id, &connection.connection_id)
                .await?;
        }
        Ok(connections.len())
    }
}
