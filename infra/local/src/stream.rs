//! The DynamoDB stream trigger: the table's stream is polled shard by shard
//! and delivered in batches in the Lambda event shape, with the event
//! source mapping's settings from the template: `batchItemFailures`, bisect
//! on error, the retry limit, the maximum record age and the on-failure
//! destination.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::filter::EventFilter;
use crate::state::StateDir;

use serde_json::{Value, json};

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

/// The event source mapping's settings, as the template declares them
/// (the `DynamoDB` event of the function).
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub batch_size: i32,
    /// `BisectBatchOnFunctionError`: a failing batch is split in two, so a
    /// poison record ends up alone and its neighbours go through.
    pub bisect: bool,
    /// `MaximumRetryAttempts`: retries of a failing batch before it is
    /// given up (bisecting does not reset the count).
    pub max_retries: u32,
    /// `MaximumRecordAgeInSeconds`: older records are given up unprocessed.
    pub max_record_age: Option<Duration>,
    /// `DestinationConfig.OnFailure`: where a given-up batch is described.
    pub on_failure: Option<Destination>,
    /// `FilterCriteria`: records no filter admits are dropped uninvoked.
    pub filter: EventFilter,
}

impl Default for Mapping {
    /// Lambda's defaults: 100 records, no bisect, retries until the record
    /// expires (24 h on a stream; bounded here), no destination.
    fn default() -> Self {
        Self {
            batch_size: 100,
            bisect: false,
            max_retries: 10_000,
            max_record_age: None,
            on_failure: None,
            filter: EventFilter::default(),
        }
    }
}

/// An SQS on-failure destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub queue_url: String,
    /// Named in the message, as Lambda names the function.
    pub function_arn: String,
}

/// Polls the table's stream shard by shard and delivers batches to the
/// function as the event source mapping would. With `state`, where it read
/// to is kept there, so a restarted stack goes on after the last record it
/// delivered rather than delivering the stream again from its start.
pub fn spawn_poller(
    sdk: &aws_config::SdkConfig,
    table: String,
    function: String,
    handler: Handler,
    mapping: Mapping,
    state: Option<StateDir>,
) -> JoinHandle<()> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    tokio::spawn(async move {
        let mut shards = Shards::default();
        let mut cursors = Cursors::new(state, &function);
        let target = Target {
            function: &function,
            handler: &handler,
            mapping: &mapping,
            sqs: &sqs,
        };
        loop {
            match poll_once(
                &dynamodb,
                &streams,
                &table,
                &region,
                &target,
                &mut shards,
                &mut cursors,
            )
            .await
            {
                // Behind: read on at once, as Lambda's poller does.
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(err) => {
                    tracing::warn!(%function, error = %err, "polling the table stream failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}

/// Where batches go: the function and its mapping.
pub struct Target<'a> {
    pub function: &'a str,
    pub handler: &'a Handler,
    pub mapping: &'a Mapping,
    pub sqs: &'a aws_sdk_sqs::Client,
}

/// The stream and its shards, described again every few seconds rather
/// than on every poll: two calls fewer per poll on an emulator that
/// serves one request at a time.
#[derive(Default)]
struct Shards {
    stream_arn: String,
    ids: Vec<String>,
    described: Option<std::time::Instant>,
}

const DESCRIBE_EVERY: Duration = Duration::from_secs(2);

async fn poll_once(
    dynamodb: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
    table: &str,
    region: &str,
    target: &Target<'_>,
    shards: &mut Shards,
    cursors: &mut Cursors,
) -> anyhow::Result<bool> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let mut read_any = false;
    if shards
        .described
        .is_none_or(|at| at.elapsed() > DESCRIBE_EVERY)
    {
        let stream_arn = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await?
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| anyhow::anyhow!("the table has no stream"))?;
        let ids = streams
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await?
            .stream_description
            .map(|d| d.shards.unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|shard| shard.shard_id)
            .collect();
        *shards = Shards {
            stream_arn,
            ids,
            described: Some(std::time::Instant::now()),
        };
    }
    let stream_arn = shards.stream_arn.clone();
    for shard_id in shards.ids.clone() {
        if !cursors.iterators.contains_key(&shard_id) {
            let start = streams
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(&shard_id);
            let start = match cursors.delivered.get(&shard_id) {
                Some(sequence_number) => start
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(sequence_number.clone()),
                None => start.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let iterator = start.send().await?.shard_iterator.unwrap_or_default();
            cursors.iterators.insert(shard_id.clone(), iterator);
        }
        let iterator = cursors.iterators[&shard_id].clone();
        let output = streams
            .get_records()
            .shard_iterator(iterator)
            .limit(target.mapping.batch_size)
            .send()
            .await?;
        let read = output.records.unwrap_or_default();
        read_any |= !read.is_empty();
        let records: Vec<serde_json::Value> = read
            .iter()
            .map(|r| lambda_record(r, &stream_arn, region))
            .filter(|record| target.mapping.filter.admits(record))
            .collect();
        if !records.is_empty() {
            deliver(target, records).await;
        }
        if let Some(last) = read
            .last()
            .and_then(|r| r.dynamodb.as_ref())
            .and_then(|d| d.sequence_number.clone())
        {
            cursors.delivered(&shard_id, last);
        }
        if let Some(next) = output.next_shard_iterator {
            cursors.iterators.insert(shard_id, next);
        }
    }
    Ok(read_any)
}

/// Where a consumer reads each shard: the shard iterators of this run,
/// and the last sequence number delivered, kept in the state folder (if
/// any) for the next run to start after.
struct Cursors {
    iterators: std::collections::HashMap<String, String>,
    delivered: std::collections::BTreeMap<String, String>,
    state: Option<StateDir>,
    file: String,
}

impl Cursors {
    fn new(state: Option<StateDir>, function: &str) -> Self {
        let file = format!("stream-{function}.json");
        let delivered = state
            .as_ref()
            .and_then(|state| state.load(&file))
            .unwrap_or_default();
        Self {
            iterators: std::collections::HashMap::new(),
            delivered,
            state,
            file,
        }
    }

    fn delivered(&mut self, shard_id: &str, sequence_number: String) {
        if let Some(state) = &self.state {
            self.delivered.insert(shard_id.to_string(), sequence_number);
            state.save(&self.file, &self.delivered);
        }
    }
}

/// Why a batch was given up, in Lambda's words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GivenUp {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// Delivers one batch of Lambda-shaped records as the event source mapping
/// would: records before the first reported failure are done; the rest is
/// retried (split in two first, with bisect), and given up to the
/// on-failure destination after the retry limit or the record age. Returns
/// what was given up, with why.
pub async fn deliver(target: &Target<'_>, records: Vec<Value>) -> Vec<(GivenUp, Vec<Value>)> {
    let Target {
        function,
        handler,
        mapping,
        ..
    } = target;
    let mut given_up = Vec::new();
    let mut batches: VecDeque<(Vec<Value>, u32)> = VecDeque::from([(records, 0)]);
    while let Some((mut batch, mut retries)) = batches.pop_front() {
        loop {
            let (old, young): (Vec<Value>, Vec<Value>) = batch
                .into_iter()
                .partition(|r| too_old(r, mapping.max_record_age));
            if !old.is_empty() {
                given_up.push((GivenUp::RecordAgeExceeded, old));
            }
            batch = young;
            if batch.is_empty() {
                break;
            }
            // A record the event shape cannot hold fails the invocation, as
            // the Lambda runtime's decoding would: bisecting isolates it and
            // the on-failure destination records it; its neighbours go on.
            let started = std::time::Instant::now();
            let outcome = match serde_json::from_value(json!({ "Records": batch })) {
                Ok(event) => {
                    let outcome = handler(event).await;
                    tracing::debug!(%function, records = batch.len(), elapsed_ms = started.elapsed().as_millis() as u64, "stream batch delivered");
                    outcome
                }
                Err(err) => Err(shared::Error::internal(format!(
                    "stream records do not fit the Lambda event shape: {err}"
                ))),
            };
            match outcome {
                Ok(response) if response.batch_item_failures.is_empty() => break,
                Ok(response) => {
                    let first_failed = response
                        .batch_item_failures
                        .iter()
                        .filter_map(|f| f.item_identifier.clone())
                        .min_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
                    let position = first_failed.and_then(|failed| {
                        batch.iter().position(|r| {
                            r["dynamodb"]["SequenceNumber"].as_str() == Some(failed.as_str())
                        })
                    });
                    match position {
                        Some(position) => {
                            batch.drain(..position);
                        }
                        None => {
                            tracing::error!(%function, "batchItemFailures named an unknown record; retrying the batch")
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(%function, retries, error = %err, "the function failed");
                }
            }
            retries += 1;
            if retries > mapping.max_retries {
                given_up.push((GivenUp::RetryAttemptsExhausted, batch));
                break;
            }
            if mapping.bisect && batch.len() > 1 {
                let second = batch.split_off(batch.len() / 2);
                batches.push_front((second, retries));
                batches.push_front((batch, retries));
                break;
            }
            tracing::info!(%function, retries, records = batch.len(), "retrying from the first failed record");
            tokio::time::sleep(Duration::from_millis(50 << retries.min(4))).await;
        }
    }
    for (why, batch) in &given_up {
        tracing::error!(%function, records = batch.len(), reason = ?why, "records given up to the on-failure destination");
        if let Some(destination) = &mapping.on_failure {
            let message = failure_message(&destination.function_arn, *why, batch);
            let sent = target
                .sqs
                .send_message()
                .queue_url(&destination.queue_url)
                .message_body(message.to_string())
                .send()
                .await;
            if let Err(err) = sent {
                tracing::error!(%function, error = %err, "the on-failure destination refused the record");
            }
        }
    }
    given_up
}

fn too_old(record: &Value, max_age: Option<Duration>) -> bool {
    let created = record["dynamodb"]["ApproximateCreationDateTime"].as_i64();
    match (max_age, created) {
        (Some(max), Some(created)) => {
            chrono::Utc::now().timestamp().saturating_sub(created) > max.as_secs() as i64
        }
        _ => false,
    }
}

/// What Lambda sends an on-failure destination for a stream batch: where
/// the records are, not the records (they stay in the stream for 24 h).
pub fn failure_message(function_arn: &str, why: GivenUp, batch: &[Value]) -> Value {
    let sequence = |r: Option<&Value>| r.map(|r| r["dynamodb"]["SequenceNumber"].clone());
    let arrival =
        |r: Option<&Value>| r.map(|r| r["dynamodb"]["ApproximateCreationDateTime"].clone());
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn,
            "condition": format!("{why:?}"),
            "approximateInvokeCount": 1,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "DDBStreamBatchInfo": {
            "shardId": "shardId-local",
            "startSequenceNumber": sequence(batch.first()),
            "endSequenceNumber": sequence(batch.last()),
            "approximateArrivalOfFirstRecord": arrival(batch.first()),
            "approximateArrivalOfLastRecord": arrival(batch.last()),
            "batchSize": batch.len(),
            "streamArn": batch.first().map(|r| r["eventSourceARN"].clone()),
        }
    })
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
