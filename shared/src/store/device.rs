//! Device items, each user's index of them, and the marks that keep a
//! ready push from going out twice.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use super::{Item, Stored, Table, item_key, number};
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

fn index_key(user_id: &UserId) -> ItemKey {
    ItemKey::DeviceIndex {
        user: user_id.clone(),
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

    /// Writes the device, then adds it to its user's index (in that order,
    /// as connections: a reader drops an indexed id whose item it cannot
    /// find, so it must never find one half-made).
    pub async fn put_device(&self, device: &Device) -> Result<(), Error> {
        let key = device_key(&device.user_id, &device.device_id);
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(Stored::item(&key, device, None)?))
            .send()
            .await
            .map_err(aws::classify)?;
        self.change_id_set(
            &index_key(&device.user_id),
            "ADD",
            vec![device.device_id.to_string()],
        )
        .await
    }

    pub async fn delete_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&device_key(user_id, device_id))))
            .send()
            .await
            .map_err(aws::classify)?;
        self.unindex(user_id, vec![device_id.to_string()]).await
    }

    async fn unindex(&self, user_id: &UserId, ids: Vec<String>) -> Result<(), Error> {
        self.change_id_set(&index_key(user_id), "DELETE", ids).await
    }

    /// The devices of each of `users`, for a fan-out: their index items,
    /// then the devices they name, 100 to a `BatchGetItem` (a space of 200
    /// members is four calls, not 200 queries). A user whose index is not
    /// known complete (devices registered before the index existed) is
    /// queried once and their index completed. Ids whose item is gone are
    /// dropped from the index.
    pub async fn devices_of(
        &self,
        users: &[UserId],
    ) -> Result<BTreeMap<UserId, Vec<Device>>, Error> {
        let indexes = self
            .get_items(users.iter().map(|u| item_key(&index_key(u))).collect())
            .await?;
        let mut complete: BTreeMap<UserId, Vec<String>> = BTreeMap::new();
        for item in indexes {
            let user = item
                .get(keys::PK)
                .and_then(|pk| pk.as_s().ok())
                .and_then(|pk| keys::parse_user_partition(pk));
            let whole = item.get("complete").and_then(|c| c.as_bool().ok()) == Some(&true);
            if let (Some(user), true) = (user, whole) {
                let ids = item.get("ids").and_then(|ids| ids.as_ss().ok());
                complete.insert(user, ids.cloned().unwrap_or_default());
            }
        }
        let named: Vec<Item> = complete
            .iter()
            .flat_map(|(user, ids)| {
                ids.iter()
                    .filter_map(|id| Some(item_key(&device_key(user, &DeviceId::parse(id).ok()?))))
            })
            .collect();
        let found: Vec<Device> = super::decode_each(self.get_items(named).await?, "device");
        let mut by_user = super::by_user(found, |d: &Device| &d.user_id);
        for (user, ids) in &complete {
            let gone: Vec<String> = ids
                .iter()
                .filter(|id| {
                    !by_user
                        .get(user)
                        .is_some_and(|d| d.iter().any(|d| d.device_id.as_str() == id.as_str()))
                })
                .cloned()
                .collect();
            if !gone.is_empty() {
                self.unindex(user, gone).await?;
            }
        }
        for user in users.iter().filter(|u| !complete.contains_key(*u)) {
            let devices = self.devices(user).await?;
            self.complete_index(user, &devices).await?;
            by_user.insert(user.clone(), devices);
        }
        Ok(by_user)
    }

    /// Marks a user's index complete with the devices a query found (added
    /// to what registrations meanwhile added).
    async fn complete_index(&self, user_id: &UserId, devices: &[Device]) -> Result<(), Error> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&index_key(user_id))))
            .expression_attribute_values(":complete", AttributeValue::Bool(true));
        update = if devices.is_empty() {
            update.update_expression("SET complete = :complete")
        } else {
            update
                .update_expression("SET complete = :complete ADD ids :ids")
                .expression_attribute_values(
                    ":ids",
                    AttributeValue::Ss(devices.iter().map(|d| d.device_id.to_string()).collect()),
                )
        };
        update.send().await.map_err(aws::classify)?;
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
        if aws::conditional(result)? {
            self.unindex(&owner.user_id, vec![owner.device_id.to_string()])
                .await?;
        }
        Ok(())
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
