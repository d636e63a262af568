//! The live channel's API Gateway on loopback: `ws://127.0.0.1:PORT/?token=&clientId=`.
//!
//! A handshake runs the template's REQUEST authorizer on the event API
//! Gateway sends it and reads its IAM policy (an "Unauthorized" error is
//! 401, a Deny 403), then `$connect` with the authorizer's context; a
//! refused handshake never upgrades. Messages go to `$default`, whose body
//! is sent back (the route response); a close runs `$disconnect`. The
//! management API the functions' SDK client is pointed at is served here
//! too: `POST`/`GET`/`DELETE /@connections/{id}`, 410 `GoneException` for
//! an id that is not connected. Idle and maximum durations are enforced
//! (API Gateway's 10 minutes and 2 hours, shorter in tests).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::iam::IamPolicyEffect;
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::state::StateDir;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The template's REQUEST authorizer function.
pub type Authorizer = Arc<
    dyn Fn(
            ApiGatewayCustomAuthorizerRequestTypeRequest,
        ) -> BoxFuture<Result<ApiGatewayCustomAuthorizerResponse, shared::Error>>
        + Send
        + Sync,
>;

/// A function behind the socket routes.
pub type Handler = Arc<
    dyn Fn(ApiGatewayWebsocketProxyRequest) -> BoxFuture<ApiGatewayProxyResponse> + Send + Sync,
>;

/// API Gateway's limits (times shortened by tests).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: Duration,
    pub max: Duration,
    /// How long a TCP connection may take to send its handshake before it
    /// is closed: a silent connection holds nothing open for long.
    pub handshake: Duration,
}

/// API Gateway's WebSocket frame and message limits: 32 KB and 128 KB.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(10 * 60),
            max: Duration::from_secs(2 * 60 * 60),
            handshake: Duration::from_secs(10),
        }
    }
}

pub struct Gateway {
    pub authorizer: Authorizer,
    /// Route key (`$connect`, `$disconnect`, `$default`) -> function.
    pub routes: HashMap<String, Handler>,
    pub limits: Limits,
    pub api_id: String,
    pub stage: String,
    pub region: String,
    connections: Mutex<HashMap<String, Live>>,
    /// Messages in either direction, each counted per started 32 KB as
    /// API Gateway bills them (the cost benchmark reads it).
    pub billed_messages: std::sync::atomic::AtomicU64,
    /// Where the open connections are listed, so that a restart after a
    /// stop that ran no `$disconnect` runs them then.
    journal: Option<StateDir>,
}

/// The state folder's list of open connections.
const JOURNAL: &str = "connections.json";

/// A connection being served.
struct Live {
    outbox: mpsc::UnboundedSender<Outbound>,
    connected_at: chrono::DateTime<chrono::Utc>,
    last_active: Arc<Mutex<chrono::DateTime<chrono::Utc>>>,
    /// The authorizer's context, which every route's event carries.
    authorizer: Value,
}

/// An open connection, as the console shows it and the journal keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenConnection {
    pub connection_id: String,
    pub connected_at: i64,
    pub authorizer: Value,
}

enum Outbound {
    Text(String),
    Close,
}

impl Gateway {
    pub fn new(
        authorizer: Authorizer,
        routes: HashMap<String, Handler>,
        limits: Limits,
        region: &str,
        journal: Option<StateDir>,
    ) -> Self {
        Self {
            billed_messages: std::sync::atomic::AtomicU64::new(0),
            journal,
            authorizer,
            routes,
            limits,
            api_id: crate::provision::WEBSOCKET_API_ID.into(),
            stage: crate::provision::WEBSOCKET_STAGE.into(),
            region: region.into(),
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// How many connections are open (for tests and benchmarks).
    pub fn open_connections(&self) -> usize {
        self.connections.lock().map_or(0, |c| c.len())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connections open now, oldest first.
    pub fn open(&self) -> Vec<OpenConnection> {
        let mut open: Vec<OpenConnection> = self
            .live()
            .iter()
            .map(|(id, live)| OpenConnection {
                connection_id: id.clone(),
                connected_at: live.connected_at.timestamp_millis(),
                authorizer: live.authorizer.clone(),
            })
            .collect();
        open.sort_by_key(|c| c.connected_at);
        open
    }

    fn bill_message(&self, bytes: usize) {
        let units = bytes.div_ceil(32 * 1024).max(1) as u64;
        self.billed_messages
            .fetch_add(units, std::sync::atomic::Ordering::Relaxed);
    }

    fn write_journal(&self) {
        if let Some(journal) = &self.journal {
            journal.save(JOURNAL, &self.open());
        }
    }

    /// Runs `$disconnect` for every connection the journal lists from
    /// before a restart (their sockets went with the old process), as API
    /// Gateway runs it when a connection drops.
    pub async fn disconnect_previous(&self) {
        let Some(journal) = &self.journal else { return };
        let previous: Vec<OpenConnection> = journal.load(JOURNAL).unwrap_or_default();
        if let Some(disconnect) = self.routes.get("$disconnect").cloned() {
            for connection in &previous {
                let event = route_event(
                    self,
                    "$disconnect",
                    "DISCONNECT",
                    &connection.connection_id,
                    connection.connected_at,
                    &connection.authorizer,
                    json!({}),
                );
                disconnect(event).await;
            }
        }
        if !previous.is_empty() {
            tracing::info!(
                connections = previous.len(),
                "live channel: connections from before the restart disconnected"
            );
        }
        self.write_journal();
    }
}

/// Serves the gateway on `listener` until the task is dropped. Connections
/// are served one by one with hyper directly (not `axum::serve`), for its
/// header read timeout: one that has not sent a whole handshake within
/// `limits.handshake` is closed.
pub async fn serve_gateway(listener: tokio::net::TcpListener, gateway: Arc<Gateway>) {
    let handshake = gateway.limits.handshake;
    let app = router(gateway);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "the WebSocket gateway could not accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(handshake)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a WebSocket gateway connection ended");
            }
        });
    }
}

pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(handshake))
        .route(
            "/@connections/{id}",
            axum::routing::post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .with_state(gateway)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn header_map(headers: &HeaderMap) -> Value {
    Value::Object(
        headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.to_string(), Value::String(value.to_str().ok()?.into())))
            })
            .collect(),
    )
}

/// The event of one route, as API Gateway sends it to a proxy integration.
fn route_event(
    gateway: &Gateway,
    route_key: &str,
    event_type: &str,
    connection_id: &str,
    connected_at: i64,
    authorizer: &Value,
    extra: Value,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = json!({
        "requestContext": {
            "routeKey": route_key,
            "eventType": event_type,
            "connectionId": connection_id,
            "connectedAt": connected_at,
            "requestTimeEpoch": now_ms(),
            "requestId": uuid::Uuid::new_v4().to_string(),
            "apiId": gateway.api_id,
            "stage": gateway.stage,
            "domainName": "127.0.0.1",
            "messageDirection": "IN",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": authorizer,
        },
        "isBase64Encoded": false,
    });
    if let (Some(event), Value::Object(extra)) = (event.as_object_mut(), extra) {
        event.extend(extra);
    }
    serde_json::from_value(event).unwrap_or_default()
}

async fn handshake(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "a WebSocket handshake is expected",
        )
            .into_response();
    };
    let connection_id = format!("{}=", &uuid::Uuid::new_v4().simple().to_string()[..15]);
    let connected_at = now_ms();
    let method_arn = format!(
        "arn:aws:execute-api:{}:{}:{}/{}/$connect",
        gateway.region,
        crate::provision::ACCOUNT_ID,
        gateway.api_id,
        gateway.stage
    );
    let request: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": header_map(&headers),
        "queryStringParameters": query,
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "connectionId": connection_id,
            "apiId": gateway.api_id,
            "stage": gateway.stage,
            "requestTimeEpoch": connected_at,
        },
    }))
    .unwrap_or_default();
    let decision = (gateway.authorizer)(request).await;
    let authorizer = match decision {
        Err(err) if err.code == shared::Code::Unauthorized => {
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
        Err(err) => {
            tracing::error!(error = %err, "the $connect authorizer failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response();
        }
        Ok(response) => {
            let allowed = response
                .policy_document
                .statement
                .iter()
                .all(|s| s.effect == IamPolicyEffect::Allow)
                && !response.policy_document.statement.is_empty();
            if !allowed {
                return (StatusCode::FORBIDDEN, "Forbidden").into_response();
            }
            let mut context = match response.context {
                Value::Object(context) => context,
                _ => serde_json::Map::new(),
            };
            context.insert("principalId".into(), json!(response.principal_id));
            Value::Object(context)
        }
    };

    let Some(connect) = gateway.routes.get("$connect").cloned() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no $connect route").into_response();
    };
    let event = route_event(
        &gateway,
        "$connect",
        "CONNECT",
        &connection_id,
        connected_at,
        &authorizer,
        json!({"headers": header_map(&headers), "queryStringParameters": query}),
    );
    let answer = connect(event).await;
    if !(200..300).contains(&answer.status_code) {
        let status =
            StatusCode::from_u16(answer.status_code as u16).unwrap_or(StatusCode::FORBIDDEN);
        // Its headers go back with it, as API Gateway sends them
        // (`Retry-After` on a 429).
        let mut refused = (status, "the $connect route refused the connection").into_response();
        refused.headers_mut().extend(answer.headers);
        return refused;
    }

    // Registered before the upgrade completes: a message posted meanwhile
    // waits in the outbox.
    // The same instant the routes' events carry as `connectedAt`.
    let (outbox, inbox) = mpsc::unbounded_channel();
    let connected = chrono::DateTime::from_timestamp_millis(connected_at).unwrap_or_default();
    let last_active = Arc::new(Mutex::new(connected));
    gateway.live().insert(
        connection_id.clone(),
        Live {
            outbox,
            connected_at: connected,
            last_active: last_active.clone(),
            authorizer: authorizer.clone(),
        },
    );
    gateway.write_journal();
    let upgrade = upgrade
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES);
    upgrade.on_upgrade(move |socket| {
        serve(
            gateway,
            socket,
            connection_id,
            connected_at,
            authorizer,
            inbox,
            last_active,
        )
    })
}

async fn serve(
    gateway: Arc<Gateway>,
    mut socket: WebSocket,
    connection_id: String,
    connected_at: i64,
    authorizer: Value,
    mut inbox: mpsc::UnboundedReceiver<Outbound>,
    last_active: Arc<Mutex<chrono::DateTime<chrono::Utc>>>,
) {
    let started = Instant::now();
    let mut idle_since = Instant::now();
    let (close_code, reason) = loop {
        let idle_deadline = idle_since + gateway.limits.idle;
        let max_deadline = started + gateway.limits.max;
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    idle_since = Instant::now();
                    if let Ok(mut at) = last_active.lock() {
                        *at = chrono::Utc::now();
                    }
                    gateway.bill_message(text.len());
                    if let Some(default) = gateway.routes.get("$default").cloned() {
                        let event = route_event(
                            &gateway, "$default", "MESSAGE", &connection_id, connected_at,
                            &authorizer, json!({"body": text.to_string()}),
                        );
                        let answer = default(event).await;
                        if let Some(LambdaBody::Text(body)) = answer.body {
                            gateway.bill_message(body.len());
                            if socket.send(Message::Text(body.into())).await.is_err() {
                                break (None, "the client went away");
                            }
                        }
                    }
                }
                // Over a size limit (tungstenite's capacity error): API
                // Gateway closes with 1009.
                Some(Err(err)) if err.to_string().contains("Space limit exceeded") => {
                    break (Some(1009), "Message too big")
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break (None, "the client closed"),
                Some(Ok(_)) => {}
            },
            outbound = inbox.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break (None, "the client went away");
                    }
                }
                Some(Outbound::Close) | None => break (Some(1000), "closed by the management API"),
            },
            () = tokio::time::sleep_until(idle_deadline.into()) => break (Some(1001), "Going away: idle timeout"),
            () = tokio::time::sleep_until(max_deadline.into()) => break (Some(1001), "Going away: maximum connection duration"),
        }
    };
    if let Some(code) = close_code {
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    gateway.live().remove(&connection_id);
    gateway.write_journal();
    if let Some(disconnect) = gateway.routes.get("$disconnect").cloned() {
        let event = route_event(
            &gateway,
            "$disconnect",
            "DISCONNECT",
            &connection_id,
            connected_at,
            &authorizer,
            json!({}),
        );
        disconnect(event).await;
    }
    tracing::info!(connection = %connection_id, reason, "live channel closed");
}

/// API Gateway's answer for a connection that is not (or no longer) there.
fn gone() -> Response {
    Response::builder()
        .status(StatusCode::GONE)
        .header("x-amzn-errortype", "GoneException")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"message":"the connection is gone"}"#))
        .unwrap_or_default()
}

async fn post_to_connection(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let bytes = text.len();
    match gateway.live().get(&id) {
        Some(live) if live.outbox.send(Outbound::Text(text)).is_ok() => {
            gateway.bill_message(bytes);
            StatusCode::OK.into_response()
        }
        _ => gone(),
    }
}

async fn get_connection(State(gateway): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match gateway.live().get(&id) {
        Some(live) => {
            let last = live.last_active.lock().map_or(live.connected_at, |at| *at);
            axum::Json(json!({
                "connectedAt": live.connected_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "lastActiveAt": last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "identity": {"sourceIp": "127.0.0.1", "userAgent": ""},
            }))
            .into_response()
        }
        None => gone(),
    }
}

async fn delete_connection(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Response {
    match gateway.live().get(&id) {
        Some(live) => {
            let _ = live.outbox.send(Outbound::Close);
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}
