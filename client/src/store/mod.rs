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

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Map, Value};
use shared::model::ids::{ClientId, SpaceId};
use shared::sync::hlc::{Clock, Hlc, MAX_MILLIS};
use shared::sync::merge::RecordState;
use shared::sync::spaces::SpaceChange;
use shared::sync::{Change, Limits, RecordKey, WireMutation, validate};

use crate::SyncError;

mod outbox;
mod rejected;
mod schema;
mod spaces;

pub use outbox::{Batch, MAX_BATCH};
use outbox::{decode_op, queued};
pub use rejected::{Acknowledged, PushAnswer, RejectedId, RejectedMutation, RejectionCode};
use schema::{APPLICATION_ID, SCHEMA_VERSION, create, meta, set_meta, upgrade};
pub use spaces::{Space, SpaceRole};

/// A record's visible fields.
pub type Fields = Map<String, Value>;

/// A page of `GET /sync/pull`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullPage {
    pub changes: Vec<Change>,
    /// Membership changes since the cursor, in order (removals first).
    #[serde(default)]
    pub spaces: Vec<SpaceChange>,
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
        let foreign = |reason: String| SyncError::ForeignDatabase {
            path: path.to_string(),
            reason,
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
        space: Option<&SpaceId>,
        collection: &str,
        record_id: &str,
        fields: Option<Map<String, Value>>,
        wall_ms: u64,
    ) -> Result<u64, SyncError> {
        let tx = self.conn.transaction()?;
        if let Some(space) = space {
            spaces::require_write(&tx, space)?;
        }
        let mut clock = clock(&tx, self.client_id.as_str())?;
        let hlc = clock.tick(wall_ms);
        let id = next_mutation_id(&tx)?;
        let mutation = WireMutation {
            id,
            space_id: space.cloned(),
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
            "INSERT INTO outbox (id, space, collection, record_id, op, fields, hlc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id as i64,
                space_column(space),
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
    pub fn view(&self, key: &RecordKey) -> Result<Option<RecordState>, SyncError> {
        let mut state = server_state(&self.conn, key)?;
        let pending = queued(
            &self.conn,
            "space = ?1 AND collection = ?2 AND record_id = ?3",
            params![
                space_column(key.space.as_ref()),
                key.collection,
                key.record_id
            ],
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
    pub fn visible(&self, key: &RecordKey) -> Result<Option<Map<String, Value>>, SyncError> {
        Ok(self
            .view(key)?
            .filter(|state| !state.fields.is_empty())
            .map(|state| state.values().into_iter().collect()))
    }

    /// Every visible record of a collection in a space (None: the user's
    /// own), by record id.
    pub fn list(
        &self,
        space: Option<&SpaceId>,
        collection: &str,
    ) -> Result<Vec<(String, Fields)>, SyncError> {
        let mut ids = BTreeSet::new();
        for sql in [
            "SELECT record_id FROM records WHERE space = ?1 AND collection = ?2",
            "SELECT DISTINCT record_id FROM outbox WHERE space = ?1 AND collection = ?2",
        ] {
            let mut statement = self.conn.prepare_cached(sql)?;
            let rows = statement.query_map(params![space_column(space), collection], |row| {
                row.get::<_, String>(0)
            })?;
            for id in rows {
                ids.insert(id?);
            }
        }
        let mut out = Vec::new();
        for record_id in ids {
            let key = RecordKey {
                space: space.cloned(),
                collection: collection.to_string(),
                record_id,
            };
            if let Some(fields) = self.visible(&key)? {
                out.push((key.record_id, fields));
            }
        }
        Ok(out)
    }

    pub fn cursor(&self) -> Result<Option<String>, SyncError> {
        meta(&self.conn, "cursor")
    }

    /// The server cannot bring this copy up to date (`cursor_expired`):
    /// the next pull starts from nothing and replaces the records instead
    /// of merging, since a merge would keep records whose deletes the
    /// server no longer has. Until it ends, the app keeps seeing the old
    /// copy; the outbox stays and is applied on top throughout.
    pub fn start_over(&mut self) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM meta WHERE key = 'cursor'", [])?;
        tx.execute("UPDATE records SET stale = 1", [])?;
        tx.execute("UPDATE spaces SET stale = 1", [])?;
        set_meta(&tx, "starting_over", "1")?;
        tx.commit()?;
        Ok(())
    }

    /// Merges a pulled page into the records and moves the cursor, in one
    /// transaction; every stamp seen advances the clock. Membership changes
    /// come first: a space left is dropped before a rejoined one's fresh
    /// state lands. Returns the records that changed (a dropped space's
    /// included). While starting over, a page replaces the records it
    /// holds, and its last page removes every record and space it did not
    /// send.
    pub fn apply_page(&mut self, page: &PullPage) -> Result<Vec<RecordKey>, SyncError> {
        let tx = self.conn.transaction()?;
        let starting_over = meta(&tx, "starting_over")?.is_some();
        let mut clock = clock(&tx, self.client_id.as_str())?;
        let mut changed = Vec::new();
        for space in &page.spaces {
            changed.extend(spaces::apply(&tx, space)?);
        }
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
            let key = change.key();
            let before = server_state(&tx, &key)?.unwrap_or_default();
            let state = if starting_over {
                incoming
            } else {
                let mut merged = before.clone();
                merged.merge(&incoming);
                merged
            };
            if state != before {
                changed.push(key.clone());
            }
            if state != before || starting_over {
                put_state(&tx, &key, &state)?;
            }
        }
        if starting_over && !page.has_more {
            changed.extend(spaces::sweep_stale(&tx)?);
            tx.execute("DELETE FROM meta WHERE key = 'starting_over'", [])?;
        }
        set_meta(&tx, "clock", &clock.last().to_string())?;
        set_meta(&tx, "cursor", &page.cursor)?;
        tx.commit()?;
        Ok(changed)
    }
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

/// How a row names its space: `''` for the user's own records.
pub(super) fn space_column(space: Option<&SpaceId>) -> &str {
    space.map_or("", SpaceId::as_str)
}

/// A row's space, as `space_column` wrote it.
pub(super) fn space_of(column: &str) -> Result<Option<SpaceId>, SyncError> {
    if column.is_empty() {
        return Ok(None);
    }
    SpaceId::parse(column)
        .map(Some)
        .map_err(|_| SyncError::Database {
            reason: format!("a stored space id {column:?} is not one"),
        })
}

pub(super) fn server_state(
    conn: &Connection,
    key: &RecordKey,
) -> Result<Option<RecordState>, SyncError> {
    let raw: Option<String> = conn
        .query_row(
            "SELECT state FROM records WHERE space = ?1 AND collection = ?2 AND record_id = ?3",
            params![
                space_column(key.space.as_ref()),
                key.collection,
                key.record_id
            ],
            |row| row.get(0),
        )
        .optional()?;
    Ok(raw.as_deref().map(serde_json::from_str).transpose()?)
}

pub(super) fn put_state(
    tx: &Transaction<'_>,
    key: &RecordKey,
    state: &RecordState,
) -> Result<(), SyncError> {
    tx.execute(
        "INSERT INTO records (space, collection, record_id, state) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (space, collection, record_id) DO UPDATE SET state = excluded.state, stale = 0",
        params![
            space_column(key.space.as_ref()),
            key.collection,
            key.record_id,
            serde_json::to_string(state)?
        ],
    )?;
    Ok(())
}
