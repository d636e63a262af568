//! The one-off migration of sync records from the layout before the `Feed`
//! index (`PK = USER#<sub>#<collection>`, found through GSI1) into the
//! user's partition, kept apart from the live sync store: it merges whole
//! record states through the same commit a push uses, with no watermark.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::sync::{ATTEMPTS, Writer, backoff};
use super::{Item, Table};
use crate::Error;
use crate::keys;
use crate::model::ids::UserId;
use crate::sync::merge::RecordState;
use crate::sync::{RECORDS_PER_CHUNK, RecordKey, plan_merge};

/// A sync record of the layout before the `Feed` index.
#[derive(Debug, Clone, Deserialize)]
struct LegacyRecordItem {
    #[serde(rename = "GSI1PK")]
    gsi1pk: String,
    collection: String,
    #[serde(rename = "recordId")]
    record_id: String,
    #[serde(flatten)]
    state: RecordState,
}

/// A record of the old layout: its user, key and state; None for any other
/// item.
pub fn legacy_record(item: &Item) -> Option<(UserId, RecordKey, RecordState)> {
    item.get("GSI1PK")?;
    let legacy: LegacyRecordItem = serde_dynamo::from_item(item.clone()).ok()?;
    let user = keys::parse_user_partition(&legacy.gsi1pk)?;
    let key = RecordKey {
        space: None,
        collection: legacy.collection,
        record_id: legacy.record_id,
    };
    Some((user, key, legacy.state))
}

impl Table {
    /// Merges whole record states into the user's records: each changed
    /// record gets a new version, as a push would give it; merging what is
    /// already there changes nothing, so running it again writes nothing.
    /// Returns the records changed.
    pub async fn merge_records(
        &self,
        user: &UserId,
        records: &[(RecordKey, RecordState)],
    ) -> Result<usize, Error> {
        let keys: BTreeSet<RecordKey> = records.iter().map(|(key, _)| key.clone()).collect();
        let writer = Writer {
            holder: user,
            client: None,
        };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let mut snapshot = self.snapshot(writer, &keys).await?;
            let chunks = plan_merge(&snapshot.states(), records, RECORDS_PER_CHUNK);
            if self.commit_all(writer, &mut snapshot, &chunks).await? {
                return Ok(chunks.iter().map(|c| c.changed.len()).sum());
            }
        }
        Err(Error::unavailable(std::io::Error::other(
            "merging records kept conflicting with concurrent pushes",
        )))
    }
}
