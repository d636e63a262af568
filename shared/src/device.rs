//! Devices: one per phone, with the SNS endpoint that reaches it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub device_id: String,
    pub user_id: String,
    pub platform: Platform,
    pub token: String,
    pub endpoint_arn: String,
    pub updated_at: DateTime<Utc>,
}
