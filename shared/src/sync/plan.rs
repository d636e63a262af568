//! A push cut into transactions: mutations applied in order to the records
//! they touch, rejected where the result would not fit an item, and the
//! changed records grouped into chunks that each fit one
//! `TransactWriteItems`.

use std::collections::{BTreeMap, BTreeSet};

use super::merge::{self, Op, RecordState};
use super::{
    CHUNK_BYTES, ITEMS_PER_TRANSACTION, Mutation, RecordKey, Rejected, Rejection, hlc, size,
};
use crate::model::ids::SpaceId;

/// One transaction's worth of work: the records whose state changed and the
/// watermark after its last mutation.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub last_mutation_id: u64,
    pub changed: BTreeMap<RecordKey, RecordState>,
    /// Mutations of this chunk that changed nothing: a newer write (or a
    /// delete) of another device had already won every field. Conflicts,
    /// resolved, counted for the operator.
    pub superseded: usize,
    /// Mutations of this chunk refused: acknowledged, not applied.
    pub rejected: Vec<Rejected>,
}

/// The chunk being filled by [`plan`].
#[derive(Default)]
struct OpenChunk {
    /// Records touched, with the bytes each takes now.
    touched: BTreeMap<RecordKey, usize>,
    changed: BTreeSet<RecordKey>,
    superseded: usize,
    rejected: Vec<Rejected>,
    last_id: Option<u64>,
}

impl OpenChunk {
    fn bytes(&self) -> usize {
        self.touched.values().sum()
    }

    /// Whether `key`, taking `bytes` after the next mutation, still fits:
    /// at most `records_per_chunk` records and [`CHUNK_BYTES`], and at most
    /// [`ITEMS_PER_TRANSACTION`] items with the watermark, each
    /// partition's counter and each space's membership check.
    fn fits(&self, key: &RecordKey, bytes: usize, records_per_chunk: usize) -> bool {
        let counted = self.touched.get(key).copied();
        let records = self.touched.len() + usize::from(counted.is_none());
        let mut partitions: BTreeSet<Option<&SpaceId>> =
            self.touched.keys().map(|k| k.space.as_ref()).collect();
        partitions.insert(key.space.as_ref());
        let checks = partitions.iter().filter(|space| space.is_some()).count();
        records <= records_per_chunk
            && records + 1 + partitions.len() + checks <= ITEMS_PER_TRANSACTION
            && self.bytes() - counted.unwrap_or(0) + bytes <= CHUNK_BYTES
    }

    fn close(&mut self, states: &BTreeMap<RecordKey, RecordState>) -> Chunk {
        let open = std::mem::take(self);
        Chunk {
            last_mutation_id: open.last_id.unwrap_or(0),
            superseded: open.superseded,
            rejected: open.rejected,
            changed: open
                .changed
                .into_iter()
                .map(|key| {
                    let state = states[&key].clone();
                    (key, state)
                })
                .collect(),
        }
    }
}

/// The bytes of `state`'s fields after `op` (the put's winning fields
/// replace what they beat; a delete only shrinks it).
fn bytes_after(state: &RecordState, before: usize, op: &Op, hlc: &hlc::Hlc) -> usize {
    let Op::Put(fields) = op else {
        let mut after = state.clone();
        after.apply(op, hlc);
        return size::record_bytes(&after);
    };
    let mut bytes = before;
    for (name, value) in fields {
        let new = merge::Stamped {
            value: value.clone(),
            hlc: hlc.clone(),
        };
        if state.would_set(name, &new) {
            bytes += size::field_bytes(name, &new);
            bytes -= state
                .fields
                .get(name)
                .map_or(0, |old| size::field_bytes(name, old));
        }
    }
    bytes
}

/// How many more live records each partition may hold (None: the
/// holder's own); a partition not listed has no quota.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Room(pub BTreeMap<Option<SpaceId>, u64>);

impl Room {
    /// Takes a place in `key`'s partition; false if it is full.
    fn take(&mut self, key: &RecordKey) -> bool {
        match self.0.get_mut(&key.space) {
            Some(0) => false,
            Some(left) => {
                *left -= 1;
                true
            }
            None => true,
        }
    }

    fn give_back(&mut self, key: &RecordKey) {
        if let Some(left) = self.0.get_mut(&key.space) {
            *left += 1;
        }
    }
}

/// Applies `mutations` (above the watermark, in id order) to `current` and
/// cuts the result into chunks of at most `records_per_chunk` records and
/// [`CHUNK_BYTES`]. Each chunk carries the state after its own mutations,
/// so committing chunks in order is the same as applying mutations one by
/// one. A mutation that validation marked, that would make its record
/// outgrow an item, or that would bring a record to life in a partition
/// with no `room` left, is rejected: it moves the watermark and nothing
/// else. Deletes free room for the mutations after them.
pub fn plan(
    current: &BTreeMap<RecordKey, RecordState>,
    mutations: &[Mutation],
    records_per_chunk: usize,
    room: &Room,
) -> Vec<Chunk> {
    let mut room = room.clone();
    let mut states = current.clone();
    let mut sizes: BTreeMap<RecordKey, usize> = BTreeMap::new();
    let mut chunks = Vec::new();
    let mut open = OpenChunk::default();
    for mutation in mutations {
        let state = states.entry(mutation.key.clone()).or_default();
        let before = *sizes
            .entry(mutation.key.clone())
            .or_insert_with(|| size::record_bytes(state));
        let after = bytes_after(state, before, &mutation.op, &mutation.hlc);
        let was_live = state.is_live();
        let mut rejection = mutation
            .rejection
            .or((after > size::MAX_RECORD_FIELDS_BYTES && after > before)
                .then_some(Rejection::RecordTooLarge));
        if rejection.is_none() && !was_live && matches!(mutation.op, Op::Put(_)) {
            let mut trial = state.clone();
            trial.apply(&mutation.op, &mutation.hlc);
            if trial.is_live() && !room.take(&mutation.key) {
                rejection = Some(Rejection::QuotaExceeded);
            }
        }
        if let Some(code) = rejection {
            open.rejected.push(Rejected {
                id: mutation.id,
                code,
            });
            open.last_id = Some(mutation.id);
            continue;
        }
        if !open.touched.is_empty() && !open.fits(&mutation.key, after, records_per_chunk) {
            chunks.push(open.close(&states));
        }
        let state = states.entry(mutation.key.clone()).or_default();
        if state.apply(&mutation.op, &mutation.hlc) {
            if was_live && !state.is_live() {
                room.give_back(&mutation.key);
            }
            open.changed.insert(mutation.key.clone());
        } else {
            open.superseded += 1;
        }
        sizes.insert(mutation.key.clone(), after);
        open.touched.insert(mutation.key.clone(), after);
        open.last_id = Some(mutation.id);
    }
    if open.last_id.is_some() {
        chunks.push(open.close(&states));
    }
    chunks
}

/// Merges whole record states into `current` (the migration from the old
/// layout, where no mutations exist any more) and cuts the records that
/// changed into chunks of at most `records_per_chunk`. Merging is the
/// join of the merge engine, so merging a state already there changes
/// nothing and plans nothing.
pub fn plan_merge(
    current: &BTreeMap<RecordKey, RecordState>,
    incoming: &[(RecordKey, RecordState)],
    records_per_chunk: usize,
) -> Vec<Chunk> {
    let mut states = current.clone();
    let mut changed: BTreeSet<RecordKey> = BTreeSet::new();
    for (key, state) in incoming {
        let merged = states.entry(key.clone()).or_default();
        let before = merged.clone();
        merged.merge(state);
        if *merged != before {
            changed.insert(key.clone());
        }
    }
    let changed: Vec<RecordKey> = changed.into_iter().collect();
    changed
        .chunks(records_per_chunk.max(1))
        .map(|keys| Chunk {
            last_mutation_id: 0,
            superseded: 0,
            rejected: Vec::new(),
            changed: keys
                .iter()
                .map(|key| (key.clone(), states[key].clone()))
                .collect(),
        })
        .collect()
}
