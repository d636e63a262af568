//! The outbox: mutations queued with consecutive ids, pushed in batches
//! resent unchanged until answered, and moved out when acknowledged.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use shared::sync::RecordKey;
use shared::sync::WireMutation;
use shared::sync::hlc::Hlc;
use shared::sync::merge::{Op, RecordState};

use super::schema::{meta, set_meta};
use super::{Acknowledged, PushAnswer, Store, put_state, server_state, space_of};
use crate::SyncError;

/// The server takes at most this many mutations per push.
pub const MAX_BATCH: usize = 1000;

/// A batch being pushed: resent as is, under the same key, until answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub idempotency_key: String,
    pub mutations: Vec<WireMutation>,
}

impl Store {
    pub fn pending_count(&self) -> Result<u64, SyncError> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))?;
        Ok(count as u64)
    }

    /// The batch to push: the one already in flight (same mutations, same
    /// key, so a lost answer is replayed, not applied twice), else up to
    /// `MAX_BATCH` of the oldest pending mutations under a new key.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, SyncError> {
        let tx = self.conn.transaction()?;
        let in_flight = meta(&tx, "batch_key")?.zip(meta(&tx, "batch_last")?);
        let (key, last) = match in_flight {
            Some((key, last)) => (key, last.parse::<i64>().unwrap_or(i64::MAX)),
            None => {
                let last: Option<i64> = tx.query_row(
                    "SELECT max(id) FROM (SELECT id FROM outbox ORDER BY id LIMIT ?1)",
                    [MAX_BATCH as i64],
                    |row| row.get(0),
                )?;
                let Some(last) = last else {
                    return Ok(None);
                };
                let key = uuid::Uuid::new_v4().to_string();
                set_meta(&tx, "batch_key", &key)?;
                set_meta(&tx, "batch_last", &last.to_string())?;
                (key, last)
            }
        };
        let mutations = queued(&tx, "id <= ?1", [last])?;
        if mutations.is_empty() {
            forget_batch(&tx)?;
        }
        tx.commit()?;
        Ok((!mutations.is_empty()).then_some(Batch {
            idempotency_key: key,
            mutations,
        }))
    }

    /// The server acknowledged every mutation up to its watermark: the
    /// applied ones move from the outbox into the records (the server holds
    /// them now, merged as here), the refused ones into `rejected`, all in
    /// one transaction.
    pub fn acknowledge(&mut self, answer: &PushAnswer) -> Result<Acknowledged, SyncError> {
        let watermark = answer.last_mutation_id;
        let tx = self.conn.transaction()?;
        let acked = queued(&tx, "id <= ?1", [watermark as i64])?;
        let mut states: BTreeMap<RecordKey, RecordState> = BTreeMap::new();
        let mut done = Acknowledged::default();
        for mutation in &acked {
            if let Some(refused) = answer.rejected.iter().find(|r| r.id == mutation.id) {
                reject(&tx, mutation.id, &refused.code)?;
                done.rejected.push(key_of(mutation));
                continue;
            }
            done.applied += 1;
            let (op, hlc) = decode_op(mutation)?;
            let key = key_of(mutation);
            if !states.contains_key(&key) {
                let current = server_state(&tx, &key)?.unwrap_or_default();
                states.insert(key.clone(), current);
            }
            if let Some(state) = states.get_mut(&key) {
                state.apply(&op, &hlc);
            }
        }
        for (key, state) in &states {
            put_state(&tx, key, state)?;
        }
        tx.execute("DELETE FROM outbox WHERE id <= ?1", [watermark as i64])?;
        let previous = meta(&tx, "acked")?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        set_meta(&tx, "acked", &previous.max(watermark).to_string())?;
        forget_batch(&tx)?;
        tx.commit()?;
        Ok(done)
    }

    /// The server's watermark is `watermark` and our pending ids start
    /// above `watermark + 1` (its state went back, say restored): number
    /// the pending mutations from `watermark + 1`, in order, so they apply.
    pub fn renumber_from(&mut self, watermark: u64) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        // Through negative ids, so no two rows ever share one.
        tx.execute("UPDATE outbox SET id = -id", [])?;
        let ids: Vec<i64> = {
            let mut statement = tx.prepare("SELECT id FROM outbox ORDER BY id DESC")?;
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        for (offset, negative) in ids.iter().enumerate() {
            tx.execute(
                "UPDATE outbox SET id = ?1 WHERE id = ?2",
                params![watermark as i64 + 1 + offset as i64, negative],
            )?;
        }
        set_meta(&tx, "acked", &watermark.to_string())?;
        forget_batch(&tx)?;
        tx.commit()?;
        Ok(())
    }
}

/// Moves a queued mutation into `rejected`, refused with `code`.
pub(super) fn reject(conn: &Connection, id: u64, code: &str) -> Result<(), SyncError> {
    conn.execute(
        "INSERT OR REPLACE INTO rejected (id, space, collection, record_id, op, fields, hlc, code)
         SELECT id, space, collection, record_id, op, fields, hlc, ?2 FROM outbox WHERE id = ?1",
        params![id as i64, code],
    )?;
    Ok(())
}

pub(super) fn key_of(mutation: &WireMutation) -> RecordKey {
    RecordKey {
        space: mutation.space_id.clone(),
        collection: mutation.collection.clone(),
        record_id: mutation.record_id.clone(),
    }
}

/// The queued mutations matching `filter` (a `WHERE` clause), in id order.
pub(super) fn queued(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<WireMutation>, SyncError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT id, space, collection, record_id, op, fields, hlc FROM outbox
         WHERE {filter} ORDER BY id"
    ))?;
    let rows = statement
        .query_map(params, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, space, collection, record_id, op, fields, hlc)| {
            Ok(WireMutation {
                id: id as u64,
                space_id: space_of(&space)?,
                collection,
                record_id,
                op,
                fields: fields.as_deref().map(serde_json::from_str).transpose()?,
                hlc,
            })
        })
        .collect()
}

/// Ends the batch in flight: the next push forms a new one, under a new key.
pub(super) fn forget_batch(conn: &Connection) -> Result<(), SyncError> {
    conn.execute(
        "DELETE FROM meta WHERE key IN ('batch_key', 'batch_last')",
        [],
    )?;
    Ok(())
}

/// A queued mutation as the merge engine applies it.
pub(super) fn decode_op(mutation: &WireMutation) -> Result<(Op, Hlc), SyncError> {
    let hlc = Hlc::parse(&mutation.hlc).map_err(|err| SyncError::Database {
        reason: format!("a stored stamp is not an hlc: {err}"),
    })?;
    let op = match (mutation.op.as_str(), &mutation.fields) {
        ("put", Some(fields)) => Op::Put(fields.clone().into_iter().collect()),
        ("delete", _) => Op::Delete,
        (op, _) => {
            return Err(SyncError::Database {
                reason: format!("a stored mutation has op {op:?} without its fields"),
            });
        }
    };
    Ok((op, hlc))
}
