//! The DynamoDB stream trigger: the table's stream is polled shard by shard
//! and delivered in batches in the Lambda event shape, honouring
//! `batchItemFailures` like an event source mapping.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub type Handler = Arc<
    dyn Fn(
            aws_lambda_events::dynamodb::Event,
        ) -> std::pin::Pin<
            Box<
                dyn Future<
                        Output = Result<
                            aws_lambda_events::streams::DynamoDbEventResponse,
                            shared::Error,
                        >,
                    > + Send,
            >,
        > + Send
        + Sync,
>;

/// As the event source mapping: at most 100 records a batch, failed
/// records (and those after them) retried up to this many times, then
/// given up to the on-failure destination (here, the log).
pub const STREAM_BATCH: i32 = 100;
pub const STREAM_MAX_RETRIES: u32 = 5;

/// Polls the table's stream shard by shard and delivers batches to the
/// function, honouring `batchItemFailures` like an event source mapping.
pub fn spawn_poller(
    sdk: &aws_config::SdkConfig,
    table: String,
    function: String,
    handler: Handler,
) -> JoinHandle<()> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    tokio::spawn(async move {
        let mut iterators: std::collections::HashMap<String, String> =
            std::collections::HashMap::new();
        loop {
            if let Err(err) = poll_once(
                &dynamodb,
                &streams,
                &table,
                &region,
                &function,
                &handler,
                &mut iterators,
            )
            .await
            {
                tracing::warn!(%function, error = %err, "polling the table stream failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn poll_once(
    dynamodb: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
    region: &str,
    function: &str,
    handler: &Handler,
    iterators: &mut std::collections::HashMap<String, String>,
) -> anyhow::Result<()> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let stream_arn = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await?
        .table
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| anyhow::anyhow!("the table has no stream"))?;
    let shards = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await?
        .stream_description
        .map(|d| d.shards.unwrap_or_default())
        .unwrap_or_default();
    for shard in shards {
        let Some(shard_id) = shard.shard_id else {
            continue;
        };
        if !iterators.contains_key(&shard_id) {
            let iterator = streams
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await?
                .shard_iterator
                .unwrap_or_default();
            iterators.insert(shard_id.clone(), iterator);
        }
        let iterator = iterators[&shard_id].clone();
        let output = streams
            .get_records()
            .shard_iterator(iterator)
            .limit(STREAM_BATCH)
            .send()
            .await?;
        let records: Vec<serde_json::Value> = output
            .records
            .unwrap_or_default()
            .iter()
            .map(|r| lambda_record(r, &stream_arn, region))
            .collect();
        if !records.is_empty() {
            deliver(function, handler, records).await;
        }
        if let Some(next) = output.next_shard_iterator {
            iterators.insert(shard_id, next);
        }
    }
    Ok(())
}

/// Delivers one batch; retries from the first failed record.
async fn deliver(function: &str, handler: &Handler, mut pending: Vec<serde_json::Value>) {
    for attempt in 0..=STREAM_MAX_RETRIES {
        let event = serde_json::json!({ "Records": pending });
        let event = match serde_json::from_value(event) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(%function, error = %err, "stream records do not fit the Lambda event shape");
                return;
            }
        };
        match handler(event).await {
            Ok(response) if response.batch_item_failures.is_empty() => return,
            Ok(response) => {
                let first_failed = response
                    .batch_item_failures
                    .iter()
                    .filter_map(|f| f.item_identifier.clone())
                    .min_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
                let Some(first_failed) = first_failed else {
                    return;
                };
                let position = pending.iter().position(|r| {
                    r["dynamodb"]["SequenceNumber"].as_str() == Some(first_failed.as_str())
                });
                match position {
                    Some(position) => {
                        pending.drain(..position);
                    }
                    None => {
                        tracing::error!(%function, "batchItemFailures named an unknown record; retrying the batch");
                    }
                }
                tracing::info!(%function, attempt, records = pending.len(), "retrying from the first failed record");
            }
            Err(err) => {
                tracing::warn!(%function, attempt, error = %err, "the function failed; retrying the batch");
            }
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
    }
    tracing::error!(%function, records = pending.len(), "retries exhausted: records go to the on-failure destination");
}

/// A stream record as Lambda delivers it.
fn lambda_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    stream_arn: &str,
    region: &str,
) -> serde_json::Value {
    let change = record.dynamodb.as_ref();
    let image = |item: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >| {
        serde_json::Value::Object(
            item.map(|i| {
                i.iter()
                    .map(|(k, v)| (k.clone(), attribute_json(v)))
                    .collect()
            })
            .unwrap_or_default(),
        )
    };
    serde_json::json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": record.event_version,
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change
                .and_then(|c| c.approximate_creation_date_time)
                .map(|t| t.secs())
                .unwrap_or_else(|| chrono::Utc::now().timestamp()),
            "Keys": image(change.and_then(|c| c.keys.as_ref())),
            "NewImage": image(change.and_then(|c| c.new_image.as_ref())),
            "OldImage": image(change.and_then(|c| c.old_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
            "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or(0),
            "StreamViewType": change.and_then(|c| c.stream_view_type.as_ref()).map(|v| v.as_str()),
        }
    })
}

/// An attribute in DynamoDB JSON (`{"S": "..."}`), as Lambda receives it.
fn attribute_json(value: &aws_sdk_dynamodbstreams::types::AttributeValue) -> serde_json::Value {
    use aws_sdk_dynamodbstreams::types::AttributeValue as A;
    use base64::Engine;
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match value {
        A::S(s) => serde_json::json!({ "S": s }),
        A::N(n) => serde_json::json!({ "N": n }),
        A::B(b) => serde_json::json!({ "B": b64(b) }),
        A::Ss(v) => serde_json::json!({ "SS": v }),
        A::Ns(v) => serde_json::json!({ "NS": v }),
        A::Bs(v) => serde_json::json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        A::M(m) => {
            serde_json::json!({ "M": m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<serde_json::Map<_, _>>() })
        }
        A::L(l) => serde_json::json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        A::Null(b) => serde_json::json!({ "NULL": b }),
        A::Bool(b) => serde_json::json!({ "BOOL": b }),
        _ => serde_json::json!({ "NULL": true }),
    }
}
