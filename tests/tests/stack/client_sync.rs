//! The app-side crate against the real stack: three devices of one user
//! edit the same records offline, then sync through the HTTP API (the
//! `sync` function, DynamoDB in the emulator) and converge.

use e2e::TestStack;
use mobile_sync::Replica;
use mobile_sync::http::HttpTransport;
use serde_json::{Map, Value, json};

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn now_ms() -> u64 {
    mobile_sync::engine::wall_ms()
}

#[tokio::test]
async fn three_devices_editing_offline_converge_through_the_stack() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let api_url = api.stack.api_url.clone();
    let token = user.access_token.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();

    // The client's HTTP is blocking (UniFFI callers are apps' own threads).
    tokio::task::spawn_blocking(move || {
        let devices: Vec<Replica<HttpTransport>> = ["phone", "tablet", "laptop"]
            .iter()
            .map(|id| {
                let transport = HttpTransport::new(&api_url).unwrap();
                transport.set_access_token(Some(token.clone()));
                let db = path.join(format!("{id}.db"));
                Replica::open(db.to_str().unwrap(), id, transport).unwrap()
            })
            .collect();
        let [phone, tablet, laptop] = &devices[..] else {
            unreachable!()
        };
        let t = now_ms();
        // A shared list, created on the phone and synced everywhere.
        for i in 0..5 {
            phone
                .put_at(
                    "todos",
                    &format!("t{i}"),
                    fields(json!({"title": format!("todo {i}"), "done": false})),
                    t,
                )
                .unwrap();
        }
        phone.sync().unwrap();
        tablet.sync().unwrap();
        laptop.sync().unwrap();
        assert_eq!(laptop.list("todos").unwrap().len(), 5);

        // Offline, all three edit the same records: different fields merge,
        // the same field goes to the latest stamp, a delete wins over older
        // edits and loses to newer ones.
        phone
            .put_at("todos", "t0", fields(json!({"done": true})), t + 1_000)
            .unwrap();
        tablet
            .put_at(
                "todos",
                "t0",
                fields(json!({"title": "todo 0 (renamed)"})),
                t + 2_000,
            )
            .unwrap();
        laptop
            .put_at(
                "todos",
                "t1",
                fields(json!({"title": "laptop wins"})),
                t + 3_000,
            )
            .unwrap();
        phone
            .put_at(
                "todos",
                "t1",
                fields(json!({"title": "phone loses"})),
                t + 2_500,
            )
            .unwrap();
        tablet.delete_at("todos", "t2", t + 4_000).unwrap();
        laptop
            .put_at("todos", "t2", fields(json!({"done": true})), t + 3_500)
            .unwrap();
        phone.delete_at("todos", "t3", t + 1_500).unwrap();
        laptop
            .put_at(
                "todos",
                "t3",
                fields(json!({"title": "brought back"})),
                t + 5_000,
            )
            .unwrap();
        laptop
            .put_at(
                "todos",
                "t9",
                fields(json!({"title": "new on the laptop"})),
                t + 6_000,
            )
            .unwrap();

        for _ in 0..2 {
            for device in [laptop, tablet, phone] {
                device.sync().unwrap();
            }
        }
        let expected = |id: &str| laptop.get("todos", id).unwrap();
        assert_eq!(
            expected("t0").unwrap(),
            fields(json!({"title": "todo 0 (renamed)", "done": true}))
        );
        assert_eq!(expected("t1").unwrap()["title"], "laptop wins");
        assert_eq!(expected("t2"), None);
        // The delete removed what was older; the newer title came back.
        assert_eq!(
            expected("t3").unwrap(),
            fields(json!({"title": "brought back"}))
        );
        assert_eq!(expected("t9").unwrap()["title"], "new on the laptop");
        for device in [phone, tablet] {
            assert_eq!(device.list("todos").unwrap(), laptop.list("todos").unwrap());
            assert_eq!(device.pending_count().unwrap(), 0);
        }
    })
    .await
    .unwrap();
    api.stop().await;
}

struct Recorder(std::sync::Mutex<Vec<Vec<String>>>);

impl mobile_sync::ChangeListener for Recorder {
    fn on_change(&self, collections: Vec<String>) {
        self.0.lock().unwrap().push(collections);
    }
}

/// `listen()` keeps the live channel open and pulls when poked: the tablet
/// sees the phone's edit without calling `sync()`.
#[tokio::test]
async fn a_listening_client_pulls_when_poked() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let api_url = api.stack.api_url.clone();
    let websocket_url = api.stack.websocket_url.clone();
    let token = user.access_token.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let db = |id: &str| path.join(format!("{id}.db")).display().to_string();
        let tablet =
            mobile_sync::SyncClient::new(db("tablet"), api_url.clone(), "tablet".into()).unwrap();
        tablet.set_access_token(Some(token.clone()));
        let recorder = std::sync::Arc::new(Recorder(Default::default()));
        tablet.add_listener(recorder.clone());
        let listening = {
            let tablet = tablet.clone();
            let url = websocket_url.clone();
            std::thread::spawn(move || tablet.listen(url))
        };
        let phone =
            mobile_sync::SyncClient::new(db("phone"), api_url.clone(), "phone".into()).unwrap();
        phone.set_access_token(Some(token.clone()));
        // Let the tablet connect first (its connect-time pull sees nothing).
        std::thread::sleep(std::time::Duration::from_millis(500));
        phone
            .put("notes".into(), "n1".into(), r#"{"title":"live"}"#.into())
            .unwrap();
        phone.sync().unwrap();
        let started = std::time::Instant::now();
        while tablet.get("notes".into(), "n1".into()).unwrap().is_none() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "never poked"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(
            tablet.get("notes".into(), "n1".into()).unwrap().unwrap(),
            r#"{"title":"live"}"#
        );
        assert!(
            recorder
                .0
                .lock()
                .unwrap()
                .contains(&vec!["notes".to_string()])
        );
        tablet.stop_listening();
        assert_eq!(listening.join().unwrap(), Ok(()));

        // A refused token ends listen() with Unauthorized, for the app to
        // refresh it.
        tablet.set_access_token(Some("garbage".into()));
        assert_eq!(
            tablet.listen(websocket_url),
            Err(mobile_sync::SyncError::Unauthorized)
        );
    })
    .await
    .unwrap();
    api.stop().await;
}
