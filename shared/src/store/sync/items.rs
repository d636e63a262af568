//! The items sync writes and reads, and their attribute names: records,
//! the partition's version counter, client watermarks.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::Snapshot;
use crate::Error;
use crate::keys::{self, ItemKey};
use crate::model::ids::{ClientId, Partition, UserId};
use crate::store::{Item, number};
use crate::sync::merge::RecordState;
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
    #[serde(rename = "updatedAt")]
    pub updated_at: i64,
}

pub(super) fn version_key(partition: &Partition) -> ItemKey {
    ItemKey::SyncVersion {
        partition: partition.clone(),
    }
}

pub(super) fn watermark_key(user: &UserId, client_id: &ClientId) -> ItemKey {
    ItemKey::Watermark {
        user: user.clone(),
        client_id: client_id.clone(),
    }
}

pub(super) fn record_key(partition: &Partition, record: &RecordKey) -> ItemKey {
    ItemKey::Record {
        partition: partition.clone(),
        collection: record.collection.clone(),
        record_id: record.record_id.clone(),
    }
}

/// Moves a counter from `from` to `to`, only if it still holds `from`.
pub(super) fn counter_update(
    table: &str,
    key: Item,
    attribute: &str,
    from: u64,
    to: u64,
) -> Result<TransactWriteItem, Error> {
    let condition = if from == 0 {
        "attribute_not_exists(#c) OR #c = :from"
    } else {
        "#c = :from"
    };
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression("SET #c = :to")
        .condition_expression(condition)
        .expression_attribute_names("#c", attribute)
        .expression_attribute_values(":from", number(from))
        .expression_attribute_values(":to", number(to))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// A stored record, read field by field: a field (or tombstone) that does
/// not decode is left out, so one damaged field never fails a page, a
/// push or a delete of the record (a write replaces it). None, logged, for
/// an item without its identity.
pub(super) fn decode_record(mut item: Item) -> Option<(RecordKey, RecordState, u64)> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
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
        collection,
        record_id,
    };
    Some((key, state, version))
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
        Some(ItemKey::SyncVersion { .. }) => snapshot.version = number_of("ver"),
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
