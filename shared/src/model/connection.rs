//! The live channel: a device's open WebSocket, and what is sent on it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::model::ids::{ClientId, SpaceId, UserId};

/// API Gateway closes a WebSocket after two hours; an item outliving that
/// by a margin is a connection whose `$disconnect` never ran.
pub const MAX_CONNECTION_SECONDS: i64 = 2 * 60 * 60;
pub const CONNECTION_TTL_SECONDS: i64 = MAX_CONNECTION_SECONDS + 10 * 60;

/// An open connection of the live channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub connection_id: String,
    pub user_id: UserId,
    /// The sync client id of the app on the other end: pokes for its own
    /// pushes are not sent back to it.
    pub client_id: ClientId,
    pub connected_at: DateTime<Utc>,
    /// The feed version of the last poke sent: a redelivered stream batch
    /// does not poke again.
    #[serde(default)]
    pub poked_version: u64,
    /// The same per space: the version of each space's last poke.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub poked_spaces: BTreeMap<SpaceId, u64>,
}

/// What the server sends on the channel (`infra/asyncapi.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// New changes: pull. For the user's own records `cursor` is what
    /// `GET /sync/pull` would return after reading them all (a client
    /// already there can skip the pull); a space's poke names the space
    /// and has no cursor.
    #[serde(rename_all = "camelCase")]
    Poke {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        space_id: Option<SpaceId>,
    },
    /// A photo finished processing.
    #[serde(rename_all = "camelCase")]
    Media { media_id: String, status: String },
    /// The answer to a ping.
    Pong,
    /// A message the server did not understand.
    Error { message: String },
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMessage {
    /// Keeps the connection under API Gateway's 10-minute idle limit.
    Ping,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_shapes() {
        let poke = ServerMessage::Poke {
            cursor: Some("djI6NDI".into()),
            space_id: None,
        };
        assert_eq!(
            serde_json::to_string(&poke).unwrap(),
            r#"{"type":"poke","cursor":"djI6NDI"}"#
        );
        let space = ServerMessage::Poke {
            cursor: None,
            space_id: SpaceId::parse("s1").ok(),
        };
        assert_eq!(
            serde_json::to_string(&space).unwrap(),
            r#"{"type":"poke","spaceId":"s1"}"#
        );
        let media = ServerMessage::Media {
            media_id: "m1".into(),
            status: "ready".into(),
        };
        assert_eq!(
            serde_json::to_string(&media).unwrap(),
            r#"{"type":"media","mediaId":"m1","status":"ready"}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerMessage::Pong).unwrap(),
            r#"{"type":"pong"}"#
        );
        assert_eq!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"ping"}"#).unwrap(),
            ClientMessage::Ping
        );
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"pong"}"#).is_err());
    }
}
