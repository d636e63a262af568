//! What a rate limit costs per request: `Table::take` (the conditional
//! counter every write request pays) against the emulator, its latency and
//! the write units the emulator reports, beside a `GetItem` of the same
//! size as the baseline round trip. Run by scripts/bench against the
//! emulator at AWS_ENDPOINT_URL. Usage: limit_cost [REQUESTS]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use e2e::TestStack;
use shared::keys::RateSubject;
use shared::limits::Policy;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::args().nth(1).map_or(Ok(500), |n| n.parse())?;
    let api = TestStack::start().await;
    let table = api.table().await;
    let user = api.user().await;
    let policy = Policy::new("writes", u32::MAX, 60);
    let subject = RateSubject::User(user.user_id.clone());

    let mut counted = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let decision = table
            .take(&subject, &policy, chrono::Utc::now().timestamp())
            .await?;
        counted.push(started.elapsed());
        assert!(decision.allowed);
    }
    let units = table.usage().capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0;
    let mut read = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        table.profile(&user.user_id).await?;
        read.push(started.elapsed());
    }
    counted.sort();
    read.sort();
    // AWS bills a write of an item up to 1 KB (the counter is ~100 bytes)
    // one write request unit, refused or not; the emulator reports less.
    let aws_units = 1.0;
    println!(
        "| call | requests | p50 | p99 | write units per request (AWS rule; emulator reported) |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| `take` (conditional `UpdateItem`) | {requests} | {} | {} | {aws_units:.0} ({:.2}) |",
        ms(percentile(&counted, 0.5)),
        ms(percentile(&counted, 0.99)),
        units / requests as f64
    );
    println!(
        "| `GetItem` of the profile (baseline) | {requests} | {} | {} | 0 |",
        ms(percentile(&read, 0.5)),
        ms(percentile(&read, 0.99)),
    );
    println!(
        "\nAt $1.25 per million write request units (us-east-1 on demand): ${:.2} per million limited requests.",
        1.25 * aws_units
    );
    api.stop().await;
    Ok(())
}
