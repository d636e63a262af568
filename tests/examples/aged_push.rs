//! A 1000-mutation push on a table with 100,000 writes behind it, with the
//! functions' own SDK bounds (2 s per attempt, 5 s in all): the emulator
//! must not slow down as the stack ages. Run by scripts/bench against the
//! emulator at AWS_ENDPOINT_URL. Prints figures; asserts nothing.

use shared::sync::store::SyncStore;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use shared::store::Table;
use shared::sync::hlc::Hlc;
use shared::sync::{Limits, WireMutation, validate};

/// Writes made before the timed pushes (the first argument overrides).
const BACKGROUND_WRITES: usize = 100_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let background: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(BACKGROUND_WRITES);
    let emulator = e2e::emulator_url();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let sdk = shared::adapters::aws::sdk_config_for(&emulator, &region).await;
    let template =
        local_stack::template::Template::load(&local_stack::Options::default_template())?;
    let stack = format!("aged{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let resources = local_stack::provision::provision(&sdk, &template, &stack).await?;
    let client = aws_sdk_dynamodb::Client::new(&sdk);

    // Other users' items: 25 per BatchWriteItem, 8 batches in flight.
    let started = Instant::now();
    let batches: Vec<Vec<WriteRequest>> = (0..background)
        .map(|i| {
            let put = PutRequest::builder()
                .item("PK", AttributeValue::S(format!("USER#other-{}", i % 500)))
                .item("SK", AttributeValue::S(format!("MEDIA#{i:08}")))
                .item("status", AttributeValue::S("ready".into()))
                .build()
                .expect("key attributes are set");
            WriteRequest::builder().put_request(put).build()
        })
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    let mut pending = batches.into_iter();
    loop {
        let wave: Vec<_> = pending.by_ref().take(8).collect();
        if wave.is_empty() {
            break;
        }
        let mut calls = tokio::task::JoinSet::new();
        for batch in wave {
            let (client, table) = (client.clone(), resources.table_name.clone());
            calls.spawn(async move {
                let mut left = batch;
                while !left.is_empty() {
                    let output = client
                        .batch_write_item()
                        .request_items(&table, left)
                        .send()
                        .await?;
                    left = output
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&table))
                        .unwrap_or_default();
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = calls.join_next().await {
            done??;
        }
    }
    println!(
        "{background} background writes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let table = Table::new(&sdk, &resources.table_name);
    let now = chrono::Utc::now().timestamp_millis() as u64;
    println!("| push | mutations | time |");
    println!("|---|---:|---:|");
    let user = shared::model::ids::UserId::parse("aged-user")?;
    let grant = table.check_session(&user, 0, None).await?.own();
    for (round, n) in [(1u64, 1000u64), (2, 1000), (3, 100)] {
        let client_id = shared::model::ids::ClientId::parse(&format!("aged{round}"))?;
        let wires = (1..=n)
            .map(|id| WireMutation {
                id,
                space_id: None,
                collection: "notes".into(),
                record_id: format!("r{round}-{id}"),
                op: "put".into(),
                fields: Some(
                    serde_json::json!({"title": "a short note", "done": false})
                        .as_object()
                        .expect("an object")
                        .clone(),
                ),
                hlc: Hlc::new(now, id as u32, client_id.as_str()).to_string(),
            })
            .collect();
        let mutations = validate(&client_id, wires, &Limits::default(), now)?;
        let started = Instant::now();
        let pushed = table.push(&grant, &client_id, mutations).await?;
        println!(
            "| {round} | {n} | {:.2} s (watermark {}) |",
            started.elapsed().as_secs_f64(),
            pushed.watermark
        );
    }
    let started = Instant::now();
    let aged1 = shared::model::ids::ClientId::parse("aged1")?;
    let feed = table.pull(&grant, &aged1, Default::default(), 100).await?;
    println!(
        "pull page of {} changes: {:.1} ms",
        feed.changes.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
