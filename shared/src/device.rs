//! Device items: one per phone, with its SNS endpoint.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::profile::Table;
use crate::push::Platform;
use crate::{Error, aws, keys};

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

#[derive(Serialize, Deserialize)]
struct DeviceItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    device: Device,
}

fn device_key(user_id: &str, device_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (keys::PK.into(), AttributeValue::S(keys::user(user_id))),
        (keys::SK.into(), AttributeValue::S(keys::device(device_id))),
    ])
}

impl Table {
    pub async fn device(&self, user_id: &str, device_id: &str) -> Result<Option<Device>, Error> {
        let item: Option<DeviceItem> = self
            .get(keys::user(user_id), keys::device(device_id))
            .await?;
        Ok(item.map(|i| i.device))
    }

    pub async fn put_device(&self, device: &Device) -> Result<(), Error> {
        let item = serde_dynamo::to_item(DeviceItem {
            pk: keys::user(&device.user_id),
            sk: keys::device(&device.device_id),
            device: device.clone(),
        })
        .map_err(Error::internal)?;
        self.client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    pub async fn delete_device(&self, user_id: &str, device_id: &str) -> Result<(), Error> {
        self.client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(device_key(user_id, device_id)))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Claims the ready push of `media_id` to `device_id`: false if it was
    /// already sent (a redelivered stream record). Marks expire after a day,
    /// far beyond the stream's retry window.
    pub async fn claim_ready_push(
        &self,
        user_id: &str,
        media_id: &str,
        device_id: &str,
    ) -> Result<bool, Error> {
        let expires_at = Utc::now().timestamp() + 24 * 60 * 60;
        aws::conditional(
            self.client()
                .put_item()
                .table_name(self.name())
                .item(keys::PK, AttributeValue::S(keys::user(user_id)))
                .item(
                    keys::SK,
                    AttributeValue::S(keys::pushed(media_id, device_id)),
                )
                .item("expiresAt", AttributeValue::N(expires_at.to_string()))
                .condition_expression("attribute_not_exists(PK)")
                .send()
                .await,
        )
    }

    /// Frees a claim whose push failed, so that the retry sends it.
    pub async fn release_ready_push(
        &self,
        user_id: &str,
        media_id: &str,
        device_id: &str,
    ) -> Result<(), Error> {
        self.client()
            .delete_item()
            .table_name(self.name())
            .key(keys::PK, AttributeValue::S(keys::user(user_id)))
            .key(
                keys::SK,
                AttributeValue::S(keys::pushed(media_id, device_id)),
            )
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Every device of a user.
    pub async fn devices(&self, user_id: &str) -> Result<Vec<Device>, Error> {
        let mut pages = self
            .client()
            .query()
            .table_name(self.name())
            .key_condition_expression("PK = :pk AND begins_with(SK, :device)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::user(user_id)))
            .expression_attribute_values(":device", AttributeValue::S(keys::device("")))
            .into_paginator()
            .items()
            .send();
        let mut devices = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(aws::classify)?;
            devices.push(
                serde_dynamo::from_item::<_, DeviceItem>(item)
                    .map_err(Error::internal)?
                    .device,
            );
        }
        Ok(devices)
    }
}
