//! How long the local stack takes to delete a large account through the
//! purge queue: 50,000 sync records and 500 photos (an original and three
//! variants each, 2,000 objects), seeded straight into the table and the
//! bucket, then `DELETE /me` and the time until the purge queue is empty.
//! Prints the figures and the AWS bill of one such deletion. Run by
//! `scripts/bench purge` against the emulator at AWS_ENDPOINT_URL.
//! `PURGE_RECORDS` and `PURGE_PHOTOS` change the sizes.

use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use e2e::TestStack;
use shared::keys::ItemKey;
use shared::model::ids::Partition;

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let records = number("PURGE_RECORDS", 50_000);
    let photos = number("PURGE_PHOTOS", 500);
    let api = TestStack::start().await;
    let user = api.user().await;
    let sdk = api.sdk().await;
    let partition = Partition::User(user.user_id.clone());

    let seeding = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = &api.stack.resources.table_name;
    let items: Vec<WriteRequest> = (0..records)
        .map(|i| {
            let key = ItemKey::Record {
                partition: partition.clone(),
                collection: "notes".into(),
                record_id: format!("n{i:06}"),
            };
            let item = [
                ("PK", AttributeValue::S(key.pk())),
                ("SK", AttributeValue::S(key.sk())),
                (
                    "fields",
                    AttributeValue::S(format!("{{\"text\":\"note {i}\"}}")),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in items.chunks(25) {
        dynamodb
            .batch_write_item()
            .request_items(table, chunk.to_vec())
            .send()
            .await
            .unwrap();
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let [uploads, variants] = shared::keys::object_prefixes(&partition);
    for p in 0..photos {
        let mut keys = vec![format!("{uploads}p{p}")];
        keys.extend((0..3).map(|v| format!("{variants}p{p}/{v}.jpg")));
        for key in keys {
            s3.put_object()
                .bucket(&api.stack.resources.bucket)
                .key(key)
                .body(vec![0u8; 64].into())
                .send()
                .await
                .unwrap();
        }
    }
    eprintln!(
        "seeded {records} records and {} objects in {:.1} s",
        photos * 4,
        seeding.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let deleted = api.delete("/me", Some(&user.access_token)).await;
    assert_eq!(deleted.status, 202, "{deleted:?}");
    let answered = started.elapsed();
    api.wait_until_purged().await;
    let purged = started.elapsed();
    let left = api.partition_keys(&partition).await;
    assert_eq!(left, ["PROFILE"], "only the deletion marker stays");
    assert_eq!(api.queue_depth("PurgeDeadLetterQueue").await, 0);

    // One step per 1,000 items or objects, plus the fixed steps.
    let steps = records.div_ceil(1000) + (photos * 4).div_ceil(1000) + 3;
    // us-east-1 on-demand: $0.625 per million write request units (one per
    // item deleted, each under 1 KB), $0.125 per million read units (the
    // queries read each item once, strongly consistent: 1 per 4 KB, items
    // of ~100 bytes sum to ~1 unit per 40), $0.40 per million SQS requests
    // (send, receive, delete per step), Lambda arm64 $0.0000133334 per
    // GB-second at 256 MB for a step of ~0.5 s on AWS (40 BatchWriteItem
    // calls of ~10 ms) plus $0.20 per million requests; S3 DELETE is free,
    // LIST $0.005 per 1,000.
    let writes = records as f64 * 0.625e-6;
    let reads = (records as f64 / 40.0) * 0.125e-6;
    let sqs = steps as f64 * 3.0 * 0.40e-6;
    let lambda = steps as f64 * (0.5 * 0.25 * 0.000_013_333_4 + 0.20e-6);
    let lists = (photos * 4).div_ceil(1000) as f64 * 2.0 * 0.005 / 1000.0;
    println!(
        "purge of {records} records and {} objects: 202 after {} ms; purged after {:.1} s ({steps} steps, {:.0} items/s)",
        photos * 4,
        answered.as_millis(),
        purged.as_secs_f64(),
        (records + photos * 4) as f64 / purged.as_secs_f64(),
    );
    println!(
        "on AWS: ${:.4} per such deletion (DynamoDB writes ${writes:.4}, reads ${reads:.5}, SQS ${sqs:.6}, Lambda ${lambda:.6}, S3 LIST ${lists:.6})",
        writes + reads + sqs + lambda + lists
    );
    api.stop().await;
}
