//! Each function's release binary, started as Lambda starts it: stripped
//! size, time from exec to its first poll of the Runtime API (init: config,
//! logging and the AWS clients, constructed exactly as in production), the
//! first and warm invocation times, and peak memory (VmHWM). The Runtime API
//! is a stand-in on loopback; the work is real, against the emulator at
//! AWS_ENDPOINT_URL.
//!
//!   cargo run -p e2e --example cold_start -- target/release [runs]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use shared::media::Media;
use tokio::sync::{Mutex, mpsc};

/// The Lambda Runtime API, as much of it as a function uses.
struct RuntimeApi {
    first_poll: OnceLock<Instant>,
    events: Mutex<mpsc::Receiver<Value>>,
    results: mpsc::Sender<Result<(), String>>,
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> (HeaderMap, String) {
    let _ = api.first_poll.set(Instant::now());
    let event = api.events.lock().await.recv().await.unwrap_or(Value::Null);
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let id = uuid::Uuid::new_v4().to_string();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", id.as_str()),
        ("lambda-runtime-deadline-ms", &deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench",
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        ),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    (headers, event.to_string())
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    _id: UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let result = match serde_json::from_slice::<Value>(&body) {
        // An HTTP function's 5xx means the work failed: not a valid figure.
        Ok(reply) if reply["statusCode"].as_u64().is_some_and(|s| s >= 500) => {
            Err(format!("5xx: {reply}"))
        }
        _ => Ok(()),
    };
    let _ = api.results.send(result).await;
    StatusCode::ACCEPTED
}

async fn error(State(api): State<Arc<RuntimeApi>>, body: Bytes) -> StatusCode {
    let _ = api
        .results
        .send(Err(String::from_utf8_lossy(&body).into_owned()))
        .await;
    StatusCode::ACCEPTED
}

/// One started function process and its Runtime API.
struct Process {
    child: tokio::process::Child,
    started: Instant,
    api: Arc<RuntimeApi>,
    events: mpsc::Sender<Value>,
    results: mpsc::Receiver<Result<(), String>>,
    server: tokio::task::JoinHandle<()>,
}

impl Process {
    async fn start(binary: &Path, env: &BTreeMap<String, String>) -> Self {
        let (events_tx, events_rx) = mpsc::channel(1);
        let (results_tx, results_rx) = mpsc::channel(1);
        let api = Arc::new(RuntimeApi {
            first_poll: OnceLock::new(),
            events: Mutex::new(events_rx),
            results: results_tx,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(|state, _: UrlPath<String>, body| error(state, body)),
            )
            .route("/2018-06-01/runtime/init/error", post(error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        let started = Instant::now();
        let child = tokio::process::Command::new(binary)
            .envs(env)
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("{}: {err}", binary.display()));
        Self {
            child,
            started,
            api,
            events: events_tx,
            results: results_rx,
            server,
        }
    }

    /// Time from exec to the first poll of `/next`.
    async fn init(&self) -> Duration {
        loop {
            if let Some(polled) = self.api.first_poll.get() {
                return *polled - self.started;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    async fn invoke(&mut self, event: Value) -> Duration {
        let sent = Instant::now();
        self.events.send(event).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(60), self.results.recv()).await {
            Ok(Some(Ok(()))) => sent.elapsed(),
            other => panic!("invocation failed: {other:?}"),
        }
    }

    /// Peak resident memory so far, in MiB.
    fn peak_mib(&self) -> f64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

/// What a function is given to do, per invocation.
enum Work {
    Http {
        route: &'static str,
        body: Option<&'static str>,
        authorized: bool,
    },
    Stream,
    Resize,
}

struct Function {
    binary: &'static str,
    logical_id: &'static str,
    sdks: &'static str,
    work: Work,
}

const FUNCTIONS: &[Function] = &[
    Function {
        binary: "auth",
        logical_id: "AuthFunction",
        sdks: "Cognito, DynamoDB, S3, SNS",
        work: Work::Http {
            route: "POST /auth/sign-in",
            body: Some(r#"{"email":"nobody@example.com","password":"Wr0ng-Guess!"}"#),
            authorized: false,
        },
    },
    Function {
        binary: "upload",
        logical_id: "UploadFunction",
        sdks: "DynamoDB, S3",
        work: Work::Http {
            route: "POST /uploads",
            body: Some(r#"{"contentType":"image/jpeg","bytes":100000}"#),
            authorized: true,
        },
    },
    Function {
        binary: "sync",
        logical_id: "SyncFunction",
        sdks: "DynamoDB",
        work: Work::Http {
            route: "GET /sync/pull",
            body: None,
            authorized: true,
        },
    },
    Function {
        binary: "devices",
        logical_id: "DevicesFunction",
        sdks: "DynamoDB, SNS",
        work: Work::Http {
            route: "DELETE /devices/{deviceId}",
            body: None,
            authorized: true,
        },
    },
    Function {
        binary: "notify",
        logical_id: "NotifyFunction",
        sdks: "DynamoDB, SNS",
        work: Work::Stream,
    },
    Function {
        binary: "resize",
        logical_id: "ResizeFunction",
        sdks: "DynamoDB, S3",
        work: Work::Resize,
    },
];

const USER: &str = "bench-user";

fn http_event(route: &str, body: Option<&str>, authorized: bool) -> Value {
    let claims = authorized.then(|| {
        json!({"sub": USER, "iat": chrono::Utc::now().timestamp().to_string(), "client_id": "bench"})
    });
    let mut event = apigw::testing::event(route, body, claims);
    match route {
        "GET /sync/pull" => {
            event["rawQueryString"] = json!("clientId=phone");
            event["queryStringParameters"] = json!({"clientId": "phone"});
        }
        "DELETE /devices/{deviceId}" => {
            event["rawPath"] = json!("/devices/phone");
            event["pathParameters"] = json!({"deviceId": "phone"});
        }
        _ => {}
    }
    event
}

fn stream_event() -> Value {
    let image = json!({
        "PK": {"S": format!("USER#{USER}")}, "SK": {"S": "REC#notes#n1"},
        "feedVer": {"N": "1"},
        "origin": {"S": "phone"}, "ver": {"N": "1"}
    });
    json!({"Records": [e2e::events::stream_record("100", "MODIFY", image, json!({}))]})
}

/// A pending 12 MP photo in the bucket, and the S3 event announcing it.
async fn resize_event(
    table: &shared::store::Table,
    objects: &shared::objects::Objects,
    photo: &[u8],
) -> Value {
    let media = Media::pending(
        uuid::Uuid::now_v7().to_string(),
        USER,
        "image/jpeg",
        photo.len() as u64,
    );
    table.put_pending_media(&media).await.unwrap();
    let key = media.upload_key();
    objects
        .put(&key, photo.to_vec(), "image/jpeg", "no-store")
        .await
        .unwrap();
    e2e::events::s3_object_created(objects.bucket(), &key)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/release".into()));
    let runs: usize = args.next().map_or(Ok(7), |n| n.parse())?;
    let emulator = e2e::emulator_url();
    let sdk = shared::aws::sdk_config_for(&emulator, "us-east-1").await;
    let template =
        local_stack::template::Template::load(&local_stack::Options::default_template())?;
    let stack = format!("cold{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let resources = local_stack::provision::provision(&sdk, &template, &stack).await?;
    let table = shared::store::Table::new(&sdk, &resources.table_name);
    let objects = shared::objects::Objects::new(&sdk, &resources.bucket);
    let photo = shared::pipeline::testing::jpeg_with_exif(4000, 3000, 6);

    println!(
        "| function | SDKs linked | binary (stripped) | init: exec to first poll (median of {runs}) | first invocation | warm invocation (median of 20) | peak RSS |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for function in FUNCTIONS {
        let binary = dir.join(function.binary);
        let size = std::fs::metadata(&binary)?.len() as f64 / 1024.0 / 1024.0;
        let mut env = template.environment(function.logical_id, &resources.physical);
        for name in [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            if let Ok(value) = std::env::var(name) {
                env.insert(name.into(), value);
            }
        }
        env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), function.binary.into());
        env.insert("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into());
        env.insert("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "256".into());
        env.insert(
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{}", function.binary),
        );
        env.insert("AWS_LAMBDA_LOG_STREAM_NAME".into(), "bench".into());
        env.insert("_HANDLER".into(), "bootstrap".into());

        let event = || async {
            match &function.work {
                Work::Http {
                    route,
                    body,
                    authorized,
                } => http_event(route, *body, *authorized),
                Work::Stream => stream_event(),
                Work::Resize => resize_event(&table, &objects, &photo).await,
            }
        };
        let warm_count = if matches!(function.work, Work::Resize) {
            3
        } else {
            20
        };
        let (mut inits, mut firsts) = (Vec::new(), Vec::new());
        let mut warm = Vec::new();
        let mut peak = 0.0f64;
        for run in 0..runs {
            let mut process = Process::start(&binary, &env).await;
            inits.push(process.init().await);
            let first_event = event().await;
            firsts.push(process.invoke(first_event).await);
            if run == runs - 1 {
                for _ in 0..warm_count {
                    let next_event = event().await;
                    warm.push(process.invoke(next_event).await);
                }
            }
            peak = peak.max(process.peak_mib());
            process.stop().await;
        }
        println!(
            "| {} | {} | {size:.1} MiB | {} ms | {} ms | {} ms | {peak:.0} MiB |",
            function.binary,
            function.sdks,
            ms(median(inits)),
            ms(median(firsts)),
            ms(median(warm)),
        );
    }
    Ok(())
}
