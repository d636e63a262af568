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

/// Two users share a space through the app library and the real stack:
/// create, invite, accept, edit both ways, a live poke across users, a
/// demotion, a removal that hands the removed device's queued edit back
/// to the app, leaving, and deletion.
#[tokio::test]
async fn two_users_share_a_space_through_the_app_library() {
    use mobile_sync::{RejectionCode, SpaceRole, SyncClient, SyncError};

    let api = TestStack::start().await;
    let (alice, bob, carol) = (api.user().await, api.user().await, api.user().await);
    let api_url = api.stack.api_url.clone();
    let websocket_url = api.stack.websocket_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let device = |user: &e2e::User, id: &str| {
            let db = path.join(format!("{id}.db")).display().to_string();
            let client = SyncClient::new(db, api_url.clone(), id.into()).unwrap();
            client.set_access_token(Some(user.access_token.clone()));
            client
        };
        let (alices, bobs, carols) = (
            device(&alice, "alice-phone"),
            device(&bob, "bob-phone"),
            device(&carol, "carol-phone"),
        );

        // Created with the app's own id: the same id again is the same space.
        let id = uuid::Uuid::new_v4().to_string();
        let space = alices
            .create_space("Groceries".into(), Some(id.clone()))
            .unwrap();
        assert_eq!(
            (space.space_id.as_str(), space.role),
            (id.as_str(), SpaceRole::Owner)
        );
        assert_eq!(
            alices
                .create_space("Groceries".into(), Some(id.clone()))
                .unwrap(),
            space
        );
        assert_eq!(alices.spaces().unwrap(), vec![space.clone()]);
        alices
            .put_in_space(
                id.clone(),
                "items".into(),
                "milk".into(),
                r#"{"n":1}"#.into(),
            )
            .unwrap();
        alices.sync().unwrap();

        let invitation = alices
            .invite(id.clone(), SpaceRole::Editor, Some(2))
            .unwrap();
        assert_eq!(invitation.role, SpaceRole::Editor);
        let joined = bobs.accept_invitation(invitation.code.clone()).unwrap();
        assert_eq!(
            (joined.name.as_str(), joined.role),
            ("Groceries", SpaceRole::Editor)
        );
        carols.accept_invitation(invitation.code).unwrap();
        let report = bobs.sync().unwrap();
        assert_eq!(report.collections, vec!["items".to_string()]);
        assert_eq!(
            bobs.get_in_space(id.clone(), "items".into(), "milk".into())
                .unwrap()
                .as_deref(),
            Some(r#"{"n":1}"#)
        );
        assert_eq!(bobs.get("items".into(), "milk".into()).unwrap(), None);

        // Alice listens; Bob's edit in the space pokes her device.
        let listening = {
            let alices = alices.clone();
            let url = websocket_url.clone();
            std::thread::spawn(move || alices.listen(url))
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
        bobs.put_in_space(
            id.clone(),
            "items".into(),
            "eggs".into(),
            r#"{"n":6}"#.into(),
        )
        .unwrap();
        bobs.sync().unwrap();
        let started = std::time::Instant::now();
        while alices
            .get_in_space(id.clone(), "items".into(), "eggs".into())
            .unwrap()
            .is_none()
        {
            assert!(started.elapsed().as_secs() < 10, "alice was never poked");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        alices.stop_listening();
        assert_eq!(listening.join().unwrap(), Ok(()));

        let members = alices.space_members(id.clone()).unwrap();
        assert_eq!(members.len(), 3);
        let bob_id = members
            .iter()
            .find(|m| m.email == bob.email)
            .map(|m| m.user_id.clone())
            .unwrap();

        // Demoted: after the next pull Bob's edits are refused at once.
        alices
            .set_member_role(id.clone(), bob_id.clone(), SpaceRole::Viewer)
            .unwrap();
        bobs.sync().unwrap();
        assert_eq!(bobs.spaces().unwrap()[0].role, SpaceRole::Viewer);
        assert!(matches!(
            bobs.put_in_space(id.clone(), "items".into(), "tea".into(), "{}".into()),
            Err(SyncError::ReadOnly { .. })
        ));

        // Made editor again, Bob types offline; removed before he syncs,
        // his edit comes back to the app as not_a_member and the space's
        // records leave his device.
        alices
            .set_member_role(id.clone(), bob_id.clone(), SpaceRole::Editor)
            .unwrap();
        bobs.sync().unwrap();
        bobs.put_in_space(
            id.clone(),
            "items".into(),
            "tea".into(),
            r#"{"n":2}"#.into(),
        )
        .unwrap();
        alices.remove_member(id.clone(), bob_id).unwrap();
        let report = bobs.sync().unwrap();
        assert_eq!(report.rejected, 1);
        let rejected = bobs.rejected().unwrap();
        assert_eq!(rejected[0].code, RejectionCode::NotAMember);
        assert_eq!(rejected[0].record_id, "tea");
        assert_eq!(rejected[0].space_id.as_deref(), Some(id.as_str()));
        assert!(bobs.spaces().unwrap().is_empty());
        assert!(
            bobs.list_in_space(id.clone(), "items".into())
                .unwrap()
                .is_empty()
        );

        // The owner cannot leave while others remain; Carol can.
        assert!(matches!(
            alices.leave_space(id.clone()),
            Err(SyncError::Server { status: 409, ref code, .. }) if code == "owner_must_transfer"
        ));
        carols.sync().unwrap();
        assert_eq!(
            carols
                .list_in_space(id.clone(), "items".into())
                .unwrap()
                .len(),
            2
        );
        carols.leave_space(id.clone()).unwrap();
        assert!(carols.spaces().unwrap().is_empty());
        assert!(
            carols
                .list_in_space(id.clone(), "items".into())
                .unwrap()
                .is_empty()
        );

        alices.delete_space(id.clone()).unwrap();
        assert!(alices.spaces().unwrap().is_empty());
        assert!(matches!(
            alices.put_in_space(id.clone(), "items".into(), "x".into(), "{}".into()),
            Err(SyncError::NotAMember { .. })
        ));
        alices.sync().unwrap();
        assert!(alices.spaces().unwrap().is_empty(), "the pull agrees");
    })
    .await
    .unwrap();
    api.stop().await;
}
