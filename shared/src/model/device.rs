//! Devices: one per phone, with the SNS endpoint that reaches it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::ids::{DeviceId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
}

/// The device a push token is registered to now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenOwner {
    pub user_id: UserId,
    pub device_id: DeviceId,
}

/// A push token's key in the table: a hash, so tokens are not readable
/// from keys (logs, exports), per platform (one token, one app).
pub fn token_hash(platform: Platform, token: &str) -> String {
    use sha2::{Digest, Sha256};
    let platform = match platform {
        Platform::Ios => "ios",
        Platform::Android => "android",
    };
    let digest = Sha256::digest(format!("{platform}:{token}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub device_id: DeviceId,
    pub user_id: UserId,
    pub platform: Platform,
    pub token: String,
    pub endpoint_arn: String,
    pub updated_at: DateTime<Utc>,
}
