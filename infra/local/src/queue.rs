//! The SQS trigger (the template's `SQS` events): a poller per queue that
//! delivers batches as the `SqsEvent` Lambda's event source mapping sends,
//! and deletes what the function did not report as failed
//! (`ReportBatchItemFailures`). A failed message stays in the queue and
//! comes back; after the queue's `maxReceiveCount` receives the emulator
//! moves it to the dead-letter queue, as SQS does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use tokio::task::JoinHandle;

pub type Handler = Arc<
    dyn Fn(SqsEvent) -> std::pin::Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>>
        + Send
        + Sync,
>;

/// How soon a failed message is received again. On AWS that is the queue's
/// visibility timeout (minutes); locally a retry comes within seconds.
const RETRY_AFTER_SECONDS: i32 = 1;

/// One `SQS` event of a function.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    /// The queue's visibility timeout: how long a batch being handled stays
    /// hidden from the next receive.
    pub visibility_timeout: i32,
}

/// A client for the poller. Its receives must never be given up on: a
/// receive the emulator answered but the client abandoned (the functions'
/// 2 s attempt timeout, on a loaded machine) would hide its messages for
/// the queue's whole visibility timeout, as on AWS.
pub fn poller_client(sdk: &aws_config::SdkConfig) -> Client {
    let patient = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(120))
        .build();
    Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(patient)
            .build(),
    )
}

pub fn spawn_poller(
    sqs: Client,
    region: String,
    function: String,
    handler: Handler,
    mapping: Mapping,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&mapping.queue_url)
                .max_number_of_messages(mapping.batch_size.clamp(1, 10))
                .wait_time_seconds(1)
                .visibility_timeout(mapping.visibility_timeout)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(err) => {
                    tracing::warn!(%function, error = %err, "polling the queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let event = match lambda_event(&messages, &mapping.queue_arn, &region) {
                Ok(event) => event,
                Err(err) => {
                    tracing::error!(%function, error = %err, "a batch did not make an SqsEvent");
                    continue;
                }
            };
            let response = handler(event).await;
            let failed = failed_ids(&messages, &response);
            for message in &messages {
                let id = message.message_id().unwrap_or_default();
                let Some(receipt) = message.receipt_handle() else {
                    continue;
                };
                let settled = if failed.contains(id) {
                    sqs.change_message_visibility()
                        .queue_url(&mapping.queue_url)
                        .receipt_handle(receipt)
                        .visibility_timeout(RETRY_AFTER_SECONDS)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else {
                    sqs.delete_message()
                        .queue_url(&mapping.queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                };
                if let Err(err) = settled {
                    tracing::warn!(%function, error = %err, "settling a message failed");
                }
            }
        }
    })
}

/// The ids Lambda puts back in the queue: those reported, or the whole
/// batch if any reported id is empty or not in the batch (Lambda's rule).
fn failed_ids(messages: &[Message], response: &SqsBatchResponse) -> HashSet<String> {
    let batch: HashSet<String> = messages
        .iter()
        .filter_map(|m| m.message_id().map(str::to_string))
        .collect();
    let reported: HashSet<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    if reported.iter().all(|id| batch.contains(id)) {
        reported
    } else {
        batch
    }
}

/// The batch in the shape Lambda delivers it.
fn lambda_event(
    messages: &[Message],
    queue_arn: &str,
    region: &str,
) -> Result<SqsEvent, serde_json::Error> {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, serde_json::Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_string(), value.clone().into()))
                .collect();
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Message {
        Message::builder()
            .message_id(id)
            .receipt_handle(format!("r-{id}"))
            .body("{}")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build()
    }

    #[test]
    fn a_batch_is_the_sqs_event_lambda_sends() {
        let event = lambda_event(
            &[message("a"), message("b")],
            "arn:aws:sqs:us-east-1:1:q",
            "us-east-1",
        )
        .unwrap();
        assert_eq!(event.records.len(), 2);
        let first = &event.records[0];
        assert_eq!(first.message_id.as_deref(), Some("a"));
        assert_eq!(
            first.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:1:q")
        );
        assert_eq!(
            first
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn only_the_reported_messages_come_back_unless_an_id_is_not_in_the_batch() {
        let batch = [message("a"), message("b")];
        let mut response = SqsBatchResponse::default();
        assert!(failed_ids(&batch, &response).is_empty());
        response.add_failure("b");
        assert_eq!(
            failed_ids(&batch, &response),
            HashSet::from(["b".to_string()])
        );
        response.add_failure("");
        assert_eq!(failed_ids(&batch, &response).len(), 2);
    }
}
