//! Tombstone compaction: the janitor deletes the tombstones of records
//! deleted longer ago than the horizon, and nothing may come back because
//! of it.
//!
//! Each partition's counter item remembers what was compacted: every
//! tombstone up to version `through`, none deleted (by its hlc) at or
//! after `before`. Two rules follow, both exact rather than guessed from
//! a cursor's age:
//! - a client positioned in `(0, through)` may have missed a delete that
//!   is gone now: its pull answers `cursor_expired`, and it replaces its
//!   copy with a full pull (a client at 0 holds nothing of the partition);
//! - a mutation stamped before `before` for a record the store no longer
//!   has may be older than a compacted delete, which would have beaten it:
//!   it is rejected as `stale_edit` instead of bringing the record back.
//!
//! The janitor writes the two numbers before it deletes anything, and
//! waits out the longest pull (the sync function's `Timeout`) in between,
//! so a pull that read the counter before the announcement has finished
//! before a tombstone it could miss is gone.

use super::hlc::Hlc;
use super::merge::RecordState;

/// How long a delete is kept as a tombstone: a device offline for longer
/// starts over with a full pull. Thirty days covers a holiday without the
/// app.
pub const HORIZON_MILLIS: u64 = 30 * 24 * 3600 * 1000;

/// What was compacted in one partition, as its counter item holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Every tombstone compacted had a version at or below this.
    pub through: u64,
    /// Every tombstone compacted was deleted (hlc millis) before this.
    pub before: u64,
}

impl Compaction {
    /// Whether a client that has the partition's feed up to `position`
    /// must start over.
    pub fn expires(&self, position: u64) -> bool {
        position > 0 && position < self.through
    }

    /// Whether a mutation stamped `hlc` for a record the store does not
    /// hold could be older than a compacted delete of it.
    pub fn is_stale(&self, hlc: &Hlc) -> bool {
        hlc.millis < self.before
    }

    /// This compaction widened by one more tombstone.
    pub fn with(self, version: u64, deleted_at: &Hlc) -> Self {
        Self {
            through: self.through.max(version),
            before: self.before.max(deleted_at.millis.saturating_add(1)),
        }
    }
}

/// The delete a stored record's state may be compacted for: a tombstone
/// (no field outlived the delete) last written by the server before
/// `now - horizon` (server time, `updated_at`, not the device's clock).
pub fn compactable(
    state: &RecordState,
    updated_at_millis: i64,
    now_millis: i64,
    horizon_millis: u64,
) -> Option<&Hlc> {
    let cutoff = now_millis.saturating_sub(i64::try_from(horizon_millis).unwrap_or(i64::MAX));
    (state.is_deleted() && updated_at_millis < cutoff)
        .then_some(state.deleted_at.as_ref())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::merge::Op;

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 24 * 3600 * 1000;

    fn hlc(millis: i64) -> Hlc {
        Hlc::new(millis as u64, 0, "phone")
    }

    fn tombstone(at: i64) -> RecordState {
        let mut state = RecordState::default();
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("text".into(), serde_json::json!("milk"));
        state.apply(&Op::Put(fields), &hlc(at - 1000));
        state.apply(&Op::Delete, &hlc(at));
        state
    }

    #[test]
    fn only_tombstones_older_than_the_horizon_are_compactable() {
        let old = tombstone(NOW - 40 * DAY);
        assert_eq!(
            compactable(&old, NOW - 40 * DAY, NOW, HORIZON_MILLIS),
            Some(&hlc(NOW - 40 * DAY))
        );
        let recent = tombstone(NOW - DAY);
        assert_eq!(compactable(&recent, NOW - DAY, NOW, HORIZON_MILLIS), None);
        // The server's time decides, not the device's stamp.
        assert_eq!(compactable(&old, NOW - DAY, NOW, HORIZON_MILLIS), None);
        let mut revived = tombstone(NOW - 40 * DAY);
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("text".into(), serde_json::json!("eggs"));
        revived.apply(&Op::Put(fields), &hlc(NOW - 39 * DAY));
        assert_eq!(
            compactable(&revived, NOW - 39 * DAY, NOW, HORIZON_MILLIS),
            None
        );
    }

    #[test]
    fn positions_below_what_was_compacted_expire() {
        let compaction = Compaction::default()
            .with(7, &hlc(NOW - 40 * DAY))
            .with(3, &hlc(NOW - 41 * DAY));
        assert_eq!(compaction.through, 7);
        assert!(compaction.expires(6));
        assert!(!compaction.expires(7), "it saw the last one compacted");
        assert!(!compaction.expires(0), "it holds nothing of the partition");
        assert!(!Compaction::default().expires(5));
    }

    #[test]
    fn edits_older_than_a_compacted_delete_are_stale() {
        let compaction = Compaction::default().with(7, &hlc(NOW - 40 * DAY));
        assert!(compaction.is_stale(&hlc(NOW - 41 * DAY)));
        assert!(
            compaction.is_stale(&hlc(NOW - 40 * DAY)),
            "the same millisecond counts as older"
        );
        assert!(!compaction.is_stale(&hlc(NOW - 39 * DAY)));
        assert!(!Compaction::default().is_stale(&hlc(0)));
    }
}
