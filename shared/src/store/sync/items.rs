//! The items sync writes and reads, and their attribute names: records,
//! the partition's version counter, client watermarks.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::Snapshot;
use crate::Error;
use crate::keys::{self, ItemKey};
use crate::model::access::Role;
use crate::model::ids::{ClientId, Partition, SpaceId, UserId};
use crate::store::{Item, number};
use crate::sync::compaction::Compaction;
use crate::sync::merge::RecordState;
use crate::sync::spaces::SpaceHead;
use crate::sync::{RecordKey, Rejected};

/// A sync record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RecordItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub collection: String,
    #[serde(rename = "recordId")]
    pub record_id: String,
    #[serde(flatten)]
    pub state: RecordState,
    pub ver: u64,
    /// The sort key of the `Feed` index: the version again, on sync
    /// records only (the counter item's `ver` must not enter the index).
    #[serde(rename = "feedVer")]
    pub feed_version: u64,
    /// The client whose push wrote this version: the stream consumer pokes
    /// the user's other devices, not this one.
    pub origin: String,
    /// The user of that client: in a space, every member but that device
    /// is poked.
    #[serde(rename = "originUser")]
    pub origin_user: UserId,
    #[serde(rename = "updatedAt")]
    pub updated_at: i64,
}

/// The item holding a partition's version counter: the user's own
/// counter, or the space's own item.
pub(super) fn version_key(holder: &UserId, space: Option<&SpaceId>) -> ItemKey {
    ItemKey::counter(&match space {
        None => Partition::User(holder.clone()),
        Some(space) => Partition::Space(space.clone()),
    })
}

pub(super) fn watermark_key(user: &UserId, client_id: &ClientId) -> ItemKey {
    ItemKey::Watermark {
        user: user.clone(),
        client_id: client_id.clone(),
    }
}

pub(super) fn record_key(holder: &UserId, record: &RecordKey) -> ItemKey {
    ItemKey::Record {
        partition: record.partition(holder),
        collection: record.collection.clone(),
        record_id: record.record_id.clone(),
    }
}

/// Moves a counter from `from` to `to`, only if it still holds `from`.
pub(super) fn counter_update(
    table: &str,
    key: Item,
    from: u64,
    to: u64,
    records: u64,
) -> Result<TransactWriteItem, Error> {
    let condition = if from == 0 {
        "attribute_not_exists(ver) OR ver = :from"
    } else {
        "ver = :from"
    };
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression("SET ver = :to, #records = :records")
        .condition_expression(condition)
        .expression_attribute_names("#records", RECORDS)
        .expression_attribute_values(":from", number(from))
        .expression_attribute_values(":to", number(to))
        .expression_attribute_values(":records", number(records))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Moves a space's counter from `from` to `to`, only if it still holds
/// `from` and the space exists and was not deleted: a push racing the
/// deletion loses, and its retry rejects what it carried.
pub(super) fn space_counter_update(
    table: &str,
    key: Item,
    from: u64,
    to: u64,
    records: u64,
) -> Result<TransactWriteItem, Error> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression("SET ver = :to, #records = :records")
        .condition_expression(
            "attribute_exists(PK) AND attribute_not_exists(deletedAt) AND (attribute_not_exists(ver) OR ver = :from)",
        )
        .expression_attribute_names("#records", RECORDS)
        .expression_attribute_values(":from", number(from))
        .expression_attribute_values(":to", number(to))
        .expression_attribute_values(":records", number(records))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Holds the transaction to the writer still being an owner or editor of
/// the space: a removal or a demotion committed first cancels it.
pub(super) fn member_may_write(table: &str, key: Item) -> Result<TransactWriteItem, Error> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression("#role IN (:owner, :editor)")
        .expression_attribute_names("#role", "role")
        .expression_attribute_values(":owner", AttributeValue::S(Role::Owner.as_str().into()))
        .expression_attribute_values(":editor", AttributeValue::S(Role::Editor.as_str().into()))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// The counter item's count of the partition's live records.
pub(in crate::store) const RECORDS: &str = "records";

/// Attribute names of the compaction a counter item records.
pub(in crate::store) const COMPACTED_THROUGH: &str = "compactedThrough";
pub(in crate::store) const COMPACTED_BEFORE: &str = "compactedBefore";

/// The compaction recorded in a counter item (none yet: the default).
pub(in crate::store) fn compaction_of(item: &Item) -> Compaction {
    let number_of = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Compaction {
        through: number_of(COMPACTED_THROUGH),
        before: number_of(COMPACTED_BEFORE),
    }
}

/// A space's item as a pull reads it: name, counter, deletion.
pub(super) fn decode_space_head(item: &Item) -> Option<(SpaceId, SpaceHead)> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let Some(ItemKey::Space { space }) = ItemKey::parse(text(keys::PK)?, text(keys::SK)?) else {
        return None;
    };
    let number_of = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let head = SpaceHead {
        name: text("name").cloned().unwrap_or_default(),
        name_version: number_of("nameVersion"),
        version: number_of("ver"),
        deleted: item.contains_key("deletedAt"),
        compaction: compaction_of(item),
    };
    Some((space, head))
}

/// A stored record, read field by field: a field (or tombstone) that does
/// not decode is left out, so one damaged field never fails a page, a
/// push or a delete of the record (a write replaces it). None, logged, for
/// an item without its identity.
pub(super) fn decode_record(mut item: Item) -> Option<(RecordKey, RecordState, u64)> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let space = match text(keys::PK).as_deref().and_then(keys::parse_partition) {
        Some(Partition::Space(space)) => Some(space),
        _ => None,
    };
    let identity = text("collection").zip(text("recordId")).zip(
        item.get("ver")
            .and_then(|v| v.as_n().ok()?.parse::<u64>().ok()),
    );
    let Some(((collection, record_id), version)) = identity else {
        tracing::error!(pk = ?text(keys::PK), sk = ?text(keys::SK), "a sync record without collection, recordId or ver was skipped");
        return None;
    };
    let deleted_at = text("deletedAt").and_then(|raw| crate::sync::hlc::Hlc::parse(&raw).ok());
    let mut state = RecordState {
        deleted_at,
        ..RecordState::default()
    };
    if let Some(AttributeValue::M(fields)) = item.remove("fields") {
        for (name, value) in fields {
            match serde_dynamo::from_attribute_value(value) {
                Ok(field) => {
                    state.fields.insert(name, field);
                }
                Err(err) => {
                    tracing::error!(%collection, %record_id, field = %name, error = %err, "a stored field that does not decode was left out")
                }
            }
        }
    }
    let key = RecordKey {
        space,
        collection,
        record_id,
    };
    Some((key, state, version))
}

/// A stored record with the server time (Unix millis) of its last write.
pub(in crate::store) fn decode_record_at(item: Item) -> Option<(RecordKey, RecordState, u64, i64)> {
    let updated_at = item
        .get("updatedAt")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0);
    let (key, state, version) = decode_record(item)?;
    Some((key, state, version, updated_at))
}

/// Moves a client's watermark from `from` to `to`, only if it still holds
/// `from`, and keeps `rejected` beside it.
pub(super) fn watermark_update(
    table: &str,
    key: Item,
    from: u64,
    to: u64,
    rejected: &[Rejected],
) -> Result<TransactWriteItem, Error> {
    let condition = if from == 0 {
        "attribute_not_exists(lastMutationId) OR lastMutationId = :from"
    } else {
        "lastMutationId = :from"
    };
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression("SET lastMutationId = :to, rejected = :rejected")
        .condition_expression(condition)
        .expression_attribute_values(":from", number(from))
        .expression_attribute_values(":to", number(to))
        .expression_attribute_values(
            ":rejected",
            serde_dynamo::to_attribute_value(rejected).map_err(Error::internal)?,
        )
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

pub(super) fn read_into(snapshot: &mut Snapshot, item: Item) -> Result<(), Error> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    let number_of = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    match ItemKey::parse(text(keys::PK).unwrap_or(""), text(keys::SK).unwrap_or("")) {
        Some(ItemKey::SyncVersion { .. }) => {
            snapshot.versions.insert(None, number_of("ver"));
            snapshot.live.insert(None, number_of(RECORDS));
            snapshot.compactions.insert(None, compaction_of(&item));
        }
        Some(ItemKey::Space { space }) => {
            // A deleted space takes no writes: it has no counter to move.
            if !item.contains_key("deletedAt") {
                snapshot
                    .versions
                    .insert(Some(space.clone()), number_of("ver"));
                snapshot
                    .live
                    .insert(Some(space.clone()), number_of(RECORDS));
                snapshot
                    .compactions
                    .insert(Some(space), compaction_of(&item));
            }
        }
        Some(ItemKey::Member { space, .. }) => {
            if let Some(role) = text("role").and_then(|r| {
                serde_json::from_value::<Role>(serde_json::Value::String(r.into())).ok()
            }) {
                snapshot.roles.insert(space, role);
            }
        }
        Some(ItemKey::Watermark { .. }) => {
            snapshot.watermark = number_of("lastMutationId");
            // Written by this module only; an unreadable list is dropped
            // rather than failing every push of the device.
            snapshot.rejected = item
                .get("rejected")
                .and_then(|list| serde_dynamo::from_attribute_value(list.clone()).ok())
                .unwrap_or_default();
        }
        Some(ItemKey::Record { .. }) => {
            if let Some((key, state, version)) = decode_record(item) {
                snapshot.records.insert(key, (state, version));
            }
        }
        other => {
            return Err(Error::internal(format!(
                "sync read an item it did not ask for: {other:?}"
            )));
        }
    }
    Ok(())
}
