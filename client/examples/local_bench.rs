//! The local side's speed, no network: `put` and `get` latency on a
//! replica holding 10,000 records, each put its own SQLite transaction, as
//! an app calls it. Run by scripts/bench (release build).
//! Usage: local_bench [RECORDS]

use std::time::{Duration, Instant};

use mobile_sync::Replica;
use mobile_sync::http::HttpTransport;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "| {what} | {} | {:.0} | {:.0} | {:.0} |",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
}

fn main() {
    let records: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("mobile-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("bench.db");
    // Never synced: the transport is only there to satisfy the type.
    let transport = HttpTransport::new("http://127.0.0.1:9").unwrap();
    let replica = Replica::open(db.to_str().unwrap(), "bench", transport).unwrap();
    let now = mobile_sync::engine::wall_ms();
    let fields = |i: usize| {
        json!({"title": format!("note {i}"), "body": "x".repeat(200), "done": i.is_multiple_of(3)})
            .as_object()
            .unwrap()
            .clone()
    };

    let mut puts = Vec::with_capacity(records);
    for i in 0..records {
        let started = Instant::now();
        replica
            .put_at("notes", &format!("n{i}"), fields(i), now + i as u64)
            .unwrap();
        puts.push(started.elapsed());
    }
    // Edits of existing records, with 10,000 queued behind them.
    let mut edits = Vec::with_capacity(1000);
    for i in 0..1000 {
        let started = Instant::now();
        replica
            .put_at(
                "notes",
                &format!("n{}", i * 7 % records),
                fields(i),
                now + (records + i) as u64,
            )
            .unwrap();
        edits.push(started.elapsed());
    }
    let mut gets = Vec::with_capacity(1000);
    for i in 0..1000 {
        let started = Instant::now();
        replica
            .get("notes", &format!("n{}", i * 13 % records))
            .unwrap();
        gets.push(started.elapsed());
    }
    println!("| operation | count | p50 µs | p99 µs | max µs |");
    println!("|---|---:|---:|---:|---:|");
    report(&format!("put (new record, up to {records} pending)"), puts);
    report(&format!("put (edit, {records}+ pending)"), edits);
    report("get (pending edits applied)", gets);
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("database with WAL: {:.1} MB", size as f64 / 1e6);
    let _ = std::fs::remove_dir_all(&dir);
}
