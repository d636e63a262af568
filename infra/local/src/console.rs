//! The local console on the control port (127.0.0.1:`CONSOLE_PORT`, 3003 by
//! default): what is in the stack, in a browser, as the Firebase Emulator
//! Suite's UI shows it. Server-rendered HTML, a few lines of script that
//! refresh what is shown every few seconds; no build step.
//!
//! It reads the emulator as its administrator and changes nothing, except
//! through its deliberate buttons: delete a user (the app's own
//! `DELETE /me`, run as that user) and run a schedule now.
//!
//! - `/`: the users, the failed-events and dead-letter queues with their
//!   messages, the schedules, every function's recent invocations and the
//!   emulator's log tail;
//! - `/users/{userId}`: one user's profile, devices and what each was
//!   pushed, photos, sync records by collection and space with their
//!   per-field stamps, watermarks, live connections and idempotency keys.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;
use shared::keys::{self, ItemKey};
use shared::media::cdn::UrlSigner;
use shared::model::ids::{SpaceId, UserId};
use shared::model::media::Media;

use crate::invocations::Invocations;
use crate::provision::Resources;
use crate::schedule::Schedules;
use crate::server::Api;
use crate::websocket::Gateway;

/// What the console reads from.
pub struct Console {
    pub sdk: aws_config::SdkConfig,
    pub emulator_url: String,
    pub resources: Resources,
    pub api: Arc<Api>,
    pub gateway: Arc<Gateway>,
    pub invocations: Invocations,
    pub schedules: Schedules,
    /// Signs the photos' variant URLs for the stack's CDN, as `upload` does.
    pub signer: UrlSigner,
    pub emulator_log: Option<PathBuf>,
}

/// The console's pages, beside the control routes (`control.rs`).
pub fn router(console: Arc<Console>) -> axum::Router {
    let control = crate::control::router(console.schedules.clone());
    axum::Router::new()
        .route("/", get(home))
        .route("/users/{user}", get(user_page))
        .route("/users/{user}/delete", post(delete_user))
        .route("/console/schedules/{function}", post(run_schedule))
        .with_state(console)
        .merge(control)
}

type Page = Result<Html<String>, (StatusCode, String)>;

fn failed(err: impl std::fmt::Display) -> (StatusCode, String) {
    (
        StatusCode::BAD_GATEWAY,
        format!("reading the emulator: {err}"),
    )
}

async fn home(State(console): State<Arc<Console>>) -> Page {
    let mut body = String::new();
    let users = console.users().await.map_err(failed)?;
    let _ = write!(body, "<h2>Users ({})</h2>", users.len());
    if users.is_empty() {
        body.push_str("<p class=none>Nobody has signed up yet.</p>");
    } else {
        body.push_str(
            "<table><tr><th>e-mail</th><th>user id</th><th>status</th><th>created</th></tr>",
        );
        for user in &users {
            let _ = write!(
                body,
                "<tr><td><a href=\"/users/{id}\">{email}</a></td><td><code>{id}</code></td><td>{status}</td><td>{created}</td></tr>",
                id = esc(&user.id),
                email = esc(&user.email),
                status = esc(&user.status),
                created = esc(&user.created),
            );
        }
        body.push_str("</table>");
    }

    body.push_str("<h2>Queues</h2>");
    for (logical, (url, _)) in &console.resources.queues {
        let messages = console.queued(url).await.map_err(failed)?;
        let _ = write!(
            body,
            "<h3>{} <small>({} messages)</small></h3>",
            esc(logical),
            messages.len()
        );
        if messages.is_empty() {
            body.push_str("<p class=none>empty</p>");
        }
        for message in messages {
            let _ = write!(
                body,
                "<details><summary><code>{}</code> received {} times</summary><pre>{}</pre></details>",
                esc(message["messageId"].as_str().unwrap_or_default()),
                message["receiveCount"],
                esc(&pretty_text(message["body"].as_str().unwrap_or_default())),
            );
        }
    }

    body.push_str("<h2>Schedules</h2><table>");
    for (function, schedule) in console.schedules.list() {
        let _ = write!(
            body,
            "<tr><td>{f}</td><td><code>{s}</code></td><td><form method=post action=\"/console/schedules/{f}\"><button>Run now</button></form></td></tr>",
            f = esc(&function),
            s = esc(&schedule),
        );
    }
    body.push_str("</table>");

    body.push_str("<h2>Recent invocations</h2><table><tr><th>at</th><th>function</th><th>trigger</th><th>status</th><th>ms</th></tr>");
    for call in console.invocations.recent().iter().take(100) {
        let _ = write!(
            body,
            "<tr class={class}><td>{at}</td><td>{function}</td><td>{trigger}</td><td>{outcome}</td><td>{ms:.1}</td></tr>",
            class = if call.ok { "ok" } else { "bad" },
            at = call.at.format("%H:%M:%S%.3f"),
            function = esc(&call.function),
            trigger = call.trigger,
            outcome = esc(&call.outcome),
            ms = call.duration_ms,
        );
    }
    body.push_str("</table>");

    body.push_str("<h2>Emulator log</h2>");
    let _ = write!(body, "<pre class=log>{}</pre>", esc(&console.log_tail(80)));
    Ok(page("local stack", &body))
}

async fn user_page(State(console): State<Arc<Console>>, Path(user): Path<String>) -> Page {
    let user_id = UserId::parse(&user).map_err(|e| (StatusCode::NOT_FOUND, e.to_string()))?;
    let account = console
        .users()
        .await
        .map_err(failed)?
        .into_iter()
        .find(|u| u.id == user);
    let items = console
        .partition(&keys::user_partition(&user_id))
        .await
        .map_err(failed)?;
    let mut by_kind = Kinds::default();
    for item in items {
        by_kind.add(item);
    }

    let mut body = String::new();
    let title = account.as_ref().map_or(user.clone(), |a| a.email.clone());
    let _ = write!(body, "<h2>{}</h2>", esc(&title));
    match &account {
        Some(account) => {
            let _ = write!(
                body,
                "<p>user id <code>{}</code> · {} · created {}</p>",
                esc(&account.id),
                esc(&account.status),
                esc(&account.created)
            );
        }
        None => body.push_str("<p class=none>No Cognito user (deleted).</p>"),
    }
    let _ = write!(
        body,
        "<form method=post action=\"/users/{}/delete\" onsubmit=\"return confirm('Delete this user and all they hold?')\"><button class=danger>Delete this user</button></form>",
        esc(&user)
    );

    body.push_str("<h3>Profile</h3>");
    items_table(&mut body, &by_kind.profile);

    body.push_str("<h3>Devices</h3>");
    if by_kind.devices.is_empty() {
        body.push_str("<p class=none>none</p>");
    }
    for device in &by_kind.devices {
        let endpoint = device["endpointArn"].as_str().unwrap_or_default();
        let _ = write!(
            body,
            "<div class=card><b class=device>{}</b> {} <small><code>{}</code></small>",
            esc(device["deviceId"].as_str().unwrap_or_default()),
            esc(device["platform"].as_str().unwrap_or_default()),
            esc(endpoint)
        );
        let pushes = console.pushes(endpoint).await.map_err(failed)?;
        let _ = write!(body, "<p>{} pushes sent</p>", pushes.len());
        for push in pushes.iter().rev() {
            let kind = push_kind(push);
            let _ = write!(
                body,
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(&kind),
                esc(&pretty(&push["message"]))
            );
        }
        body.push_str("</div>");
    }

    body.push_str("<h3>Photos</h3>");
    console.photos(&mut body, &by_kind.media);

    body.push_str("<h3>Sync records</h3>");
    records(&mut body, &by_kind.records);
    body.push_str("<h4>Watermarks (last mutation id per client)</h4>");
    items_table(&mut body, &by_kind.watermarks);
    body.push_str("<h4>Feed version</h4>");
    items_table(&mut body, &by_kind.counter);

    for membership in &by_kind.memberships {
        let Some(ItemKey::Membership { space, .. }) = parse(membership) else {
            continue;
        };
        console.space(&mut body, &space, membership).await?;
    }

    body.push_str("<h3>Live connections</h3>");
    let open: Vec<_> = console
        .gateway
        .open()
        .into_iter()
        .filter(|c| c.authorizer["userId"].as_str() == Some(user.as_str()))
        .collect();
    let _ = write!(body, "<p>{} open now</p>", open.len());
    for connection in open {
        let _ = write!(
            body,
            "<div class=card>connection <code>{}</code> client <b>{}</b> since {}</div>",
            esc(&connection.connection_id),
            esc(connection.authorizer["clientId"]
                .as_str()
                .unwrap_or_default()),
            chrono::DateTime::from_timestamp_millis(connection.connected_at).unwrap_or_default()
        );
    }
    items_table(&mut body, &by_kind.connections);

    body.push_str("<h3>Idempotency keys</h3>");
    items_table(&mut body, &by_kind.idempotency);
    body.push_str("<h3>Other items</h3>");
    items_table(&mut body, &by_kind.other);
    Ok(page(&title, &body))
}

/// What a push was for: the `type` its platform payload carries
/// (`sync`, `media_ready`), and APNs' push type where it was given.
fn push_kind(push: &Value) -> String {
    let message: Value = push["message"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    let payload: Value = message
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(platform, _)| *platform != "default")
        .find_map(|(_, p)| p.as_str().and_then(|p| serde_json::from_str(p).ok()))
        .unwrap_or_default();
    // APNs carries it at the top, FCM v1 in fcmV1Message.message.data.
    let kind = payload["type"]
        .as_str()
        .or_else(|| payload["fcmV1Message"]["message"]["data"]["type"].as_str())
        .unwrap_or("push");
    let push_type = push["attributes"].as_object().and_then(|attributes| {
        attributes
            .iter()
            .find(|(name, _)| name.ends_with("PUSH_TYPE"))
            .and_then(|(_, value)| value.as_str())
    });
    match push_type {
        Some(push_type) => format!("{kind} ({push_type})"),
        None => kind.to_string(),
    }
}

fn parse(item: &Value) -> Option<ItemKey> {
    ItemKey::parse(item["PK"].as_str()?, item["SK"].as_str()?)
}

async fn delete_user(State(console): State<Arc<Console>>, Path(user): Path<String>) -> Response {
    let now = chrono::Utc::now().timestamp().to_string();
    let claims = HashMap::from([
        ("sub".to_string(), user.clone()),
        ("token_use".to_string(), "access".to_string()),
        ("iat".to_string(), now.clone()),
        ("auth_time".to_string(), now),
        (
            "client_id".to_string(),
            console.resources.user_pool_client_id.clone(),
        ),
    ]);
    let answer = crate::server::call_as(&console.api, "DELETE", "/me", claims).await;
    if answer.status().is_success() {
        Redirect::to("/").into_response()
    } else {
        (
            StatusCode::BAD_GATEWAY,
            format!("DELETE /me answered {}", answer.status()),
        )
            .into_response()
    }
}

async fn run_schedule(
    State(console): State<Arc<Console>>,
    Path(function): Path<String>,
) -> Response {
    match console.schedules.run(&function).await {
        Some(_) => Redirect::to("/").into_response(),
        None => (StatusCode::NOT_FOUND, "no such schedule").into_response(),
    }
}

/// A user as Cognito holds them.
struct Account {
    id: String,
    email: String,
    status: String,
    created: String,
}

/// A partition's items, by what they are.
#[derive(Default)]
struct Kinds {
    profile: Vec<Value>,
    devices: Vec<Value>,
    media: Vec<Value>,
    records: Vec<Value>,
    watermarks: Vec<Value>,
    counter: Vec<Value>,
    memberships: Vec<Value>,
    members: Vec<Value>,
    connections: Vec<Value>,
    idempotency: Vec<Value>,
    other: Vec<Value>,
}

impl Kinds {
    fn add(&mut self, item: Value) {
        let list = match parse(&item) {
            Some(ItemKey::Profile { .. }) => &mut self.profile,
            Some(ItemKey::Device { .. }) => &mut self.devices,
            Some(ItemKey::Media { .. }) => &mut self.media,
            Some(ItemKey::Record { .. }) => &mut self.records,
            Some(ItemKey::Watermark { .. }) => &mut self.watermarks,
            // A partition's counter: a user's SYNCVER, a space's own item.
            Some(ItemKey::SyncVersion { .. } | ItemKey::Space { .. }) => &mut self.counter,
            Some(ItemKey::Membership { .. }) => &mut self.memberships,
            Some(ItemKey::Member { .. }) => &mut self.members,
            Some(ItemKey::Connection { .. }) => &mut self.connections,
            Some(ItemKey::Idempotency { .. }) => &mut self.idempotency,
            _ => &mut self.other,
        };
        list.push(item);
    }
}

impl Console {
    async fn users(&self) -> Result<Vec<Account>, String> {
        let cognito = aws_sdk_cognitoidentityprovider::Client::new(&self.sdk);
        let mut accounts = Vec::new();
        let mut token = None;
        loop {
            let page = cognito
                .list_users()
                .user_pool_id(&self.resources.user_pool_id)
                .set_pagination_token(token)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            for user in page.users() {
                let attribute = |name: &str| {
                    user.attributes()
                        .iter()
                        .find(|a| a.name() == name)
                        .and_then(|a| a.value())
                        .unwrap_or_default()
                        .to_string()
                };
                accounts.push(Account {
                    id: attribute("sub"),
                    email: attribute("email"),
                    status: user
                        .user_status()
                        .map_or_else(String::new, |s| s.as_str().to_string()),
                    created: user
                        .user_create_date()
                        .map_or_else(String::new, |d| d.to_string()),
                });
            }
            token = page.pagination_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        accounts.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(accounts)
    }

    /// Every item of one partition, as JSON.
    async fn partition(&self, pk: &str) -> Result<Vec<Value>, String> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = dynamodb
                .query()
                .table_name(&self.resources.table_name)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            for item in page.items() {
                items.push(
                    serde_dynamo::from_item::<_, Value>(item.clone()).map_err(|e| e.to_string())?,
                );
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(items)
    }

    async fn emulator_json(&self, path_and_query: &str) -> Result<Vec<Value>, String> {
        reqwest::get(format!("{}{path_and_query}", self.emulator_url))
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// A queue's messages, read without receiving them.
    async fn queued(&self, url: &str) -> Result<Vec<Value>, String> {
        self.emulator_json(&format!("/_emulator/sqs/messages?queue={}", encode(url)))
            .await
    }

    /// What SNS sent to one platform endpoint, with its attributes.
    async fn pushes(&self, endpoint: &str) -> Result<Vec<Value>, String> {
        if endpoint.is_empty() {
            return Ok(Vec::new());
        }
        self.emulator_json(&format!(
            "/_emulator/sns/published?endpoint={}",
            encode(endpoint)
        ))
        .await
    }

    fn photos(&self, body: &mut String, items: &[Value]) {
        if items.is_empty() {
            body.push_str("<p class=none>none</p>");
        }
        body.push_str("<div class=photos>");
        for item in items {
            let Ok(media) = serde_json::from_value::<Media>(item.clone()) else {
                items_table(body, std::slice::from_ref(item));
                continue;
            };
            let _ = write!(
                body,
                "<figure class=\"photo {status}\">",
                status = media.status.as_str()
            );
            if let Some(smallest) = media.variants.iter().min_by_key(|v| v.width) {
                let grant = self
                    .signer
                    .grant(&media.variants_prefix(), SystemTime::now());
                let _ = write!(
                    body,
                    "<img src=\"{}\" alt=\"{}\" width={}>",
                    esc(&self.signer.url(&smallest.key, &grant)),
                    esc(media.media_id.as_str()),
                    smallest.width.min(240)
                );
            }
            let _ = write!(
                body,
                "<figcaption><code>{}</code> {} · {} · {} bytes{}</figcaption></figure>",
                esc(media.media_id.as_str()),
                media.status.as_str(),
                esc(&media.content_type),
                media.bytes,
                media
                    .failure_reason
                    .as_deref()
                    .map(|why| format!(" · <b class=bad>{}</b>", esc(why)))
                    .unwrap_or_default()
            );
        }
        body.push_str("</div>");
    }

    async fn space(
        &self,
        body: &mut String,
        space: &SpaceId,
        membership: &Value,
    ) -> Result<(), (StatusCode, String)> {
        let mut kinds = Kinds::default();
        let mut name = String::new();
        for item in self
            .partition(&keys::space_partition(space))
            .await
            .map_err(failed)?
        {
            if matches!(parse(&item), Some(ItemKey::Space { .. })) {
                name = item["name"].as_str().unwrap_or_default().to_string();
            }
            kinds.add(item);
        }
        let _ = write!(
            body,
            "<section class=space><h3>Space {} <small><code>{}</code> · role {}{}</small></h3>",
            esc(&name),
            esc(space.as_str()),
            esc(membership["role"].as_str().unwrap_or("?")),
            if membership["removed"] == true {
                " · removed"
            } else {
                ""
            }
        );
        body.push_str("<h4>Members</h4>");
        items_table(body, &kinds.members);
        body.push_str("<h4>Records</h4>");
        records(body, &kinds.records);
        body.push_str("<h4>Photos</h4>");
        self.photos(body, &kinds.media);
        body.push_str("<h4>The space and its feed version</h4>");
        items_table(body, &kinds.counter);
        body.push_str("</section>");
        Ok(())
    }

    fn log_tail(&self, lines: usize) -> String {
        let Some(path) = &self.emulator_log else {
            return "(the emulator's log is not known to this stack: scripts/dev sets EMULATOR_LOG)"
                .into();
        };
        match tail(path, 64 * 1024) {
            Ok(text) => {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(err) => format!("{}: {err}", path.display()),
        }
    }
}

/// The last `bytes` of a file (a log that grows all day is not read whole
/// on every refresh).
fn tail(path: &std::path::Path, bytes: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(bytes)))?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// Sync records grouped by collection: each field with its stamp.
fn records(body: &mut String, items: &[Value]) {
    if items.is_empty() {
        body.push_str("<p class=none>none</p>");
        return;
    }
    let mut collections: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for item in items {
        collections
            .entry(item["collection"].as_str().unwrap_or("?"))
            .or_default()
            .push(item);
    }
    for (collection, records) in collections {
        let _ = write!(
            body,
            "<h5>{} ({})</h5><table><tr><th>record</th><th>fields (value @ stamp)</th><th>version</th><th>written by</th></tr>",
            esc(collection),
            records.len()
        );
        for record in records {
            let mut fields = String::new();
            if let Some(map) = record["fields"].as_object() {
                for (name, stamped) in map {
                    let _ = write!(
                        fields,
                        "<div><b>{}</b> = <span class=value>{}</span> <small>@ {}</small></div>",
                        esc(name),
                        esc(&stamped["v"].to_string()),
                        esc(stamped["h"].as_str().unwrap_or_default())
                    );
                }
            }
            if let Some(deleted) = record["deletedAt"].as_str() {
                let _ = write!(fields, "<div class=bad>deleted @ {}</div>", esc(deleted));
            }
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(record["recordId"].as_str().unwrap_or_default()),
                fields,
                record["feedVer"],
                esc(record["origin"].as_str().unwrap_or_default())
            );
        }
        body.push_str("</table>");
    }
}

/// Items as a table of their attributes (keys first).
fn items_table(body: &mut String, items: &[Value]) {
    if items.is_empty() {
        body.push_str("<p class=none>none</p>");
        return;
    }
    body.push_str("<table>");
    for item in items {
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td><pre>{}</pre></td></tr>",
            esc(item["SK"].as_str().unwrap_or_default()),
            esc(&pretty(&without_keys(item)))
        );
    }
    body.push_str("</table>");
}

fn without_keys(item: &Value) -> Value {
    let mut item = item.clone();
    if let Some(map) = item.as_object_mut() {
        map.remove("PK");
        map.remove("SK");
    }
    item
}

fn pretty(value: &Value) -> String {
    match value {
        Value::String(text) => pretty_text(text),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// JSON text indented, other text as it is.
fn pretty_text(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .to_string()
}

/// Text made safe for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How often an open page refreshes what it shows.
const REFRESH: Duration = Duration::from_secs(3);

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · local console</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}}
header{{background:#232f3e;color:#fff;padding:8px 16px}} header a{{color:#fff;font-weight:bold}}
main{{padding:8px 16px 32px}} table{{border-collapse:collapse;margin:4px 0 12px}}
td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}}
pre{{margin:0;white-space:pre-wrap;max-width:90ch}} pre.log{{background:#111;color:#ddd;padding:8px;max-height:30em;overflow:auto}}
.none{{color:#888}} .bad,tr.bad td{{color:#b00020}} .card,section.space{{border:1px solid #ddd;background:#fff;padding:6px 10px;margin:6px 0}}
.photos{{display:flex;flex-wrap:wrap;gap:8px}} figure{{margin:0;background:#fff;border:1px solid #ddd;padding:4px}}
figcaption{{font-size:12px;max-width:240px}} button.danger{{color:#fff;background:#b00020;border:0;padding:4px 10px}}
</style></head>
<body><header><a href="/">local stack console</a> · refreshes every {refresh} s</header>
<main id="live">{body}</main>
<script>
// Errors are counted where a test (and a curious developer) can read them.
window.consoleErrors = [];
window.addEventListener("error", (e) => {{
  window.consoleErrors.push(String(e.message));
  document.body.dataset.errors = String(window.consoleErrors.length);
}});
// A photo that does not load through the CDN says so.
const mark = (img, loaded) => {{
  img.dataset.loaded = loaded ? "yes" : "no";
  if (!loaded) img.alt = "did not load: " + img.alt;
}};
document.addEventListener("load", (e) => {{ if (e.target.tagName === "IMG") mark(e.target, true); }}, true);
document.addEventListener("error", (e) => {{ if (e.target.tagName === "IMG") mark(e.target, false); }}, true);
for (const img of document.images) {{ if (img.complete) mark(img, img.naturalWidth > 0); }}
setInterval(async () => {{
  if (document.hidden || document.querySelector("details[open]")) return;
  try {{
    const answer = await fetch(location.href);
    if (!answer.ok) return;
    const next = new DOMParser().parseFromString(await answer.text(), "text/html").getElementById("live");
    if (next) document.getElementById("live").replaceChildren(...next.childNodes);
  }} catch (_) {{ /* the stack is restarting: try again at the next tick */ }}
}}, {refresh_ms});
</script></body></html>"#,
        title = esc(title),
        refresh = REFRESH.as_secs(),
        refresh_ms = REFRESH.as_millis(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn a_push_is_named_by_its_payload_type() {
        let apns = serde_json::json!({
            "message": r#"{"default":"sync","APNS":"{\"aps\":{\"content-available\":1},\"type\":\"sync\"}"}"#,
            "attributes": {"AWS.SNS.MOBILE.APNS.PUSH_TYPE": "background"},
        });
        assert_eq!(push_kind(&apns), "sync (background)");
        let fcm = serde_json::json!({
            "message": r#"{"default":"x","GCM":"{\"fcmV1Message\":{\"message\":{\"data\":{\"type\":\"media_ready\"}}}}"}"#,
            "attributes": {},
        });
        assert_eq!(push_kind(&fcm), "media_ready");
        assert_eq!(push_kind(&serde_json::json!({"message": "plain"})), "push");
    }

    #[test]
    fn only_the_end_of_a_log_is_read() {
        let path = std::env::temp_dir().join(format!("log-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "first\nsecond\nthird\n").unwrap();
        assert_eq!(tail(&path, 6).unwrap(), "third\n");
        assert_eq!(tail(&path, 1000).unwrap(), "first\nsecond\nthird\n");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("arn:aws:sns:x/y z"), "arn%3Aaws%3Asns%3Ax%2Fy+z");
    }
}
