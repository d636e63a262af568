//! The S3 trigger: the emulator sends bucket notifications to a queue, and
//! this poller delivers each as the S3 event Lambda would get; a failed
//! delivery stays in the queue and is retried.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::s3::S3Event;
use aws_sdk_sqs::Client;
use tokio::task::JoinHandle;

pub type Handler = Arc<
    dyn Fn(S3Event) -> std::pin::Pin<Box<dyn Future<Output = Result<(), shared::Error>> + Send>>
        + Send
        + Sync,
>;

/// How soon a failed delivery is retried.
const RETRY_AFTER_SECONDS: i32 = 2;

/// The emulator leaves out record members AWS always sends
/// (`userIdentity`, `requestParameters`, `responseElements`); fill them in so
/// the function sees the AWS shape.
fn aws_shaped(body: &str) -> Result<S3Event, serde_json::Error> {
    let mut event: serde_json::Value = serde_json::from_str(body)?;
    if let Some(records) = event.get_mut("Records").and_then(|r| r.as_array_mut()) {
        for record in records.iter_mut().filter_map(|r| r.as_object_mut()) {
            record
                .entry("userIdentity")
                .or_insert_with(|| serde_json::json!({"principalId": "AWS:LOCAL"}));
            record
                .entry("requestParameters")
                .or_insert_with(|| serde_json::json!({"sourceIPAddress": "127.0.0.1"}));
            record
                .entry("responseElements")
                .or_insert_with(|| serde_json::json!({}));
        }
    }
    serde_json::from_value(event)
}

pub fn spawn_poller(
    sqs: Client,
    queue_url: String,
    function: String,
    handler: Handler,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(RETRY_AFTER_SECONDS)
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(err) => {
                    tracing::warn!(error = %err, "polling the upload queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for message in messages {
                let body = message.body().unwrap_or_default();
                let done = match aws_shaped(body) {
                    // S3 sends a test event when the notification is set up.
                    Ok(event) if event.records.is_empty() => true,
                    Ok(event) => match handler(event).await {
                        Ok(()) => true,
                        Err(err) => {
                            tracing::warn!(%function, error = %err, "delivery failed; it will be retried");
                            false
                        }
                    },
                    Err(_) if body.contains("s3:TestEvent") => true,
                    Err(err) => {
                        tracing::error!(%function, error = %err, "dropping a message that is not an S3 event");
                        true
                    }
                };
                if done && let Some(receipt) = message.receipt_handle() {
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await;
                }
            }
        }
    })
}
