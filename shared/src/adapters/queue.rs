//! An SQS queue of work for a background function (the purge queue).

use aws_config::SdkConfig;
use serde::Serialize;

use super::aws;
use crate::Error;

#[derive(Debug, Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    pub fn new(sdk: &SdkConfig, url: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
            url: url.to_string(),
        }
    }

    /// Queues one message, the JSON of `message`.
    pub async fn send<T: Serialize>(&self, message: &T) -> Result<(), Error> {
        let body = serde_json::to_string(message).map_err(Error::internal)?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }
}
