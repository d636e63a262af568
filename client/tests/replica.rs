//! One replica's promises, case by case: the local view under pending
//! edits, the clock, lost answers, gaps, crashes and files that are not
//! ours.

use std::sync::{Arc, Mutex};

use mobile_sync::store::{PullPage, PushAnswer};
use mobile_sync::{Replica, SyncError, Transport};
use serde_json::{Map, Value, json};

mod common;
use shared::sync::WireMutation;
use shared::sync::memory::MemoryServer;

const NOW: u64 = 1_800_000_000_000;
const MINUTE: u64 = 60_000;

/// A push as the server received it: its idempotency key and mutations.
type Push = (String, Vec<WireMutation>);

/// The server's rules in memory, recording each push's key and body; it
/// can lose the next answer, or forget this client's watermark.
#[derive(Clone, Default)]
struct Server {
    rules: Arc<Mutex<MemoryServer>>,
    pushes: Arc<Mutex<Vec<Push>>>,
    lose_next_answer: Arc<Mutex<bool>>,
    /// The next pushes are refused with these `Retry-After` seconds.
    limited: Arc<Mutex<Vec<u64>>>,
}

impl Transport for Server {
    fn push(
        &self,
        client_id: &str,
        mutations: &[WireMutation],
        key: &str,
    ) -> Result<PushAnswer, SyncError> {
        if let Some(retry_after_seconds) = self.limited.lock().unwrap().pop() {
            return Err(SyncError::RateLimited {
                retry_after_seconds,
            });
        }
        self.pushes
            .lock()
            .unwrap()
            .push((key.to_string(), mutations.to_vec()));
        let answer = common::push(
            &mut self.rules.lock().unwrap(),
            client_id,
            mutations,
            NOW + 10 * MINUTE,
        );
        if std::mem::take(&mut *self.lose_next_answer.lock().unwrap()) {
            return Err(SyncError::Transport {
                reason: "connection reset".into(),
            });
        }
        answer
    }

    fn pull(
        &self,
        client_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<PullPage, SyncError> {
        Ok(common::pull(
            &self.rules.lock().unwrap(),
            client_id,
            cursor,
            limit,
        ))
    }
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn replica(dir: &tempfile::TempDir, id: &str, server: &Server) -> Replica<Server> {
    let path = dir.path().join(format!("{id}.db"));
    Replica::open(path.to_str().unwrap(), id, server.clone()).unwrap()
}

#[test]
fn a_slow_clock_still_orders_new_edits_after_what_it_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    let fast = replica(&dir, "fast", &server);
    let slow = replica(&dir, "slow", &server);
    fast.put_at(
        "notes",
        "n1",
        fields(json!({"title": "from the fast phone"})),
        NOW + 4 * MINUTE,
    )
    .unwrap();
    fast.sync().unwrap();
    slow.sync().unwrap();
    // Ten minutes behind, yet its edit comes after what it saw.
    slow.put_at(
        "notes",
        "n1",
        fields(json!({"title": "from the slow tablet"})),
        NOW - 10 * MINUTE,
    )
    .unwrap();
    slow.sync().unwrap();
    fast.sync().unwrap();
    for device in [&fast, &slow] {
        assert_eq!(
            device.get("notes", "n1").unwrap().unwrap()["title"],
            "from the slow tablet"
        );
    }
}

#[test]
fn pulled_changes_never_hide_a_newer_pending_edit_and_beat_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    let phone = replica(&dir, "phone", &server);
    let tablet = replica(&dir, "tablet", &server);
    // The tablet edits offline first (older), then the phone (newer).
    tablet
        .put_at(
            "notes",
            "n1",
            fields(json!({"title": "older", "body": "kept"})),
            NOW,
        )
        .unwrap();
    phone
        .put_at(
            "notes",
            "n1",
            fields(json!({"title": "newer"})),
            NOW + 1_000,
        )
        .unwrap();
    tablet.sync().unwrap();
    // The phone pulls the tablet's older title: its own pending one stays.
    phone.sync().unwrap();
    assert_eq!(
        phone.get("notes", "n1").unwrap().unwrap(),
        fields(json!({"title": "newer", "body": "kept"}))
    );
    // The tablet pulls the phone's newer title over its older one.
    tablet.sync().unwrap();
    assert_eq!(
        tablet.get("notes", "n1").unwrap().unwrap(),
        fields(json!({"title": "newer", "body": "kept"}))
    );

    // A pending edit older than a pulled delete is dropped, as the server
    // will drop it; a newer one survives the delete.
    tablet
        .put_at("notes", "n2", fields(json!({"title": "x"})), NOW + 2_000)
        .unwrap();
    tablet.sync().unwrap();
    phone.sync().unwrap();
    let late = replica(&dir, "late", &server);
    late.put_at(
        "notes",
        "n2",
        fields(json!({"title": "offline edit"})),
        NOW + 2_500,
    )
    .unwrap();
    phone.delete_at("notes", "n2", NOW + 60_000).unwrap();
    phone.sync().unwrap();
    // `late` has not pulled yet: its own edit shows; after the pull the
    // newer delete wins, here and on the server.
    assert!(late.get("notes", "n2").unwrap().is_some());
    late.sync().unwrap();
    assert_eq!(late.get("notes", "n2").unwrap(), None);
    assert_eq!(phone.get("notes", "n2").unwrap(), None);
}

#[test]
fn a_lost_answer_resends_the_same_batch_under_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    let phone = replica(&dir, "phone", &server);
    for i in 0..3 {
        phone
            .put_at("notes", &format!("n{i}"), fields(json!({"i": i})), NOW + i)
            .unwrap();
    }
    *server.lose_next_answer.lock().unwrap() = true;
    assert!(matches!(phone.sync(), Err(SyncError::Transport { .. })));
    assert_eq!(phone.pending_count().unwrap(), 3, "the outbox is intact");
    // Meanwhile the user keeps typing: not part of the batch in flight.
    phone
        .put_at("notes", "n9", fields(json!({"i": 9})), NOW + 9)
        .unwrap();
    phone.sync().unwrap();
    let pushes = server.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 3, "{pushes:?}");
    assert_eq!(pushes[0], pushes[1], "the same key and the same body");
    assert_eq!(
        pushes[2].1.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![4]
    );
    assert_ne!(pushes[2].0, pushes[0].0);
    assert_eq!(phone.pending_count().unwrap(), 0);
    assert_eq!(
        server
            .rules
            .lock()
            .unwrap()
            .watermark(&common::me(), &common::client("phone")),
        4
    );
}

#[test]
fn a_mutation_gap_renumbers_from_the_servers_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    let phone = replica(&dir, "phone", &server);
    phone
        .put_at("notes", "n1", fields(json!({"v": 1})), NOW)
        .unwrap();
    phone.sync().unwrap();
    // The server's state goes back (restored from a backup taken before).
    *server.rules.lock().unwrap() = MemoryServer::default();
    phone
        .put_at("notes", "n2", fields(json!({"v": 2})), NOW + 1)
        .unwrap();
    phone.sync().unwrap();
    let pushes = server.pushes.lock().unwrap().clone();
    let ids: Vec<Vec<u64>> = pushes
        .iter()
        .map(|(_, m)| m.iter().map(|m| m.id).collect())
        .collect();
    assert_eq!(ids, vec![vec![1], vec![2], vec![1]]);
    assert_eq!(
        server
            .rules
            .lock()
            .unwrap()
            .watermark(&common::me(), &common::client("phone")),
        1
    );
    assert_eq!(phone.get("notes", "n2").unwrap().unwrap()["v"], 2);
}

#[test]
fn a_killed_app_finds_every_queued_edit_and_applies_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    {
        let phone = replica(&dir, "phone", &server);
        phone
            .put_at("notes", "n1", fields(json!({"v": 1})), NOW)
            .unwrap();
        phone
            .put_at("notes", "n2", fields(json!({"v": 2})), NOW + 1)
            .unwrap();
        // The push lands, the app dies before the answer is stored.
        *server.lose_next_answer.lock().unwrap() = true;
        let _ = phone.sync();
    }
    let phone = replica(&dir, "phone", &server);
    assert_eq!(phone.pending_count().unwrap(), 2);
    assert_eq!(phone.get("notes", "n2").unwrap().unwrap()["v"], 2);
    phone.sync().unwrap();
    assert_eq!(phone.pending_count().unwrap(), 0);
    let server_rules = server.rules.lock().unwrap();
    assert_eq!(
        server_rules.watermark(&common::me(), &common::client("phone")),
        2
    );
    assert_eq!(
        server_rules.counter(&common::me()),
        2,
        "each record written once"
    );
}

#[test]
fn bad_input_is_refused_before_it_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let phone = replica(&dir, "phone", &Server::default());
    for (collection, record, value) in [
        ("bad collection", "n1", json!({"v": 1})),
        ("notes", "", json!({"v": 1})),
        ("notes", "n1", json!({})),
        ("notes", "n1", json!({"v": "x".repeat(5000)})),
    ] {
        let err = phone
            .put_at(collection, record, fields(value), NOW)
            .unwrap_err();
        assert!(matches!(err, SyncError::InvalidInput { .. }), "{err:?}");
    }
    assert_eq!(phone.pending_count().unwrap(), 0);
    assert!(matches!(
        Replica::open(
            dir.path().join("x.db").to_str().unwrap(),
            "no spaces",
            Server::default()
        ),
        Err(SyncError::InvalidInput { .. })
    ));
}

#[test]
fn files_that_are_not_ours_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database, it is a shopping list\n".repeat(100),
    )
    .unwrap();
    let before = std::fs::read(&garbage).unwrap();
    let err = Replica::open(garbage.to_str().unwrap(), "phone", Server::default())
        .err()
        .unwrap();
    assert!(matches!(err, SyncError::ForeignDatabase { .. }), "{err:?}");
    assert_eq!(std::fs::read(&garbage).unwrap(), before);

    // Another app's SQLite database.
    let foreign = dir.path().join("foreign.db");
    rusqlite_like_foreign(&foreign);
    let before = std::fs::read(&foreign).unwrap();
    let err = Replica::open(foreign.to_str().unwrap(), "phone", Server::default())
        .err()
        .unwrap();
    assert!(matches!(err, SyncError::ForeignDatabase { .. }), "{err:?}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    // Ours, but another device's.
    let ours = dir.path().join("ours.db");
    drop(Replica::open(ours.to_str().unwrap(), "phone", Server::default()).unwrap());
    let err = Replica::open(ours.to_str().unwrap(), "tablet", Server::default())
        .err()
        .unwrap();
    assert_eq!(
        err,
        SyncError::ClientIdMismatch {
            stored: "phone".into(),
            given: "tablet".into()
        }
    );
}

/// Another app's SQLite database: a table of its own.
fn rusqlite_like_foreign(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute("CREATE TABLE contacts (name TEXT)", [])
        .unwrap();
}

/// Puts of 64 fields of 4 KB each: two of them outgrow one record.
fn wide_fields(prefix: &str) -> Map<String, Value> {
    (0..64)
        .map(|f| (format!("{prefix}{f}"), json!("x".repeat(4000))))
        .collect()
}

#[test]
fn a_refused_edit_is_listed_not_applied_and_later_edits_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    let phone = replica(&dir, "phone", &server);
    phone.put_at("notes", "big", wide_fields("a"), NOW).unwrap();
    phone
        .put_at("notes", "big", wide_fields("b"), NOW + 1)
        .unwrap();
    phone.delete_at("notes", "other", NOW + 2).unwrap();
    phone
        .put_at("notes", "n1", fields(json!({"title": "after"})), NOW + 3)
        .unwrap();
    let report = phone.sync().unwrap();
    assert_eq!((report.pushed, report.rejected), (4, 1));
    assert_eq!(phone.pending_count().unwrap(), 0, "nothing jams the outbox");
    assert_eq!(
        server
            .rules
            .lock()
            .unwrap()
            .watermark(&common::me(), &common::client("phone")),
        4
    );
    let rejected = phone.rejected().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].mutation_id, 2);
    assert_eq!(rejected[0].code, mobile_sync::RejectionCode::RecordTooLarge);
    assert_eq!(rejected[0].record_id, "big");
    assert!(!rejected[0].deleted);
    // The view holds what the server holds: the first put only.
    let big = phone.get("notes", "big").unwrap().unwrap();
    assert!(big.contains_key("a0") && !big.contains_key("b0"));
    assert_eq!(phone.get("notes", "n1").unwrap().unwrap()["title"], "after");
    // A second device sees the same.
    let tablet = replica(&dir, "tablet", &server);
    tablet.sync().unwrap();
    assert_eq!(tablet.get("notes", "big").unwrap().unwrap(), big);

    assert!(phone.discard_rejected(2).unwrap());
    assert!(!phone.discard_rejected(2).unwrap());
    assert!(phone.rejected().unwrap().is_empty());
}

#[test]
fn a_resent_batch_gets_the_same_rejections_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    let phone = replica(&dir, "phone", &server);
    phone.put_at("notes", "big", wide_fields("a"), NOW).unwrap();
    phone
        .put_at("notes", "big", wide_fields("b"), NOW + 1)
        .unwrap();
    *server.lose_next_answer.lock().unwrap() = true;
    assert!(phone.sync().is_err());
    assert!(phone.rejected().unwrap().is_empty(), "no answer yet");
    phone.sync().unwrap();
    let rejected = phone.rejected().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].mutation_id, 2);
}

#[test]
fn content_the_server_would_refuse_is_refused_before_it_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let phone = replica(&dir, "phone", &Server::default());
    let mut deep = json!("leaf");
    for _ in 0..30 {
        deep = json!({ "k": deep });
    }
    let err = phone
        .put_at("notes", "n1", fields(json!({ "v": deep })), NOW)
        .unwrap_err();
    assert!(
        matches!(&err, SyncError::InvalidInput { reason } if reason.contains("value_too_deep")),
        "{err:?}"
    );
    assert_eq!(phone.pending_count().unwrap(), 0);
}

#[test]
fn a_version_1_file_is_upgraded_in_place_and_keeps_its_outbox() {
    // A file as version 1 of this library wrote it (its schema, taken from
    // that version's source), with one edit queued.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-v1.db"),
        &path,
    )
    .unwrap();
    let server = Server::default();
    let phone = Replica::open(path.to_str().unwrap(), "phone", server.clone()).unwrap();
    assert_eq!(phone.pending_count().unwrap(), 1);
    assert!(phone.rejected().unwrap().is_empty());
    phone.sync().unwrap();
    assert_eq!(phone.get("notes", "n1").unwrap().unwrap()["title"], "v1");
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 4);
}

/// A record's change as the server sends it: `text` written at `millis`.
fn pulled(record_id: &str, text: &str, millis: u64, version: u64) -> shared::sync::Change {
    use shared::sync::merge::{Op, RecordState};
    let mut state = RecordState::default();
    state.apply(
        &Op::Put([("text".to_string(), json!(text))].into()),
        &shared::sync::hlc::Hlc::new(millis, 0, "tablet"),
    );
    shared::sync::Change::new(
        shared::sync::RecordKey::own("notes", record_id),
        &state,
        version,
    )
}

#[test]
fn starting_over_replaces_the_copy_and_keeps_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.db");
    let mut store = mobile_sync::store::Store::open(path.to_str().unwrap(), "phone").unwrap();
    let page = |changes, cursor: &str, has_more| PullPage {
        changes,
        spaces: Vec::new(),
        cursor: cursor.into(),
        has_more,
        last_mutation_id: 0,
    };
    store
        .apply_page(&page(
            vec![
                pulled("kept", "old", NOW, 1),
                pulled("gone", "deleted elsewhere", NOW, 2),
            ],
            "c2",
            false,
        ))
        .unwrap();
    store
        .enqueue(
            None,
            "notes",
            "offline",
            Some(fields(json!({"text": "mine"}))),
            NOW + 5,
        )
        .unwrap();

    store.start_over().unwrap();
    assert_eq!(store.cursor().unwrap(), None);
    // Until the full pull ends, the app still sees its whole copy.
    let first = store
        .apply_page(&page(vec![pulled("kept", "new", NOW + 1, 7)], "c7", true))
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(store.list(None, "notes").unwrap().len(), 3);
    let last = store.apply_page(&page(Vec::new(), "c7", false)).unwrap();
    assert_eq!(
        last,
        vec![shared::sync::RecordKey::own("notes", "gone")],
        "the record the full pull did not send is gone"
    );
    let listed = store.list(None, "notes").unwrap();
    let texts: Vec<(&str, &Value)> = listed
        .iter()
        .map(|(id, f)| (id.as_str(), &f["text"]))
        .collect();
    assert_eq!(
        texts,
        vec![("kept", &json!("new")), ("offline", &json!("mine"))]
    );
    assert_eq!(store.pending_count().unwrap(), 1, "the outbox is kept");
    assert_eq!(store.cursor().unwrap().as_deref(), Some("c7"));
    // Later pulls merge again.
    store
        .apply_page(&page(vec![pulled("other", "x", NOW + 2, 8)], "c8", false))
        .unwrap();
    assert_eq!(store.list(None, "notes").unwrap().len(), 3);
}

#[test]
fn a_rate_limited_sync_waits_a_short_limit_out_and_reports_a_long_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::default();
    let phone = replica(&dir, "phone", &server);
    phone
        .put_at("notes", "n1", fields(json!({"t": "a"})), NOW)
        .unwrap();
    // A second's wait: sync() waits it out and goes on.
    server.limited.lock().unwrap().push(1);
    let started = std::time::Instant::now();
    assert_eq!(phone.sync().unwrap().pushed, 1);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));

    // A minute's: the app is told, and the outbox waits intact.
    phone
        .put_at("notes", "n2", fields(json!({"t": "b"})), NOW + 1)
        .unwrap();
    server.limited.lock().unwrap().push(60);
    assert_eq!(
        phone.sync(),
        Err(SyncError::RateLimited {
            retry_after_seconds: 60
        })
    );
    assert_eq!(phone.pending_count().unwrap(), 1);
    assert_eq!(phone.sync().unwrap().pushed, 1, "the next try goes through");
    assert_eq!(phone.pending_count().unwrap(), 0);
}
