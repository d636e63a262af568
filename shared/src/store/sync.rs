//! Sync records, the user's version counter and client watermarks. Reads
//! are one consistent `BatchGetItem`; each chunk is one `TransactWriteItems`
//! with optimistic conditions, retried from a fresh read when another push
//! won the race.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use super::{Item, Table, item_key, number};
use crate::keys::{self, ItemKey};
use crate::sync::merge::RecordState;
use crate::sync::{Change, Chunk, Mutation, Pushed, RECORDS_PER_CHUNK, RecordKey, plan, unapplied};
use crate::{Error, aws};

/// A sync record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    gsi1pk: String,
    #[serde(rename = "GSI1SK")]
    gsi1sk: u64,
    collection: String,
    #[serde(rename = "recordId")]
    record_id: String,
    #[serde(flatten)]
    state: RecordState,
    ver: u64,
    /// The client whose push wrote this version: the stream consumer pokes
    /// the user's other devices, not this one.
    origin: String,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
}

/// What the store read before planning a push.
#[derive(Debug, Default)]
struct Snapshot {
    watermark: u64,
    version: u64,
    records: BTreeMap<RecordKey, (RecordState, u64)>,
}

/// A push that lost a race: re-read and try again. Races are per user (its
/// devices pushing at once), so a few spaced retries settle them.
const ATTEMPTS: u32 = 8;

/// "Full jitter" exponential backoff: a random wait below 20 ms x 2^attempt,
/// capped at 1 s, so that racing devices spread out instead of colliding
/// again. Seven waits: at most 3.24 s in all, about half that on average.
fn backoff(attempt: u32) -> std::time::Duration {
    let cap = (20u64 << attempt.min(6)).min(1000);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    std::time::Duration::from_millis(noise % cap)
}

impl Table {
    /// Applies a validated push exactly once.
    pub async fn push_mutations(
        &self,
        user: &str,
        client_id: &str,
        mutations: Vec<Mutation>,
    ) -> Result<Pushed, Error> {
        let keys: BTreeSet<RecordKey> = mutations.iter().map(|m| m.key.clone()).collect();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let mut snapshot = self.snapshot(user, client_id, &keys).await?;
            let fresh = unapplied(mutations.clone(), snapshot.watermark)?;
            if fresh.is_empty() {
                return Ok(Pushed {
                    watermark: snapshot.watermark,
                    ..Pushed::default()
                });
            }
            let current = snapshot
                .records
                .iter()
                .map(|(key, (state, _))| (key.clone(), state.clone()))
                .collect();
            let mut lost_race = false;
            let mut superseded = 0;
            for chunk in plan(&current, &fresh, RECORDS_PER_CHUNK) {
                if !self.commit(user, client_id, &mut snapshot, &chunk).await? {
                    lost_race = true;
                    break;
                }
                superseded += chunk.superseded;
            }
            if !lost_race {
                return Ok(Pushed {
                    watermark: snapshot.watermark,
                    applied: fresh.len(),
                    superseded,
                });
            }
            tracing::info!(attempt, "sync push lost a race; retrying from a fresh read");
        }
        Err(Error::unavailable(std::io::Error::other(
            "sync push kept conflicting with concurrent pushes",
        )))
    }

    /// Reads the watermark, the version counter and the current records.
    async fn snapshot(
        &self,
        user: &str,
        client_id: &str,
        records: &BTreeSet<RecordKey>,
    ) -> Result<Snapshot, Error> {
        let mut wanted: Vec<Item> = vec![
            item_key(&version_key(user)),
            item_key(&watermark_key(user, client_id)),
        ];
        wanted.extend(records.iter().map(|r| item_key(&record_key(user, r))));
        let mut snapshot = Snapshot::default();
        for batch in wanted.chunks(100) {
            let mut pending = batch.to_vec();
            for round in 0..8u32 {
                if pending.is_empty() {
                    break;
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << round)).await;
                }
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(
                        &self.name,
                        KeysAndAttributes::builder()
                            .set_keys(Some(std::mem::take(&mut pending)))
                            .consistent_read(true)
                            .build()
                            .map_err(Error::internal)?,
                    )
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(aws::classify)?;
                self.usage.add_call(output.consumed_capacity());
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.name))
                    .unwrap_or_default()
                {
                    read_into(&mut snapshot, item)?;
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.name))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(Error::unavailable(std::io::Error::other(
                    "BatchGetItem kept keys unprocessed",
                )));
            }
        }
        Ok(snapshot)
    }

    /// Commits one chunk; false if a condition failed (a concurrent push).
    async fn commit(
        &self,
        user: &str,
        client_id: &str,
        snapshot: &mut Snapshot,
        chunk: &Chunk,
    ) -> Result<bool, Error> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut items = Vec::with_capacity(chunk.changed.len() + 2);
        let mut version = snapshot.version;
        let mut written = Vec::with_capacity(chunk.changed.len());
        for (record, state) in &chunk.changed {
            version += 1;
            let item = RecordItem {
                pk: record_key(user, record).pk(),
                sk: record_key(user, record).sk(),
                gsi1pk: keys::user_partition(user),
                gsi1sk: version,
                collection: record.collection.clone(),
                record_id: record.record_id.clone(),
                state: state.clone(),
                ver: version,
                origin: client_id.to_string(),
                updated_at: now,
            };
            let mut put = Put::builder()
                .table_name(&self.name)
                .set_item(Some(serde_dynamo::to_item(&item).map_err(Error::internal)?));
            put = match snapshot.records.get(record) {
                Some((_, stored_version)) => put
                    .condition_expression("ver = :stored")
                    .expression_attribute_values(":stored", number(*stored_version)),
                None => put.condition_expression("attribute_not_exists(PK)"),
            };
            items.push(
                TransactWriteItem::builder()
                    .put(put.build().map_err(Error::internal)?)
                    .build(),
            );
            written.push((record.clone(), state.clone(), version));
        }
        if version != snapshot.version {
            items.push(counter_update(
                &self.name,
                item_key(&version_key(user)),
                "ver",
                snapshot.version,
                version,
            )?);
        }
        items.push(counter_update(
            &self.name,
            item_key(&watermark_key(user, client_id)),
            "lastMutationId",
            snapshot.watermark,
            chunk.last_mutation_id,
        )?);

        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.usage.add_call(output.consumed_capacity());
            }
            Err(err) if aws::error_code(&err) == Some("TransactionCanceledException") => {
                self.usage.add(None);
                let conflict = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
                        canceled.cancellation_reasons().iter().any(|r| {
                            matches!(
                                r.code(),
                                Some("ConditionalCheckFailed" | "TransactionConflict")
                            )
                        })
                    }
                    _ => false,
                };
                if conflict {
                    return Ok(false);
                }
                return Err(aws::classify(err));
            }
            Err(err) => return Err(aws::classify(err)),
        }
        snapshot.version = version;
        snapshot.watermark = chunk.last_mutation_id;
        for (record, state, version) in written {
            snapshot.records.insert(record, (state, version));
        }
        Ok(true)
    }

    /// Changes after `after_version`, oldest first, and whether more follow.
    pub async fn changes_since(
        &self,
        user: &str,
        after_version: u64,
        limit: i32,
    ) -> Result<(Vec<Change>, bool), Error> {
        let output = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(keys::GSI1)
            .key_condition_expression("GSI1PK = :user AND GSI1SK > :after")
            .expression_attribute_values(":user", AttributeValue::S(keys::user_partition(user)))
            .expression_attribute_values(":after", number(after_version))
            .scan_index_forward(true)
            .limit(limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(aws::classify)?;
        self.usage
            .add(output.consumed_capacity().and_then(|c| c.capacity_units()));
        let has_more = output.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let changes = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let record: RecordItem = serde_dynamo::from_item(item).map_err(Error::internal)?;
                Ok(Change {
                    deleted: record.state.is_deleted(),
                    fields: record.state.values(),
                    stamps: record.state.stamps(),
                    collection: record.collection,
                    record_id: record.record_id,
                    version: record.ver,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok((changes, has_more))
    }

    /// The last mutation id applied for a client (0 if none).
    pub async fn watermark(&self, user: &str, client_id: &str) -> Result<u64, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(item_key(&watermark_key(user, client_id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(output
            .item
            .as_ref()
            .and_then(|item| item.get("lastMutationId"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

fn version_key(user: &str) -> ItemKey {
    ItemKey::SyncVersion { user: user.into() }
}

fn watermark_key(user: &str, client_id: &str) -> ItemKey {
    ItemKey::Client {
        user: user.into(),
        client_id: client_id.into(),
    }
}

fn record_key(user: &str, record: &RecordKey) -> ItemKey {
    ItemKey::Record {
        user: user.into(),
        collection: record.collection.clone(),
        record_id: record.record_id.clone(),
    }
}

/// Moves a counter from `from` to `to`, only if it still holds `from`.
fn counter_update(
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

fn read_into(snapshot: &mut Snapshot, item: Item) -> Result<(), Error> {
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
        Some(ItemKey::Client { .. }) => snapshot.watermark = number_of("lastMutationId"),
        Some(ItemKey::Record { .. }) => {
            let record: RecordItem = serde_dynamo::from_item(item).map_err(Error::internal)?;
            snapshot.records.insert(
                RecordKey {
                    collection: record.collection,
                    record_id: record.record_id,
                },
                (record.state, record.ver),
            );
        }
        other => {
            return Err(Error::internal(format!(
                "sync read an item it did not ask for: {other:?}"
            )));
        }
    }
    Ok(())
}
