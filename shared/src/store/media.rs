//! Media items: an upload's life from `pending` to `ready` or `failed`.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};

use super::sync::{ATTEMPTS, backoff};
use super::{Ended, Stored, Table, ended, item_key, number};
use crate::keys::{self, ItemKey};
use crate::model::ids::{MediaId, Partition, SpaceId};
use crate::model::media::{Media, PENDING_TTL_SECONDS, Status};
use crate::model::quota::{self, Holdings};
use crate::{Error, adapters::aws};

/// What marking a photo ready did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readied {
    Ready,
    /// Deleted, or processed by a concurrent delivery, meanwhile.
    NotPending,
    /// Its partition already holds its quota of photos or photo bytes.
    OverQuota,
}

/// A page of media, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Media>,
    /// The last media id of this page when more follow.
    pub next: Option<MediaId>,
}

fn media_key(partition: &Partition, media_id: &MediaId) -> ItemKey {
    ItemKey::Media {
        partition: partition.clone(),
        media_id: media_id.clone(),
    }
}

/// Where a space's photo is found by its id alone.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    space_id: SpaceId,
}

impl Table {
    /// A new pending item (and, for a space's photo, where to find it by
    /// its id), expiring with the upload window unless it gets processed.
    pub async fn put_pending_media(&self, media: &Media) -> Result<(), Error> {
        let key = media_key(&media.partition(), &media.media_id);
        let expires_at = media.created_at.timestamp() + PENDING_TTL_SECONDS;
        if let Some(space) = &media.space_id {
            let location = Location {
                space_id: space.clone(),
            };
            let at = ItemKey::MediaLocation {
                media_id: media.media_id.clone(),
            };
            self.client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(Stored::item(&at, location, None)?))
                .send()
                .await
                .map_err(aws::classify)?;
        }
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(Stored::item(&key, media, Some(expires_at))?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    pub async fn media(
        &self,
        partition: &Partition,
        media_id: &MediaId,
    ) -> Result<Option<Media>, Error> {
        let item: Option<Stored<Media>> = self.get(&media_key(partition, media_id)).await?;
        Ok(item.map(|stored| stored.value))
    }

    /// The space a photo id belongs to, if it is a space's.
    pub async fn media_space(&self, media_id: &MediaId) -> Result<Option<SpaceId>, Error> {
        let at = ItemKey::MediaLocation {
            media_id: media_id.clone(),
        };
        let item: Option<Stored<Location>> = self.get(&at).await?;
        Ok(item.map(|stored| stored.value.space_id))
    }

    /// A partition's media, newest first (media ids are time-ordered
    /// UUIDv7).
    pub async fn list_media(
        &self,
        partition: &Partition,
        limit: i32,
        after: Option<&MediaId>,
    ) -> Result<Page, Error> {
        let mut query = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("PK = :pk AND begins_with(SK, :media)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::partition_key(partition)))
            .expression_attribute_values(":media", AttributeValue::S(keys::media_prefix().into()))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(after) = after {
            query = query.set_exclusive_start_key(Some(item_key(&media_key(partition, after))));
        }
        let output = query.send().await.map_err(aws::classify)?;
        // The next page starts after the last item read, decodable or not.
        let next = output
            .last_evaluated_key
            .as_ref()
            .and_then(|key| key.get(keys::SK)?.as_s().ok())
            .and_then(
                |sk| match ItemKey::parse(&keys::partition_key(partition), sk) {
                    Some(ItemKey::Media { media_id, .. }) => Some(media_id),
                    _ => None,
                },
            );
        let items = super::decode_each(output.items.unwrap_or_default(), "media item");
        Ok(Page { items, next })
    }

    /// Deletes the item (and where a space's photo was found); false if
    /// there was none. A ready photo leaves its partition's count in the
    /// same transaction; the delete is conditioned on the status read, so
    /// a photo turning ready meanwhile is read again.
    pub async fn delete_media(
        &self,
        partition: &Partition,
        media_id: &MediaId,
    ) -> Result<bool, Error> {
        let key = item_key(&media_key(partition, media_id));
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let Some(media) = self.media(partition, media_id).await? else {
                return Ok(false);
            };
            let delete = Delete::builder()
                .table_name(&self.name)
                .set_key(Some(key.clone()))
                .condition_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":status",
                    AttributeValue::S(media.status.as_str().into()),
                )
                .build()
                .map_err(Error::internal)?;
            let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
            if media.status == Status::Ready {
                let uncount = Update::builder()
                    .table_name(&self.name)
                    .set_key(Some(item_key(&ItemKey::counter(partition))))
                    .update_expression("ADD photos :minus, photoBytes :bytes")
                    .expression_attribute_values(":minus", number(-1))
                    .expression_attribute_values(
                        ":bytes",
                        number(-i128::from(media.stored_bytes())),
                    )
                    .build()
                    .map_err(Error::internal)?;
                items.push(TransactWriteItem::builder().update(uncount).build());
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            // A failed condition: its status changed since it was read.
            if let Ended::Committed = ended(result)? {
                if matches!(partition, Partition::Space(_)) {
                    self.forget_media_location(media_id).await?;
                }
                return Ok(true);
            }
        }
        Err(contended())
    }

    /// Deletes where a space's photo was found by its id.
    pub(super) async fn forget_media_location(&self, media_id: &MediaId) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&ItemKey::MediaLocation {
                media_id: media_id.clone(),
            })))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// What `partition` holds, as its counter item counts it.
    pub async fn holdings(&self, partition: &Partition) -> Result<Holdings, Error> {
        let held: Option<Holdings> = self.get(&ItemKey::counter(partition)).await?;
        Ok(held.unwrap_or_default())
    }

    /// 403 `quota_exceeded` if `partition` holds its quota of photos or
    /// of photo bytes: checked when an upload is asked for, so that a
    /// client learns it before sending the bytes.
    pub async fn require_photo_room(&self, partition: &Partition) -> Result<(), Error> {
        let held = self.holdings(partition).await?;
        quota::check("photos", held.photos, self.quotas.photos_per_partition)?;
        quota::check(
            "photoBytes",
            held.photo_bytes,
            self.quotas.photo_bytes_per_partition,
        )
    }

    /// `pending -> ready`, only from pending (a redelivered event, or an
    /// item deleted meanwhile, changes nothing), counted in the partition's
    /// photos and photo bytes in the same transaction, only within its
    /// quotas: uploads asked for at once cannot together pass them.
    pub async fn mark_media_ready(&self, media: &Media) -> Result<Readied, Error> {
        let bytes = media.stored_bytes();
        let Some(room) = self.quotas.photo_bytes_per_partition.checked_sub(bytes) else {
            return Ok(Readied::OverQuota);
        };
        let variants =
            serde_dynamo::to_attribute_value(&media.variants).map_err(Error::internal)?;
        let item = Update::builder()
            .table_name(&self.name)
            .set_key(Some(item_key(&media_key(&media.partition(), &media.media_id))))
            .update_expression(
                "SET #status = :ready, width = :w, height = :h, bytes = :b, variants = :v, placeholder = :p REMOVE expiresAt",
            )
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ready", AttributeValue::S("ready".into()))
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .expression_attribute_values(":w", number(media.width.unwrap_or(0)))
            .expression_attribute_values(":h", number(media.height.unwrap_or(0)))
            .expression_attribute_values(":b", number(media.bytes))
            .expression_attribute_values(":v", variants)
            .expression_attribute_values(
                ":p",
                AttributeValue::S(media.placeholder.clone().unwrap_or_default()),
            )
            .build()
            .map_err(Error::internal)?;
        let counted = Update::builder()
            .table_name(&self.name)
            .set_key(Some(item_key(&ItemKey::counter(&media.partition()))))
            .update_expression("ADD photos :one, photoBytes :bytes")
            .condition_expression(
                "(attribute_not_exists(photos) OR photos < :photos) AND (attribute_not_exists(photoBytes) OR photoBytes <= :room)",
            )
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":bytes", number(bytes))
            .expression_attribute_values(":photos", number(self.quotas.photos_per_partition))
            .expression_attribute_values(":room", number(room))
            .build()
            .map_err(Error::internal)?;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(item.clone()).build())
                .transact_items(TransactWriteItem::builder().update(counted.clone()).build())
                .send()
                .await;
            match ended(result)? {
                Ended::Committed => return Ok(Readied::Ready),
                Ended::Failed(failed) if failed.first() == Some(&true) => {
                    return Ok(Readied::NotPending);
                }
                Ended::Failed(_) => return Ok(Readied::OverQuota),
                Ended::Conflict => continue,
            }
        }
        Err(contended())
    }

    /// `pending -> failed` with a reason a user can read.
    pub async fn mark_media_failed(
        &self,
        partition: &Partition,
        media_id: &MediaId,
        reason: &str,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&media_key(partition, media_id))))
            .update_expression("SET #status = :failed, failureReason = :reason REMOVE expiresAt")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .expression_attribute_values(":reason", AttributeValue::S(reason.into()))
            .send()
            .await;
        aws::conditional(result)
    }
}

/// A transaction that kept meeting others on its items.
fn contended() -> Error {
    Error::unavailable(std::io::Error::other(
        "the photo's partition kept changing; try again",
    ))
}
