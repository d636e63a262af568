//! Sync records and their partition's version counter, and the client
//! watermarks in the pushing user's partition. A push reads with one consistent
//! `BatchGetItem` and commits each chunk with one `TransactWriteItems`
//! under optimistic conditions, retried from a fresh read when another push
//! won the race. A pull reads the change feed, the `Feed` local secondary
//! index on `feedVer`, with `ConsistentRead`: unlike a global index it
//! never shows a later version before an earlier one.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnConsumedCapacity, TransactWriteItem,
};

mod items;

pub(super) use items::{COMPACTED_BEFORE, COMPACTED_THROUGH, decode_record_at};
use items::{RecordItem, decode_record, read_into, record_key, version_key, watermark_key};
use items::{counter_update, member_may_write, space_counter_update, watermark_update};

use super::space::member_key;
use super::{Item, Table, item_key, number};
use crate::keys;
use crate::model::access::Grant;
use crate::model::access::Role;
use crate::model::ids::SpaceId;
use crate::model::ids::{ClientId, Partition, UserId};
use crate::store::{Ended, ended};
use crate::sync::compaction::Compaction;
use crate::sync::feed::PullCursor;
use crate::sync::merge::RecordState;
use crate::sync::spaces::{SpaceHead, assemble, plan_space};
use crate::sync::store::SyncStore;
use crate::sync::{
    Change, Chunk, FeedRead, Mutation, PullPage, PushOutcome, RECORDS_PER_CHUNK, RecordKey,
    Rejected, Room, authorize, plan, reject_stale, rejections_within, unapplied,
};
use crate::{Error, adapters::aws};

/// What the store read before planning a push.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    watermark: u64,
    /// The rejections kept beside the watermark.
    rejected: Vec<Rejected>,
    /// Each partition's version counter (None: the user's own); a space
    /// that is gone or deleted has none.
    versions: BTreeMap<Option<SpaceId>, u64>,
    /// What was compacted in each of those partitions.
    compactions: BTreeMap<Option<SpaceId>, Compaction>,
    /// The live records each of those partitions holds (its counter's
    /// `records`, moved with `ver`).
    live: BTreeMap<Option<SpaceId>, u64>,
    /// The writer's role in each space read.
    roles: BTreeMap<SpaceId, Role>,
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

/// Who writes records: a client's push moves the client's watermark (in
/// the pusher's own partition) with each chunk; a tool an operator runs
/// moves none. Records without a space are the holder's own.
#[derive(Clone, Copy)]
pub(super) struct Writer<'a> {
    pub holder: &'a UserId,
    pub client: Option<&'a ClientId>,
}

impl Writer<'_> {
    /// What the stream consumers read as the change's origin: the pushing
    /// app is not poked for its own change.
    fn origin(&self) -> &str {
        self.client.map_or("operator", ClientId::as_str)
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

    /// Reads the watermark, the version counter of each partition the
    /// records are in, the writer's membership of each space among them,
    /// and the current records.
    pub(super) async fn snapshot(
        &self,
        writer: Writer<'_>,
        records: &BTreeSet<RecordKey>,
    ) -> Result<Snapshot, Error> {
        let partitions: BTreeSet<Option<&SpaceId>> =
            records.iter().map(|r| r.space.as_ref()).collect();
        let mut wanted: Vec<Item> = Vec::new();
        for space in &partitions {
            wanted.push(item_key(&version_key(writer.holder, *space)));
            if let Some(space) = space {
                wanted.push(item_key(&member_key(space, writer.holder)));
            }
        }
        if let Some(client_id) = writer.client {
            wanted.push(item_key(&watermark_key(writer.holder, client_id)));
        }
        wanted.extend(
            records
                .iter()
                .map(|r| item_key(&record_key(writer.holder, r))),
        );
        let mut snapshot = Snapshot::default();
        for item in self.get_consistent(wanted).await? {
            read_into(&mut snapshot, item)?;
        }
        Ok(snapshot)
    }

    /// Items by key, with consistent `BatchGetItem`s of at most 100 keys,
    /// until none is left unprocessed.
    pub(in crate::store) async fn get_consistent(
        &self,
        keys: Vec<Item>,
    ) -> Result<Vec<Item>, Error> {
        self.batch_get(keys, true).await
    }

    /// The same, eventually consistent (half the read units): for reads a
    /// moment stale does no harm.
    pub(in crate::store) async fn get_items(&self, keys: Vec<Item>) -> Result<Vec<Item>, Error> {
        self.batch_get(keys, false).await
    }

    /// Each 100 keys are one `BatchGetItem`, all sent at once: a fan-out
    /// to a thousand members waits for one round trip, not ten in a row.
    /// (DynamoDB answers a batch in no particular order anyway.)
    async fn batch_get(&self, keys: Vec<Item>, consistent: bool) -> Result<Vec<Item>, Error> {
        if keys.len() <= 100 {
            return self.batch_get_100(keys, consistent).await;
        }
        let mut chunks = tokio::task::JoinSet::new();
        for chunk in keys.chunks(100) {
            let (table, chunk) = (self.clone(), chunk.to_vec());
            chunks.spawn(async move { table.batch_get_100(chunk, consistent).await });
        }
        let mut found = Vec::with_capacity(keys.len());
        while let Some(joined) = chunks.join_next().await {
            found.extend(joined.map_err(Error::internal)??);
        }
        Ok(found)
    }

    /// One `BatchGetItem` of at most 100 keys, retried until none is left
    /// unprocessed.
    async fn batch_get_100(&self, keys: Vec<Item>, consistent: bool) -> Result<Vec<Item>, Error> {
        let mut found = Vec::with_capacity(keys.len());
        let mut pending = keys;
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
                        .consistent_read(consistent)
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
        let mut items = Vec::with_capacity(chunk.changed.len() + 4);
        let mut versions = snapshot.versions.clone();
        let mut live = snapshot.live.clone();
        let mut written = Vec::with_capacity(chunk.changed.len());
        for (record, state) in &chunk.changed {
            let was_live = snapshot
                .records
                .get(record)
                .is_some_and(|(stored, _)| stored.is_live());
            let count = live.entry(record.space.clone()).or_default();
            match (was_live, state.is_live()) {
                (false, true) => *count += 1,
                // Records from before the count began are not in it.
                (true, false) => *count = count.saturating_sub(1),
                _ => {}
            }
            let version = versions.entry(record.space.clone()).or_default();
            *version += 1;
            let key = record_key(writer.holder, record);
            let item = RecordItem {
                pk: key.pk(),
                sk: key.sk(),
                collection: record.collection.clone(),
                record_id: record.record_id.clone(),
                state: state.clone(),
                ver: *version,
                feed_version: *version,
                origin: writer.origin().to_string(),
                origin_user: writer.holder.clone(),
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
            written.push((record.clone(), state.clone(), *version));
        }
        for (space, version) in &versions {
            let stored = snapshot.versions.get(space).copied().unwrap_or(0);
            if *version == stored {
                continue;
            }
            let key = item_key(&version_key(writer.holder, space.as_ref()));
            let records = live.get(space).copied().unwrap_or(0);
            match space {
                None => items.push(counter_update(&self.name, key, stored, *version, records)?),
                Some(space) => {
                    items.push(space_counter_update(
                        &self.name, key, stored, *version, records,
                    )?);
                    items.push(member_may_write(
                        &self.name,
                        item_key(&member_key(space, writer.holder)),
                    )?);
                }
            }
        }
        let mut rejected = snapshot.rejected.clone();
        rejected.extend(chunk.rejected.iter().cloned());
        if let Some(client_id) = writer.client {
            items.push(watermark_update(
                &self.name,
                item_key(&watermark_key(writer.holder, client_id)),
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
        match &result {
            Ok(output) => self.usage.add_call(output.consumed_capacity()),
            Err(err) if aws::error_code(err) == Some("TransactionCanceledException") => {
                self.usage.add(None);
            }
            Err(_) => {}
        }
        if !matches!(ended(result)?, Ended::Committed) {
            return Ok(false);
        }
        snapshot.versions = versions;
        snapshot.live = live;
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
    /// Applies a validated push exactly once. A mutation into a space the
    /// pusher may not write is rejected here, from the membership read
    /// with the records; the write of one they may is conditioned on that
    /// membership in its own transaction, so a removal racing the push
    /// either comes first (and the retry rejects it) or after.
    async fn push(
        &self,
        own: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> Result<PushOutcome, Error> {
        let keys: BTreeSet<RecordKey> = mutations.iter().map(|m| m.key.clone()).collect();
        let writer = Writer {
            holder: own.holder(),
            client: Some(client_id),
        };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let mut snapshot = self.snapshot(writer, &keys).await?;
            let mut fresh = unapplied(mutations.clone(), snapshot.watermark)?;
            snapshot.rejected = rejections_within(&snapshot.rejected, &mutations);
            if fresh.is_empty() {
                return Ok(PushOutcome {
                    watermark: snapshot.watermark,
                    rejected: snapshot.rejected,
                    ..PushOutcome::default()
                });
            }
            authorize(&mut fresh, |space| {
                snapshot
                    .versions
                    .contains_key(&Some(space.clone()))
                    .then(|| snapshot.roles.get(space).copied())
                    .flatten()
            });
            reject_stale(
                &mut fresh,
                |key| snapshot.records.contains_key(key),
                |space| {
                    snapshot
                        .compactions
                        .get(&space.cloned())
                        .copied()
                        .unwrap_or_default()
                },
            );
            let chunks = plan(
                &snapshot.states(),
                &fresh,
                RECORDS_PER_CHUNK,
                &snapshot.room(&keys, self.quotas.records_per_partition),
            );
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

    /// The caller's own changes after the cursor, then each space's, with
    /// the membership changes since the cursor.
    ///
    /// One consistent query reads the caller's memberships (with this
    /// client's positions), consistent `BatchGetItem`s read the own
    /// counter, the watermark and each space's item (its counter), then
    /// one consistent query of the `Feed` index per partition with news
    /// reads its versions up to its counter. Every version up to a
    /// counter belongs to a committed transaction (the counter moves in
    /// the same transaction as its records), so a page never holds a
    /// version whose predecessors could still appear: no position passes
    /// a change. The positions this answer moves are written before it is
    /// sent.
    async fn pull(
        &self,
        own: &Grant,
        client_id: &ClientId,
        cursor: PullCursor,
        limit: usize,
    ) -> Result<PullPage, Error> {
        let user = own.holder();
        let memberships = self.memberships(user).await?;
        let mut wanted = vec![
            item_key(&version_key(user, None)),
            item_key(&watermark_key(user, client_id)),
        ];
        wanted.extend(
            memberships
                .iter()
                .filter(|m| m.is_current())
                .map(|m| item_key(&version_key(user, Some(&m.space_id)))),
        );
        let mut head = Snapshot::default();
        let mut spaces: BTreeMap<SpaceId, SpaceHead> = BTreeMap::new();
        for item in self.get_consistent(wanted).await? {
            if let Some((space, space_head)) = items::decode_space_head(&item) {
                spaces.insert(space, space_head);
            } else {
                read_into(&mut head, item)?;
            }
        }
        let own_version = head.versions.get(&None).copied().unwrap_or(0);
        let own_compaction = head.compactions.get(&None).copied().unwrap_or_default();
        if own_compaction.expires(cursor.own) {
            return Err(expired());
        }
        let own_partition = Partition::User(user.clone());
        let own = self
            .feed_page(&own_partition, cursor.own, own_version, limit)
            .await?;
        let mut budget = limit.saturating_sub(own.changes.len());
        let mut read = Vec::with_capacity(memberships.len());
        for membership in &memberships {
            let space = &membership.space_id;
            let pull = plan_space(cursor.generation, membership, client_id, spaces.get(space));
            if let (Some((after, _)), Some(head)) = (pull.range(1), spaces.get(space))
                && head.compaction.expires(after)
            {
                return Err(expired());
            }
            let page = match pull.range(budget) {
                Some((after, until)) => {
                    let partition = Partition::Space(space.clone());
                    let page = self.feed_page(&partition, after, until, budget).await?;
                    budget -= page.changes.len();
                    Some(page)
                }
                None => None,
            };
            read.push((pull, page));
        }
        let assembled = assemble(cursor, own, head.watermark, read);
        self.write_positions(user, client_id, &assembled.writes)
            .await?;
        Ok(assembled.page)
    }
}

/// A position below what the janitor compacted: the client starts over.
fn expired() -> Error {
    Error::new(
        crate::Code::CursorExpired,
        "the cursor is older than the deletes the server keeps; pull without a cursor and replace the local copy",
    )
}

impl Table {
    /// The versions of `partition`'s feed in `(after, until]`, oldest
    /// first, at most `limit`; more remain when the last is below `until`.
    async fn feed_page(
        &self,
        partition: &Partition,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<FeedRead, Error> {
        if until <= after || limit == 0 {
            return Ok(FeedRead::default());
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
                AttributeValue::S(keys::partition_key(partition)),
            )
            .expression_attribute_values(":first", number(after + 1))
            .expression_attribute_values(":last", number(until))
            .consistent_read(true)
            .scan_index_forward(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(aws::classify)?;
        self.usage
            .add(output.consumed_capacity().and_then(|c| c.capacity_units()));
        let changes: Vec<Change> = output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| {
                let (key, state, version) = decode_record(item)?;
                Some(Change::new(key, &state, version))
            })
            .collect();
        let has_more = changes.last().is_some_and(|c| c.version < until);
        Ok(FeedRead { changes, has_more })
    }
}

impl Snapshot {
    /// How many more live records each partition of `records` may take.
    fn room(&self, records: &BTreeSet<RecordKey>, quota: u64) -> Room {
        Room(
            records
                .iter()
                .map(|r| r.space.clone())
                .map(|space| {
                    let held = self.live.get(&space).copied().unwrap_or(0);
                    (space, quota.saturating_sub(held))
                })
                .collect(),
        )
    }

    pub(super) fn states(&self) -> BTreeMap<RecordKey, RecordState> {
        self.records
            .iter()
            .map(|(key, (state, _))| (key.clone(), state.clone()))
            .collect()
    }
}
