//! Device items, and the marks that keep a ready push from going out twice.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use super::{Stored, Table, item_key, number};
use crate::device::Device;
use crate::keys::{self, ItemKey};
use crate::{Error, aws};

fn device_key(user_id: &str, device_id: &str) -> ItemKey {
    ItemKey::Device {
        user: user_id.into(),
        device_id: device_id.into(),
    }
}

fn pushed_key(user_id: &str, media_id: &str, device_id: &str) -> ItemKey {
    ItemKey::Pushed {
        user: user_id.into(),
        media_id: media_id.into(),
        device_id: device_id.into(),
    }
}

impl Table {
    pub async fn device(&self, user_id: &str, device_id: &str) -> Result<Option<Device>, Error> {
        let item: Option<Stored<Device>> = self.get(&device_key(user_id, device_id)).await?;
        Ok(item.map(|stored| stored.value))
    }

    pub async fn put_device(&self, device: &Device) -> Result<(), Error> {
        let key = device_key(&device.user_id, &device.device_id);
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(Stored::item(&key, device, None)?))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    pub async fn delete_device(&self, user_id: &str, device_id: &str) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&device_key(user_id, device_id))))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Every device of a user.
    pub async fn devices(&self, user_id: &str) -> Result<Vec<Device>, Error> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("PK = :pk AND begins_with(SK, :device)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::user_partition(user_id)))
            .expression_attribute_values(":device", AttributeValue::S(keys::device_prefix().into()))
            .into_paginator()
            .items()
            .send();
        let mut devices = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(aws::classify)?;
            let stored: Stored<Device> = serde_dynamo::from_item(item).map_err(Error::internal)?;
            devices.push(stored.value);
        }
        Ok(devices)
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
        let mut item = item_key(&pushed_key(user_id, media_id, device_id));
        item.insert(super::EXPIRES_AT.into(), number(expires_at));
        aws::conditional(
            self.client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(item))
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
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&pushed_key(user_id, media_id, device_id))))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }
}
