//! A bounded load test on loopback: a few thousand requests at a fixed
//! concurrency against the local stack's read routes and `POST /sync/push`,
//! reporting p50/p99 latency, throughput and errors per route, then checking
//! that the stack still answers. Figures include the emulator (Python,
//! single process), which dominates: they bound the functions' overhead,
//! they are not AWS latencies.
//!
//!   cargo run -p e2e --example load -- [reads per route] [concurrency] [pushes]
//!
//! Pushes are fewer: the emulator deep-copies the whole table, stream
//! included, for every item of a transaction, so each push gets slower than
//! the last; past a few hundred its transactions outlast the functions' 2 s
//! attempt timeout. DynamoDB has no such cost.

use std::time::{Duration, Instant};

use e2e::TestStack;
use serde_json::json;
use tokio::task::JoinSet;

struct Outcome {
    route: &'static str,
    /// From the first attempt to the final answer, retries included.
    latency: Duration,
    ok: bool,
    retries: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let per_route: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    let concurrency: usize = args.next().map_or(Ok(8), |n| n.parse())?;
    let pushes: usize = args.next().map_or(Ok(160), |n| n.parse())?;
    let api = std::sync::Arc::new(TestStack::start().await);
    // One user per worker, each with a photo to read back: users are
    // independent, as in production (one user's devices racing each other
    // is covered by tests/tests/stack/sync.rs).
    let photo = shared::media::pipeline::testing::jpeg_with_exif(64, 48, 1);
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
        let count = if route == "POST /sync/push" {
            pushes
        } else {
            per_route
        };
        let mut workers = JoinSet::new();
        for (worker, user) in users.iter().enumerate() {
            let (api, token) = (api.clone(), user.access_token.clone());
            let share = count / concurrency + usize::from(worker < count % concurrency);
            workers.spawn(async move {
                let mut results = Vec::with_capacity(share);
                // Each worker is a device: its own client id, ids in order.
                let client = format!("load-{worker}");
                for n in 1..=share {
                    // A phone retries what says "retry later" (503, and 409
                    // idempotency_key_in_use after an answer it never got)
                    // with the same Idempotency-Key; anything else is an error.
                    let key = uuid::Uuid::new_v4().to_string();
                    // Computed once: a retry must send the same body.
                    let hlc = e2e::hlc_now(&client);
                    let sent = Instant::now();
                    let mut retries = 0;
                    let reply = loop {
                        let request = match route {
                            "GET /me" => api.request("GET", "/me", Some(&token)),
                            "GET /media" => api.request("GET", "/media", Some(&token)),
                            "GET /sync/pull" => api.request(
                                "GET",
                                &format!("/sync/pull?clientId={client}"),
                                Some(&token),
                            ),
                            _ => api
                                .request("POST", "/sync/push", Some(&token))
                                .header("Idempotency-Key", &key)
                                .json(&json!({
                                    "clientId": client,
                                    "mutations": [{
                                        "id": n, "collection": "notes",
                                        "recordId": format!("{client}-{n}"), "op": "put",
                                        "fields": {"title": "load", "n": n},
                                        "hlc": hlc,
                                    }],
                                })),
                        };
                        let reply = api.send(request).await;
                        let later =
                            reply.status == 503 || reply.body["code"] == "idempotency_key_in_use";
                        if later && retries < 6 {
                            retries += 1;
                            tokio::time::sleep(Duration::from_secs(retries)).await;
                            continue;
                        }
                        break reply;
                    };
                    if !reply.status.is_success() {
                        eprintln!("{route}: {} {}", reply.status, reply.body);
                    }
                    results.push(Outcome {
                        route,
                        latency: sent.elapsed(),
                        ok: reply.status.is_success(),
                        retries,
                    });
                }
                results
            });
        }
        while let Some(done) = workers.join_next().await {
            outcomes.extend(done?);
        }
        eprintln!("{route}: {count} requests in {:?}", route_started.elapsed());
    }
    let elapsed = started.elapsed();

    println!(
        "| route | requests | errors | retries (503, 409 in use) | p50 | p99 | max | throughput (concurrency {concurrency}) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
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
        let retried: u64 = outcomes
            .iter()
            .filter(|o| o.route == route)
            .map(|o| o.retries)
            .sum();
        let total: Duration = latencies.iter().sum();
        println!(
            "| `{route}` | {} | {errors} | {retried} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} req/s |",
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
