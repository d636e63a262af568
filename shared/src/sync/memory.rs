//! The sync store in memory: every partition's records and version counter,
//! and every client's watermark and rejections, behind one lock. It
//! implements [`SyncStore`] with the same plan and versioning as the
//! DynamoDB table, and the conformance suite holds the two equal. The
//! app-side crate's property tests run devices against it without an
//! emulator.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::merge::RecordState;
use super::store::SyncStore;
use super::{
    Change, FeedPage, Limits, Mutation, PushOutcome, RECORDS_PER_CHUNK, RecordKey, Rejected,
    WireMutation, plan, rejections_within, unapplied, validate,
};
use crate::Error;
use crate::model::access::Grant;
use crate::model::ids::{ClientId, Partition, UserId};

#[derive(Debug, Default)]
struct PartitionState {
    records: BTreeMap<RecordKey, (RecordState, u64)>,
    counter: u64,
}

#[derive(Debug, Default)]
struct ClientState {
    watermark: u64,
    rejected: Vec<Rejected>,
}

#[derive(Debug, Default)]
struct State {
    partitions: BTreeMap<Partition, PartitionState>,
    clients: BTreeMap<(UserId, ClientId), ClientState>,
}

#[derive(Debug, Default)]
pub struct MemoryServer {
    state: Mutex<State>,
    limits: Limits,
}

impl MemoryServer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `POST /sync/push` of `user`'s app `client_id` at `now_ms`, into the
    /// user's own partition: validated, then pushed.
    pub fn push_own(
        &self,
        user: &UserId,
        client_id: &ClientId,
        mutations: Vec<WireMutation>,
        now_ms: u64,
    ) -> Result<PushOutcome, Error> {
        let mutations = validate(client_id, mutations, &self.limits, now_ms)?;
        self.apply(&Grant::trusted(user.clone()), client_id, mutations)
    }

    /// `GET /sync/pull` of `user`'s own partition.
    pub fn pull_own(
        &self,
        user: &UserId,
        client_id: &ClientId,
        after: u64,
        limit: usize,
    ) -> FeedPage {
        self.read(&Grant::trusted(user.clone()), client_id, after, limit)
    }

    pub fn watermark(&self, user: &UserId, client_id: &ClientId) -> u64 {
        self.state()
            .clients
            .get(&(user.clone(), client_id.clone()))
            .map_or(0, |client| client.watermark)
    }

    /// Every record's state and version in `user`'s own partition.
    pub fn records(&self, user: &UserId) -> BTreeMap<RecordKey, (RecordState, u64)> {
        self.state()
            .partitions
            .get(&Partition::User(user.clone()))
            .map(|partition| partition.records.clone())
            .unwrap_or_default()
    }

    /// The version counter of `user`'s own partition.
    pub fn counter(&self, user: &UserId) -> u64 {
        self.state()
            .partitions
            .get(&Partition::User(user.clone()))
            .map_or(0, |partition| partition.counter)
    }

    fn apply(
        &self,
        grant: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> Result<PushOutcome, Error> {
        let mut state = self.state();
        let state = &mut *state;
        let client = state
            .clients
            .entry((grant.holder().clone(), client_id.clone()))
            .or_default();
        let mut kept = rejections_within(&client.rejected, &mutations);
        let fresh = unapplied(mutations, client.watermark)?;
        let mut outcome = PushOutcome {
            watermark: client.watermark,
            applied: fresh.len(),
            ..PushOutcome::default()
        };
        if fresh.is_empty() {
            // A resend: the same answer, and the rejections stay as they were.
            outcome.rejected = kept;
            return Ok(outcome);
        }
        let partition = state
            .partitions
            .entry(grant.partition().clone())
            .or_default();
        let current = partition
            .records
            .iter()
            .map(|(key, (state, _))| (key.clone(), state.clone()))
            .collect();
        // Each chunk is one transaction: its records, their versions, the
        // watermark and the rejections move together.
        for chunk in plan(&current, &fresh, RECORDS_PER_CHUNK) {
            for (key, state) in chunk.changed {
                partition.counter += 1;
                partition.records.insert(key, (state, partition.counter));
            }
            outcome.watermark = chunk.last_mutation_id;
            outcome.superseded += chunk.superseded;
            kept.extend(chunk.rejected);
        }
        client.watermark = outcome.watermark;
        client.rejected = kept.clone();
        outcome.rejected = kept;
        Ok(outcome)
    }

    fn read(&self, grant: &Grant, client_id: &ClientId, after: u64, limit: usize) -> FeedPage {
        let state = self.state();
        let watermark = state
            .clients
            .get(&(grant.holder().clone(), client_id.clone()))
            .map_or(0, |client| client.watermark);
        let Some(partition) = state.partitions.get(grant.partition()) else {
            return FeedPage {
                changes: Vec::new(),
                has_more: false,
                watermark,
                version: 0,
            };
        };
        let mut changes: Vec<Change> = partition
            .records
            .iter()
            .filter(|(_, (_, version))| *version > after && *version <= partition.counter)
            .map(|(key, (state, version))| Change::new(key.clone(), state, *version))
            .collect();
        changes.sort_by_key(|change| change.version);
        let has_more = changes.len() > limit;
        changes.truncate(limit);
        FeedPage {
            changes,
            has_more,
            watermark,
            version: partition.counter,
        }
    }
}

impl SyncStore for MemoryServer {
    async fn push(
        &self,
        grant: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> Result<PushOutcome, Error> {
        self.apply(grant, client_id, mutations)
    }

    async fn pull(
        &self,
        grant: &Grant,
        client_id: &ClientId,
        after: u64,
        limit: usize,
    ) -> Result<FeedPage, Error> {
        Ok(self.read(grant, client_id, after, limit))
    }
}
