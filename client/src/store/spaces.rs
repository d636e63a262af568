//! The shared spaces this user is in, as last pulled or answered: what
//! `enqueue` checks a write against, and what a removal takes away.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use shared::model::access::Role;
use shared::model::ids::SpaceId;
use shared::sync::RecordKey;
use shared::sync::spaces::SpaceChange;

use super::outbox::{key_of, queued, reject};
use super::schema::meta;
use super::{Store, space_of};
use crate::SyncError;

/// What a member may do in a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SpaceRole {
    /// Everything: rename, invite, change roles, remove, delete.
    Owner,
    /// Read and write records and photos; rename.
    Editor,
    /// Read only.
    Viewer,
}

impl From<Role> for SpaceRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Editor => Self::Editor,
            Role::Viewer => Self::Viewer,
        }
    }
}

impl SpaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }

    fn parse(raw: &str) -> Result<Self, SyncError> {
        match raw {
            "owner" => Ok(Self::Owner),
            "editor" => Ok(Self::Editor),
            "viewer" => Ok(Self::Viewer),
            other => Err(SyncError::Database {
                reason: format!("a stored role {other:?} is not one"),
            }),
        }
    }
}

/// A space this user is in.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Space {
    pub space_id: String,
    pub name: String,
    pub role: SpaceRole,
}

/// Refuses a write into `space` unless this user may write there, as the
/// server would (it checks again, in the write's own transaction).
pub(super) fn require_write(conn: &Connection, space: &SpaceId) -> Result<(), SyncError> {
    let role: Option<String> = conn
        .query_row(
            "SELECT role FROM spaces WHERE space_id = ?1",
            [space.as_str()],
            |row| row.get(0),
        )
        .optional()?;
    match role.as_deref().map(SpaceRole::parse).transpose()? {
        None => Err(SyncError::NotAMember {
            space_id: space.to_string(),
        }),
        Some(SpaceRole::Viewer) => Err(SyncError::ReadOnly {
            space_id: space.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

/// Applies one membership change; returns the records whose view changed.
pub(super) fn apply(
    tx: &Transaction<'_>,
    change: &SpaceChange,
) -> Result<Vec<RecordKey>, SyncError> {
    match (&change.name, change.role) {
        (Some(name), Some(role)) if !change.removed => {
            upsert(tx, &change.space_id, name, role.into())?;
            Ok(Vec::new())
        }
        _ => drop_space(tx, &change.space_id),
    }
}

pub(super) fn upsert(
    conn: &Connection,
    space: &SpaceId,
    name: &str,
    role: SpaceRole,
) -> Result<(), SyncError> {
    conn.execute(
        "INSERT INTO spaces (space_id, name, role) VALUES (?1, ?2, ?3)
         ON CONFLICT (space_id) DO UPDATE SET name = excluded.name, role = excluded.role, stale = 0",
        params![space.as_str(), name, role.as_str()],
    )?;
    Ok(())
}

/// The end of starting over: every space and record the full pull did not
/// send is gone on the server. Returns the records whose view changed.
pub(super) fn sweep_stale(tx: &Transaction<'_>) -> Result<Vec<RecordKey>, SyncError> {
    let gone: Vec<SpaceId> = {
        let mut statement = tx.prepare_cached("SELECT space_id FROM spaces WHERE stale = 1")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|id| {
            let id = id?;
            SpaceId::parse(&id).map_err(|_| SyncError::Database {
                reason: format!("a stored space id {id:?} is not one"),
            })
        })
        .collect::<Result<_, _>>()?
    };
    let mut changed = Vec::new();
    for space in &gone {
        changed.extend(drop_space(tx, space)?);
    }
    {
        let mut statement =
            tx.prepare_cached("SELECT space, collection, record_id FROM records WHERE stale = 1")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (space, collection, record_id) = row?;
            changed.push(RecordKey {
                space: space_of(&space)?,
                collection,
                record_id,
            });
        }
    }
    tx.execute("DELETE FROM records WHERE stale = 1", [])?;
    changed.sort();
    changed.dedup();
    Ok(changed)
}

/// This user is out of `space`: its records go, and its queued edits move
/// to `rejected` as `not_a_member`, where the app can show them or write
/// them again elsewhere. Edits already in a batch being pushed stay: the
/// server answers for them (with the same code), and the batch must be
/// resent unchanged.
fn drop_space(tx: &Transaction<'_>, space: &SpaceId) -> Result<Vec<RecordKey>, SyncError> {
    let in_flight: i64 = meta(tx, "batch_last")?
        .and_then(|last| last.parse().ok())
        .unwrap_or(0);
    let queued_here = queued(
        tx,
        "space = ?1 AND id > ?2",
        params![space.as_str(), in_flight],
    )?;
    let mut changed: Vec<RecordKey> = queued_here.iter().map(key_of).collect();
    for mutation in &queued_here {
        reject(tx, mutation.id, "not_a_member")?;
        tx.execute("DELETE FROM outbox WHERE id = ?1", [mutation.id as i64])?;
    }
    {
        let mut statement =
            tx.prepare_cached("SELECT collection, record_id FROM records WHERE space = ?1")?;
        let rows = statement.query_map([space.as_str()], |row| {
            Ok(RecordKey {
                space: Some(space.clone()),
                collection: row.get(0)?,
                record_id: row.get(1)?,
            })
        })?;
        for key in rows {
            changed.push(key?);
        }
    }
    tx.execute("DELETE FROM records WHERE space = ?1", [space.as_str()])?;
    tx.execute("DELETE FROM spaces WHERE space_id = ?1", [space.as_str()])?;
    changed.sort();
    changed.dedup();
    Ok(changed)
}

impl Store {
    /// The spaces this user is in, by name.
    pub fn spaces(&self) -> Result<Vec<Space>, SyncError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT space_id, name, role FROM spaces ORDER BY name, space_id")?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(space_id, name, role)| {
                Ok(Space {
                    space_id,
                    name,
                    role: SpaceRole::parse(&role)?,
                })
            })
            .collect()
    }

    /// Records a membership the server just answered with (created,
    /// accepted), so the app can write there before the next pull.
    pub fn joined(
        &mut self,
        space: &SpaceId,
        name: &str,
        role: SpaceRole,
    ) -> Result<(), SyncError> {
        upsert(&self.conn, space, name, role)
    }

    /// This user left `space`, or deleted it: drop it now rather than at
    /// the next pull. Returns the records whose view changed.
    pub fn left(&mut self, space: &SpaceId) -> Result<Vec<RecordKey>, SyncError> {
        let tx = self.conn.transaction()?;
        let changed = drop_space(&tx, space)?;
        tx.commit()?;
        Ok(changed)
    }
}
