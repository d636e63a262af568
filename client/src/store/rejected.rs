//! What the server refused: its answer to a push, and the mutations it
//! acknowledged without applying, kept for the app.

use shared::sync::RecordKey;

use super::Store;
use crate::SyncError;

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
    /// The edit was for a shared space this user is not (or no longer) a
    /// member of: removed, left, or the space was deleted.
    NotAMember,
    /// The edit was for a shared space this user may only read.
    ReadOnly,
    /// The record was deleted (on another device) longer ago than the
    /// server keeps deletes, and this edit is older than that delete.
    StaleEdit,
    /// The record would be new where the user (or the space) already
    /// holds as many records as the server allows; deleting records makes
    /// room, and the edit can be made again then.
    QuotaExceeded,
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
            "not_a_member" => Self::NotAMember,
            "read_only" => Self::ReadOnly,
            "stale_edit" => Self::StaleEdit,
            "quota_exceeded" => Self::QuotaExceeded,
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
    /// The shared space it was written in; None for the user's own records.
    pub space_id: Option<String>,
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

impl Store {
    /// The refused mutations, oldest first.
    pub fn rejected(&self) -> Result<Vec<RejectedMutation>, SyncError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, space, collection, record_id, op, fields, code FROM rejected ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            let space: String = row.get(1)?;
            Ok(RejectedMutation {
                mutation_id: row.get::<_, i64>(0)? as u64,
                space_id: (!space.is_empty()).then_some(space),
                collection: row.get(2)?,
                record_id: row.get(3)?,
                deleted: row.get::<_, String>(4)? == "delete",
                fields_json: row.get(5)?,
                code: RejectionCode::parse(&row.get::<_, String>(6)?),
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
}
