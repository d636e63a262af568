//! Sync records and their partition's version counter, and the client
//! watermarks in the pushing user's partition. A push reads with one consistent
//! `BatchGetItem` and commits each chunk with one `TransactWriteItems`
//! under optimistic conditions, retried from a fresh read when another push
//! won the race. A pull reads the change feed, the `Feed` local secondary
//! index on `feedVer`, with `ConsistentRead`: unlike a global index it
//! never shows a later version before an earlier one.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnConsumedCapacity, TransactWriteItem,
};

mod items;

use items::{RecordItem, decode_record, read_into, record_key, version_key, watermark_key};
use items::{counter_update, watermark_update};

use super::{Item, Table, item_key, number};
use crate::keys;
use crate::model::access::Grant;
use crate::model::ids::{ClientId, Partition, UserId};
use crate::sync::merge::RecordState;
use crate::sync::store::SyncStore;
use crate::sync::{
    Change, Chunk, FeedPage, Mutation, PushOutcome, RECORDS_PER_CHUNK, RecordKey, Rejected, plan,
    rejections_within, unapplied,
};
use crate::{Error, adapters::aws};

/// What the store read before planning a push.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    watermark: u64,
    /// The rejections kept beside the watermark.
    rejected: Vec<Rejected>,
    version: u64,
    records: BTreeMap<RecordKey, (RecordState, u64)>,
}

/// A push that lost a race: re-read and try again. Races are per user (its
/// devices pushing at once), so a few spaced retries settle them.
pub(super) const ATTEMPTS: u32 = 8;

/// "Full jitter" exponential backoff: a random wait below 20 ms x 2^attempt,
/// capped at 1 s, so that racing devices spread out instead of colliding
/// again. Seven waits: at most 3.24 s in all, about half that on average.
pub(super) fn backoff(attempt: u32) -> std::time::Duration {
    let cap = (20u64 << attempt.min(6)).min(1000);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    std::time::Duration::from_millis(noise % cap)
}

/// Who writes a partition's records: a client's push moves the client's
/// watermark (in the pusher's own partition) with each chunk; a tool an
/// operator runs moves none.
#[derive(Clone, Copy)]
pub(super) struct Writer<'a> {
    pub partition: &'a Partition,
    pub client: Option<(&'a UserId, &'a ClientId)>,
}

impl Writer<'_> {
    /// What the stream consumers read as the change's origin: the pushing
    /// app is not poked for its own change.
    fn origin(&self) -> &str {
        self.client
            .map_or("operator", |(_, client)| client.as_str())
    }
}

impl Table {
    /// Commits chunks in order; false if one lost a race.
    pub(super) async fn commit_all(
        &self,
        writer: Writer<'_>,
        snapshot: &mut Snapshot,
        chunks: &[Chunk],
    ) -> Result<bool, Error> {
        for chunk in chunks {
            if !self.commit(writer, snapshot, chunk).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the watermark, the version counter and the current records.
    pub(super) async fn snapshot(
        &self,
        writer: Writer<'_>,
        records: &BTreeSet<RecordKey>,
    ) -> Result<Snapshot, Error> {
        let mut wanted: Vec<Item> = vec![item_key(&version_key(writer.partition))];
        if let Some((user, client_id)) = writer.client {
            wanted.push(item_key(&watermark_key(user, client_id)));
        }
        wanted.extend(
            records
                .iter()
                .map(|r| item_key(&record_key(writer.partition, r))),
        );
        let mut snapshot = Snapshot::default();
        for item in self.get_consistent(wanted).await? {
            read_into(&mut snapshot, item)?;
        }
        Ok(snapshot)
    }

    /// Items by key, with consistent `BatchGetItem`s of at most 100 keys,
    /// until none is left unprocessed.
    async fn get_consistent(&self, keys: Vec<Item>) -> Result<Vec<Item>, Error> {
        let mut found = Vec::with_capacity(keys.len());
        for batch in keys.chunks(100) {
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
                found.extend(
                    output
                        .responses
                        .and_then(|mut r| r.remove(&self.name))
                        .unwrap_or_default(),
                );
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
        Ok(found)
    }

    /// Commits one chunk; false if a condition failed (a concurrent push).
    async fn commit(
        &self,
        writer: Writer<'_>,
        snapshot: &mut Snapshot,
        chunk: &Chunk,
    ) -> Result<bool, Error> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut items = Vec::with_capacity(chunk.changed.len() + 2);
        let mut version = snapshot.version;
        let mut written = Vec::with_capacity(chunk.changed.len());
        for (record, state) in &chunk.changed {
            version += 1;
            let key = record_key(writer.partition, record);
            let item = RecordItem {
                pk: key.pk(),
                sk: key.sk(),
                collection: record.collection.clone(),
                record_id: record.record_id.clone(),
                state: state.clone(),
                ver: version,
                feed_version: version,
                origin: writer.origin().to_string(),
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
                item_key(&version_key(writer.partition)),
                "ver",
                snapshot.version,
                version,
            )?);
        }
        let mut rejected = snapshot.rejected.clone();
        rejected.extend(chunk.rejected.iter().cloned());
        if let Some((user, client_id)) = writer.client {
            items.push(watermark_update(
                &self.name,
                item_key(&watermark_key(user, client_id)),
                snapshot.watermark,
                chunk.last_mutation_id,
                &rejected,
            )?);
        }
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
        if writer.client.is_some() {
            snapshot.watermark = chunk.last_mutation_id;
            snapshot.rejected = rejected;
        }
        for (record, state, version) in written {
            snapshot.records.insert(record, (state, version));
        }
        Ok(true)
    }
}

impl SyncStore for Table {
    /// Applies a validated push exactly once.
    async fn push(
        &self,
        grant: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> Result<PushOutcome, Error> {
        let keys: BTreeSet<RecordKey> = mutations.iter().map(|m| m.key.clone()).collect();
        let writer = Writer {
            partition: grant.partition(),
            client: Some((grant.holder(), client_id)),
        };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let mut snapshot = self.snapshot(writer, &keys).await?;
            let fresh = unapplied(mutations.clone(), snapshot.watermark)?;
            snapshot.rejected = rejections_within(&snapshot.rejected, &mutations);
            if fresh.is_empty() {
                return Ok(PushOutcome {
                    watermark: snapshot.watermark,
                    rejected: snapshot.rejected,
                    ..PushOutcome::default()
                });
            }
            let chunks = plan(&snapshot.states(), &fresh, RECORDS_PER_CHUNK);
            if self.commit_all(writer, &mut snapshot, &chunks).await? {
                return Ok(PushOutcome {
                    watermark: snapshot.watermark,
                    applied: fresh.len(),
                    superseded: chunks.iter().map(|c| c.superseded).sum(),
                    rejected: snapshot.rejected,
                });
            }
            tracing::info!(attempt, "sync push lost a race; retrying from a fresh read");
        }
        Err(Error::unavailable(std::io::Error::other(
            "sync push kept conflicting with concurrent pushes",
        )))
    }

    /// The partition's changes after version `after`, oldest first, at most
    /// `limit`, with the client's watermark.
    ///
    /// One consistent `BatchGetItem` reads the counter and the watermark,
    /// then one consistent query of the `Feed` index reads the versions in
    /// `(after, counter]`. Every version up to the counter belongs to a
    /// committed transaction (the counter moves in the same transaction as
    /// its records), so the page never holds a version whose predecessors
    /// could still appear: the cursor never passes a change.
    async fn pull(
        &self,
        grant: &Grant,
        client_id: &ClientId,
        after: u64,
        limit: usize,
    ) -> Result<FeedPage, Error> {
        let mut head = Snapshot::default();
        let keys = vec![
            item_key(&version_key(grant.partition())),
            item_key(&watermark_key(grant.holder(), client_id)),
        ];
        for item in self.get_consistent(keys).await? {
            read_into(&mut head, item)?;
        }
        if head.version <= after {
            return Ok(FeedPage {
                changes: Vec::new(),
                has_more: false,
                watermark: head.watermark,
                version: head.version,
            });
        }
        let output = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(keys::FEED)
            .key_condition_expression("PK = :partition AND #v BETWEEN :first AND :last")
            .expression_attribute_names("#v", keys::FEED_VERSION)
            .expression_attribute_values(
                ":partition",
                AttributeValue::S(keys::partition_key(grant.partition())),
            )
            .expression_attribute_values(":first", number(after + 1))
            .expression_attribute_values(":last", number(head.version))
            .consistent_read(true)
            .scan_index_forward(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
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
            .filter_map(|item| {
                let (key, state, version) = decode_record(item)?;
                Some(Change::new(key, &state, version))
            })
            .collect();
        Ok(FeedPage {
            changes,
            has_more,
            watermark: head.watermark,
            version: head.version,
        })
    }
}

impl Snapshot {
    pub(super) fn states(&self) -> BTreeMap<RecordKey, RecordState> {
        self.records
            .iter()
            .map(|(key, (state, _))| (key.clone(), state.clone()))
            .collect()
    }
}
