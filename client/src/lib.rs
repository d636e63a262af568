//! `mobile_sync`: the app's half of sync, sharing the server's merge and
//! clock code (`shared::sync`) so the two can never disagree.
//!
//! - A local SQLite store (`store`): records as the server holds them, an
//!   outbox of numbered mutations, the cursor, the watermark, the clock.
//! - `put`/`delete` apply to the local view at once and queue a mutation;
//!   reads show the server state with pending mutations applied on top,
//!   exactly as the server will apply them.
//! - `sync()` pushes the outbox in batches (one `Idempotency-Key` each,
//!   resent unchanged after a lost answer; `mutation_gap` renumbers from
//!   the server's watermark) and pulls every page.
//!
//! - Shared spaces: records written `*_in_space` belong to a space several
//!   users share. Membership is managed online (`create_space`, `invite`,
//!   `accept_invitation`, ...) and reaches every device through the pull;
//!   a removal drops the space's records here and moves its queued edits
//!   to `rejected()`, so nothing typed vanishes silently.
//!
//! Swift, Kotlin and Python get `SyncClient` through UniFFI
//! (`scripts/bindings`); Rust apps and tests use `Replica` directly.

pub mod engine;
mod error;
pub mod http;
pub mod live;
pub mod spaces;
pub mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

pub use engine::{Replica, SyncReport, Transport};
pub use error::SyncError;
use http::HttpTransport;
pub use spaces::{Invitation, SpaceMember};
pub use store::{RejectedMutation, RejectionCode, Space, SpaceRole};

uniffi::setup_scaffolding!();

/// Told when records change: after a local `put`/`delete`, and after a
/// `sync()` that pulled changes. Called on the thread that made the change;
/// hop to the UI thread yourself.
#[uniffi::export(with_foreign)]
pub trait ChangeListener: Send + Sync {
    fn on_change(&self, collections: Vec<String>);
}

/// A visible record.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Record {
    pub record_id: String,
    /// The visible fields as a JSON object.
    pub fields_json: String,
}

/// One device's replica of the signed-in user's records. Every method is
/// synchronous and safe to call from any thread; call `sync()` off the
/// main thread (it does network I/O).
#[derive(uniffi::Object)]
pub struct SyncClient {
    replica: Replica<HttpTransport>,
    listeners: Mutex<Vec<Arc<dyn ChangeListener>>>,
    listening: AtomicBool,
    stop: AtomicBool,
}

fn fields_of(fields_json: &str) -> Result<Map<String, Value>, SyncError> {
    match serde_json::from_str(fields_json) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(SyncError::invalid("fields must be a JSON object")),
        Err(err) => Err(SyncError::invalid(format!("fields are not JSON: {err}"))),
    }
}

#[uniffi::export]
impl SyncClient {
    /// Opens (or creates) the database at `db_path` for this device's
    /// `client_id` (stable per install: 1-64 of `[A-Za-z0-9_.:-]`), syncing
    /// with the API at `api_url`.
    #[uniffi::constructor]
    pub fn new(
        db_path: String,
        api_url: String,
        client_id: String,
    ) -> Result<Arc<Self>, SyncError> {
        Ok(Arc::new(Self {
            replica: Replica::open(&db_path, &client_id, HttpTransport::new(&api_url)?)?,
            listeners: Mutex::new(Vec::new()),
            listening: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }))
    }

    /// The access token for the next requests (after sign-in or refresh);
    /// None signs out. `sync()` answers `Unauthorized` when it is refused.
    pub fn set_access_token(&self, token: Option<String>) {
        self.replica.transport().set_access_token(token);
    }

    /// Sets these fields of the record (a JSON object; other fields keep
    /// their values). Visible at once, pushed by the next `sync()`.
    pub fn put(
        &self,
        collection: String,
        record_id: String,
        fields_json: String,
    ) -> Result<(), SyncError> {
        self.replica.put_at(
            &collection,
            &record_id,
            fields_of(&fields_json)?,
            engine::wall_ms(),
        )?;
        self.notify(vec![collection]);
        Ok(())
    }

    pub fn delete(&self, collection: String, record_id: String) -> Result<(), SyncError> {
        self.replica
            .delete_at(&collection, &record_id, engine::wall_ms())?;
        self.notify(vec![collection]);
        Ok(())
    }

    /// The visible fields as a JSON object, or None when absent or deleted.
    pub fn get(&self, collection: String, record_id: String) -> Result<Option<String>, SyncError> {
        Ok(self
            .replica
            .get(&collection, &record_id)?
            .map(|fields| Value::Object(fields).to_string()))
    }

    /// Every visible record of a collection.
    pub fn list(&self, collection: String) -> Result<Vec<Record>, SyncError> {
        Ok(records(self.replica.list(&collection)?))
    }

    // ------------------------------------------------------------ spaces

    /// Creates a shared space owned by this user. `space_id` is the app's
    /// own UUID, if it made one: calling again with the same id after a
    /// lost answer gives the same space, not a second one. Online.
    pub fn create_space(&self, name: String, space_id: Option<String>) -> Result<Space, SyncError> {
        let id = spaces::new_space_id(space_id.as_deref())?;
        let space = self.replica.transport().create_space(&id, &name)?;
        self.replica.joined(&id, &space.name, space.role)?;
        Ok(space)
    }

    /// The spaces this user is in, as of the last `sync()` (or create,
    /// accept). Offline.
    pub fn spaces(&self) -> Result<Vec<Space>, SyncError> {
        self.replica.spaces()
    }

    /// The space's members with their e-mail addresses (every member sees
    /// them). Online.
    pub fn space_members(&self, space_id: String) -> Result<Vec<SpaceMember>, SyncError> {
        self.replica
            .transport()
            .members(&spaces::space_id(&space_id)?)
    }

    /// Renames a space (owner, editor). Online.
    pub fn rename_space(&self, space_id: String, name: String) -> Result<Space, SyncError> {
        let id = spaces::space_id(&space_id)?;
        let space = self.replica.transport().rename_space(&id, &name)?;
        self.replica.joined(&id, &space.name, space.role)?;
        Ok(space)
    }

    /// Makes an invitation (owner) for `role` (editor or viewer), usable
    /// `max_uses` times (default 1) for 7 days. Online.
    pub fn invite(
        &self,
        space_id: String,
        role: SpaceRole,
        max_uses: Option<u32>,
    ) -> Result<Invitation, SyncError> {
        self.replica
            .transport()
            .invite(&spaces::space_id(&space_id)?, role, max_uses)
    }

    /// Joins the space an invitation code is for; its records arrive with
    /// the next `sync()`. A code that is unknown, revoked, expired or used
    /// up is `Server { status: 404 }`. Online.
    pub fn accept_invitation(&self, code: String) -> Result<Space, SyncError> {
        let space = self.replica.transport().accept(code.trim())?;
        self.replica
            .joined(&spaces::space_id(&space.space_id)?, &space.name, space.role)?;
        Ok(space)
    }

    /// Changes a member's role (owner). `Owner` hands the space over: this
    /// user becomes an editor. Online; seen here at the next `sync()`.
    pub fn set_member_role(
        &self,
        space_id: String,
        user_id: String,
        role: SpaceRole,
    ) -> Result<(), SyncError> {
        self.replica
            .transport()
            .set_role(&spaces::space_id(&space_id)?, &user_id, role)
    }

    /// Removes a member (owner). Online.
    pub fn remove_member(&self, space_id: String, user_id: String) -> Result<(), SyncError> {
        self.replica
            .transport()
            .remove_member(&spaces::space_id(&space_id)?, &user_id)
    }

    /// Leaves a space. The owner must hand it over first while others
    /// remain (`Server { code: "owner_must_transfer" }`). Its records leave
    /// this device at once; queued edits there move to `rejected()`.
    pub fn leave_space(&self, space_id: String) -> Result<(), SyncError> {
        let id = spaces::space_id(&space_id)?;
        let transport = self.replica.transport();
        transport.remove_member(&id, &transport.user_id()?)?;
        self.forget_space(&id)
    }

    /// Deletes a space for every member (owner). Its records leave this
    /// device at once, and every other member's at their next `sync()`.
    pub fn delete_space(&self, space_id: String) -> Result<(), SyncError> {
        let id = spaces::space_id(&space_id)?;
        self.replica.transport().delete_space(&id)?;
        self.forget_space(&id)
    }

    /// `put` in a shared space (owner, editor): refused at once with
    /// `NotAMember` or `ReadOnly` otherwise.
    pub fn put_in_space(
        &self,
        space_id: String,
        collection: String,
        record_id: String,
        fields_json: String,
    ) -> Result<(), SyncError> {
        self.replica.put_in_at(
            &spaces::space_id(&space_id)?,
            &collection,
            &record_id,
            fields_of(&fields_json)?,
            engine::wall_ms(),
        )?;
        self.notify(vec![collection]);
        Ok(())
    }

    pub fn delete_in_space(
        &self,
        space_id: String,
        collection: String,
        record_id: String,
    ) -> Result<(), SyncError> {
        self.replica.delete_in_at(
            &spaces::space_id(&space_id)?,
            &collection,
            &record_id,
            engine::wall_ms(),
        )?;
        self.notify(vec![collection]);
        Ok(())
    }

    pub fn get_in_space(
        &self,
        space_id: String,
        collection: String,
        record_id: String,
    ) -> Result<Option<String>, SyncError> {
        Ok(self
            .replica
            .get_in(&spaces::space_id(&space_id)?, &collection, &record_id)?
            .map(|fields| Value::Object(fields).to_string()))
    }

    pub fn list_in_space(
        &self,
        space_id: String,
        collection: String,
    ) -> Result<Vec<Record>, SyncError> {
        Ok(records(
            self.replica
                .list_in(&spaces::space_id(&space_id)?, &collection)?,
        ))
    }

    /// Pushes pending mutations and pulls every change. On failure the
    /// outbox is intact; call it again later.
    pub fn sync(&self) -> Result<SyncReport, SyncError> {
        let report = self.replica.sync()?;
        if !report.collections.is_empty() {
            self.notify(report.collections.clone());
        }
        Ok(report)
    }

    /// Mutations not yet acknowledged by the server.
    pub fn pending_count(&self) -> Result<u64, SyncError> {
        self.replica.pending_count()
    }

    /// Mutations the server refused (a value nested too deep, a record
    /// grown too large, ...), oldest first. They were never applied, here
    /// or on the server, and later edits went through: show them, write
    /// them again differently, or `discard_rejected`.
    pub fn rejected(&self) -> Result<Vec<RejectedMutation>, SyncError> {
        self.replica.rejected()
    }

    /// Forgets a refused mutation; false if none has that id.
    pub fn discard_rejected(&self, mutation_id: u64) -> Result<bool, SyncError> {
        self.replica.discard_rejected(mutation_id)
    }

    pub fn client_id(&self) -> String {
        self.replica.client_id()
    }

    /// Keeps the live channel at `websocket_url` (the stack's
    /// `WebSocketUrl`) open and syncs on connect and on every poke, until
    /// `stop_listening()`. Blocks: run it on a background thread while the
    /// app is in the foreground. Reconnects by itself after network
    /// failures (backoff with jitter); returns `Unauthorized` when the
    /// token is refused (refresh it, `set_access_token`, listen again).
    pub fn listen(&self, websocket_url: String) -> Result<(), SyncError> {
        if self.listening.swap(true, Ordering::SeqCst) {
            return Err(SyncError::invalid("already listening"));
        }
        self.stop.store(false, Ordering::SeqCst);
        let client_id = self.client_id();
        let outcome = live::run(
            &websocket_url,
            || self.replica.transport().access_token(),
            &client_id,
            &self.stop,
            |event| {
                let behind = match event {
                    live::Event::Connected => true,
                    live::Event::Poke(cursor) => behind(self.replica.cursor()?.as_deref(), cursor),
                };
                if behind {
                    // A failed pull is retried at the next poke or connect.
                    if let Err(err) = self.sync()
                        && err == SyncError::Unauthorized
                    {
                        return Err(err);
                    }
                }
                Ok(())
            },
        );
        self.listening.store(false, Ordering::SeqCst);
        outcome
    }

    /// Ends `listen()` within a quarter of a second.
    pub fn stop_listening(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn add_listener(&self, listener: Arc<dyn ChangeListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }
}

fn records(listed: Vec<(String, Map<String, Value>)>) -> Vec<Record> {
    listed
        .into_iter()
        .map(|(record_id, fields)| Record {
            record_id,
            fields_json: Value::Object(fields).to_string(),
        })
        .collect()
}

impl SyncClient {
    fn forget_space(&self, space: &shared::model::ids::SpaceId) -> Result<(), SyncError> {
        let collections = self.replica.left(space)?;
        if !collections.is_empty() {
            self.notify(collections);
        }
        Ok(())
    }

    fn notify(&self, collections: Vec<String>) {
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for listener in listeners {
            listener.on_change(collections.clone());
        }
    }
}

/// Whether a poke naming `poked` (the own feed's version the change
/// reached; empty for a space's change) leaves a replica at `held` behind.
fn behind(held: Option<&str>, poked: &str) -> bool {
    use shared::sync::feed::decode_cursor;
    match (held.map(decode_cursor), decode_cursor(poked)) {
        (Some(Ok(held)), Ok(poked)) => held.own < poked.own,
        _ => true,
    }
}
