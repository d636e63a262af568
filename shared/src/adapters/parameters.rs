//! The SSM Parameter Store adapter: secrets a function reads once at init.

use aws_config::SdkConfig;

use crate::{Error, adapters::aws};

/// The decrypted value of the SecureString parameter `name`.
pub async fn secure_string(sdk: &SdkConfig, name: &str) -> Result<String, Error> {
    aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(aws::classify)?
        .parameter
        .and_then(|parameter| parameter.value)
        .ok_or_else(|| Error::internal(format!("the parameter {name} has no value")))
}

/// Stores `value` as the SecureString `name` (AWS managed key), replacing
/// what was there.
pub async fn put_secure_string(sdk: &SdkConfig, name: &str, value: &str) -> Result<(), Error> {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .map_err(aws::classify)?;
    Ok(())
}
