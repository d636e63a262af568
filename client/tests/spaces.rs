//! Shared spaces on the device, against the server's rules in memory:
//! what members see, what a removal takes away and what it keeps for the
//! app, roles checked before an edit is queued, and a file of the
//! previous schema brought up to date.

use std::future::Future;
use std::sync::Arc;

use mobile_sync::store::{PullPage, PushAnswer};
use mobile_sync::{RejectionCode, Replica, SpaceRole, SyncError, Transport};
use serde_json::{Map, Value, json};
use shared::model::access::Role;
use shared::model::ids::{SpaceId, UserId};
use shared::sync::WireMutation;
use shared::sync::memory::MemoryServer;
use shared::sync::store::Memberships;

mod common;

const NOW: u64 = 1_800_000_000_000;

/// One user's view of the shared server.
#[derive(Clone)]
struct Server {
    rules: Arc<MemoryServer>,
    user: UserId,
}

impl Transport for Server {
    fn push(
        &self,
        client_id: &str,
        mutations: &[WireMutation],
        _key: &str,
    ) -> Result<PushAnswer, SyncError> {
        common::push_as(&self.rules, &self.user, client_id, mutations, NOW)
    }

    fn pull(
        &self,
        client_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<PullPage, SyncError> {
        Ok(common::pull_as(
            &self.rules,
            &self.user,
            client_id,
            cursor,
            limit,
        ))
    }
}

/// The membership calls of the memory server finish without waiting.
fn now<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

struct World {
    rules: Arc<MemoryServer>,
    dir: tempfile::TempDir,
    space: SpaceId,
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

impl World {
    /// Alice owns "Groceries".
    fn new() -> Self {
        let rules = Arc::new(MemoryServer::default());
        let space = SpaceId::parse("0b6f7a3e-8c1d-4f2a-9e5b-1c2d3e4f5a6b").unwrap();
        now(rules.create_space(&user("alice"), &space, "Groceries")).unwrap();
        Self {
            rules,
            dir: tempfile::tempdir().unwrap(),
            space,
        }
    }

    fn device(&self, name: &str, client: &str) -> Replica<Server> {
        let path = self.dir.path().join(format!("{name}-{client}.db"));
        let server = Server {
            rules: self.rules.clone(),
            user: user(name),
        };
        Replica::open(path.to_str().unwrap(), client, server).unwrap()
    }

    fn add(&self, name: &str, role: Role) {
        now(self
            .rules
            .add_member(&user("alice"), &self.space, &user(name), role))
        .unwrap();
    }

    /// Bob joins as an editor; Alice writes "milk" and both sync it.
    fn alice_and_bob(&self) -> (Replica<Server>, Replica<Server>) {
        self.add("bob", Role::Editor);
        let alice = self.device("alice", "alice-phone");
        let bob = self.device("bob", "bob-phone");
        alice.sync().unwrap();
        alice
            .put_in_at(&self.space, "items", "milk", fields(json!({"n": 1})), NOW)
            .unwrap();
        alice.sync().unwrap();
        bob.sync().unwrap();
        assert!(bob.get_in(&self.space, "items", "milk").unwrap().is_some());
        (alice, bob)
    }

    fn remove(&self, name: &str) {
        now(self
            .rules
            .remove_member(&user("alice"), &self.space, &user(name)))
        .unwrap();
    }
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[test]
fn members_see_each_others_edits_and_a_space_is_apart_from_own_records() {
    let world = World::new();
    world.add("bob", Role::Editor);
    let alice = world.device("alice", "alice-phone");
    let bob = world.device("bob", "bob-phone");

    // Nothing is shared before the first pull names the space.
    assert!(matches!(
        alice.put_in_at(&world.space, "items", "milk", fields(json!({"n": 1})), NOW),
        Err(SyncError::NotAMember { .. })
    ));
    alice.sync().unwrap();
    assert_eq!(
        alice.spaces().unwrap()[0].role,
        SpaceRole::Owner,
        "the pull lists the space"
    );
    alice
        .put_in_at(&world.space, "items", "milk", fields(json!({"n": 1})), NOW)
        .unwrap();
    alice
        .put_at("items", "milk", fields(json!({"mine": true})), NOW)
        .unwrap();
    alice.sync().unwrap();

    let report = bob.sync().unwrap();
    assert_eq!(report.space_changes, 1);
    assert_eq!(bob.spaces().unwrap()[0].name, "Groceries");
    assert_eq!(bob.spaces().unwrap()[0].role, SpaceRole::Editor);
    assert_eq!(
        bob.get_in(&world.space, "items", "milk").unwrap(),
        Some(fields(json!({"n": 1})))
    );
    assert_eq!(
        bob.get("items", "milk").unwrap(),
        None,
        "alice's own stays hers"
    );

    bob.put_in_at(
        &world.space,
        "items",
        "milk",
        fields(json!({"n": 2})),
        NOW + 1,
    )
    .unwrap();
    bob.put_in_at(
        &world.space,
        "items",
        "eggs",
        fields(json!({"n": 6})),
        NOW + 1,
    )
    .unwrap();
    bob.sync().unwrap();
    alice.sync().unwrap();
    let listed = alice.list_in(&world.space, "items").unwrap();
    assert_eq!(
        listed,
        vec![
            ("eggs".to_string(), fields(json!({"n": 6}))),
            ("milk".to_string(), fields(json!({"n": 2}))),
        ]
    );
    assert_eq!(
        alice.list("items").unwrap(),
        vec![("milk".to_string(), fields(json!({"mine": true})))]
    );
}

#[test]
fn a_viewer_is_refused_before_queueing_and_a_demoted_editors_queued_edit_comes_back_rejected() {
    let world = World::new();
    world.add("bob", Role::Editor);
    let bob = world.device("bob", "bob-phone");
    bob.sync().unwrap();
    bob.put_in_at(&world.space, "items", "milk", fields(json!({"n": 1})), NOW)
        .unwrap();

    // Demoted while the edit waits offline: the server refuses it.
    now(world
        .rules
        .set_role(&user("alice"), &world.space, &user("bob"), Role::Viewer))
    .unwrap();
    let report = bob.sync().unwrap();
    assert_eq!(report.rejected, 1);
    let rejected = bob.rejected().unwrap();
    assert_eq!(rejected[0].code, RejectionCode::ReadOnly);
    assert_eq!(rejected[0].space_id.as_deref(), Some(world.space.as_str()));
    assert_eq!(bob.get_in(&world.space, "items", "milk").unwrap(), None);

    // The pull told it the new role: the next edit is refused at once.
    assert_eq!(bob.spaces().unwrap()[0].role, SpaceRole::Viewer);
    assert!(matches!(
        bob.put_in_at(&world.space, "items", "milk", fields(json!({"n": 2})), NOW),
        Err(SyncError::ReadOnly { .. })
    ));
    assert_eq!(bob.pending_count().unwrap(), 0);
}

#[test]
fn a_removal_drops_the_spaces_records_and_keeps_every_queued_edit_for_the_app() {
    let world = World::new();
    let (_alice, bob) = world.alice_and_bob();

    // Bob types offline, then is removed before he syncs.
    bob.put_in_at(&world.space, "items", "bread", fields(json!({"n": 1})), NOW)
        .unwrap();
    bob.put_at("notes", "n1", fields(json!({"text": "mine"})), NOW)
        .unwrap();
    world.remove("bob");
    let report = bob.sync().unwrap();

    assert_eq!(report.rejected, 1, "the space's edit, not his own note");
    assert!(bob.spaces().unwrap().is_empty());
    assert_eq!(bob.list_in(&world.space, "items").unwrap(), vec![]);
    let rejected = bob.rejected().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].code, RejectionCode::NotAMember);
    assert_eq!(rejected[0].record_id, "bread");
    assert_eq!(
        rejected[0].fields_json.as_deref(),
        Some(r#"{"n":1}"#),
        "what he typed is kept for the app to show or save elsewhere"
    );
    assert!(bob.get("notes", "n1").unwrap().is_some());
    assert_eq!(
        world
            .rules
            .partition_records(&shared::model::ids::Partition::Space(world.space.clone()))
            .len(),
        1,
        "nothing of his reached the space"
    );
}

#[test]
fn leaving_drops_the_space_at_once_and_moves_its_queued_edits_to_rejected() {
    let world = World::new();
    world.add("bob", Role::Editor);
    let bob = world.device("bob", "bob-phone");
    bob.sync().unwrap();
    bob.put_in_at(&world.space, "items", "milk", fields(json!({"n": 1})), NOW)
        .unwrap();
    bob.put_at("notes", "n1", fields(json!({"text": "mine"})), NOW)
        .unwrap();
    bob.put_in_at(&world.space, "items", "eggs", fields(json!({"n": 1})), NOW)
        .unwrap();

    world.remove("bob");
    assert_eq!(
        bob.left(&world.space).unwrap(),
        vec!["items".to_string()],
        "the app is told which collections changed"
    );
    assert_eq!(
        bob.pending_count().unwrap(),
        1,
        "his own note is still queued"
    );
    let codes: Vec<_> = bob
        .rejected()
        .unwrap()
        .into_iter()
        .map(|r| r.code)
        .collect();
    assert_eq!(codes, vec![RejectionCode::NotAMember; 2]);

    // The gap the two left in the outbox is closed with the server.
    bob.sync().unwrap();
    assert_eq!(bob.pending_count().unwrap(), 0);
    assert!(bob.get("notes", "n1").unwrap().is_some());
    assert_eq!(bob.rejected().unwrap().len(), 2);
}

#[test]
fn removed_and_re_added_between_two_pulls_drops_what_was_held_before_the_fresh_state() {
    let world = World::new();
    let (alice, bob) = world.alice_and_bob();
    alice
        .put_in_at(&world.space, "items", "eggs", fields(json!({"n": 1})), NOW)
        .unwrap();
    alice.sync().unwrap();
    bob.sync().unwrap();
    assert_eq!(bob.list_in(&world.space, "items").unwrap().len(), 2);

    world.remove("bob");
    alice
        .delete_in_at(&world.space, "items", "eggs", NOW + 1)
        .unwrap();
    alice
        .put_in_at(
            &world.space,
            "items",
            "tea",
            fields(json!({"n": 1})),
            NOW + 1,
        )
        .unwrap();
    alice.sync().unwrap();
    world.add("bob", Role::Viewer);

    bob.sync().unwrap();
    let ids: Vec<String> = bob
        .list_in(&world.space, "items")
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec!["milk", "tea"], "the deleted eggs do not linger");
    assert_eq!(bob.spaces().unwrap()[0].role, SpaceRole::Viewer);
}

#[test]
fn a_version_2_file_is_upgraded_in_place_and_keeps_records_outbox_and_rejected() {
    // A file as version 2 of this library wrote it: one synced record, one
    // refused edit, one queued edit.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-v2.db"),
        &path,
    )
    .unwrap();
    let server = Server {
        rules: Arc::new(MemoryServer::default()),
        user: common::me(),
    };
    let phone = Replica::open(path.to_str().unwrap(), "phone", server).unwrap();
    assert_eq!(
        phone.get("notes", "n1").unwrap(),
        Some(fields(json!({"title": "synced"})))
    );
    assert_eq!(
        phone.get("notes", "n2").unwrap(),
        Some(fields(json!({"title": "queued"})))
    );
    let rejected = phone.rejected().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].space_id, None);
    assert_eq!(rejected[0].code, RejectionCode::ValueTooDeep);
    assert!(phone.spaces().unwrap().is_empty());
    // The server never saw this file's first two ids: the gap closes.
    phone.sync().unwrap();
    assert_eq!(phone.pending_count().unwrap(), 0);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 4);
}
