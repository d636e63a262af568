//! AWS client configuration and SDK error classification.
//!
//! `AWS_ENDPOINT_URL` is honoured by `aws-config` itself, so the same binary
//! talks to AWS or to the emulator. Timeouts and retries are bounded: a slow
//! dependency becomes a quick 503, never a hung request.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::Error;

fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
}

/// The configuration functions use: credentials, region and endpoint from the
/// environment (`AWS_ENDPOINT_URL` points everything at the emulator).
pub async fn sdk_config() -> SdkConfig {
    loader().load().await
}

/// A configuration for an explicit endpoint, as the local stack and tests
/// use, with the emulator's administrator credentials.
pub async fn sdk_config_for(endpoint: &str, region: &str) -> SdkConfig {
    sdk_config_as(endpoint, region, "testing", "testing").await
}

/// A configuration for an explicit endpoint and access key: a function's
/// own identity in the emulator.
pub async fn sdk_config_as(
    endpoint: &str,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> SdkConfig {
    loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "local",
        ))
        .load()
        .await
}

/// The service error code of an SDK error, if the service answered one.
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// The outcome of a conditional write: `Ok(true)` if it happened,
/// `Ok(false)` if its condition did not hold, an error otherwise.
pub fn conditional<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> Result<bool, Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if error_code(&err) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(err) => Err(classify(err)),
    }
}

const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "ServiceUnavailable",
    "InternalServerError",
    "InternalErrorException",
];

/// An SDK error no use case maps more precisely: a dependency that did not
/// answer, or throttled, is 503 (retry later); anything else is our bug.
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|code| THROTTLING.contains(&code))
        }
        _ => false,
    };
    if transient {
        Error::unavailable(err)
    } else {
        Error::internal(err)
    }
}
