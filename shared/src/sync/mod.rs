//! Offline-first sync: mutations from a client, applied exactly once (the
//! client watermark), merged field by field (see `merge`), and written in
//! chunks that each fit one `TransactWriteItems`.

pub mod feed;
pub mod hlc;
pub mod memory;
pub mod merge;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Code, Error};
use hlc::{Hlc, valid_client_id};
use merge::{Op, RecordState};

/// Bounds on what one push may carry.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_mutations: usize,
    pub max_fields: usize,
    /// Bytes of one field's JSON value.
    pub max_value_bytes: usize,
    /// How far in the future a stamp may be, in milliseconds.
    pub max_clock_skew_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_mutations: 1000,
            max_fields: 64,
            max_value_bytes: 4 * 1024,
            max_clock_skew_ms: 5 * 60 * 1000,
        }
    }
}

/// A transaction holds at most 100 items: the records of a chunk plus the
/// user's version counter and the client watermark.
pub const RECORDS_PER_CHUNK: usize = 98;

/// A record's identity within a user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    pub collection: String,
    pub record_id: String,
}

/// A change as pull returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub collection: String,
    pub record_id: String,
    pub deleted: bool,
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The hlc of each field, for clients that merge locally.
    pub stamps: BTreeMap<String, String>,
    /// The record's tombstone, if it was ever deleted: a client merging a
    /// pending edit needs it to drop edits older than the delete, as the
    /// server will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    pub version: u64,
}

impl Change {
    pub fn new(key: RecordKey, state: &RecordState, version: u64) -> Self {
        Self {
            collection: key.collection,
            record_id: key.record_id,
            deleted: state.is_deleted(),
            fields: state.values(),
            stamps: state.stamps(),
            deleted_at: state.deleted_at.as_ref().map(ToString::to_string),
            version,
        }
    }

    /// The record's state as the server holds it; None if a stamp is not
    /// an hlc (the change did not come from a server of this project).
    pub fn state(&self) -> Option<RecordState> {
        let mut state = RecordState {
            fields: BTreeMap::new(),
            deleted_at: match &self.deleted_at {
                Some(raw) => Some(Hlc::parse(raw).ok()?),
                None => None,
            },
        };
        for (name, value) in &self.fields {
            let hlc = Hlc::parse(self.stamps.get(name)?).ok()?;
            state.fields.insert(
                name.clone(),
                merge::Stamped {
                    value: value.clone(),
                    hlc,
                },
            );
        }
        Some(state)
    }

    pub fn key(&self) -> RecordKey {
        RecordKey {
            collection: self.collection.clone(),
            record_id: self.record_id.clone(),
        }
    }
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// Oldest first.
    pub changes: Vec<Change>,
    /// Whether changes after this page exist now.
    pub has_more: bool,
    /// The pulling client's last applied mutation id.
    pub watermark: u64,
    /// The user's version counter when the page was read.
    pub version: u64,
}

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pushed {
    /// The client's last applied mutation id afterwards.
    pub watermark: u64,
    /// Mutations applied now (not before: redeliveries count zero).
    pub applied: usize,
    /// Of those, the ones a newer write had already beaten.
    pub superseded: usize,
}

/// A mutation as the client sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMutation {
    pub id: u64,
    pub collection: String,
    pub record_id: String,
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, Value>>,
    pub hlc: String,
}

/// A validated mutation.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub id: u64,
    pub key: RecordKey,
    pub op: Op,
    pub hlc: Hlc,
}

fn valid_collection(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn valid_record_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && !id.chars().any(char::is_control)
}

/// Checks a push: client id, ids consecutive, shapes, limits, stamps.
pub fn validate(
    client_id: &str,
    mutations: Vec<WireMutation>,
    limits: &Limits,
    now_ms: u64,
) -> Result<Vec<Mutation>, Error> {
    if !valid_client_id(client_id) {
        return Err(Error::invalid("clientId must be 1-64 of [A-Za-z0-9_.:-]"));
    }
    if mutations.len() > limits.max_mutations {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("at most {} mutations per push", limits.max_mutations),
        ));
    }
    let mut out = Vec::with_capacity(mutations.len());
    for (index, wire) in mutations.into_iter().enumerate() {
        let at = |what: String| Error::invalid(format!("mutations[{index}]: {what}"));
        if wire.id == 0 {
            return Err(at("id starts at 1".into()));
        }
        if let Some(previous) = out.last().map(|m: &Mutation| m.id)
            && wire.id != previous + 1
        {
            return Err(at(format!(
                "ids must be consecutive: {} after {previous}",
                wire.id
            )));
        }
        if !valid_collection(&wire.collection) {
            return Err(at("collection must be 1-64 of [A-Za-z0-9_.-]".into()));
        }
        if !valid_record_id(&wire.record_id) {
            return Err(at("recordId must be 1-256 printable characters".into()));
        }
        let hlc = Hlc::parse(&wire.hlc).map_err(|err| at(err.to_string()))?;
        if hlc.node != client_id {
            return Err(at("the hlc's client id must be the pushing clientId".into()));
        }
        if hlc.millis > now_ms.saturating_add(limits.max_clock_skew_ms) {
            return Err(Error::new(
                Code::ClockSkew,
                format!(
                    "mutations[{index}]: the hlc is more than {} s ahead of the server clock",
                    limits.max_clock_skew_ms / 1000
                ),
            ));
        }
        let op = match (wire.op.as_str(), wire.fields) {
            ("put", Some(fields)) => {
                if fields.is_empty() {
                    return Err(at("put needs at least one field".into()));
                }
                if fields.len() > limits.max_fields {
                    return Err(Error::new(
                        Code::PayloadTooLarge,
                        format!("mutations[{index}]: at most {} fields", limits.max_fields),
                    ));
                }
                for (name, value) in &fields {
                    if name.is_empty() || name.len() > 128 {
                        return Err(at("field names are 1-128 bytes".into()));
                    }
                    if value.to_string().len() > limits.max_value_bytes {
                        return Err(Error::new(
                            Code::PayloadTooLarge,
                            format!(
                                "mutations[{index}]: field {name} is over {} bytes",
                                limits.max_value_bytes
                            ),
                        ));
                    }
                }
                Op::Put(fields.into_iter().collect())
            }
            ("put", None) => return Err(at("put needs fields".into())),
            ("delete", _) => Op::Delete,
            (other, _) => return Err(at(format!("op must be put or delete, not {other:?}"))),
        };
        out.push(Mutation {
            id: wire.id,
            key: RecordKey {
                collection: wire.collection,
                record_id: wire.record_id,
            },
            op,
            hlc,
        });
    }
    Ok(out)
}

/// The mutations above the watermark, or `mutation_gap` if the first of them
/// is not the next id.
pub fn unapplied(mutations: Vec<Mutation>, watermark: u64) -> Result<Vec<Mutation>, Error> {
    let fresh: Vec<Mutation> = mutations.into_iter().filter(|m| m.id > watermark).collect();
    match fresh.first() {
        Some(first) if first.id != watermark + 1 => Err(Error::new(
            Code::MutationGap,
            format!(
                "the next mutation id is {}, got {}; resend from there",
                watermark + 1,
                first.id
            ),
        )
        .with_extension("lastMutationId", watermark)),
        _ => Ok(fresh),
    }
}

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
}

/// Applies `mutations` (above the watermark, in id order) to `current` and
/// cuts the result into chunks of at most `RECORDS_PER_CHUNK` records. Each
/// chunk carries the state after its own mutations, so committing chunks in
/// order is the same as applying mutations one by one.
pub fn plan(
    current: &BTreeMap<RecordKey, RecordState>,
    mutations: &[Mutation],
    records_per_chunk: usize,
) -> Vec<Chunk> {
    let mut states = current.clone();
    let mut chunks = Vec::new();
    let mut touched: BTreeSet<RecordKey> = BTreeSet::new();
    let mut changed: BTreeSet<RecordKey> = BTreeSet::new();
    let mut superseded = 0;
    let mut last_id = None;
    for mutation in mutations {
        if !touched.contains(&mutation.key) && touched.len() == records_per_chunk {
            chunks.push(close(
                &states,
                &mut changed,
                last_id.unwrap_or(0),
                std::mem::take(&mut superseded),
            ));
            touched.clear();
        }
        touched.insert(mutation.key.clone());
        let state = states.entry(mutation.key.clone()).or_default();
        if state.apply(&mutation.op, &mutation.hlc) {
            changed.insert(mutation.key.clone());
        } else {
            superseded += 1;
        }
        last_id = Some(mutation.id);
    }
    if let Some(last) = last_id {
        chunks.push(close(&states, &mut changed, last, superseded));
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
            changed: keys
                .iter()
                .map(|key| (key.clone(), states[key].clone()))
                .collect(),
        })
        .collect()
}

fn close(
    states: &BTreeMap<RecordKey, RecordState>,
    changed: &mut BTreeSet<RecordKey>,
    last_mutation_id: u64,
    superseded: usize,
) -> Chunk {
    Chunk {
        last_mutation_id,
        superseded,
        changed: std::mem::take(changed)
            .into_iter()
            .map(|key| {
                let state = states[&key].clone();
                (key, state)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000_000;

    fn wire(id: u64, record: &str, op: &str, fields: Option<Value>, millis: u64) -> WireMutation {
        WireMutation {
            id,
            collection: "notes".into(),
            record_id: record.into(),
            op: op.into(),
            fields: fields.map(|f| f.as_object().unwrap().clone()),
            hlc: Hlc::new(millis, 0, "phone").to_string(),
        }
    }

    #[test]
    fn mutations_beaten_by_newer_writes_are_counted_as_superseded() {
        let newer = vec![wire(1, "r", "put", Some(json!({"a": 2})), NOW)];
        let newer = validate("phone", newer, &Limits::default(), NOW).unwrap();
        let current: BTreeMap<RecordKey, RecordState> =
            plan(&BTreeMap::new(), &newer, 10).remove(0).changed;
        let late = vec![
            wire(1, "r", "put", Some(json!({"a": 1})), NOW - 1000),
            wire(2, "other", "put", Some(json!({"b": 1})), NOW - 1000),
        ];
        let late = validate("phone", late, &Limits::default(), NOW).unwrap();
        let chunks = plan(&current, &late, 10);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].superseded, 1);
        assert_eq!(chunks[0].changed.len(), 1, "only the other record changed");
    }

    #[test]
    fn validation_has_clear_codes() {
        let limits = Limits::default();
        let ok = validate(
            "phone",
            vec![wire(1, "r", "put", Some(json!({"a": 1})), NOW)],
            &limits,
            NOW,
        );
        assert!(ok.is_ok());
        let cases: Vec<(Vec<WireMutation>, Code)> = vec![
            (
                vec![wire(1, "r", "put", Some(json!({"a": 1})), NOW + 301_000)],
                Code::ClockSkew,
            ),
            (
                vec![wire(1, "r", "put", Some(json!({})), NOW)],
                Code::InvalidRequest,
            ),
            (vec![wire(1, "r", "put", None, NOW)], Code::InvalidRequest),
            (vec![wire(1, "r", "merge", None, NOW)], Code::InvalidRequest),
            (
                vec![
                    wire(1, "r", "delete", None, NOW),
                    wire(3, "r", "delete", None, NOW),
                ],
                Code::InvalidRequest,
            ),
            (
                vec![wire(0, "r", "delete", None, NOW)],
                Code::InvalidRequest,
            ),
            (vec![wire(1, "", "delete", None, NOW)], Code::InvalidRequest),
            (
                vec![wire(
                    1,
                    "r",
                    "put",
                    Some(json!({"a": "x".repeat(5000)})),
                    NOW,
                )],
                Code::PayloadTooLarge,
            ),
        ];
        for (mutations, code) in cases {
            let err = validate("phone", mutations.clone(), &limits, NOW).unwrap_err();
            assert_eq!(err.code, code, "{mutations:?}");
        }
        let mut other = wire(1, "r", "delete", None, NOW);
        other.hlc = Hlc::new(NOW, 0, "tablet").to_string();
        assert!(validate("phone", vec![other], &limits, NOW).is_err());
        assert!(validate("bad id!", vec![], &limits, NOW).is_err());
    }

    fn mutations(n: u64, records: u64) -> Vec<Mutation> {
        let wires = (1..=n)
            .map(|id| {
                wire(
                    id,
                    &format!("r{}", id % records),
                    "put",
                    Some(json!({"n": id})),
                    NOW - 1000 + id,
                )
            })
            .collect();
        validate("phone", wires, &Limits::default(), NOW).unwrap()
    }

    #[test]
    fn replays_are_skipped_and_gaps_refused() {
        let all = mutations(5, 5);
        assert_eq!(unapplied(all.clone(), 3).unwrap().len(), 2);
        assert!(unapplied(all.clone(), 5).unwrap().is_empty());
        let err = unapplied(all[2..].to_vec(), 0).unwrap_err();
        assert_eq!(err.code, Code::MutationGap);
        assert_eq!(err.status(), 409);
    }

    #[test]
    fn chunks_hold_at_most_the_transaction_limit() {
        let chunks = plan(&BTreeMap::new(), &mutations(1000, 1000), RECORDS_PER_CHUNK);
        assert_eq!(chunks.len(), 11);
        assert!(chunks.iter().all(|c| c.changed.len() <= RECORDS_PER_CHUNK));
        assert_eq!(chunks.last().unwrap().last_mutation_id, 1000);
        // Edits of the same few records stay in one chunk.
        assert_eq!(
            plan(&BTreeMap::new(), &mutations(1000, 3), RECORDS_PER_CHUNK).len(),
            1
        );
    }

    proptest! {
        #[test]
        fn chunked_result_equals_one_by_one(n in 1u64..300, records in 1u64..150, per_chunk in 1usize..100) {
            let all = mutations(n, records);
            let chunks = plan(&BTreeMap::new(), &all, per_chunk);
            let mut committed: BTreeMap<RecordKey, RecordState> = BTreeMap::new();
            let mut previous = 0;
            for chunk in &chunks {
                prop_assert!(chunk.changed.len() <= per_chunk);
                prop_assert!(chunk.last_mutation_id > previous);
                previous = chunk.last_mutation_id;
                committed.extend(chunk.changed.clone());
            }
            prop_assert_eq!(previous, n);
            let mut expected: BTreeMap<RecordKey, RecordState> = BTreeMap::new();
            for m in &all {
                expected.entry(m.key.clone()).or_default().apply(&m.op, &m.hlc);
            }
            prop_assert_eq!(committed, expected);
        }
    }
}
