//! What the backend costs on AWS per monthly active user, measured: each
//! profile of `infra/pricing/workloads.yaml` is driven through the local
//! stack by real clients (HTTP, the live channel, presigned uploads, the
//! CDN) for a few users' whole month, while the emulator's meter records
//! DynamoDB's billing facts and every other request. `tests/src/bill.rs`
//! turns that into AWS's units and prices them with
//! `infra/pricing/aws-us-east-1.yaml`. Run by `scripts/bench cost`.
//!
//! Lambda's durations are modelled, not measured: the handlers run in
//! process here, on this machine's CPU. See `docs/cost.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::bill::{self, Meter, Operations, Prices, Quantities};
use e2e::{TestStack, User, hlc_now, read_meter, start_meter, stop_meter, upload};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Simulated users per profile; the bill is per user, then scaled.
const USERS: u64 = 2;

/// Warm invocation time of each function's release binary, arm64-equivalent
/// (docs/benchmarks.md, "Cold start, size and memory": the warm and init
/// columns, measured 2026-11 against a Runtime API stand-in). resize is
/// CPU-bound and was measured on one whole core: Lambda gives a function
/// 1,769 MB's worth of one vCPU, so it is scaled by 1769 / its MemorySize.
const MODELLED: &[(&str, f64, f64)] = &[
    // (function, warm ms, init ms)
    ("AuthFunction", 14.4, 3.0),
    ("UploadFunction", 29.3, 19.9),
    ("SyncFunction", 27.2, 3.0),
    ("SpacesFunction", 27.2, 3.0),
    ("DevicesFunction", 27.0, 2.8),
    ("NotifyFunction", 14.2, 2.9),
    ("ResizeFunction", 291.8, 3.3),
    ("ConnectAuthorizerFunction", 17.6, 17.7),
    ("RealtimeFunction", 0.5, 3.0),
    ("PokeFunction", 16.0, 3.3),
    ("PurgeFunction", 27.2, 3.0),
    ("JanitorFunction", 27.2, 3.0),
];
const CPU_BOUND: &[&str] = &["ResizeFunction"];

/// A function's modelled warm and INIT milliseconds at `memory_mb`.
fn modelled(function: &str, memory_mb: f64) -> (f64, f64) {
    let (_, warm, init) = MODELLED
        .iter()
        .find(|(f, _, _)| *f == function)
        .unwrap_or_else(|| panic!("{function} has no modelled duration"));
    if CPU_BOUND.contains(&function) {
        (warm * 1769.0 / memory_mb, *init)
    } else {
        (*warm, *init)
    }
}
/// Share of invocations that start a new container (their INIT is billed
/// on `provided.al2023`): an assumption, see docs/cost.md.
const COLD_START_RATE: f64 = 0.01;
/// Log bytes ingested per invocation: START, END and REPORT lines, the
/// request's JSON line and its EMF metrics line.
const LOG_BYTES_PER_INVOCATION: f64 = 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Workloads {
    version: u32,
    profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    description: String,
    sessions_per_month: u64,
    edits_per_session: u64,
    shared_edit_every: u64,
    follower_pulls_per_session: u64,
    photos_per_month: u64,
    views_per_photo: BTreeMap<String, u64>,
    live_minutes_per_session: f64,
}

/// A person with a phone (which edits) and a tablet (which follows).
struct Person {
    user: User,
    next_mutation: u64,
}

/// Everything counted since `start`: the emulator's meter, the stack's
/// invocations, the CDN and the live channel.
struct Counters {
    invocations: BTreeMap<String, (u64, f64)>,
    cdn_requests: u64,
    cdn_bytes: u64,
    messages: u64,
    /// What the table and the bucket hold (storage is billed on it).
    table_bytes: f64,
    bucket_bytes: f64,
}

async fn counters(api: &TestStack) -> Counters {
    Counters {
        invocations: api.stack.invocations.totals(),
        cdn_requests: api.stack.cdn_served.requests.load(Ordering::Relaxed),
        cdn_bytes: api.stack.cdn_served.bytes.load(Ordering::Relaxed),
        messages: api.stack.gateway.billed_messages.load(Ordering::Relaxed),
        table_bytes: table_bytes(api).await,
        bucket_bytes: bucket_bytes(api).await,
    }
}

/// Starts counting: meter on, counters read.
async fn start(api: &TestStack) -> Counters {
    start_meter(&api.emulator_url).await;
    counters(api).await
}

/// What each function is: its `MemorySize` and whether an HTTP API route
/// calls it; and the user pool's tier, whose price a MAU is.
struct Functions {
    memory_mb: BTreeMap<String, u64>,
    http: Vec<String>,
    mau_item: &'static str,
}

/// What happened since `before`, per `users`, as priced quantities (the
/// stream consumers are given a few seconds to finish first); storage is
/// what was added meanwhile, kept for a month. `month`: the live channel's
/// minutes of a user-month (and a monthly active user is counted); None
/// for one action.
async fn measured(
    api: &TestStack,
    before: &Counters,
    users: f64,
    month: Option<f64>,
    functions: &Functions,
) -> (Quantities, Meter) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let meter = read_meter(&api.emulator_url).await;
    let after = counters(api).await;
    let mut calls = 0.0;
    let mut gb_seconds = 0.0;
    let mut http = 0.0;
    for (function, (count, _)) in &after.invocations {
        let n = (*count - before.invocations.get(function).map_or(0, |c| c.0)) as f64;
        let mb = functions.memory_mb[function] as f64;
        let (warm, init) = modelled(function, mb);
        let billed_ms = warm.ceil() + COLD_START_RATE * init.ceil();
        calls += n;
        gb_seconds += n * billed_ms / 1000.0 * mb / 1024.0;
        if functions.http.contains(function) {
            http += n;
        }
    }
    let stored = (after.table_bytes - before.table_bytes).max(0.0);
    let media_bytes = (after.bucket_bytes - before.bucket_bytes).max(0.0);
    let function_requests = |service: &str| -> f64 {
        meter
            .requests
            .iter()
            .filter(|(name, _)| name.starts_with(service) && name.ends_with("(function)"))
            .map(|(_, n)| *n as f64)
            .fold(0.0, |a, b| a + b)
    };
    let s3_puts = meter.count("s3", "PUT object") + meter.count("s3", "POST bucket");
    let s3_gets = meter.count("s3", "GET object") + meter.count("s3", "HEAD object");
    let quantities = Quantities::from([
        ("lambdaRequest", calls / users),
        ("lambdaArmGbSecond", gb_seconds / users),
        ("httpApiRequest", http / users),
        (
            "websocketMessage",
            (after.messages - before.messages) as f64 / users,
        ),
        ("websocketConnectionMinute", month.unwrap_or(0.0)),
        ("dynamodbReadRequestUnit", meter.read_units() / users),
        ("dynamodbWriteRequestUnit", meter.write_units() / users),
        ("dynamodbStorageGbMonth", stored / GIB / users),
        ("s3StorageGbMonth", media_bytes / GIB / users),
        ("s3PutRequest", s3_puts as f64 / users),
        ("s3GetRequest", s3_gets as f64 / users),
        (
            "cloudfrontHttpsRequest",
            (after.cdn_requests - before.cdn_requests) as f64 / users,
        ),
        (
            "cloudfrontGbOut",
            (after.cdn_bytes - before.cdn_bytes) as f64 / GIB / users,
        ),
        (
            "snsMobilePush",
            meter.count("sns", "Publish") as f64 / users,
        ),
        ("snsRequest", function_requests("sns") / users),
        ("sqsRequest", function_requests("sqs") / users),
        (functions.mau_item, if month.is_some() { 1.0 } else { 0.0 }),
        (
            "cloudwatchLogsIngestedGb",
            calls * LOG_BYTES_PER_INVOCATION / GIB / users,
        ),
    ]);
    (quantities, meter)
}

async fn table_bytes(api: &TestStack) -> f64 {
    let metered = read_meter(&api.emulator_url).await;
    metered
        .table_bytes
        .get(&api.stack.resources.table_name)
        .copied()
        .unwrap_or(0) as f64
}

async fn bucket_bytes(api: &TestStack) -> f64 {
    let sdk = api.sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let mut pages = s3
        .list_objects_v2()
        .bucket(&api.stack.resources.bucket)
        .into_paginator()
        .send();
    let mut total = 0i64;
    while let Some(Ok(page)) = pages.next().await {
        total += page.contents().iter().filter_map(|o| o.size).sum::<i64>();
    }
    total as f64
}

async fn open_socket(
    api: &TestStack,
    user: &User,
    client: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "{}/?clientId={client}&token={}",
        api.stack.websocket_url, user.access_token
    );
    // As the app library's listen(): a refused handshake is tried again.
    for attempt in 0..5u64 {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => return socket,
            Err(err) => {
                eprintln!("the live channel refused ({err}); again");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    panic!("the live channel did not open");
}

async fn edit(api: &TestStack, person: &mut Person, space: Option<&str>, n: u64) {
    person.next_mutation += 1;
    let mut mutation = json!({
        "id": person.next_mutation, "collection": "notes",
        "recordId": format!("note-{}", n % 40), "op": "put",
        "fields": {"text": format!("edit {n}: two cartons of oat milk and bread"), "done": false},
        "hlc": hlc_now("phone"),
    });
    if let Some(space) = space {
        mutation["spaceId"] = json!(space);
    }
    let pushed = api.push(&person.user, "phone", vec![mutation]).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
}

/// What the month was made of, for the comparison with Firebase and
/// Amplify (all users together).
#[derive(Default)]
struct Tally {
    pulls: f64,
    edits: f64,
    original_bytes: f64,
}

/// Real photos to upload, taken in turn: the JPEGs of `COST_PHOTOS`
/// (scripts/bench fetches Debian's mate-backgrounds nature photos, 2 to 5
/// MP, 0.3 to 1.2 MB). Synthetic images compress far better than photos
/// and would understate storage and CDN bytes.
fn photos() -> Vec<Vec<u8>> {
    let folder = std::env::var("COST_PHOTOS")
        .expect("COST_PHOTOS names a folder of JPEG photos: run scripts/bench cost");
    let mut paths: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|err| panic!("{folder}: {err}"))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .jpg in {folder}");
    paths
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// One month of `profile` for `people`, as its apps would drive the API.
async fn month(
    api: &TestStack,
    profile: &Profile,
    people: &mut [Person],
    space: &str,
    photos: &[Vec<u8>],
) -> Tally {
    let mut tally = Tally::default();
    for session in 0..profile.sessions_per_month {
        for person in people.iter_mut() {
            // Each session also refreshes its tokens: measured once and
            // multiplied (main), as the refresh route's own limit (30 per
            // 5 minutes per token) refuses a month of them in minutes.
            let socket = open_socket(api, &person.user, "phone").await;
            let token = person.user.access_token.clone();
            api.get("/sync/pull?clientId=phone", Some(&token)).await;
            tally.pulls += 1.0;
            for e in 0..profile.edits_per_session {
                let n = session * profile.edits_per_session + e;
                let shared = (n + 1).is_multiple_of(profile.shared_edit_every);
                edit(api, person, shared.then_some(space), n).await;
                tally.edits += 1.0;
            }
            for _ in 0..profile.follower_pulls_per_session {
                api.get("/sync/pull?clientId=tablet", Some(&token)).await;
                tally.pulls += 1.0;
            }
            let mut socket = socket;
            let _ = socket.close(None).await;
        }
    }
    for n in 0..profile.photos_per_month {
        for person in people.iter() {
            let photo = &photos[(n as usize) % photos.len()];
            tally.original_bytes += photo.len() as f64;
            let id = upload(api, &person.user, "image/jpeg", photo).await;
            let media = api.wait_until_processed(&person.user, &id).await;
            assert_eq!(media["status"], "ready", "photo {n}: {media}");
            for (variant, views) in &profile.views_per_photo {
                let url = media["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == variant.as_str())
                    .and_then(|v| v["url"].as_str())
                    .unwrap_or_else(|| panic!("no variant {variant}"))
                    .to_string();
                for _ in 0..*views {
                    let got = reqwest::get(&url).await.unwrap();
                    assert_eq!(got.status(), 200);
                    got.bytes().await.unwrap();
                }
            }
        }
    }
    tally
}

/// How many records a device of `user` holds: a full pull's changes.
async fn records_held(api: &TestStack, user: &User) -> f64 {
    let mut held = 0.0;
    let mut cursor = String::new();
    loop {
        let pulled = api
            .get(
                &format!("/sync/pull?clientId=count&cursor={cursor}"),
                Some(&user.access_token),
            )
            .await;
        held += pulled.body["changes"].as_array().map_or(0, Vec::len) as f64;
        if pulled.body["hasMore"] != true {
            return held;
        }
        cursor = pulled.body["cursor"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
}

fn usd(value: f64) -> String {
    if value >= 100.0 {
        format!("${value:.0}")
    } else if value >= 1.0 {
        format!("${value:.2}")
    } else {
        format!("${value:.4}")
    }
}

/// A quantity with the digits that matter.
fn amount(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else if value == 0.0 {
        "0".into()
    } else {
        format!("{value:.8}").trim_end_matches('0').to_string()
    }
}

fn print_bill(prices: &Prices, name: &str, profile: &Profile, per_user: &Quantities) {
    println!("\n### {name}: {}\n", profile.description.trim());
    println!("| item | per user-month | unit price | per 1,000 MAU |");
    println!("|---|---:|---:|---:|");
    let thousand = bill::bill(prices, per_user, 1_000);
    for line in &thousand {
        println!(
            "| {} | {} | {} | {} |",
            line.item,
            amount(line.quantity / 1_000.0),
            prices.prices[&line.item].unit,
            usd(line.usd)
        );
    }
    println!("\n| MAU | list price | after the free tier | per MAU | largest line |");
    println!("|---:|---:|---:|---:|---|");
    for users in [1_000u64, 10_000, 100_000, 1_000_000] {
        let lines = bill::bill(prices, per_user, users);
        let (gross, net) = bill::total(&lines);
        println!(
            "| {users} | {} | {} | {} | {} |",
            usd(gross),
            usd(net),
            usd(gross / users as f64),
            bill::largest(&lines)
        );
    }
}

/// The same month on Firebase and on Amplify Gen 2, beside ours: per
/// 1,000 MAU and at a million, list price and after each free tier, with
/// the operations each was priced from.
fn print_comparison(ours: &Prices, quantities: &Quantities, ops: &Operations) {
    println!(
        "\nThe same month elsewhere (operations per user: {:.0} pulls, {:.0} edits, {:.0} records held, {:.0} photos of {:.0} + {:.0} KB, {:.0} views, {:.1} MB viewed, {:.0} pushes, {:.0} live minutes):\n",
        ops.pulls,
        ops.edits,
        ops.records_held,
        ops.photos,
        ops.original_bytes_per_photo / 1024.0,
        ops.variant_bytes_per_photo / 1024.0,
        ops.views,
        ops.bytes_viewed / 1e6,
        ops.pushes,
        ops.live_minutes
    );
    println!(
        "| backend | 1,000 MAU | after free tier | 1M MAU | after free tier | largest line at 1M |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    let firebase = Prices::load_named("firebase");
    let amplify = Prices::load_named("amplify");
    for (name, prices, per_user) in [
        ("this backend", ours, quantities.clone()),
        ("Firebase", &firebase, bill::firebase_quantities(ops)),
        ("Amplify Gen 2", &amplify, bill::amplify_quantities(ops)),
    ] {
        let small = bill::bill(prices, &per_user, 1_000);
        let large = bill::bill(prices, &per_user, 1_000_000);
        let (small_gross, small_net) = bill::total(&small);
        let (large_gross, large_net) = bill::total(&large);
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            usd(small_gross),
            usd(small_net),
            usd(large_gross),
            usd(large_net),
            bill::largest(&large)
        );
    }
}

/// The user pool's tier, the lever the first bill showed: Essentials (the
/// default for new pools) against Lite (the template's), all else equal.
fn print_cognito_lever(prices: &Prices, quantities: &Quantities) {
    let with = |tier: &'static str| {
        let mut q: Quantities = quantities
            .iter()
            .filter(|(item, _)| !item.ends_with("Mau"))
            .map(|(item, quantity)| (*item, *quantity))
            .collect();
        q.insert(tier, 1.0);
        q
    };
    println!("\nLever: the user pool's tier (the rest of the bill equal):\n");
    println!("| MAU | Essentials | Lite (the template's) | saved |");
    println!("|---:|---:|---:|---:|");
    for users in [10_000u64, 100_000, 1_000_000] {
        let (_, essentials) =
            bill::total(&bill::bill(prices, &with("cognitoEssentialsMau"), users));
        let (_, lite) = bill::total(&bill::bill(prices, &with("cognitoLiteMau"), users));
        println!(
            "| {users} | {} | {} | {:.0}% |",
            usd(essentials),
            usd(lite),
            100.0 * (essentials - lite) / essentials
        );
    }
}

fn print_action(prices: &Prices, action: &str, quantities: &Quantities) {
    let lines = bill::bill(prices, quantities, 1);
    let (gross, _) = bill::total(&lines);
    let mut parts: Vec<(String, f64)> = lines
        .into_iter()
        .filter(|l| l.usd > 0.0)
        .map(|l| (l.item, l.usd))
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = parts
        .iter()
        .take(3)
        .map(|(item, cost)| format!("{item} {:.0}%", 100.0 * cost / gross))
        .collect();
    println!(
        "| {action} | ${:.2} per million | {} |",
        gross * 1e6,
        top.join(", ")
    );
}

#[tokio::main]
async fn main() {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workloads: Workloads = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("infra/pricing/workloads.yaml")).unwrap(),
    )
    .unwrap();
    let prices = Prices::load();
    let photo_corpus = photos();
    // A month of requests in minutes: the per-user rate limits would
    // refuse it. Counting a write costs the same at any limit.
    let template = std::fs::read_to_string(root.join("template.yaml"))
        .unwrap()
        .replacen("Default: 120\n", "Default: 1000000\n", 1)
        .replacen("Default: 600\n", "Default: 1000000\n", 1);
    let template_path = std::env::temp_dir().join(format!("cost-{}.yaml", uuid::Uuid::new_v4()));
    std::fs::write(&template_path, &template).unwrap();
    let parsed = local_stack::template::Template::load(&template_path).unwrap();
    let functions = Functions {
        memory_mb: parsed
            .functions()
            .into_iter()
            .map(|f| {
                let mb = parsed.memory_mb(&f);
                (f, mb)
            })
            .collect(),
        http: parsed.routes().into_iter().map(|r| r.function).collect(),
        mau_item: match parsed
            .single("AWS::Cognito::UserPool")
            .ok()
            .and_then(|(_, pool)| pool.get("UserPoolTier")?.as_str().map(str::to_string))
            .as_deref()
        {
            Some("LITE") => "cognitoLiteMau",
            _ => "cognitoEssentialsMau",
        },
    };

    println!(
        "Workload v{}, prices of {} ({}), {USERS} simulated users per profile, Lambda arm64 modelled (docs/cost.md).",
        workloads.version, prices.as_of, prices.region
    );
    let mut per_profile = BTreeMap::new();
    for (name, profile) in &workloads.profiles {
        let api = TestStack::start_with_template(template_path.clone()).await;
        let mut people = Vec::new();
        for _ in 0..USERS {
            let user = api.user().await;
            for (device, token) in [("phone", "a"), ("tablet", "b")] {
                let registered = api
                    .send(
                        api.request("PUT", &format!("/devices/{device}"), Some(&user.access_token))
                            .json(&json!({"platform": "ios", "token": format!("{token}{}", uuid::Uuid::new_v4().simple())})),
                    )
                    .await;
                assert_eq!(registered.status, 200, "{registered:?}");
            }
            people.push(Person {
                user,
                next_mutation: 0,
            });
        }
        let members: Vec<(&User, &str)> = people[1..].iter().map(|p| (&p.user, "editor")).collect();
        let space = api.shared_space(&people[0].user, "Family", &members).await;
        tokio::time::sleep(Duration::from_secs(2)).await;

        let before = start(&api).await;
        let refreshed = api
            .post(
                "/auth/refresh",
                json!({"refreshToken": people[0].user.refresh_token}),
                None,
            )
            .await;
        assert_eq!(refreshed.status, 200, "{refreshed:?}");
        let (refresh, _) = measured(&api, &before, 1.0, None, &functions).await;

        let before = start(&api).await;
        let tally = month(&api, profile, &mut people, &space, &photo_corpus).await;
        let live = profile.sessions_per_month as f64 * profile.live_minutes_per_session;
        let (mut quantities, metered) =
            measured(&api, &before, USERS as f64, Some(live), &functions).await;
        let after = counters(&api).await;
        let users = USERS as f64;
        let photos = profile.photos_per_month as f64;
        let resize_mb = functions.memory_mb["ResizeFunction"] as f64;
        let (resize_ms, _) = modelled("ResizeFunction", resize_mb);
        let operations = Operations {
            pulls: tally.pulls / users,
            edits: tally.edits / users,
            records_held: records_held(&api, &people[0].user).await,
            record_bytes: quantities["dynamodbStorageGbMonth"] * 1024.0 * 1024.0 * 1024.0,
            photos,
            variants_per_photo: 8.0,
            variant_bytes_per_photo: if photos > 0.0 {
                (after.bucket_bytes - before.bucket_bytes) / users / photos
            } else {
                0.0
            },
            original_bytes_per_photo: if photos > 0.0 {
                tally.original_bytes / users / photos
            } else {
                0.0
            },
            views: quantities["cloudfrontHttpsRequest"],
            bytes_viewed: quantities["cloudfrontGbOut"] * 1024.0 * 1024.0 * 1024.0,
            pushes: quantities["snsMobilePush"],
            live_minutes: live,
            resize_seconds: resize_ms / 1000.0,
            resize_gb: resize_mb / 1024.0,
        };
        for (item, quantity) in refresh {
            if !item.ends_with("Month") && !item.ends_with("Mau") {
                *quantities.entry(item).or_default() +=
                    quantity * profile.sessions_per_month as f64;
            }
        }
        let mut by_operation: BTreeMap<&str, (u64, f64, f64)> = BTreeMap::new();
        for request in &metered.dynamodb {
            let entry = by_operation.entry(request.op.as_str()).or_default();
            entry.0 += 1;
            entry.1 += request.read_units();
            entry.2 += request.write_units();
        }
        println!(
            "\nDynamoDB per user-month, by operation:\n\n| operation | requests | read units | write units |\n|---|---:|---:|---:|"
        );
        for (operation, (requests, read, write)) in by_operation {
            let per = USERS as f64;
            println!(
                "| {operation} | {:.0} | {:.1} | {:.1} |",
                requests as f64 / per,
                read / per,
                write / per
            );
        }
        print_bill(&prices, name, profile, &quantities);
        print_comparison(&prices, &quantities, &operations);
        print_cognito_lever(&prices, &quantities);
        per_profile.insert(name.clone(), quantities);

        // Cost per user action, each measured alone.
        if name == "notes" {
            println!("\n| action | cost | largest parts |\n|---|---:|---|");
            let person = &mut people[0];
            let before = start(&api).await;
            edit(&api, person, None, 1_000).await;
            api.get(
                "/sync/pull?clientId=tablet",
                Some(&person.user.access_token),
            )
            .await;
            let (q, _) = measured(&api, &before, 1.0, None, &functions).await;
            print_action(
                &prices,
                "one edit synced (push, silent push, the tablet's pull)",
                &q,
            );
            let tablet = open_socket(&api, &person.user, "tablet").await;
            let before = start(&api).await;
            edit(&api, person, None, 1_001).await;
            let (q, _) = measured(&api, &before, 1.0, None, &functions).await;
            print_action(&prices, "one edit poking a connected device", &q);
            drop(tablet);
        }
        if name == "photos" {
            let person = &people[0];
            let before = start(&api).await;
            let id = upload(&api, &person.user, "image/jpeg", &photo_corpus[0]).await;
            let media = api.wait_until_processed(&person.user, &id).await;
            let url = media["variants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "800.webp")
                .and_then(|v| v["url"].as_str())
                .unwrap()
                .to_string();
            for _ in 0..10 {
                reqwest::get(&url).await.unwrap().bytes().await.unwrap();
            }
            let (q, _) = measured(&api, &before, 1.0, None, &functions).await;
            println!("\n| action | cost | largest parts |\n|---|---:|---|");
            print_action(
                &prices,
                "one photo uploaded and viewed ten times (800 px WebP)",
                &q,
            );
        }
        stop_meter(&api.emulator_url).await;
        api.stop().await;
    }
    let _ = std::fs::remove_file(template_path);
}
