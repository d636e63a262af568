//! The SNS adapter: platform endpoints for devices, and pushes published
//! with `MessageStructure=json` and the delivery headers of
//! [`crate::notification`] as message attributes.

use aws_config::SdkConfig;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

pub use crate::model::device::Platform;
use crate::model::ids::UserId;
pub use crate::notification::Notification;
use crate::notification::publication;
use crate::{Error, adapters::aws};

/// Why a publish failed.
#[derive(Debug)]
pub enum PublishError {
    /// The endpoint is disabled or gone: the device should be forgotten.
    Gone,
    /// Worth retrying.
    Transient(Error),
}

#[derive(Debug, Clone)]
pub struct Push {
    client: Client,
    ios_application: String,
    android_application: String,
    sandbox: bool,
}

impl Push {
    pub fn new(sdk: &SdkConfig, ios_application: &str, android_application: &str) -> Self {
        Self {
            client: Client::new(sdk),
            ios_application: ios_application.into(),
            android_application: android_application.into(),
            sandbox: ios_application.contains(":app/APNS_SANDBOX/"),
        }
    }

    fn application(&self, platform: Platform) -> &str {
        match platform {
            Platform::Ios => &self.ios_application,
            Platform::Android => &self.android_application,
        }
    }

    /// The endpoint for this token: `existing` updated in place (new token,
    /// re-enabled) when it still exists, else a new one. Creating is
    /// idempotent only for identical attributes, so an endpoint that already
    /// holds the token is found from SNS's answer and updated instead.
    pub async fn register(
        &self,
        platform: Platform,
        token: &str,
        user_id: &UserId,
        existing: Option<&str>,
    ) -> Result<String, Error> {
        if let Some(arn) = existing
            && let Some(attributes) = self.attributes(arn).await?
        {
            let same_token = attributes.get("Token").map(String::as_str) == Some(token);
            let enabled = attributes.get("Enabled").map(String::as_str) == Some("true");
            if !(same_token && enabled) {
                self.enable(arn, token).await?;
            }
            return Ok(arn.to_string());
        }
        let created = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(self.application(platform))
            .token(token)
            .custom_user_data(user_id.as_str())
            .send()
            .await;
        match created {
            Ok(output) => output
                .endpoint_arn
                .ok_or_else(|| Error::internal("SNS returned no endpoint ARN")),
            Err(err) => {
                let message = err.as_service_error().and_then(|e| {
                    use aws_sdk_sns::error::ProvideErrorMetadata;
                    e.message().map(str::to_string)
                });
                match message.as_deref().and_then(existing_endpoint) {
                    Some(arn) => {
                        self.enable(&arn, token).await?;
                        Ok(arn)
                    }
                    None if aws::error_code(&err) == Some("InvalidParameter") => Err(
                        Error::invalid("the push token was refused by the push service"),
                    ),
                    None => Err(aws::classify(err)),
                }
            }
        }
    }

    async fn enable(&self, arn: &str, token: &str) -> Result<(), Error> {
        self.client
            .set_endpoint_attributes()
            .endpoint_arn(arn)
            .attributes("Token", token)
            .attributes("Enabled", "true")
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Whether the endpoint can still be pushed to: false once APNs or FCM
    /// told SNS the token is dead (SNS disables it) or it was deleted.
    pub async fn endpoint_enabled(&self, arn: &str) -> Result<bool, Error> {
        Ok(self
            .attributes(arn)
            .await?
            .is_some_and(|attributes| attributes.get("Enabled").is_some_and(|e| e == "true")))
    }

    /// An endpoint's attributes; None if it no longer exists.
    async fn attributes(
        &self,
        arn: &str,
    ) -> Result<Option<std::collections::HashMap<String, String>>, Error> {
        match self
            .client
            .get_endpoint_attributes()
            .endpoint_arn(arn)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(err) if aws::error_code(&err) == Some("NotFound") => Ok(None),
            Err(err) => Err(aws::classify(err)),
        }
    }

    pub async fn delete_endpoint(&self, arn: &str) -> Result<(), Error> {
        self.client
            .delete_endpoint()
            .endpoint_arn(arn)
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Publishes `notification` to the endpoint `arn` of a device of
    /// `user_id` on `platform`.
    pub async fn publish(
        &self,
        arn: &str,
        platform: Platform,
        notification: &Notification,
        user_id: &UserId,
    ) -> Result<(), PublishError> {
        let publication = publication(platform, notification, user_id, self.sandbox);
        let mut request = self
            .client
            .publish()
            .target_arn(arn)
            .message_structure("json")
            .message(publication.message);
        for (name, value) in publication.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|err| PublishError::Transient(Error::internal(err)))?;
            request = request.message_attributes(name, value);
        }
        let result = request.send().await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if matches!(aws::error_code(&err), Some("EndpointDisabled" | "NotFound")) => {
                Err(PublishError::Gone)
            }
            Err(err) => Err(PublishError::Transient(aws::classify(err))),
        }
    }
}

/// The ARN in "Endpoint <arn> already exists with the same Token, but
/// different attributes."
fn existing_endpoint(message: &str) -> Option<String> {
    let start = message.find("arn:")?;
    let arn: String = message[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    message.contains("already exists").then_some(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_endpoint_that_holds_a_token() {
        let message = "Invalid parameter: Token Reason: Endpoint arn:aws:sns:us-east-1:123:endpoint/GCM/app/abc already exists with the same Token, but different attributes.";
        assert_eq!(
            existing_endpoint(message).as_deref(),
            Some("arn:aws:sns:us-east-1:123:endpoint/GCM/app/abc")
        );
        assert_eq!(existing_endpoint("Invalid parameter: Token"), None);
    }
}
