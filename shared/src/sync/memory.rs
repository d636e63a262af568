//! One user's sync state in memory, under the same rules as the DynamoDB
//! store (`store::sync`): the same validation, watermark check, plan and
//! versioning, and pages read as `Table::pull` reads them. For property
//! tests here and in the app-side crate (`client/`), which run devices
//! against the server's own merge without an emulator.

use std::collections::BTreeMap;

use super::merge::RecordState;
use super::{
    Change, Feed, Limits, Pushed, RECORDS_PER_CHUNK, RecordKey, Rejected, WireMutation, plan,
    rejections_within, unapplied, validate,
};
use crate::Error;

#[derive(Debug, Clone, Default)]
pub struct MemoryServer {
    records: BTreeMap<RecordKey, (RecordState, u64)>,
    /// The user's version counter.
    counter: u64,
    /// Each client's last applied mutation id.
    watermarks: BTreeMap<String, u64>,
    /// Each client's rejections kept beside its watermark.
    rejections: BTreeMap<String, Vec<Rejected>>,
    limits: Limits,
}

impl MemoryServer {
    /// `POST /sync/push` at `now_ms`.
    pub fn push(
        &mut self,
        client_id: &str,
        mutations: Vec<WireMutation>,
        now_ms: u64,
    ) -> Result<Pushed, Error> {
        let mutations = validate(client_id, mutations, &self.limits, now_ms)?;
        let stored = self.rejections.get(client_id).cloned().unwrap_or_default();
        let mut kept = rejections_within(&stored, &mutations);
        let fresh = unapplied(mutations, self.watermark(client_id))?;
        let watermark = self.watermark(client_id);
        let mut pushed = Pushed {
            watermark,
            applied: fresh.len(),
            superseded: 0,
            rejected: Vec::new(),
        };
        if fresh.is_empty() {
            // A resend: the same answer, and the rejections stay as they were.
            pushed.rejected = kept;
            return Ok(pushed);
        }
        let current = self
            .records
            .iter()
            .map(|(key, (state, _))| (key.clone(), state.clone()))
            .collect();
        // Each chunk is one transaction: its records, their versions and
        // the watermark move together.
        for chunk in plan(&current, &fresh, RECORDS_PER_CHUNK) {
            for (key, state) in chunk.changed {
                self.counter += 1;
                self.records.insert(key, (state, self.counter));
            }
            pushed.watermark = chunk.last_mutation_id;
            pushed.superseded += chunk.superseded;
            kept.extend(chunk.rejected);
        }
        self.watermarks
            .insert(client_id.to_string(), pushed.watermark);
        self.rejections.insert(client_id.to_string(), kept.clone());
        pushed.rejected = kept;
        Ok(pushed)
    }

    /// `GET /sync/pull`: versions in `(after, counter]`, oldest first, at
    /// most `limit`.
    pub fn pull(&self, client_id: &str, after: u64, limit: usize) -> Feed {
        let mut changes: Vec<Change> = self
            .records
            .iter()
            .filter(|(_, (_, version))| *version > after && *version <= self.counter)
            .map(|(key, (state, version))| Change::new(key.clone(), state, *version))
            .collect();
        changes.sort_by_key(|change| change.version);
        let has_more = changes.len() > limit;
        changes.truncate(limit);
        Feed {
            changes,
            has_more,
            watermark: self.watermark(client_id),
            version: self.counter,
        }
    }

    pub fn watermark(&self, client_id: &str) -> u64 {
        self.watermarks.get(client_id).copied().unwrap_or(0)
    }

    /// Every record's state and version.
    pub fn records(&self) -> &BTreeMap<RecordKey, (RecordState, u64)> {
        &self.records
    }

    pub fn counter(&self) -> u64 {
        self.counter
    }
}
