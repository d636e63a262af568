//! Offline-first sync: mutations from a client, applied exactly once (the
//! client watermark), merged field by field (see `merge`), and written in
//! chunks that each fit one `TransactWriteItems`.

pub mod compaction;
pub mod feed;
pub mod hlc;
pub mod memory;
pub mod merge;
mod plan;
pub mod size;
pub mod spaces;
pub mod store;
mod validate;

pub use plan::{Chunk, Room, plan, plan_merge};
pub use validate::{Limits, validate};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ids::{Partition, SpaceId, UserId};
use crate::{Code, Error};
use hlc::Hlc;
use merge::{Op, RecordState};

/// A transaction holds at most 100 items: the records of a chunk, the
/// client watermark, and for each partition it writes the version counter
/// (and for a space, the check of the writer's membership).
pub const ITEMS_PER_TRANSACTION: usize = 100;

/// The records of a chunk that writes only the user's own partition.
pub const RECORDS_PER_CHUNK: usize = ITEMS_PER_TRANSACTION - 2;

/// A transaction carries at most 4 MB: the records of one chunk take at
/// most this much (as DynamoDB counts them), the rest is keys and
/// conditions.
pub const CHUNK_BYTES: usize = 3 * 1024 * 1024;

/// Why the server will not apply one mutation. The push still acknowledges
/// it (the watermark passes it), so one bad edit never blocks the device's
/// later ones; the app is told which and why. A code, once published,
/// never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// A field's value nests deeper than [`size::MAX_VALUE_DEPTH`].
    ValueTooDeep,
    /// A field's JSON is over [`Limits::max_value_bytes`].
    ValueTooLarge,
    /// More fields than [`Limits::max_fields`] in one put.
    TooManyFields,
    /// The record would outgrow what one DynamoDB item holds
    /// ([`size::MAX_RECORD_FIELDS_BYTES`]).
    RecordTooLarge,
    /// The mutation names a space the pusher is not (or no longer) a
    /// member of, or one that was deleted.
    NotAMember,
    /// The pusher is a viewer of the space.
    ReadOnly,
    /// The record is gone and the edit is older than a delete compacted
    /// away (see [`compaction`]): applying it could bring back a record
    /// deleted on another device.
    StaleEdit,
    /// The record would be new in a partition already holding its quota
    /// of live records (`MAX_RECORDS_PER_PARTITION`); deleting records
    /// makes room.
    QuotaExceeded,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::ValueTooDeep => "value_too_deep",
            Rejection::ValueTooLarge => "value_too_large",
            Rejection::TooManyFields => "too_many_fields",
            Rejection::RecordTooLarge => "record_too_large",
            Rejection::NotAMember => "not_a_member",
            Rejection::ReadOnly => "read_only",
            Rejection::StaleEdit => "stale_edit",
            Rejection::QuotaExceeded => "quota_exceeded",
        }
    }
}

/// A mutation acknowledged without being applied, as push answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: u64,
    pub code: Rejection,
}

/// A record's identity: in a shared space, or (None) in the user's own
/// records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    pub space: Option<SpaceId>,
    pub collection: String,
    pub record_id: String,
}

impl RecordKey {
    /// One of the user's own records.
    pub fn own(collection: impl Into<String>, record_id: impl Into<String>) -> Self {
        Self {
            space: None,
            collection: collection.into(),
            record_id: record_id.into(),
        }
    }

    /// The partition the record lives in, for a record of `holder`.
    pub fn partition(&self, holder: &UserId) -> Partition {
        match &self.space {
            Some(space) => Partition::Space(space.clone()),
            None => Partition::User(holder.clone()),
        }
    }
}

/// A change as pull returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The space the record belongs to; absent for the user's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<SpaceId>,
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
            space_id: key.space,
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
            space: self.space_id.clone(),
            collection: self.collection.clone(),
            record_id: self.record_id.clone(),
        }
    }
}

/// One read of a partition's feed: versions in a range, oldest first, at
/// most a limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedRead {
    pub changes: Vec<Change>,
    /// Whether versions of the range remain after it.
    pub has_more: bool,
}

/// A page of one user's own feed (the memory server's, for the app
/// library's tests).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// Oldest first.
    pub changes: Vec<Change>,
    /// Whether changes after this page exist now.
    pub has_more: bool,
    /// The pulling client's last applied mutation id.
    pub watermark: u64,
    /// The partition's version counter when the page was read.
    pub version: u64,
}

/// One answer of `GET /sync/pull`: the caller's own records and every
/// space's, with the membership changes since the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct PullPage {
    /// Own changes first (oldest first), then each space's.
    pub changes: Vec<Change>,
    /// Membership changes, removals first.
    pub spaces: Vec<spaces::SpaceChange>,
    pub has_more: bool,
    /// The pulling client's last applied mutation id.
    pub watermark: u64,
    pub cursor: feed::PullCursor,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushOutcome {
    /// The client's last applied mutation id afterwards.
    pub watermark: u64,
    /// Mutations acknowledged now (not before: redeliveries count zero).
    pub applied: usize,
    /// Of those, the ones a newer write had already beaten.
    pub superseded: usize,
    /// The pushed mutations the server refused, this time or when the same
    /// ids were first pushed: a resend gets the same answer.
    pub rejected: Vec<Rejected>,
}

/// A mutation as the client sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMutation {
    pub id: u64,
    /// The space to write in; absent for the user's own records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<SpaceId>,
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
    /// Refused for what it carries: acknowledged, never applied.
    pub rejection: Option<Rejection>,
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

/// Marks the mutations into spaces the pusher may not write: a space with
/// no counter (gone or deleted) or no role is `not_a_member`, a viewer's
/// is `read_only`.
pub fn authorize(
    mutations: &mut [Mutation],
    role: impl Fn(&SpaceId) -> Option<crate::model::access::Role>,
) {
    for mutation in mutations {
        let Some(space) = &mutation.key.space else {
            continue;
        };
        match role(space) {
            None => mutation.rejection = Some(Rejection::NotAMember),
            Some(role) if !role.may_write() => mutation.rejection = Some(Rejection::ReadOnly),
            Some(_) => {}
        }
    }
}

/// Marks the mutations for records the store does not hold (`held`) that
/// are older than a delete compacted in their partition: `stale_edit`.
pub fn reject_stale(
    mutations: &mut [Mutation],
    held: impl Fn(&RecordKey) -> bool,
    compaction: impl Fn(Option<&SpaceId>) -> compaction::Compaction,
) {
    for mutation in mutations.iter_mut().filter(|m| m.rejection.is_none()) {
        if !held(&mutation.key) && compaction(mutation.key.space.as_ref()).is_stale(&mutation.hlc) {
            mutation.rejection = Some(Rejection::StaleEdit);
        }
    }
}

/// The rejections a client's watermark keeps while `batch` is pushed: the
/// ones within the batch's ids (a resend gets them again); older ones are
/// dropped, since the client has pushed past them.
pub fn rejections_within(stored: &[Rejected], batch: &[Mutation]) -> Vec<Rejected> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Vec::new();
    };
    stored
        .iter()
        .filter(|r| (first.id..=last.id).contains(&r.id))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::ClientId;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000_000;

    fn phone() -> ClientId {
        ClientId::parse("phone").unwrap()
    }

    fn wire(id: u64, record: &str, op: &str, fields: Option<Value>, millis: u64) -> WireMutation {
        WireMutation {
            id,
            space_id: None,
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
        let newer = validate(&phone(), newer, &Limits::default(), NOW).unwrap();
        let current: BTreeMap<RecordKey, RecordState> =
            plan(&BTreeMap::new(), &newer, 10, &Room::default())
                .remove(0)
                .changed;
        let late = vec![
            wire(1, "r", "put", Some(json!({"a": 1})), NOW - 1000),
            wire(2, "other", "put", Some(json!({"b": 1})), NOW - 1000),
        ];
        let late = validate(&phone(), late, &Limits::default(), NOW).unwrap();
        let chunks = plan(&current, &late, 10, &Room::default());
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].superseded, 1);
        assert_eq!(chunks[0].changed.len(), 1, "only the other record changed");
    }

    #[test]
    fn a_full_partition_rejects_new_records_while_edits_and_deletes_free_room() {
        let held = vec![wire(1, "kept", "put", Some(json!({"a": 1})), NOW - 10)];
        let held = validate(&phone(), held, &Limits::default(), NOW).unwrap();
        let current = plan(&BTreeMap::new(), &held, 10, &Room::default())
            .remove(0)
            .changed;
        let full = Room([(None, 0)].into());
        let batch = vec![
            wire(2, "new", "put", Some(json!({"a": 1})), NOW - 5),
            wire(3, "kept", "put", Some(json!({"a": 2})), NOW - 4),
            wire(4, "kept", "delete", None, NOW - 3),
            wire(5, "new", "put", Some(json!({"a": 1})), NOW - 2),
            wire(6, "third", "put", Some(json!({"a": 1})), NOW - 1),
        ];
        let batch = validate(&phone(), batch, &Limits::default(), NOW).unwrap();
        let chunks = plan(&current, &batch, 10, &full);
        let rejected: Vec<Rejected> = chunks.iter().flat_map(|c| c.rejected.clone()).collect();
        assert_eq!(
            rejected,
            [2, 6].map(|id| Rejected {
                id,
                code: Rejection::QuotaExceeded
            }),
            "the edit and the delete apply; the delete's room takes one new record"
        );
        let changed = &chunks[0].changed;
        let key = |id: &str| RecordKey {
            space: None,
            collection: "notes".into(),
            record_id: id.into(),
        };
        assert!(!changed[&key("kept")].is_live());
        assert!(changed[&key("new")].is_live());
        assert!(!changed.contains_key(&key("third")));
        assert_eq!(
            plan(&current, &batch, 10, &Room::default())[0].rejected,
            [],
            "a partition without a quota takes them all"
        );
    }

    #[test]
    fn validation_has_clear_codes() {
        let limits = Limits::default();
        let ok = validate(
            &phone(),
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
                vec![wire(1, &"é".repeat(257), "delete", None, NOW)],
                Code::InvalidRequest,
            ),
            (
                vec![wire(1, &"😀".repeat(226), "delete", None, NOW)],
                Code::InvalidRequest,
            ),
        ];
        // 256 two-byte characters: 512 bytes, within both bounds.
        assert!(
            validate(
                &phone(),
                vec![wire(1, &"é".repeat(256), "delete", None, NOW)],
                &limits,
                NOW
            )
            .is_ok()
        );
        for (mutations, code) in cases {
            let err = validate(&phone(), mutations.clone(), &limits, NOW).unwrap_err();
            assert_eq!(err.code, code, "{mutations:?}");
        }
        let mut other = wire(1, "r", "delete", None, NOW);
        other.hlc = Hlc::new(NOW, 0, "tablet").to_string();
        assert!(validate(&phone(), vec![other], &limits, NOW).is_err());
    }

    fn nested(levels: usize) -> Value {
        let mut value = json!("leaf");
        for _ in 0..levels {
            value = json!({ "k": value });
        }
        value
    }

    #[test]
    fn content_the_store_cannot_hold_is_rejected_not_an_error() {
        let limits = Limits::default();
        let many: serde_json::Map<String, Value> =
            (0..65).map(|i| (format!("f{i}"), json!(i))).collect();
        let cases = [
            (
                json!({ "v": nested(size::MAX_VALUE_DEPTH + 1) }),
                Some(Rejection::ValueTooDeep),
            ),
            (json!({ "v": nested(size::MAX_VALUE_DEPTH) }), None),
            (
                json!({ "a": "x".repeat(5000) }),
                Some(Rejection::ValueTooLarge),
            ),
            (Value::Object(many), Some(Rejection::TooManyFields)),
        ];
        for (fields, expected) in cases {
            let checked = validate(
                &phone(),
                vec![wire(1, "r", "put", Some(fields), NOW)],
                &limits,
                NOW,
            )
            .unwrap();
            assert_eq!(checked[0].rejection, expected);
        }
    }

    /// Puts of 64 fields of 4 KB each to record `record`.
    fn big_puts(first_id: u64, count: u64, record: &str, prefix: &str) -> Vec<Mutation> {
        let wires = (0..count)
            .map(|n| {
                let fields: serde_json::Map<String, Value> = (0..64)
                    .map(|f| (format!("{prefix}{n}-{f}"), json!("x".repeat(4000))))
                    .collect();
                wire(
                    first_id + n,
                    record,
                    "put",
                    Some(Value::Object(fields)),
                    NOW,
                )
            })
            .collect();
        validate(&phone(), wires, &Limits::default(), NOW).unwrap()
    }

    #[test]
    fn a_record_that_would_outgrow_an_item_is_rejected_and_the_rest_applies() {
        let mut all = big_puts(1, 2, "r", "a");
        all.push(
            validate(
                &phone(),
                vec![wire(3, "r", "delete", None, NOW)],
                &Limits::default(),
                NOW,
            )
            .unwrap()
            .remove(0),
        );
        all[2].id = 3;
        let chunks = plan(&BTreeMap::new(), &all, RECORDS_PER_CHUNK, &Room::default());
        let rejected: Vec<Rejected> = chunks.iter().flat_map(|c| c.rejected.clone()).collect();
        assert_eq!(
            rejected,
            vec![Rejected {
                id: 2,
                code: Rejection::RecordTooLarge
            }]
        );
        assert_eq!(chunks.last().unwrap().last_mutation_id, 3);
        let state = &chunks.last().unwrap().changed[&all[0].key];
        assert!(
            state.is_deleted(),
            "the delete after the rejected put still applies"
        );
    }

    #[test]
    fn chunks_stay_under_the_transaction_byte_limit() {
        // 20 records of ~260 KB: 5 MB in all, more than one transaction.
        let mut all = Vec::new();
        for r in 0..20u64 {
            all.extend(big_puts(r + 1, 1, &format!("r{r}"), "f"));
        }
        let chunks = plan(&BTreeMap::new(), &all, RECORDS_PER_CHUNK, &Room::default());
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        for chunk in &chunks {
            let bytes: usize = chunk.changed.values().map(size::record_bytes).sum();
            assert!(bytes <= CHUNK_BYTES, "{bytes}");
        }
        assert_eq!(chunks.last().unwrap().last_mutation_id, 20);
    }

    #[test]
    fn a_push_of_only_rejected_mutations_still_moves_the_watermark() {
        let all = validate(
            &phone(),
            vec![wire(1, "r", "put", Some(json!({ "v": nested(40) })), NOW)],
            &Limits::default(),
            NOW,
        )
        .unwrap();
        let chunks = plan(&BTreeMap::new(), &all, RECORDS_PER_CHUNK, &Room::default());
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].changed.is_empty());
        assert_eq!(chunks[0].last_mutation_id, 1);
        assert_eq!(chunks[0].rejected[0].code, Rejection::ValueTooDeep);
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
        validate(&phone(), wires, &Limits::default(), NOW).unwrap()
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
        let chunks = plan(
            &BTreeMap::new(),
            &mutations(1000, 1000),
            RECORDS_PER_CHUNK,
            &Room::default(),
        );
        assert_eq!(chunks.len(), 11);
        assert!(chunks.iter().all(|c| c.changed.len() <= RECORDS_PER_CHUNK));
        assert_eq!(chunks.last().unwrap().last_mutation_id, 1000);
        // Edits of the same few records stay in one chunk.
        assert_eq!(
            plan(
                &BTreeMap::new(),
                &mutations(1000, 3),
                RECORDS_PER_CHUNK,
                &Room::default()
            )
            .len(),
            1
        );
    }

    proptest! {
        #[test]
        fn chunked_result_equals_one_by_one(n in 1u64..300, records in 1u64..150, per_chunk in 1usize..100) {
            let all = mutations(n, records);
            let chunks = plan(&BTreeMap::new(), &all, per_chunk, &Room::default());
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
