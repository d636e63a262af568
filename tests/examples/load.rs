//! A bounded load test on loopback: a few thousand requests at a fixed
//! concurrency against the local stack's read routes and `POST /sync/push`,
//! reporting p50/p99 latency, throughput and errors per route, then checking
//! that the stack still answers. Figures include the emulator (Python,
//! single process), which dominates: they bound the functions' overhead,
//! they are not AWS latencies.
//!
//!   cargo run -p e2e --example load -- [requests per route] [concurrency]

use std::time::{Duration, Instant};

use e2e::TestStack;
use serde_json::json;
use tokio::task::JoinSet;

struct Outcome {
    route: &'static str,
    latency: Duration,
    ok: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let per_route: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    let concurrency: usize = args.next().map_or(Ok(16), |n| n.parse())?;
    let api = std::sync::Arc::new(TestStack::start().await);
    // One user per worker, each with a photo to read back: users are
    // independent, as in production (one user's devices racing each other
    // is covered by tests/tests/sync.rs).
    let photo = shared::pipeline::testing::jpeg_with_exif(64, 48, 1);
    let mut users = Vec::new();
    for _ in 0..concurrency {
        let user = api.user().await;
        e2e::upload(&api, &user, "image/jpeg", &photo).await;
        users.push(user);
    }

    let routes: [&'static str; 4] = ["GET /me", "GET /media", "GET /sync/pull", "POST /sync/push"];
    let mut outcomes = Vec::new();
    let started = Instant::now();
    for route in routes {
        let route_started = Instant::now();
        let mut workers = JoinSet::new();
        for (worker, user) in users.iter().enumerate() {
            let (api, token) = (api.clone(), user.access_token.clone());
            let share = per_route / concurrency + usize::from(worker < per_route % concurrency);
            workers.spawn(async move {
                let mut results = Vec::with_capacity(share);
                // Each worker is a device: its own client id, ids in order.
                let client = format!("load-{worker}");
                for n in 1..=share {
                    let request = match route {
                        "GET /me" => api.request("GET", "/me", Some(&token)),
                        "GET /media" => api.request("GET", "/media", Some(&token)),
                        "GET /sync/pull" => api.request(
                            "GET",
                            &format!("/sync/pull?clientId={client}"),
                            Some(&token),
                        ),
                        _ => {
                            let millis = chrono::Utc::now().timestamp_millis();
                            api.request("POST", "/sync/push", Some(&token))
                                .json(&json!({
                                    "clientId": client,
                                    "mutations": [{
                                        "id": n, "collection": "notes",
                                        "recordId": format!("{client}-{n}"), "op": "put",
                                        "fields": {"title": "load", "n": n},
                                        "hlc": format!("{millis:015}-00000-{client}"),
                                    }],
                                }))
                        }
                    };
                    let sent = Instant::now();
                    let reply = api.send(request).await;
                    if !reply.status.is_success() {
                        eprintln!("{route}: {} {}", reply.status, reply.body);
                    }
                    results.push(Outcome {
                        route,
                        latency: sent.elapsed(),
                        ok: reply.status.is_success(),
                    });
                }
                results
            });
        }
        let mut count = 0;
        while let Some(done) = workers.join_next().await {
            let results = done?;
            count += results.len();
            outcomes.extend(results);
        }
        eprintln!("{route}: {count} requests in {:?}", route_started.elapsed());
    }
    let elapsed = started.elapsed();

    println!(
        "| route | requests | errors | p50 | p99 | max | throughput (concurrency {concurrency}) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for route in routes {
        let mut latencies: Vec<Duration> = outcomes
            .iter()
            .filter(|o| o.route == route)
            .map(|o| o.latency)
            .collect();
        latencies.sort();
        let errors = outcomes
            .iter()
            .filter(|o| o.route == route && !o.ok)
            .count();
        let total: Duration = latencies.iter().sum();
        println!(
            "| `{route}` | {} | {errors} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} req/s |",
            latencies.len(),
            percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
            latencies.last().unwrap().as_secs_f64() * 1000.0,
            latencies.len() as f64 * concurrency as f64 / total.as_secs_f64(),
        );
    }
    let errors = outcomes.iter().filter(|o| !o.ok).count();
    let health = api.get("/health", None).await;
    println!(
        "\n{} requests in {:.1} s, {errors} errors; afterwards GET /health answered {}",
        outcomes.len(),
        elapsed.as_secs_f64(),
        health.status
    );
    anyhow::ensure!(errors == 0, "{errors} requests failed");
    anyhow::ensure!(health.status == 200, "the stack stopped answering");
    Ok(())
}
