//! The WebSocket routes: `$connect` records the connection (after the
//! authorizer let it in) unless the user holds their quota of open ones,
//! `$disconnect` forgets it, `$default` answers a ping with a pong (the
//! route response sends the body back).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::Value;
use shared::adapters::sockets::Sockets;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable};
use shared::model::connection::{ClientMessage, Connection, ServerMessage};
use shared::model::ids::UserId;
use shared::model::quota::Quotas;
use shared::store::Table;
use shared::{Code, Error};

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// What a user or partition may hold (`MAX_*`, template `Globals`).
    pub quotas: Quotas,
    /// `WEBSOCKET_MANAGEMENT_URL`: the WebSocket API stage's HTTPS URL.
    pub management_url: String,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            table_name: config::table_name(env)?,
            quotas: Quotas::read(env),
            management_url: env.required("WEBSOCKET_MANAGEMENT_URL")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub sockets: Sockets,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name).with_quotas(config.quotas),
            sockets: Sockets::new(sdk, &config.management_url),
        }
    }
}

/// How long a device refused for holding too many connections waits
/// before it tries again.
const FULL_RETRY_AFTER_SECONDS: u64 = 30;

/// Whether `user` may open one more connection. Only at the quota does it
/// cost more than the presence read: `$disconnect` is best-effort, so
/// each counted connection is asked of the gateway and those it no longer
/// holds are forgotten, and a stale item never locks a user out.
async fn has_room(deps: &Deps, user: &UserId) -> Result<bool, Error> {
    let quota = deps.table.quotas().connections_per_user as usize;
    let open = deps
        .table
        .connections_of(std::slice::from_ref(user))
        .await?;
    let open = open.get(user).map_or(&[][..], Vec::as_slice);
    if open.len() < quota {
        return Ok(true);
    }
    let mut live = 0;
    for connection in open {
        if deps.sockets.is_open(&connection.connection_id).await? {
            live += 1;
        } else {
            deps.table
                .delete_connection(user, &connection.connection_id)
                .await?;
        }
    }
    Ok(live < quota)
}

fn reply(status: i64, message: Option<&ServerMessage>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = message
        .and_then(|m| serde_json::to_string(m).ok())
        .map(Body::Text);
    response
}

/// The authorizer's context, which API Gateway hands to every route of the
/// connection (flat in `requestContext.authorizer`: the crate's `fields`).
/// A value the authorizer put in the connection's context, parsed as `T`.
fn context<T: TryFrom<String>>(
    event: &ApiGatewayWebsocketProxyRequest,
    name: &str,
) -> Result<T, Error> {
    event
        .request_context
        .authorizer
        .fields
        .get(name)
        .and_then(Value::as_str)
        .and_then(|value| T::try_from(value.to_string()).ok())
        .ok_or_else(|| Error::new(Code::Unauthorized, format!("no {name} from the authorizer")))
}

pub async fn handle(
    deps: &Deps,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    match route(deps, &event).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, route = ?event.request_context.route_key, "socket route failed");
            reply(err.status().into(), None)
        }
    }
}

async fn route(
    deps: &Deps,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, Error> {
    let connection_id = event
        .request_context
        .connection_id
        .clone()
        .ok_or_else(|| Error::invalid("no connection id"))?;
    match event.request_context.route_key.as_deref() {
        Some("$connect") => {
            let connected_at =
                chrono::DateTime::from_timestamp_millis(event.request_context.connected_at)
                    .unwrap_or_else(chrono::Utc::now);
            let user_id: UserId = context(event, "userId")?;
            // Boxed: the SDK calls nest deep enough to pass the
            // compiler's layout depth in the binary's future.
            if !Box::pin(has_room(deps, &user_id)).await? {
                // Never 401 or 403, which an app reads as "sign in again".
                tracing::warn!(user = %user_id, "refused a connection over the quota");
                let mut refused = reply(429, None);
                refused.headers.insert(
                    "retry-after",
                    FULL_RETRY_AFTER_SECONDS
                        .to_string()
                        .parse()
                        .map_err(Error::internal)?,
                );
                return Ok(refused);
            }
            deps.table
                .put_connection(&Connection {
                    connection_id,
                    user_id,
                    client_id: context(event, "clientId")?,
                    connected_at,
                    poked_version: 0,
                    poked_spaces: Default::default(),
                })
                .await?;
            Ok(reply(200, None))
        }
        Some("$disconnect") => {
            deps.table
                .delete_connection(&context::<UserId>(event, "userId")?, &connection_id)
                .await?;
            Ok(reply(200, None))
        }
        _ => {
            let message = event
                .body
                .as_deref()
                .and_then(|body| serde_json::from_str::<ClientMessage>(body).ok());
            Ok(match message {
                Some(ClientMessage::Ping) => reply(200, Some(&ServerMessage::Pong)),
                None => reply(
                    200,
                    Some(&ServerMessage::Error {
                        message: r#"send {"type":"ping"}; everything else comes from the server"#
                            .into(),
                    }),
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deps() -> Deps {
        let sdk = SdkConfig::builder()
            .behavior_version(shared::aws_config::BehaviorVersion::latest())
            .build();
        Deps::new(
            &sdk,
            &Config {
                table_name: "t".into(),
                quotas: Quotas::default(),
                management_url: "http://127.0.0.1:9".into(),
            },
        )
    }

    fn message(body: &str) -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_value(json!({
            "requestContext": {
                "routeKey": "$default", "eventType": "MESSAGE", "connectionId": "abc=",
                "connectedAt": 1_795_000_000_000_i64, "requestTimeEpoch": 1_795_000_000_100_i64,
                "apiId": "abc123", "stage": "live", "messageDirection": "IN",
                "authorizer": {"principalId": "u-1", "userId": "u-1", "clientId": "phone"},
                "identity": {"sourceIp": "203.0.113.9"}
            },
            "body": body,
            "isBase64Encoded": false
        }))
        .unwrap()
    }

    fn body(response: &ApiGatewayProxyResponse) -> String {
        match &response.body {
            Some(Body::Text(text)) => text.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_ping_gets_a_pong_and_anything_else_an_explanation() {
        let deps = deps();
        let pong = handle(&deps, message(r#"{"type":"ping"}"#)).await;
        assert_eq!(
            (pong.status_code, body(&pong)),
            (200, r#"{"type":"pong"}"#.to_string())
        );
        let other = handle(&deps, message("hello")).await;
        assert!(
            body(&other).starts_with(r#"{"type":"error""#),
            "{}",
            body(&other)
        );
    }

    #[test]
    fn the_authorizer_context_is_read_from_the_event() {
        let event = message("{}");
        assert_eq!(context::<UserId>(&event, "userId").unwrap().as_str(), "u-1");
        assert_eq!(
            context::<shared::model::ids::ClientId>(&event, "clientId")
                .unwrap()
                .as_str(),
            "phone"
        );
        assert_eq!(
            context::<UserId>(&event, "other").unwrap_err().code,
            Code::Unauthorized
        );
    }
}
