//! What can go wrong, typed so an app can react: refresh the token on
//! `Unauthorized`, retry later on `Transport`, show `InvalidInput`.

/// Every failure of the client. A failed `sync()` leaves the outbox intact:
/// retrying it is always safe.
#[derive(Debug, Clone, PartialEq, thiserror::Error, uniffi::Error)]
pub enum SyncError {
    /// The app passed something the server would refuse (names, sizes,
    /// JSON that is not an object).
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// The file exists but is not this library's database (another app's
    /// SQLite file, or not SQLite at all). It is left untouched.
    #[error("{path} is not a mobile_sync database: {reason}")]
    ForeignDatabase { path: String, reason: String },
    /// The database was written by a newer version of this library.
    #[error("{path} has schema version {found}; this library reads up to {supported}")]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    /// The database belongs to another client id (its pending stamps carry
    /// that id, which the server would refuse from this one).
    #[error("the database belongs to client {stored}, not {given}")]
    ClientIdMismatch { stored: String, given: String },
    /// This user is not (or no longer) a member of the space: removed,
    /// left, deleted, or never joined.
    #[error("not a member of space {space_id}")]
    NotAMember { space_id: String },
    /// This user may only read the space.
    #[error("space {space_id} is read-only for this user")]
    ReadOnly { space_id: String },
    #[error("database error: {reason}")]
    Database { reason: String },
    /// No access token, or the server refused it (expired or revoked):
    /// refresh it, `set_access_token`, and sync again.
    #[error("not signed in, or the access token expired")]
    Unauthorized,
    /// Too many requests: the server (or API Gateway's throttle) asks to
    /// wait `retry_after_seconds`. `sync()` waits out short ones itself;
    /// this is a longer one. Nothing was lost: sync again after the wait.
    #[error("rate limited; retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    /// The request did not get an answer (offline, timeout, reset).
    #[error("network error: {reason}")]
    Transport { reason: String },
    /// The server answered with a problem document.
    #[error("the server answered {status} {code}: {detail}")]
    Server {
        status: u16,
        code: String,
        detail: String,
    },
    /// The server has applied this client's mutations up to
    /// `last_mutation_id` and the outbox starts further on. `sync()`
    /// renumbers and resends by itself; seen only if that keeps happening.
    #[error("the server expects mutations after {last_mutation_id}")]
    MutationGap { last_mutation_id: u64 },
    /// The server's answer is not what this library understands.
    #[error("unexpected answer from the server: {reason}")]
    Protocol { reason: String },
}

impl SyncError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: message.into(),
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol {
            reason: message.into(),
        }
    }
}

impl From<rusqlite::Error> for SyncError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Database {
            reason: err.to_string(),
        }
    }
}

impl From<serde_json::Error> for SyncError {
    fn from(err: serde_json::Error) -> Self {
        Self::Database {
            reason: format!("a stored value is not valid JSON: {err}"),
        }
    }
}
