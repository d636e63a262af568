//! What the scheduled janitor reads and deletes: a walk over the whole
//! table in bounded pages that resumes where the last run stopped, and the
//! conditional deletes that make each finding safe to act on twice.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::sync::{COMPACTED_BEFORE, COMPACTED_THROUGH, decode_record_at};
use super::{Item, Stored, Table, item_key, number};
use crate::keys::{self, ItemKey};
use crate::model::device::Device;
use crate::model::ids::{MediaId, Partition};
use crate::model::media::{Media, Status};
use crate::model::profile::Profile;
use crate::model::purge::Target;
use crate::model::space::Space;
use crate::sync::RecordKey;
use crate::sync::compaction::Compaction;
use crate::sync::merge::RecordState;
use crate::{Error, adapters::aws};

/// One item the janitor may have work for.
#[derive(Debug, Clone)]
pub enum Finding {
    /// A sync record, with the server time of its last write.
    Record {
        partition: Partition,
        key: RecordKey,
        state: RecordState,
        version: u64,
        updated_at_millis: i64,
    },
    /// A photo still waiting for its upload.
    Pending(Media),
    /// A registered phone, whose endpoint may have been disabled.
    Device(Device),
    /// An account or space marked deleted whose purge has not finished
    /// (or was never queued), with when it was marked.
    Unpurged {
        target: Target,
        deleted_at: DateTime<Utc>,
    },
}

/// One page of the walk.
#[derive(Debug, Default)]
pub struct ScanPage {
    pub findings: Vec<Finding>,
    /// Items read, whatever they were.
    pub scanned: usize,
    /// Where the next page starts; None when the walk reached the end.
    pub next: Option<ScanPosition>,
}

/// A key of the table, where a walk resumes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanPosition {
    #[serde(rename = "afterPK")]
    pub pk: String,
    #[serde(rename = "afterSK")]
    pub sk: String,
}

impl Table {
    /// Where the last run stopped; None to start from the beginning.
    pub async fn janitor_position(&self) -> Result<Option<ScanPosition>, Error> {
        let item: Option<Stored<ScanPosition>> = self.get(&ItemKey::JanitorPosition).await?;
        Ok(item.map(|stored| stored.value))
    }

    /// Remembers where the next run starts (None: from the beginning).
    pub async fn save_janitor_position(&self, next: Option<&ScanPosition>) -> Result<(), Error> {
        match next {
            Some(position) => {
                let item = Stored::item(&ItemKey::JanitorPosition, position, None)?;
                self.client
                    .put_item()
                    .table_name(&self.name)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(aws::classify)?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.name)
                    .set_key(Some(item_key(&ItemKey::JanitorPosition)))
                    .send()
                    .await
                    .map_err(aws::classify)?;
            }
        }
        Ok(())
    }

    /// Reads up to `limit` items after `after` (eventually consistent: a
    /// finding is acted on by a conditional write, never trusted as is).
    pub async fn scan_page(
        &self,
        after: Option<&ScanPosition>,
        limit: usize,
    ) -> Result<ScanPage, Error> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.name)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        if let Some(after) = after {
            scan = scan
                .exclusive_start_key(keys::PK, AttributeValue::S(after.pk.clone()))
                .exclusive_start_key(keys::SK, AttributeValue::S(after.sk.clone()));
        }
        let output = scan.send().await.map_err(aws::classify)?;
        let items = output.items.unwrap_or_default();
        let next = output.last_evaluated_key.and_then(|key| {
            let text = |name: &str| key.get(name)?.as_s().ok().cloned();
            Some(ScanPosition {
                pk: text(keys::PK)?,
                sk: text(keys::SK)?,
            })
        });
        Ok(ScanPage {
            scanned: items.len(),
            findings: items.into_iter().filter_map(finding).collect(),
            next,
        })
    }

    /// Records in the partition's counter item that `compaction` is about
    /// to happen. Each number only rises: a walk meets a partition's
    /// tombstones in key order, not version order, so a later page can
    /// announce a lower version than an earlier one did. A space that no
    /// longer has its item is left alone (its purge deletes the records).
    pub async fn announce_compaction(
        &self,
        partition: &Partition,
        compaction: Compaction,
    ) -> Result<(), Error> {
        let counter = match partition {
            Partition::User(user) => ItemKey::SyncVersion { user: user.clone() },
            Partition::Space(space) => ItemKey::Space {
                space: space.clone(),
            },
        };
        for (attribute, value) in [
            (COMPACTED_THROUGH, compaction.through),
            (COMPACTED_BEFORE, compaction.before),
        ] {
            let result = self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(item_key(&counter)))
                .update_expression("SET #a = :v")
                .condition_expression(
                    "attribute_exists(PK) AND (attribute_not_exists(#a) OR #a < :v)",
                )
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":v", number(value))
                .send()
                .await;
            aws::conditional(result)?;
        }
        Ok(())
    }

    /// Deletes a tombstone if it is still the version the janitor read
    /// (false if it was written again meanwhile).
    pub async fn compact_tombstone(
        &self,
        partition: &Partition,
        key: &RecordKey,
        version: u64,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&ItemKey::Record {
                partition: partition.clone(),
                collection: key.collection.clone(),
                record_id: key.record_id.clone(),
            })))
            .condition_expression("ver = :ver")
            .expression_attribute_values(":ver", number(version))
            .send()
            .await;
        aws::conditional(result)
    }

    /// Marks a deleted account's or space's purge finished: the janitor
    /// stops queueing it again. Nothing is marked if the marker is gone.
    pub async fn mark_purged(&self, target: &Target) -> Result<(), Error> {
        let marker = ItemKey::marker(&target.partition());
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&marker)))
            .update_expression("SET #purged = :now")
            .condition_expression("attribute_exists(deletedAt)")
            .expression_attribute_names("#purged", PURGED_AT)
            .expression_attribute_values(":now", AttributeValue::S(Utc::now().to_rfc3339()))
            .send()
            .await;
        aws::conditional(result).map(|_| ())
    }

    /// Deletes a media item only while it is still pending (an upload
    /// processed meanwhile stays); false if it was not.
    pub async fn delete_pending_media(
        &self,
        partition: &Partition,
        media_id: &MediaId,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&ItemKey::Media {
                partition: partition.clone(),
                media_id: media_id.clone(),
            })))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":pending",
                AttributeValue::S(Status::Pending.as_str().into()),
            )
            .send()
            .await;
        let deleted = aws::conditional(result)?;
        if deleted && matches!(partition, Partition::Space(_)) {
            self.forget_media_location(media_id).await?;
        }
        Ok(deleted)
    }
}

/// On a deletion marker: when its purge finished.
const PURGED_AT: &str = "purgedAt";

/// What an item is to the janitor; None for the items it has no work for.
fn finding(item: Item) -> Option<Finding> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let key = ItemKey::parse(text(keys::PK)?, text(keys::SK)?)?;
    match key {
        ItemKey::Record { partition, .. } => {
            let (key, state, version, updated_at_millis) = decode_record_at(item)?;
            Some(Finding::Record {
                partition,
                key,
                state,
                version,
                updated_at_millis,
            })
        }
        ItemKey::Media { .. } => serde_dynamo::from_item::<_, Stored<Media>>(item)
            .ok()
            .map(|stored| stored.value)
            .filter(|media| media.status == Status::Pending)
            .map(Finding::Pending),
        ItemKey::Device { .. } => serde_dynamo::from_item::<_, Stored<Device>>(item)
            .ok()
            .map(|stored| Finding::Device(stored.value)),
        _ if item.contains_key(PURGED_AT) => None,
        ItemKey::Profile { user } => {
            let profile = serde_dynamo::from_item::<_, Stored<Profile>>(item)
                .ok()?
                .value;
            Some(Finding::Unpurged {
                target: Target::Account { user_id: user },
                deleted_at: DateTime::from_timestamp(profile.deleted_at?, 0)?,
            })
        }
        ItemKey::Space { space } => {
            let deleted_at = serde_dynamo::from_item::<_, Stored<Space>>(item)
                .ok()?
                .value
                .deleted_at?;
            Some(Finding::Unpurged {
                target: Target::Space { space_id: space },
                deleted_at,
            })
        }
        _ => None,
    }
}
