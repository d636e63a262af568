//! The file's schema: what a new file holds, how an older one is brought
//! up to date in place, and the key-value `meta` table.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::SyncError;

/// `PRAGMA application_id`: "msyn". A file with another id is not ours.
pub(super) const APPLICATION_ID: i64 = 0x6D73_796E;
/// `PRAGMA user_version`: the schema this code writes. Older files are
/// upgraded in place by `upgrade` (every version's file is a test fixture).
pub(super) const SCHEMA_VERSION: i64 = 4;
pub(super) const SCHEMA: &str = "
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
pub(super) const SCHEMA_2: &str = "
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

/// Version 3: shared spaces. Every record, queued edit and refused edit
/// names its space, `''` being the user's own (the key of every row a
/// version 2 file held); `spaces` holds the user's memberships as last
/// pulled. SQLite cannot change a primary key in place, so `records` is
/// rebuilt.
pub(super) const SCHEMA_3: &str = "
CREATE TABLE records_v3 (
    space      TEXT NOT NULL,
    collection TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (space, collection, record_id)
) STRICT, WITHOUT ROWID;
INSERT INTO records_v3 (space, collection, record_id, state)
    SELECT '', collection, record_id, state FROM records;
DROP TABLE records;
ALTER TABLE records_v3 RENAME TO records;
ALTER TABLE outbox ADD COLUMN space TEXT NOT NULL DEFAULT '';
DROP INDEX outbox_by_record;
CREATE INDEX outbox_by_record ON outbox (space, collection, record_id, id);
ALTER TABLE rejected ADD COLUMN space TEXT NOT NULL DEFAULT '';
CREATE TABLE spaces (
    space_id TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    role     TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer'))
) STRICT, WITHOUT ROWID;
";

/// Version 4: starting over. When the server has compacted deletes this
/// device never saw (`cursor_expired`), every record and space is marked
/// `stale`; the full pull that follows replaces what it sends and clears
/// the mark, and what is still marked when it ends is gone on the server.
pub(super) const SCHEMA_4: &str = "
ALTER TABLE records ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
";

/// A new file is version 1 brought up to date: one path for both.
pub(super) fn create(conn: &mut Connection, client_id: &str) -> Result<(), SyncError> {
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    set_meta(&tx, "client_id", client_id)?;
    migrate(&tx, 1)?;
    tx.commit()?;
    Ok(())
}

/// Brings a file of schema `from` up to `SCHEMA_VERSION`, in one
/// transaction: a crash leaves the old file as it was.
pub(super) fn upgrade(conn: &mut Connection, from: i64) -> Result<(), SyncError> {
    let tx = conn.transaction()?;
    migrate(&tx, from)?;
    tx.commit()?;
    Ok(())
}

fn migrate(tx: &Transaction<'_>, from: i64) -> Result<(), SyncError> {
    if from < 2 {
        tx.execute_batch(SCHEMA_2)?;
    }
    if from < 3 {
        tx.execute_batch(SCHEMA_3)?;
    }
    if from < 4 {
        tx.execute_batch(SCHEMA_4)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

pub(super) fn meta(conn: &Connection, key: &str) -> Result<Option<String>, SyncError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

pub(super) fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), SyncError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}
