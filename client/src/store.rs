//! The device's SQLite file: the server's state of each record as last
//! pulled or acknowledged, the outbox of numbered mutations, the pull
//! cursor, the acknowledged watermark, the clock and the client id.
//!
//! Every change is one transaction, so an app killed at any instant finds
//! either the state before or after it: a mutation is queued or not, an
//! acknowledgement folds its mutations into the records and removes them
//! from the outbox together, a page of changes lands with its cursor.
//! WAL with `synchronous=NORMAL`: a killed app loses nothing committed; a
//! power cut may roll back the last commits, never corrupt the file.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Map, Value};
use shared::ids::ClientId;
use shared::sync::hlc::{Clock, Hlc, MAX_MILLIS};
use shared::sync::merge::{Op, RecordState};
use shared::sync::{Change, Limits, RecordKey, WireMutation, validate};

use crate::SyncError;

/// `PRAGMA application_id`: "msyn". A file with another id is not ours.
const APPLICATION_ID: i64 = 0x6D73_796E;
/// `PRAGMA user_version`: the schema this code writes. Older files are
/// upgraded in place by `upgrade` (every version's file is a test fixture).
const SCHEMA_VERSION: i64 = 2;
/// The server takes at most this many mutations per push.
pub const MAX_BATCH: usize = 1000;

const SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
-- The server's state of a record (merge::RecordState as JSON).
CREATE TABLE records (
    collection TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (collection, record_id)
) STRICT, WITHOUT ROWID;
-- Mutations not yet acknowledged, by consecutive mutation id.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    op         TEXT NOT NULL CHECK (op IN ('put', 'delete')),
    fields     TEXT,
    hlc        TEXT NOT NULL
) STRICT;
CREATE INDEX outbox_by_record ON outbox (collection, record_id, id);
";

/// Version 2: mutations the server refused, kept for the app.
const SCHEMA_2: &str = "
CREATE TABLE rejected (
    id         INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    op         TEXT NOT NULL CHECK (op IN ('put', 'delete')),
    fields     TEXT,
    hlc        TEXT NOT NULL,
    code       TEXT NOT NULL
) STRICT;
";

/// The server's answer to a push.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushAnswer {
    pub last_mutation_id: u64,
    /// Mutations acknowledged but not applied.
    #[serde(default)]
    pub rejected: Vec<RejectedId>,
}

/// One refused mutation, as the server names it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RejectedId {
    pub id: u64,
    pub code: String,
}

/// Why the server refused a mutation. `Other` carries a code this version
/// of the library does not know yet (the server adds codes, never changes
/// one).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum RejectionCode {
    /// A value nests deeper than the server stores (29 levels).
    ValueTooDeep,
    /// A value's JSON is over 4 KB.
    ValueTooLarge,
    /// More than 64 fields in one put.
    TooManyFields,
    /// The record would outgrow what the server stores for one record.
    RecordTooLarge,
    Other {
        code: String,
    },
}

impl RejectionCode {
    pub fn parse(code: &str) -> Self {
        match code {
            "value_too_deep" => Self::ValueTooDeep,
            "value_too_large" => Self::ValueTooLarge,
            "too_many_fields" => Self::TooManyFields,
            "record_too_large" => Self::RecordTooLarge,
            other => Self::Other {
                code: other.to_string(),
            },
        }
    }
}

/// A mutation the server refused: never applied, kept until discarded.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RejectedMutation {
    pub mutation_id: u64,
    pub collection: String,
    pub record_id: String,
    /// A delete (no fields) or a put.
    pub deleted: bool,
    /// The put's fields as a JSON object.
    pub fields_json: Option<String>,
    pub code: RejectionCode,
}

/// What one acknowledgement moved out of the outbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acknowledged {
    pub applied: u64,
    /// The records of the refused mutations: their view changed.
    pub rejected: Vec<RecordKey>,
}

/// A record's visible fields.
pub type Fields = Map<String, Value>;

/// A batch being pushed: resent as is, under the same key, until answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub idempotency_key: String,
    pub mutations: Vec<WireMutation>,
}

/// A page of `GET /sync/pull`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullPage {
    pub changes: Vec<Change>,
    pub cursor: String,
    pub has_more: bool,
    pub last_mutation_id: u64,
}

pub struct Store {
    conn: Connection,
    client_id: ClientId,
}

impl Store {
    /// Opens (or creates) the database at `path` for `client_id`. A file
    /// that is not this library's database is refused and left untouched.
    pub fn open(path: &str, client_id: &str) -> Result<Self, SyncError> {
        let Ok(parsed) = ClientId::parse(client_id) else {
            return Err(SyncError::invalid(
                "client id must be 1-64 of [A-Za-z0-9_.:-]",
            ));
        };
        let foreign = |message: String| SyncError::ForeignDatabase {
            path: path.to_string(),
            message,
        };
        let mut conn = Connection::open(path)?;
        // Reading the header is the first touch: a file that is not SQLite
        // fails here, before anything is written.
        let header = conn
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id),
                        (SELECT user_version FROM pragma_user_version),
                        (SELECT count(*) FROM sqlite_schema)",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .map_err(|err| foreign(err.to_string()))?;
        match header {
            (APPLICATION_ID, version, _) if version > SCHEMA_VERSION => {
                return Err(SyncError::NewerSchema {
                    path: path.to_string(),
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            (APPLICATION_ID, version, _) if version < SCHEMA_VERSION => {
                upgrade(&mut conn, version)?
            }
            (APPLICATION_ID, _, _) => {}
            (0, 0, 0) => create(&mut conn, client_id)?,
            (id, _, tables) => {
                return Err(foreign(format!(
                    "application_id {id:#x} with {tables} schema objects"
                )));
            }
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let stored: String = conn.query_row(
            "SELECT value FROM meta WHERE key = 'client_id'",
            [],
            |row| row.get(0),
        )?;
        if stored != client_id {
            return Err(SyncError::ClientIdMismatch {
                stored,
                given: client_id.to_string(),
            });
        }
        Ok(Self {
            conn,
            client_id: parsed,
        })
    }

    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// Queues a put (`fields`) or a delete (None), stamped now, and applies
    /// it to the local view at once. Checked as the server will check it.
    pub fn enqueue(
        &mut self,
        collection: &str,
        record_id: &str,
        fields: Option<Map<String, Value>>,
        wall_ms: u64,
    ) -> Result<u64, SyncError> {
        let tx = self.conn.transaction()?;
        let mut clock = clock(&tx, self.client_id.as_str())?;
        let hlc = clock.tick(wall_ms);
        let id = next_mutation_id(&tx)?;
        let mutation = WireMutation {
            id,
            collection: collection.to_string(),
            record_id: record_id.to_string(),
            op: if fields.is_some() { "put" } else { "delete" }.into(),
            fields,
            hlc: hlc.to_string(),
        };
        // The server's own validation; the clock-skew bound is the
        // server's to judge against its clock, not ours. What it would
        // reject for its content alone is refused here and never queued.
        let checked = validate(
            &self.client_id,
            vec![mutation.clone()],
            &Limits::default(),
            MAX_MILLIS,
        )
        .map_err(|err| SyncError::invalid(err.detail))?;
        if let Some(rejection) = checked.first().and_then(|m| m.rejection) {
            return Err(SyncError::invalid(format!(
                "the server would refuse this edit: {}",
                rejection.as_str()
            )));
        }
        tx.execute(
            "INSERT INTO outbox (id, collection, record_id, op, fields, hlc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id as i64,
                mutation.collection,
                mutation.record_id,
                mutation.op,
                mutation
                    .fields
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()?,
                mutation.hlc
            ],
        )?;
        set_meta(&tx, "clock", &clock.last().to_string())?;
        tx.commit()?;
        Ok(id)
    }

    /// The record as the app sees it: the server's state with every
    /// pending mutation applied on top, as the server will apply them.
    pub fn view(
        &self,
        collection: &str,
        record_id: &str,
    ) -> Result<Option<RecordState>, SyncError> {
        let mut state = server_state(&self.conn, collection, record_id)?;
        let pending = queued(
            &self.conn,
            "collection = ?1 AND record_id = ?2",
            params![collection, record_id],
        )?;
        for mutation in &pending {
            let (op, hlc) = decode_op(mutation)?;
            state
                .get_or_insert_with(RecordState::default)
                .apply(&op, &hlc);
        }
        Ok(state)
    }

    /// The visible fields, or None when absent or deleted.
    pub fn visible(
        &self,
        collection: &str,
        record_id: &str,
    ) -> Result<Option<Map<String, Value>>, SyncError> {
        Ok(self
            .view(collection, record_id)?
            .filter(|state| !state.fields.is_empty())
            .map(|state| state.values().into_iter().collect()))
    }

    /// Every visible record of a collection, by record id.
    pub fn list(&self, collection: &str) -> Result<Vec<(String, Fields)>, SyncError> {
        let mut ids = BTreeSet::new();
        for sql in [
            "SELECT record_id FROM records WHERE collection = ?1",
            "SELECT DISTINCT record_id FROM outbox WHERE collection = ?1",
        ] {
            let mut statement = self.conn.prepare_cached(sql)?;
            for id in statement.query_map([collection], |row| row.get::<_, String>(0))? {
                ids.insert(id?);
            }
        }
        let mut out = Vec::new();
        for id in ids {
            if let Some(fields) = self.visible(collection, &id)? {
                out.push((id, fields));
            }
        }
        Ok(out)
    }

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
        let mut states: BTreeMap<(String, String), RecordState> = BTreeMap::new();
        let mut done = Acknowledged::default();
        for mutation in &acked {
            if let Some(refused) = answer.rejected.iter().find(|r| r.id == mutation.id) {
                tx.execute(
                    "INSERT OR REPLACE INTO rejected (id, collection, record_id, op, fields, hlc, code)
                     SELECT id, collection, record_id, op, fields, hlc, ?2 FROM outbox WHERE id = ?1",
                    params![mutation.id as i64, refused.code],
                )?;
                done.rejected.push(RecordKey {
                    collection: mutation.collection.clone(),
                    record_id: mutation.record_id.clone(),
                });
                continue;
            }
            done.applied += 1;
            let (op, hlc) = decode_op(mutation)?;
            let key = (mutation.collection.clone(), mutation.record_id.clone());
            if !states.contains_key(&key) {
                let current = server_state(&tx, &mutation.collection, &mutation.record_id)?
                    .unwrap_or_default();
                states.insert(key.clone(), current);
            }
            if let Some(state) = states.get_mut(&key) {
                state.apply(&op, &hlc);
            }
        }
        for ((collection, record_id), state) in &states {
            put_state(&tx, collection, record_id, state)?;
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

    /// The refused mutations, oldest first.
    pub fn rejected(&self) -> Result<Vec<RejectedMutation>, SyncError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, collection, record_id, op, fields, code FROM rejected ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(RejectedMutation {
                mutation_id: row.get::<_, i64>(0)? as u64,
                collection: row.get(1)?,
                record_id: row.get(2)?,
                deleted: row.get::<_, String>(3)? == "delete",
                fields_json: row.get(4)?,
                code: RejectionCode::parse(&row.get::<_, String>(5)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn discard_rejected(&mut self, mutation_id: u64) -> Result<bool, SyncError> {
        let removed = self
            .conn
            .execute("DELETE FROM rejected WHERE id = ?1", [mutation_id as i64])?;
        Ok(removed > 0)
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

    pub fn cursor(&self) -> Result<Option<String>, SyncError> {
        meta(&self.conn, "cursor")
    }

    pub fn forget_cursor(&mut self) -> Result<(), SyncError> {
        self.conn
            .execute("DELETE FROM meta WHERE key = 'cursor'", [])?;
        Ok(())
    }

    /// Merges a pulled page into the records and moves the cursor, in one
    /// transaction; every stamp seen advances the clock. Returns the
    /// records that changed.
    pub fn apply_page(&mut self, page: &PullPage) -> Result<Vec<RecordKey>, SyncError> {
        let tx = self.conn.transaction()?;
        let mut clock = clock(&tx, self.client_id.as_str())?;
        let mut changed = Vec::new();
        for change in &page.changes {
            let incoming = change.state().ok_or_else(|| {
                SyncError::protocol(format!(
                    "the change of {}/{} has a field without a valid stamp",
                    change.collection, change.record_id
                ))
            })?;
            for hlc in incoming
                .fields
                .values()
                .map(|field| &field.hlc)
                .chain(incoming.deleted_at.as_ref())
            {
                clock.observe(hlc);
            }
            let mut state =
                server_state(&tx, &change.collection, &change.record_id)?.unwrap_or_default();
            let before = state.clone();
            state.merge(&incoming);
            if state != before {
                put_state(&tx, &change.collection, &change.record_id, &state)?;
                changed.push(change.key());
            }
        }
        set_meta(&tx, "clock", &clock.last().to_string())?;
        set_meta(&tx, "cursor", &page.cursor)?;
        tx.commit()?;
        Ok(changed)
    }
}

fn create(conn: &mut Connection, client_id: &str) -> Result<(), SyncError> {
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(SCHEMA_2)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    set_meta(&tx, "client_id", client_id)?;
    tx.commit()?;
    Ok(())
}

/// Brings a file of schema `from` up to `SCHEMA_VERSION`, in one
/// transaction: a crash leaves the old file as it was.
fn upgrade(conn: &mut Connection, from: i64) -> Result<(), SyncError> {
    let tx = conn.transaction()?;
    if from < 2 {
        tx.execute_batch(SCHEMA_2)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

fn meta(conn: &Connection, key: &str) -> Result<Option<String>, SyncError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), SyncError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn clock(conn: &Connection, client_id: &str) -> Result<Clock, SyncError> {
    let last = meta(conn, "clock")?.and_then(|raw| Hlc::parse(&raw).ok());
    Ok(Clock::new(client_id, last.as_ref()))
}

/// After every id ever queued: the outbox's last, or the last acknowledged.
fn next_mutation_id(conn: &Connection) -> Result<u64, SyncError> {
    let last_queued: Option<i64> =
        conn.query_row("SELECT max(id) FROM outbox", [], |row| row.get(0))?;
    let acked = meta(conn, "acked")?
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(last_queued.map_or(0, |id| id as u64).max(acked) + 1)
}

fn server_state(
    conn: &Connection,
    collection: &str,
    record_id: &str,
) -> Result<Option<RecordState>, SyncError> {
    let raw: Option<String> = conn
        .query_row(
            "SELECT state FROM records WHERE collection = ?1 AND record_id = ?2",
            params![collection, record_id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(raw.as_deref().map(serde_json::from_str).transpose()?)
}

fn put_state(
    tx: &Transaction<'_>,
    collection: &str,
    record_id: &str,
    state: &RecordState,
) -> Result<(), SyncError> {
    tx.execute(
        "INSERT INTO records (collection, record_id, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (collection, record_id) DO UPDATE SET state = excluded.state",
        params![collection, record_id, serde_json::to_string(state)?],
    )?;
    Ok(())
}

/// The queued mutations matching `filter` (a `WHERE` clause), in id order.
fn queued(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<WireMutation>, SyncError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT id, collection, record_id, op, fields, hlc FROM outbox WHERE {filter} ORDER BY id"
    ))?;
    let rows = statement
        .query_map(params, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, collection, record_id, op, fields, hlc)| {
            Ok(WireMutation {
                id: id as u64,
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
fn forget_batch(conn: &Connection) -> Result<(), SyncError> {
    conn.execute(
        "DELETE FROM meta WHERE key IN ('batch_key', 'batch_last')",
        [],
    )?;
    Ok(())
}

/// A queued mutation as the merge engine applies it.
fn decode_op(mutation: &WireMutation) -> Result<(Op, Hlc), SyncError> {
    let hlc = Hlc::parse(&mutation.hlc).map_err(|err| SyncError::Database {
        message: format!("a stored stamp is not an hlc: {err}"),
    })?;
    let op = match (mutation.op.as_str(), &mutation.fields) {
        ("put", Some(fields)) => Op::Put(fields.clone().into_iter().collect()),
        ("delete", _) => Op::Delete,
        (op, _) => {
            return Err(SyncError::Database {
                message: format!("a stored mutation has op {op:?} without its fields"),
            });
        }
    };
    Ok((op, hlc))
}
