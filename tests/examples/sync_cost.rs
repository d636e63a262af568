//! DynamoDB calls and consumed capacity per pushed mutation, for batches of
//! 1, 25, 100 and 1000 mutations on distinct records (the worst case: every
//! mutation changes a record), next to the lower bound. Run by scripts/bench
//! against the emulator at AWS_ENDPOINT_URL.

use shared::sync::store::SyncStore;
use std::sync::atomic::Ordering;

use shared::model::ids::{ClientId, UserId};
use shared::store::Table;
use shared::sync::hlc::Hlc;
use shared::sync::{Limits, WireMutation, validate};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let emulator = e2e::emulator_url();
    // The emulator copies the whole table for every item of a transaction,
    // so large chunks take seconds there: give it time.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&emulator)
        .region(aws_config::Region::new("us-east-1"))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(std::time::Duration::from_secs(300))
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let template =
        local_stack::template::Template::load(&local_stack::Options::default_template())?;
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let mut pages = Vec::new();

    println!(
        "| mutations | DynamoDB calls | calls / mutation | lower bound calls | capacity units the emulator reported | est. capacity / mutation (AWS pricing) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in [1u64, 25, 100, 1000] {
        // A table per batch size, so earlier runs do not slow the emulator.
        let stack = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let resources = local_stack::provision::provision(&sdk, &template, &stack).await?;
        let store = Table::new(&sdk, &resources.table_name);
        let user = UserId::parse(&format!("bench-user-{n}"))?;
        let client = ClientId::parse("bench")?;
        // The grant a request gets: through the session check, as a
        // handler does (its read is not counted below).
        let grant = store.check_session(&user, 0, None).await?.own();
        let before = store.usage().calls.load(Ordering::Relaxed);
        let wires = (1..=n)
            .map(|id| WireMutation {
                id,
                space_id: None,
                collection: "notes".into(),
                record_id: format!("r{id}"),
                op: "put".into(),
                fields: Some(
                    serde_json::json!({"title": "a short note", "done": false})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
                hlc: Hlc::new(now, id as u32, "bench").to_string(),
            })
            .collect();
        let mutations = validate(&client, wires, &Limits::default(), now)?;
        store.push(&grant, &client, mutations).await?;
        let pushed_calls = store.usage().calls.load(Ordering::Relaxed) - before;
        let calls = pushed_calls;
        let reported = store.usage().capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0;
        // One pull page of up to 100 changes, as GET /sync/pull reads it.
        let feed = store.pull(&grant, &client, Default::default(), 100).await?;
        let page_calls = store.usage().calls.load(Ordering::Relaxed) - before - pushed_calls;
        let page_bytes: usize = feed
            .changes
            .iter()
            .map(|c| serde_json::to_string(c).map_or(0, |s| s.len()) + 120)
            .sum();
        pages.push((n, feed.changes.len(), page_calls, page_bytes));
        // Lower bound: one TransactWriteItems per 100 changed items and one
        // BatchGetItem per 100 keys read.
        let lower = n.div_ceil(100) * 2;
        // AWS model for these small (< 1 KB) items: a transactional write is
        // 2 WCU per item (records + counter + watermark per chunk), a
        // consistent read 1 RCU per item read (records, counter, watermark).
        let chunks = n.div_ceil(98);
        // The Feed index costs one more write unit per changed record (as
        // GSI1 did before it).
        let estimate = (2 * (n + 2 * chunks) + (n + 2) + n) as f64;
        println!(
            "| {n} | {calls} | {:.3} | {lower} | {reported:.1} | {:.2} |",
            calls as f64 / n as f64,
            estimate / n as f64
        );
    }
    println!();
    println!(
        "| pushed | changes in the first pull page | DynamoDB calls | est. read units (AWS pricing) |"
    );
    println!("|---:|---:|---:|---:|");
    for (n, changes, calls, bytes) in pages {
        // A consistent BatchGetItem of the counter and the watermark (1 RCU
        // each), a consistent query of the Feed index (1 RCU per 4 KB).
        let units = 2 + bytes.div_ceil(4096);
        println!("| {n} | {changes} | {calls} | {units} |");
    }
    Ok(())
}
