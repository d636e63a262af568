//! The sync loop over any transport: push the outbox batch by batch, then
//! pull every page. The HTTP transport is `http::HttpTransport`; tests run
//! the same loop against the server's rules in memory.

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use shared::model::ids::SpaceId;
use shared::sync::RecordKey;
use shared::sync::WireMutation;

use crate::SyncError;
use crate::store::{Fields, PullPage, PushAnswer, RejectedMutation, Space, SpaceRole, Store};

/// Changes per pull page (the server allows up to 500).
pub const PULL_LIMIT: u32 = 500;
/// Gaps in a row after which the server's watermark is not to be trusted.
const MAX_GAPS: usize = 3;

/// The two calls of the sync API.
pub trait Transport: Send + Sync {
    /// `POST /sync/push`: the server's watermark for this client after it
    /// and the mutations it refused, or `SyncError::MutationGap` with the
    /// watermark it has.
    fn push(
        &self,
        client_id: &str,
        mutations: &[WireMutation],
        idempotency_key: &str,
    ) -> Result<PushAnswer, SyncError>;

    /// `GET /sync/pull` from `cursor` (None: from the start).
    fn pull(
        &self,
        client_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<PullPage, SyncError>;
}

/// What one `sync()` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Mutations the server acknowledged.
    pub pushed: u64,
    /// Of those, the ones it refused: see `rejected()`.
    pub rejected: u64,
    /// Records a pull changed here.
    pub pulled: u64,
    /// The collections those records belong to.
    pub collections: Vec<String>,
    /// Membership changes pulled (spaces joined, renamed, role changed or
    /// left): read `spaces()` again when it is not 0.
    pub space_changes: u64,
}

/// A replica of the user's records: the store, and a transport to sync it.
pub struct Replica<T> {
    store: Mutex<Store>,
    transport: T,
    /// One sync at a time; reads and writes go on meanwhile.
    syncing: Mutex<()>,
}

pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock left SQLite consistent (every change
    // is a transaction), so the store stays usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T: Transport> Replica<T> {
    pub fn open(db_path: &str, client_id: &str, transport: T) -> Result<Self, SyncError> {
        Ok(Self {
            store: Mutex::new(Store::open(db_path, client_id)?),
            transport,
            syncing: Mutex::new(()),
        })
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn client_id(&self) -> String {
        lock(&self.store).client_id().to_string()
    }

    /// Sets the fields of one of the user's own records (others are kept),
    /// at wall clock `now`.
    pub fn put_at(
        &self,
        collection: &str,
        record_id: &str,
        fields: Map<String, Value>,
        now_ms: u64,
    ) -> Result<(), SyncError> {
        lock(&self.store).enqueue(None, collection, record_id, Some(fields), now_ms)?;
        Ok(())
    }

    pub fn delete_at(
        &self,
        collection: &str,
        record_id: &str,
        now_ms: u64,
    ) -> Result<(), SyncError> {
        lock(&self.store).enqueue(None, collection, record_id, None, now_ms)?;
        Ok(())
    }

    pub fn get(
        &self,
        collection: &str,
        record_id: &str,
    ) -> Result<Option<Map<String, Value>>, SyncError> {
        lock(&self.store).visible(&RecordKey {
            space: None,
            collection: collection.to_string(),
            record_id: record_id.to_string(),
        })
    }

    pub fn list(&self, collection: &str) -> Result<Vec<(String, Fields)>, SyncError> {
        lock(&self.store).list(None, collection)
    }

    /// Sets the fields of a record in a shared space; refused at once
    /// (`NotAMember`, `ReadOnly`) unless this user may write there.
    pub fn put_in_at(
        &self,
        space: &SpaceId,
        collection: &str,
        record_id: &str,
        fields: Map<String, Value>,
        now_ms: u64,
    ) -> Result<(), SyncError> {
        lock(&self.store).enqueue(Some(space), collection, record_id, Some(fields), now_ms)?;
        Ok(())
    }

    pub fn delete_in_at(
        &self,
        space: &SpaceId,
        collection: &str,
        record_id: &str,
        now_ms: u64,
    ) -> Result<(), SyncError> {
        lock(&self.store).enqueue(Some(space), collection, record_id, None, now_ms)?;
        Ok(())
    }

    pub fn get_in(
        &self,
        space: &SpaceId,
        collection: &str,
        record_id: &str,
    ) -> Result<Option<Map<String, Value>>, SyncError> {
        lock(&self.store).visible(&RecordKey {
            space: Some(space.clone()),
            collection: collection.to_string(),
            record_id: record_id.to_string(),
        })
    }

    pub fn list_in(
        &self,
        space: &SpaceId,
        collection: &str,
    ) -> Result<Vec<(String, Fields)>, SyncError> {
        lock(&self.store).list(Some(space), collection)
    }

    /// The spaces this user is in, as last pulled.
    pub fn spaces(&self) -> Result<Vec<Space>, SyncError> {
        lock(&self.store).spaces()
    }

    /// The server just made this user a member (created, accepted).
    pub fn joined(&self, space: &SpaceId, name: &str, role: SpaceRole) -> Result<(), SyncError> {
        lock(&self.store).joined(space, name, role)
    }

    /// This user is out of `space` (left, deleted it): its records go and
    /// its queued edits move to `rejected()`. Returns the collections whose
    /// records changed.
    pub fn left(&self, space: &SpaceId) -> Result<Vec<String>, SyncError> {
        Ok(collections(lock(&self.store).left(space)?))
    }

    /// The pull cursor (None before the first pull).
    pub fn cursor(&self) -> Result<Option<String>, SyncError> {
        lock(&self.store).cursor()
    }

    pub fn pending_count(&self) -> Result<u64, SyncError> {
        lock(&self.store).pending_count()
    }

    /// The mutations the server refused, oldest first: never applied here
    /// or there, kept until the app discards them.
    pub fn rejected(&self) -> Result<Vec<RejectedMutation>, SyncError> {
        lock(&self.store).rejected()
    }

    /// Forgets a refused mutation (the app showed it, or wrote it again
    /// differently). False if there was none with that id.
    pub fn discard_rejected(&self, mutation_id: u64) -> Result<bool, SyncError> {
        lock(&self.store).discard_rejected(mutation_id)
    }

    /// Pushes every pending mutation, then pulls every page. The store is
    /// locked only between network calls, never across one.
    pub fn sync(&self) -> Result<SyncReport, SyncError> {
        let _one_at_a_time = lock(&self.syncing);
        let client_id = self.client_id();
        let mut report = SyncReport::default();

        let mut changed: Vec<RecordKey> = Vec::new();
        let mut gaps = 0;
        loop {
            // Bound first: the store's lock must not outlive this line.
            let next = lock(&self.store).next_batch()?;
            let Some(batch) = next else { break };
            match patiently(|| {
                self.transport
                    .push(&client_id, &batch.mutations, &batch.idempotency_key)
            }) {
                Ok(answer) => {
                    let acknowledged = lock(&self.store).acknowledge(&answer)?;
                    let rejected = acknowledged.rejected.len() as u64;
                    report.pushed += acknowledged.applied + rejected;
                    report.rejected += rejected;
                    // A refused edit leaves the local view: the app is told.
                    changed.extend(acknowledged.rejected);
                    gaps = 0;
                }
                Err(SyncError::MutationGap { last_mutation_id }) if gaps < MAX_GAPS => {
                    gaps += 1;
                    lock(&self.store).renumber_from(last_mutation_id)?;
                }
                Err(err) => return Err(err),
            }
        }

        let mut started_over = false;
        loop {
            let cursor = lock(&self.store).cursor()?;
            match patiently(|| {
                self.transport
                    .pull(&client_id, cursor.as_deref(), PULL_LIMIT)
            }) {
                Ok(page) => {
                    let pulled = lock(&self.store).apply_page(&page)?;
                    report.pulled += pulled.len() as u64;
                    report.space_changes += page.spaces.len() as u64;
                    changed.extend(pulled);
                    if !page.has_more {
                        break;
                    }
                }
                // The server no longer has what this copy missed (deletes
                // compacted, or a rebuilt feed): everything again, replacing.
                Err(SyncError::Server { code, .. })
                    if code == "cursor_expired" && !started_over =>
                {
                    started_over = true;
                    lock(&self.store).start_over()?;
                }
                Err(err) => return Err(err),
            }
        }
        report.collections = collections(changed);
        Ok(report)
    }
}

/// A rate limit asking for at most this long is waited out inside
/// `sync()`; a longer one is the app's `RateLimited`, to schedule.
const WAIT_AT_MOST: u64 = 5;

/// Runs `call`, waiting out short rate limits (at most three times): a
/// push refused is resent under the same idempotency key, so nothing is
/// lost or applied twice.
fn patiently<T>(mut call: impl FnMut() -> Result<T, SyncError>) -> Result<T, SyncError> {
    let mut waits = 0;
    loop {
        match call() {
            Err(SyncError::RateLimited {
                retry_after_seconds,
            }) if retry_after_seconds <= WAIT_AT_MOST && waits < 3 => {
                waits += 1;
                std::thread::sleep(std::time::Duration::from_secs(retry_after_seconds));
            }
            outcome => return outcome,
        }
    }
}

/// The collections of `keys`, each once, in order.
fn collections(keys: Vec<RecordKey>) -> Vec<String> {
    let mut collections: Vec<String> = keys.into_iter().map(|key| key.collection).collect();
    collections.sort();
    collections.dedup();
    collections
}
