//! A test client that talks HTTP to the local stack exactly like a phone.
//! Each test starts its own stack (own table, user pool and port) against
//! the emulator at `AWS_ENDPOINT_URL`, so tests run in parallel.

use local_stack::{LocalStack, Options};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub use local_stack;

pub mod bill;
pub mod events;
pub mod faults;
pub mod tokens;

pub struct TestStack {
    pub stack: LocalStack,
    pub emulator_url: String,
    http: reqwest::Client,
}

/// The emulator `scripts/test` started. Running `cargo test` alone needs one.
pub fn emulator_url() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run scripts/test, which starts the emulator for the tests",
    )
}

/// A response: status, content type and JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts this is a problem document with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["code"], code, "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(
            self.body["title"].is_string() && self.body["detail"].is_string(),
            "{self:?}"
        );
    }
}

/// A confirmed, signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub email: String,
    pub password: String,
    pub user_id: shared::model::ids::UserId,
    pub access_token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "Corr3ct-Horse";

impl TestStack {
    pub async fn start() -> Self {
        Self::start_against(emulator_url()).await
    }

    /// A stack whose functions reach the emulator through `emulator_url`
    /// (a [`faults::FaultyProxy`], say).
    pub async fn start_against(emulator_url: String) -> Self {
        Self::start_with(emulator_url, Options::default_template()).await
    }

    /// A stack of another template (a changed copy of the project's).
    pub async fn start_with_template(template: std::path::PathBuf) -> Self {
        Self::start_with(emulator_url(), template).await
    }

    /// Both: another template, its functions reaching the emulator through
    /// `emulator_url`.
    pub async fn start_against_with_template(
        emulator_url: String,
        template: std::path::PathBuf,
    ) -> Self {
        Self::start_with(emulator_url, template).await
    }

    async fn start_with(emulator_url: String, template: std::path::PathBuf) -> Self {
        Self::start_with_limits(
            emulator_url,
            template,
            local_stack::websocket::Limits::default(),
        )
        .await
    }

    /// A stack whose live channel closes idle and old connections sooner.
    pub async fn start_with_websocket_limits(limits: local_stack::websocket::Limits) -> Self {
        Self::start_with_limits(emulator_url(), Options::default_template(), limits).await
    }

    async fn start_with_limits(
        emulator_url: String,
        template: std::path::PathBuf,
        websocket_limits: local_stack::websocket::Limits,
    ) -> Self {
        Self::start_with_options(Options {
            emulator_url,
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            api_port: 0,
            cdn_port: 0,
            websocket_port: 0,
            console_port: 0,
            websocket_limits,
            stack_name: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            template,
            state_dir: None,
            emulator_log: None,
        })
        .await
    }

    /// The stack as `scripts/dev` runs it: named `stack`, keeping its own
    /// state in `state_dir` and serving the CDN on `cdn_port` (signed URLs
    /// name it), so starting it again with the same three goes on from
    /// where it stopped.
    pub async fn start_persistent(
        emulator_url: String,
        stack: &str,
        state_dir: std::path::PathBuf,
        cdn_port: u16,
    ) -> Self {
        Self::start_with_options(Options {
            emulator_url,
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            api_port: 0,
            cdn_port,
            websocket_port: 0,
            console_port: 0,
            websocket_limits: local_stack::websocket::Limits::default(),
            stack_name: stack.into(),
            template: Options::default_template(),
            state_dir: Some(state_dir),
            emulator_log: None,
        })
        .await
    }

    async fn start_with_options(options: Options) -> Self {
        let emulator_url = options.emulator_url.clone();
        let stack = local_stack::start(options)
            .await
            .expect("the local stack starts");
        Self {
            stack,
            emulator_url,
            // What is on the wire, as sent: no Accept-Encoding added and no
            // decompression (mobile_sync turns both on for the workspace).
            http: reqwest::Client::builder()
                .no_gzip()
                .no_brotli()
                .build()
                .expect("a client"),
        }
    }

    /// AWS clients' configuration for this stack's emulator.
    pub async fn sdk(&self) -> shared::aws_config::SdkConfig {
        let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
        shared::adapters::aws::sdk_config_for(&self.emulator_url, &region).await
    }

    /// This stack's table, for checking what the functions wrote.
    pub async fn table(&self) -> shared::store::Table {
        shared::store::Table::new(&self.sdk().await, &self.stack.resources.table_name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.api_url)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the local stack answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            content_type,
            headers,
            body,
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let builder = self.http.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        self.send(self.request("POST", path, token).json(&body))
            .await
    }

    /// `POST /sync/push` of `mutations` by the app `client` of `user`.
    pub async fn push(&self, user: &User, client: &str, mutations: Vec<Value>) -> Reply {
        self.post(
            "/sync/push",
            json!({"clientId": client, "mutations": mutations}),
            Some(&user.access_token),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request("GET", path, token)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request("DELETE", path, token)).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/auth/sign-in",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    /// Signs up, confirms and signs in a fresh user.
    pub async fn user(&self) -> User {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let signed_up = self
            .post(
                "/auth/sign-up",
                json!({"email": email, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(signed_up.status, 201, "{signed_up:?}");
        let confirmed = self
            .post(
                "/auth/confirm",
                json!({"email": email, "code": "123456"}),
                None,
            )
            .await;
        assert_eq!(confirmed.status, 204, "{confirmed:?}");
        let tokens = self.sign_in(&email, PASSWORD).await;
        assert_eq!(tokens.status, 200, "{tokens:?}");
        User {
            email,
            password: PASSWORD.into(),
            user_id: shared::model::ids::UserId::parse(signed_up.body["userId"].as_str().unwrap())
                .expect("a user id"),
            access_token: tokens.body["accessToken"].as_str().unwrap().into(),
            refresh_token: tokens.body["refreshToken"].as_str().unwrap().into(),
        }
    }

    /// `POST /spaces` by `owner`; the new space's id.
    pub async fn create_space(&self, owner: &User, name: &str) -> String {
        let created = self
            .post("/spaces", json!({"name": name}), Some(&owner.access_token))
            .await;
        assert_eq!(created.status, 201, "{created:?}");
        assert_eq!(created.body["role"], "owner");
        created.body["spaceId"].as_str().unwrap().to_string()
    }

    /// A new invitation of `space` with `role`, by its owner; its code.
    pub async fn invite(&self, owner: &User, space: &str, role: &str) -> String {
        let invited = self
            .post(
                &format!("/spaces/{space}/invitations"),
                json!({"role": role}),
                Some(&owner.access_token),
            )
            .await;
        assert_eq!(invited.status, 201, "{invited:?}");
        invited.body["code"].as_str().unwrap().to_string()
    }

    /// `POST /invitations/accept` of `code` by `user`.
    pub async fn join(&self, user: &User, code: &str) -> Reply {
        self.post(
            "/invitations/accept",
            json!({"code": code}),
            Some(&user.access_token),
        )
        .await
    }

    /// A space `owner` made and each of `members` joined with its role
    /// (through an invitation each); its id.
    pub async fn shared_space(
        &self,
        owner: &User,
        name: &str,
        members: &[(&User, &str)],
    ) -> String {
        let space = self.create_space(owner, name).await;
        for (member, role) in members {
            let code = self.invite(owner, &space, role).await;
            let joined = self.join(member, &code).await;
            assert_eq!(joined.status, 200, "{joined:?}");
        }
        space
    }

    /// What the emulator recorded as published to the platform endpoint
    /// `arn`: each message with its attributes (the delivery headers).
    pub async fn published_to_endpoint(&self, arn: &str) -> Vec<Value> {
        reqwest::Client::new()
            .get(format!("{}/_emulator/sns/published", self.emulator_url))
            .query(&[("endpoint", arn)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls `GET /media/{id}` until the media is no longer pending (the S3
    /// event reached `resize`); its last state.
    pub async fn wait_until_processed(&self, user: &User, id: &str) -> Value {
        for _ in 0..200 {
            let media = self
                .get(&format!("/media/{id}"), Some(&user.access_token))
                .await;
            assert_eq!(media.status, 200, "{media:?}");
            if media.body["status"] != "pending" {
                return media.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("media {id} still pending after 20 s");
    }

    /// The sort keys of every item of a partition, read as the
    /// administrator.
    pub async fn partition_keys(&self, partition: &shared::model::ids::Partition) -> Vec<String> {
        let sdk = self.sdk().await;
        let mut pages = aws_sdk_dynamodb::Client::new(&sdk)
            .query()
            .table_name(&self.stack.resources.table_name)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(shared::keys::partition_key(partition)),
            )
            .projection_expression("SK")
            .into_paginator()
            .items()
            .send();
        let mut keys = Vec::new();
        while let Some(item) = pages.next().await {
            keys.push(item.unwrap()["SK"].as_s().unwrap().clone());
        }
        keys
    }

    /// How many objects the media bucket holds under `prefix` (up to 1,000).
    pub async fn objects_under(&self, prefix: &str) -> i32 {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk().await)
                .force_path_style(true)
                .build(),
        );
        s3.list_objects_v2()
            .bucket(&self.stack.resources.bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap()
            .key_count()
            .unwrap_or(0)
    }

    /// Messages in a queue of the template (by logical id), visible and in
    /// flight.
    pub async fn queue_depth(&self, queue: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attributes = aws_sdk_sqs::Client::new(&self.sdk().await)
            .get_queue_attributes()
            .queue_url(&self.stack.resources.queues[queue].0)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|name| {
            attributes
                .get(name)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// Waits until the purge queue is empty: every queued deletion has run
    /// its last step (a step queues the next before it is acknowledged, so
    /// the queue is never empty mid-job), or given up into the dead-letter
    /// queue. How long it took.
    pub async fn wait_until_purged(&self) -> std::time::Duration {
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(300) {
            if self.queue_depth("PurgeQueue").await == 0 {
                return started.elapsed();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the purge queue still holds work after 300 s");
    }

    pub async fn stop(self) {
        self.stack.stop().await;
    }
}

/// An emulator process of a test's own on a free loopback port, keeping
/// its state in a file as `scripts/dev` runs it (the one `scripts/test`
/// starts keeps none). Needs the virtualenv `scripts/test` makes.
pub struct OwnEmulator {
    child: std::process::Child,
    pub url: String,
}

impl OwnEmulator {
    pub async fn start(state_file: &std::path::Path, port: u16) -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: scripts/test makes the virtualenv",
            python.display()
        );
        let child = std::process::Command::new(python)
            .arg(root.join("infra/emulator/emulator.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("EMULATOR_STATE", state_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the emulator starts");
        // Dropped on a panic below: the process is stopped either way.
        let emulator = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..150 {
            if reqwest::get(format!("{}/moto-api/data.json", emulator.url))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return emulator;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "the emulator on {} did not answer within 15 s",
            emulator.url
        );
    }

    /// SIGTERM, as Ctrl-C: it saves its state, then exits.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL: nothing is saved but what was saved already.
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for OwnEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the emulator's meter (`infra/emulator/meter.py`), forgetting what
/// it recorded before.
pub async fn start_meter(emulator_url: &str) {
    meter_control(emulator_url, "start").await;
}

pub async fn stop_meter(emulator_url: &str) {
    meter_control(emulator_url, "stop").await;
}

async fn meter_control(emulator_url: &str, verb: &str) {
    reqwest::Client::new()
        .post(format!("{emulator_url}/_emulator/meter/{verb}"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|err| panic!("the meter's {verb}: {err}"));
}

/// What the emulator's meter recorded since it was started.
pub async fn read_meter(emulator_url: &str) -> bill::Meter {
    reqwest::get(format!("{emulator_url}/_emulator/meter"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the emulator's meter")
        .json()
        .await
        .expect("the meter's JSON")
}

/// A free port on loopback (free when asked).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A copy of the project's template with its first `from` changed to `to`
/// (a smaller step, a lower limit), for a stack of its own.
pub fn template_with(from: &str, to: &str) -> std::path::PathBuf {
    let original = std::fs::read_to_string(Options::default_template()).unwrap();
    assert!(original.contains(from), "the template has {from:?}");
    let path = std::env::temp_dir().join(format!("template-{}.yaml", uuid::Uuid::new_v4()));
    std::fs::write(&path, original.replacen(from, to, 1)).unwrap();
    path
}

/// A sync hlc for `client` at the current time (counter 0).
pub fn hlc_now(client: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64;
    shared::sync::hlc::Hlc::new(millis, 0, client).to_string()
}

/// Asks for an upload and posts `bytes` to the returned form.
pub async fn upload(api: &TestStack, user: &User, content_type: &str, bytes: &[u8]) -> String {
    upload_to(api, user, None, content_type, bytes).await
}

/// The same into `space` (None: the user's own).
pub async fn upload_to(
    api: &TestStack,
    user: &User,
    space: Option<&str>,
    content_type: &str,
    bytes: &[u8],
) -> String {
    let mut request = serde_json::json!({"contentType": content_type, "bytes": bytes.len()});
    if let Some(space) = space {
        request["spaceId"] = space.into();
    }
    let created = api
        .post("/uploads", request, Some(&user.access_token))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let media_id = created.body["mediaId"].as_str().unwrap().to_string();
    post_form(&created.body["upload"], bytes).await;
    media_id
}

/// Sends `bytes` with an upload's presigned form, as a phone does.
pub async fn post_form(upload: &serde_json::Value, bytes: &[u8]) {
    let mut multipart = reqwest::multipart::Form::new();
    for (name, value) in upload["fields"].as_object().unwrap() {
        multipart = multipart.text(name.clone(), value.as_str().unwrap().to_string());
    }
    multipart = multipart.part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("photo"),
    );
    let posted = reqwest::Client::new()
        .post(upload["url"].as_str().unwrap())
        .multipart(multipart)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{:?}", posted.text().await);
}
