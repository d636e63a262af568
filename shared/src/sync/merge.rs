//! Field-level merge: every field is a last-writer-wins register stamped with
//! an hlc, and a delete is a tombstone with its own hlc. The state is a join
//! semilattice, so any order or repetition of the same mutations converges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::hlc::Hlc;

/// A field's value and the stamp of the write that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    #[serde(rename = "v")]
    pub value: Value,
    #[serde(rename = "h")]
    pub hlc: Hlc,
}

/// What a mutation does to one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put(BTreeMap<String, Value>),
    Delete,
}

/// A record's mergeable state. Fields at or below the tombstone are dropped:
/// the tombstone only grows, so they could never become visible again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordState {
    #[serde(default)]
    pub fields: BTreeMap<String, Stamped>,
    #[serde(default, rename = "deletedAt", skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Hlc>,
}

/// Equal stamps should carry equal values (one mutation); if a client reuses
/// a stamp, the larger value wins so that every replica picks the same one.
fn wins(new: &Stamped, old: &Stamped) -> bool {
    match new.hlc.cmp(&old.hlc) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            let (new, old) = (new.value.to_string(), old.value.to_string());
            new > old
        }
    }
}

impl RecordState {
    /// Applies one operation; true if the state changed.
    pub fn apply(&mut self, op: &Op, hlc: &Hlc) -> bool {
        match op {
            Op::Put(fields) => {
                let mut changed = false;
                for (name, value) in fields {
                    let new = Stamped {
                        value: value.clone(),
                        hlc: hlc.clone(),
                    };
                    if self.would_set(name, &new) {
                        self.fields.insert(name.clone(), new);
                        changed = true;
                    }
                }
                changed
            }
            Op::Delete => {
                if self.deleted_at.as_ref().is_some_and(|t| hlc <= t) {
                    return false;
                }
                self.deleted_at = Some(hlc.clone());
                self.fields.retain(|_, field| &field.hlc > hlc);
                true
            }
        }
    }

    /// Whether writing `new` to field `name` would change it: not at or
    /// below the tombstone, and winning over the value there.
    pub fn would_set(&self, name: &str, new: &Stamped) -> bool {
        self.deleted_at.as_ref().is_none_or(|t| &new.hlc > t)
            && self.fields.get(name).is_none_or(|old| wins(new, old))
    }

    /// Joins another replica's state into this one.
    pub fn merge(&mut self, other: &RecordState) {
        if let Some(tombstone) = &other.deleted_at {
            self.apply(&Op::Delete, tombstone);
        }
        for (name, field) in &other.fields {
            if self.deleted_at.as_ref().is_some_and(|t| &field.hlc <= t) {
                continue;
            }
            if self.fields.get(name).is_none_or(|old| wins(field, old)) {
                self.fields.insert(name.clone(), field.clone());
            }
        }
    }

    /// Deleted: a tombstone and no field written after it.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some() && self.fields.is_empty()
    }

    /// Holding fields: what a records quota counts (a tombstone does not).
    pub fn is_live(&self) -> bool {
        !self.fields.is_empty()
    }

    /// The values a client sees.
    pub fn values(&self) -> BTreeMap<String, Value> {
        self.fields
            .iter()
            .map(|(name, field)| (name.clone(), field.value.clone()))
            .collect()
    }

    /// The stamp of every visible field, for clients that merge locally.
    pub fn stamps(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .map(|(name, field)| (name.clone(), field.hlc.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::hlc::Hlc;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn hlc(millis: u64) -> Hlc {
        Hlc::new(millis, 0, "c")
    }

    fn put(pairs: &[(&str, Value)]) -> Op {
        Op::Put(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn the_later_write_wins_per_field() {
        let mut state = RecordState::default();
        state.apply(
            &put(&[("title", json!("b")), ("done", json!(false))]),
            &hlc(2),
        );
        state.apply(&put(&[("title", json!("a"))]), &hlc(1));
        state.apply(&put(&[("done", json!(true))]), &hlc(3));
        assert_eq!(state.values()["title"], json!("b"));
        assert_eq!(state.values()["done"], json!(true));
    }

    #[test]
    fn a_delete_hides_older_fields_and_later_puts_revive() {
        let mut state = RecordState::default();
        state.apply(&put(&[("a", json!(1)), ("b", json!(2))]), &hlc(1));
        assert!(state.apply(&Op::Delete, &hlc(5)));
        assert!(state.is_deleted());
        assert!(
            !state.apply(&put(&[("a", json!(9))]), &hlc(4)),
            "older put stays hidden"
        );
        assert!(state.is_deleted());
        state.apply(&put(&[("b", json!(3))]), &hlc(6));
        assert!(!state.is_deleted());
        assert_eq!(
            state.values(),
            BTreeMap::from([("b".to_string(), json!(3))])
        );
        assert!(
            !state.apply(&Op::Delete, &hlc(5)),
            "replayed delete changes nothing"
        );
    }

    #[derive(Debug, Clone)]
    struct Write(Op, Hlc);

    fn any_write() -> impl Strategy<Value = Write> {
        let op = prop_oneof![
            3 => prop::collection::btree_map("[abc]", prop_oneof![Just(json!(null)), any::<i64>().prop_map(|n| json!(n)), "[xy]{0,2}".prop_map(|s| json!(s))], 1..3).prop_map(Op::Put),
            1 => Just(Op::Delete),
        ];
        (op, 0u64..20, 0u32..3, "[pq]").prop_map(|(op, m, c, n)| Write(op, Hlc::new(m, c, n)))
    }

    fn replay(writes: &[Write]) -> RecordState {
        let mut state = RecordState::default();
        for Write(op, hlc) in writes {
            state.apply(op, hlc);
        }
        state
    }

    proptest! {
        #[test]
        fn any_order_converges(writes in prop::collection::vec(any_write(), 0..12), seed in any::<u64>()) {
            let mut shuffled = writes.clone();
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(replay(&writes), replay(&shuffled));
        }

        #[test]
        fn duplicates_change_nothing(writes in prop::collection::vec(any_write(), 0..12), dup in any::<prop::sample::Index>()) {
            let mut doubled = writes.clone();
            if !writes.is_empty() {
                doubled.insert(dup.index(writes.len() + 1), writes[dup.index(writes.len())].clone());
            }
            prop_assert_eq!(replay(&writes), replay(&doubled));
        }

        #[test]
        fn applying_a_batch_twice_equals_once(writes in prop::collection::vec(any_write(), 0..12)) {
            let once = replay(&writes);
            let mut twice = once.clone();
            for Write(op, hlc) in &writes {
                twice.apply(op, hlc);
            }
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn merging_replicas_equals_replaying_everything(a in prop::collection::vec(any_write(), 0..8), b in prop::collection::vec(any_write(), 0..8)) {
            let mut merged = replay(&a);
            merged.merge(&replay(&b));
            let mut all = a.clone();
            all.extend(b);
            prop_assert_eq!(merged, replay(&all));
        }
    }
}
