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

/// The SecureString `name`, made with `make` and stored first if there is
/// none yet: a secret the deployment needs but nobody has to hand over.
/// Two containers racing to make it agree on the one stored first.
pub async fn secure_string_or_make(
    sdk: &SdkConfig,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<String, Error> {
    let client = aws_sdk_ssm::Client::new(sdk);
    let read = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await;
    match read {
        Ok(output) => {
            return output
                .parameter
                .and_then(|parameter| parameter.value)
                .ok_or_else(|| Error::internal(format!("the parameter {name} has no value")));
        }
        Err(err) if aws::error_code(&err) == Some("ParameterNotFound") => {}
        Err(err) => return Err(aws::classify(err)),
    }
    let made = client
        .put_parameter()
        .name(name)
        .value(make())
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(false)
        .send()
        .await;
    match made {
        Ok(_) => {}
        Err(err) if aws::error_code(&err) == Some("ParameterAlreadyExists") => {}
        Err(err) => return Err(aws::classify(err)),
    }
    secure_string(sdk, name).await
}
