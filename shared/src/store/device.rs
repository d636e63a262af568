//! Device items, and the marks that keep a ready push from going out twice.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use super::{Stored, Table, item_key, number};
use crate::keys::{self, ItemKey};
use crate::model::device::{Device, TokenOwner, token_hash};
use crate::model::ids::{DeviceId, MediaId, UserId};
use crate::{Error, adapters::aws};

fn device_key(user_id: &UserId, device_id: &DeviceId) -> ItemKey {
    ItemKey::Device {
        user: user_id.clone(),
        device_id: device_id.clone(),
    }
}

fn token_key(device: &Device) -> ItemKey {
    ItemKey::PushToken {
        token_hash: token_hash(device.platform, &device.token),
    }
}

fn pushed_key(user_id: &UserId, media_id: &MediaId, device_id: &DeviceId) -> ItemKey {
    ItemKey::Notified {
        user: user_id.clone(),
        media_id: media_id.clone(),
        device_id: device_id.clone(),
    }
}

impl Table {
    pub async fn device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<Option<Device>, Error> {
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

    pub async fn delete_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&device_key(user_id, device_id))))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// The device `device`'s push token is registered to, if any.
    pub async fn token_owner(&self, device: &Device) -> Result<Option<TokenOwner>, Error> {
        let item: Option<Stored<TokenOwner>> = self.get(&token_key(device)).await?;
        Ok(item.map(|stored| stored.value))
    }

    /// Registers `device` as its push token's one owner.
    pub async fn claim_token(&self, device: &Device) -> Result<(), Error> {
        let owner = TokenOwner {
            user_id: device.user_id.clone(),
            device_id: device.device_id.clone(),
        };
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(Stored::item(&token_key(device), &owner, None)?))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Forgets `device`'s claim on its token, unless another device holds
    /// the token by now.
    pub async fn release_token(&self, device: &Device) -> Result<(), Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&token_key(device))))
            .condition_expression("userId = :user AND deviceId = :device")
            .expression_attribute_values(":user", AttributeValue::S(device.user_id.to_string()))
            .expression_attribute_values(":device", AttributeValue::S(device.device_id.to_string()))
            .send()
            .await;
        aws::conditional(result).map(|_| ())
    }

    /// Deletes a device only if it still holds `token` (its user may have
    /// registered it again with another since).
    pub async fn delete_device_with_token(
        &self,
        owner: &TokenOwner,
        token: &str,
    ) -> Result<(), Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&device_key(
                &owner.user_id,
                &owner.device_id,
            ))))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", AttributeValue::S(token.into()))
            .send()
            .await;
        aws::conditional(result).map(|_| ())
    }

    /// Every device of a user.
    pub async fn devices(&self, user_id: &UserId) -> Result<Vec<Device>, Error> {
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
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(aws::classify)?);
        }
        Ok(super::decode_each(items, "device"))
    }

    /// Claims the ready push of `media_id` to `device_id`: false if it was
    /// already sent (a redelivered stream record). Marks expire after a day,
    /// far beyond the stream's retry window.
    pub async fn claim_ready_push(
        &self,
        user_id: &UserId,
        media_id: &MediaId,
        device_id: &DeviceId,
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
        user_id: &UserId,
        media_id: &MediaId,
        device_id: &DeviceId,
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
