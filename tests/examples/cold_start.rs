//! Each function's release binary, started as Lambda starts it: stripped
//! size, time from exec to its first poll of the Runtime API (init: config,
//! logging and the AWS clients, constructed exactly as in production), the
//! first and warm invocation times, and peak memory (VmHWM), beside a
//! hello-world `lambda_runtime` binary built the same way. The Runtime API
//! is a stand-in on loopback; the work is real, against the emulator at
//! AWS_ENDPOINT_URL, reached as Lambda reaches AWS: over TLS, through a
//! TLS-terminating proxy on loopback whose CA is made for the run and
//! trusted the SDK's normal way (`SSL_CERT_FILE`, read by the native-roots
//! loader). The first invocation pays the TLS handshake and the first
//! random numbers; first minus warm is that first-call cost without the
//! emulator's own time.
//!
//! Each warm invocation's CPU time (the process's threads' time on a CPU,
//! from /proc) is its wait's complement: Lambda gives a function a share of
//! one vCPU in proportion to its memory (all of it at 1,769 MB), so the CPU
//! part stretches at a smaller size and the waiting does not. The second
//! table models each function's warm invocation at 128 MB to 1,769 MB on
//! that rule and prices it (arm64), Lambda Power Tuning's sweep on paper,
//! with the cheapest size no more than a quarter, or 10 ms, slower;
//! `docs/cost.md` says how it is read.
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
use shared::model::media::Media;
use tokio::sync::{Mutex, mpsc};

/// The Lambda Runtime API, as much of it as a function uses.
struct RuntimeApi {
    first_poll: OnceLock<Instant>,
    events: Mutex<mpsc::Receiver<Value>>,
    results: mpsc::Sender<Result<(), String>>,
    /// Whether the events carry a verified caller's claims.
    authorized: bool,
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
    // An HTTP function's 5xx means the work failed, and a 401 from a route
    // called with claims means the fixture never reached the work: neither
    // is a valid figure. (Sign-in with a wrong password is 401 by design:
    // it is called without claims.)
    let result = match serde_json::from_slice::<Value>(&body) {
        Ok(reply) if reply["statusCode"].as_u64().is_some_and(|s| s >= 500) => {
            Err(format!("5xx: {reply}"))
        }
        Ok(reply) if reply["statusCode"] == 401 && api.authorized => {
            Err(format!("401 with claims: {reply}"))
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
    async fn start(binary: &Path, env: &BTreeMap<String, String>, authorized: bool) -> Self {
        let (events_tx, events_rx) = mpsc::channel(1);
        let (results_tx, results_rx) = mpsc::channel(1);
        let api = Arc::new(RuntimeApi {
            first_poll: OnceLock::new(),
            events: Mutex::new(events_rx),
            results: results_tx,
            authorized,
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
        // Only what Lambda gives a function: this machine's own trust
        // settings (SSL_CERT_DIR makes the SDK read a whole directory of
        // certificates at init) stay out.
        let child = tokio::process::Command::new(binary)
            .env_remove("SSL_CERT_DIR")
            .env_remove("AWS_CA_BUNDLE")
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

    /// CPU time the process's threads have used so far (schedstat's first
    /// field, nanoseconds on a CPU).
    fn cpu(&self) -> Duration {
        let pid = self.child.id().unwrap();
        let nanos: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(Result::ok)
                    .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
                    .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        Duration::from_nanos(nanos)
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
    /// The baseline: no work of ours.
    Hello,
    Http {
        route: &'static str,
        body: Option<&'static str>,
        authorized: bool,
    },
    Stream,
    Resize,
    /// The live channel's `$connect` authorizer, with a valid token.
    Authorize,
    /// A ping on the live channel's `$default` route.
    Ping,
    /// One purge step (an account's devices) from the purge queue.
    Purge,
}

struct Function {
    binary: &'static str,
    logical_id: &'static str,
    sdks: &'static str,
    work: Work,
}

const FUNCTIONS: &[Function] = &[
    Function {
        binary: "hello-lambda",
        logical_id: "",
        sdks: "none (baseline)",
        work: Work::Hello,
    },
    Function {
        binary: "auth",
        logical_id: "AuthFunction",
        sdks: "Cognito, DynamoDB, SQS, API Gateway management",
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
        binary: "spaces",
        logical_id: "SpacesFunction",
        sdks: "DynamoDB",
        work: Work::Http {
            route: "GET /spaces",
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
    Function {
        binary: "connect-authorizer",
        logical_id: "ConnectAuthorizerFunction",
        sdks: "DynamoDB (+ the JWKS over HTTPS at init)",
        work: Work::Authorize,
    },
    Function {
        binary: "realtime",
        logical_id: "RealtimeFunction",
        sdks: "DynamoDB",
        work: Work::Ping,
    },
    Function {
        binary: "poke",
        logical_id: "PokeFunction",
        sdks: "DynamoDB, API Gateway management",
        work: Work::Stream,
    },
    Function {
        binary: "purge",
        logical_id: "PurgeFunction",
        sdks: "Cognito, DynamoDB, S3, SNS, SQS",
        work: Work::Purge,
    },
];

const USER: &str = "bench-user";

/// A TLS-terminating proxy on 127.0.0.1 in front of the emulator, with a
/// CA and certificate made for this run: the functions reach it as they
/// reach AWS, over TLS with the SDK's own client. Returns its URL, the URL
/// of an endpoint with the same certificate that answers at once (to time
/// TLS without the emulator), and the CA's PEM file.
async fn tls_front(emulator: &str) -> anyhow::Result<(String, String, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cold-start bench CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&leaf_key, &ca, &ca_key)?;
    let ca_file = std::env::temp_dir().join(format!("bench-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&ca_file, ca.pem())?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    let upstream = emulator
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let instant = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let instant_url = format!("https://127.0.0.1:{}", instant.local_addr()?.port());
    let instant_acceptor = acceptor.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((client, _)) = instant.accept().await {
            let acceptor = instant_acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                }
            });
        }
    });
    Ok((url, instant_url, ca_file))
}

fn http_event(route: &str, body: Option<&str>, authorized: bool) -> Value {
    let claims = authorized.then(|| {
        json!({"sub": USER, "iat": chrono::Utc::now().timestamp().to_string(),
               "client_id": "bench", "token_use": "access"})
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

/// `$connect`'s authorizer event with an access token for the bench user,
/// signed by the emulator's key as Cognito would sign it.
fn authorizer_event(resources: &local_stack::provision::Resources) -> Value {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": USER, "token_use": "access", "client_id": resources.user_pool_client_id,
        "iss": shared::jwt::issuer("us-east-1", &resources.user_pool_id),
        "iat": now, "exp": now + 3600, "jti": uuid::Uuid::new_v4().to_string(),
    });
    let token = e2e::tokens::sign(&claims);
    json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/live/$connect",
        "queryStringParameters": {"token": token, "clientId": "bench"},
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "bench="},
    })
}

fn ping_event() -> Value {
    json!({
        "requestContext": {
            "routeKey": "$default", "eventType": "MESSAGE", "connectionId": "bench=",
            "connectedAt": 1_795_000_000_000_i64, "requestTimeEpoch": 1_795_000_000_100_i64,
            "authorizer": {"principalId": USER, "userId": USER, "clientId": "bench"},
        },
        "body": "{\"type\":\"ping\"}",
        "isBase64Encoded": false,
    })
}

/// An SQS batch of one purge step, for a user who has no devices.
fn purge_event() -> Value {
    let job = json!({"target": {"account": {"userId": USER}}, "step": "devices"});
    json!({"Records": [{
        "messageId": "bench-1", "receiptHandle": "r", "body": job.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:purge", "awsRegion": "us-east-1",
    }]})
}

/// A pending 12 MP photo in the bucket, and the S3 event announcing it.
async fn resize_event(
    table: &shared::store::Table,
    objects: &shared::adapters::objects::Objects,
    photo: &[u8],
) -> Value {
    let media = Media::pending(
        shared::model::ids::MediaId::parse(&uuid::Uuid::now_v7().to_string()).unwrap(),
        shared::model::ids::UserId::parse(USER).unwrap(),
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
    let sdk = shared::adapters::aws::sdk_config_for(&emulator, "us-east-1").await;
    let template =
        local_stack::template::Template::load(&local_stack::Options::default_template())?;
    let stack = format!("cold{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let resources = local_stack::provision::provision(&sdk, &template, &stack).await?;
    let table = shared::store::Table::new(&sdk, &resources.table_name);
    let objects = shared::adapters::objects::Objects::new(&sdk, &resources.bucket);
    let photo = shared::media::pipeline::testing::jpeg_with_exif(4000, 3000, 6);
    let (tls_url, instant_url, ca_file) = tls_front(&emulator).await?;

    println!(
        "| function | SDKs linked | binary (stripped) | init: exec to first poll (median of {runs}) | first invocation, over TLS | warm invocation (median of 20) | first - warm | init + first | peak RSS |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut sweeps = Vec::new();
    for function in FUNCTIONS {
        let binary = dir.join(function.binary);
        let size = std::fs::metadata(&binary)?.len() as f64 / 1024.0 / 1024.0;
        // No media is read here: the distribution's address is never used.
        let mut env = local_stack::environment(
            &template,
            &resources,
            function.logical_id,
            &local_stack::LocalEndpoints {
                cdn_host: "127.0.0.1:9".into(),
                websocket_host: "127.0.0.1:9".into(),
            },
        )?;
        for name in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            if let Ok(value) = std::env::var(name) {
                env.insert(name.into(), value);
            }
        }
        env.insert("AWS_ENDPOINT_URL".into(), tls_url.clone());
        env.insert("SSL_CERT_FILE".into(), ca_file.display().to_string());
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
                Work::Hello => json!({"hello": "bench"}),
                Work::Stream => stream_event(),
                Work::Resize => resize_event(&table, &objects, &photo).await,
                Work::Authorize => authorizer_event(&resources),
                Work::Ping => ping_event(),
                Work::Purge => purge_event(),
            }
        };
        let warm_count = if matches!(function.work, Work::Resize) {
            3
        } else {
            20
        };
        let (mut inits, mut firsts) = (Vec::new(), Vec::new());
        let mut warm = Vec::new();
        let mut warm_cpu = Duration::ZERO;
        let mut peak = 0.0f64;
        for run in 0..runs {
            let authorized = matches!(
                function.work,
                Work::Http {
                    authorized: true,
                    ..
                }
            );
            let mut process = Process::start(&binary, &env, authorized).await;
            inits.push(process.init().await);
            let first_event = event().await;
            firsts.push(process.invoke(first_event).await);
            if run == runs - 1 {
                for _ in 0..warm_count {
                    let next_event = event().await;
                    let before = process.cpu();
                    warm.push(process.invoke(next_event).await);
                    warm_cpu += process.cpu() - before;
                }
            }
            peak = peak.max(process.peak_mib());
            process.stop().await;
        }
        let (init, first, warm) = (median(inits), median(firsts), median(warm));
        sweeps.push((
            function.binary,
            template.memory_mb(function.logical_id),
            warm,
            warm_cpu / warm_count,
        ));
        println!(
            "| {} | {} | {size:.1} MiB | {} ms | {} ms | {} ms | {} ms | {} ms | {peak:.0} MiB |",
            function.binary,
            function.sdks,
            ms(init),
            ms(first),
            ms(warm),
            ms(first.saturating_sub(warm)),
            ms(init + first),
        );
    }
    print_memory_sweep(&sweeps);
    tls_providers(&dir, &instant_url, &ca_file, runs).await?;
    let _ = std::fs::remove_file(ca_file);
    Ok(())
}

/// Lambda's memory sizes the sweep tries; 1,769 MB is one whole vCPU.
const SIZES_MB: [u64; 6] = [128, 256, 512, 1024, 1769, 2048];
const FULL_VCPU_MB: f64 = 1769.0;
/// arm64, per GB-second and per request (`infra/pricing/aws-us-east-1.yaml`).
const GB_SECOND_USD: f64 = 0.0000133334;
const REQUEST_USD: f64 = 0.0000002;

/// A warm invocation at `mb`: its CPU time stretched by the vCPU share,
/// its waiting as measured (this machine gives each process a whole core).
fn modelled_ms(wall: Duration, cpu: Duration, mb: u64) -> f64 {
    let cpu_ms = cpu.as_secs_f64() * 1000.0;
    let wait_ms = (wall.as_secs_f64() * 1000.0 - cpu_ms).max(0.0);
    wait_ms + cpu_ms * (FULL_VCPU_MB / mb as f64).max(1.0)
}

fn usd_per_million(ms: f64, mb: u64) -> f64 {
    (ms.ceil() / 1000.0 * mb as f64 / 1024.0 * GB_SECOND_USD + REQUEST_USD) * 1e6
}

/// Each function's warm invocation priced at each size, and the cheapest
/// size no more than a quarter, or 10 ms, slower than at a whole vCPU.
fn print_memory_sweep(sweeps: &[(&str, u64, Duration, Duration)]) {
    println!(
        "\nMemory size, modelled (warm invocation: ms, and $ per million invocations, arm64):\n"
    );
    let header: Vec<String> = SIZES_MB.iter().map(|mb| format!("{mb} MB")).collect();
    println!(
        "| function | CPU / wall ms | {} | template | cheapest within 25% or 10 ms of 1,769 MB |",
        header.join(" | ")
    );
    println!("|---|---:|{}---:|---|", "---:|".repeat(SIZES_MB.len()));
    for (function, template_mb, wall, cpu) in sweeps {
        let cells: Vec<String> = SIZES_MB
            .iter()
            .map(|mb| {
                let ms = modelled_ms(*wall, *cpu, *mb);
                format!("{ms:.0} ms ${:.2}", usd_per_million(ms, *mb))
            })
            .collect();
        let fastest = modelled_ms(*wall, *cpu, FULL_VCPU_MB as u64);
        let cheapest = SIZES_MB
            .iter()
            .filter(|mb| modelled_ms(*wall, *cpu, **mb) <= (fastest * 1.25).max(fastest + 10.0))
            .min_by(|a, b| {
                usd_per_million(modelled_ms(*wall, *cpu, **a), **a)
                    .total_cmp(&usd_per_million(modelled_ms(*wall, *cpu, **b), **b))
            })
            .copied()
            .unwrap_or(*template_mb);
        println!(
            "| {function} | {:.1} / {:.1} | {} | {template_mb} MB | {cheapest} MB |",
            cpu.as_secs_f64() * 1000.0,
            wall.as_secs_f64() * 1000.0,
            cells.join(" | ")
        );
    }
}

/// rustls on aws-lc-rs against rustls on ring: `tls-probe` built both ways
/// (scripts/bench), each making two HTTPS requests the way the SDK's client
/// does, in a fresh process, to an endpoint that answers at once.
async fn tls_providers(dir: &Path, url: &str, ca_file: &Path, runs: usize) -> anyhow::Result<()> {
    println!();
    println!(
        "| rustls provider | probe binary (stripped) | process start to exit (median of {runs}) | roots + client config | first HTTPS request (TCP, handshake, answer) | second request (new connection) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (provider, binary) in [
        ("aws-lc-rs", "tls-probe-aws-lc"),
        (
            "aws-lc-rs, jitter entropy on (as before)",
            "tls-probe-aws-lc-jitter",
        ),
        ("ring", "tls-probe-ring"),
    ] {
        let binary = dir.join(binary);
        let Ok(meta) = std::fs::metadata(&binary) else {
            println!("| {provider} | not built | | | | |");
            continue;
        };
        let (mut totals, mut setups, mut firsts, mut seconds) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let started = Instant::now();
            let output = tokio::process::Command::new(&binary)
                .arg(format!("{url}/"))
                .env_remove("SSL_CERT_DIR")
                .env("SSL_CERT_FILE", ca_file)
                .output()
                .await?;
            let total = started.elapsed();
            anyhow::ensure!(
                output.status.success(),
                "{provider}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let micros: Vec<u64> = String::from_utf8(output.stdout)?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            let [setup, first, second] = micros[..] else {
                anyhow::bail!("{provider}: unexpected output {micros:?}");
            };
            totals.push(total);
            setups.push(Duration::from_micros(setup));
            firsts.push(Duration::from_micros(first));
            seconds.push(Duration::from_micros(second));
        }
        println!(
            "| {provider} | {:.2} MiB | {} ms | {} ms | {} ms | {} ms |",
            meta.len() as f64 / 1024.0 / 1024.0,
            ms(median(totals)),
            ms(median(setups)),
            ms(median(firsts)),
            ms(median(seconds)),
        );
    }
    Ok(())
}
