//! The scheduled janitor against the stack: old tombstones compacted
//! without bringing a deleted record back (a device that missed the delete
//! starts over, an edit older than it is `stale_edit`), abandoned uploads
//! and dead devices removed, a run cut off half-way redone, and the
//! schedule trigger run on demand through the control port.
//!
//! Runs with a clock 40 days ahead call `janitor::run` in process (the
//! handler the schedule calls, with `now` given): no test waits a month.

use std::time::Duration;

use chrono::Utc;
use e2e::{TestStack, User};
use mobile_sync::Replica;
use mobile_sync::http::HttpTransport;
use serde_json::{Value, json};
use shared::model::ids::Partition;

/// The janitor's dependencies for this stack, as the administrator.
async fn janitor(api: &TestStack, grace: Duration) -> janitor::Deps {
    let config = janitor::Config {
        table_name: api.stack.resources.table_name.clone(),
        media_bucket: api.stack.resources.bucket.clone(),
        push: shared::config::PushApplications {
            apns: String::new(),
            fcm: String::new(),
        },
        tombstone_days: 30,
        pages_per_run: 20,
        page_size: 1000,
        grace_seconds: 0,
        purge_queue_url: api.stack.resources.queues["PurgeQueue"].0.clone(),
    };
    let mut deps = janitor::Deps::new(&api.sdk().await, &config);
    deps.grace = grace;
    deps
}

fn in_40_days() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::days(40)
}

fn mutation(id: u64, record: &str, op: &str, text: Option<&str>, hlc: &str) -> Value {
    let mut mutation =
        json!({"id": id, "collection": "notes", "recordId": record, "op": op, "hlc": hlc});
    if let Some(text) = text {
        mutation["fields"] = json!({"text": text});
    }
    mutation
}

/// The stamp of `phone` `ago` in the past.
fn hlc_ago(ago: Duration) -> String {
    let millis = Utc::now().timestamp_millis() as u64 - ago.as_millis() as u64;
    shared::sync::hlc::Hlc::new(millis, 0, "phone").to_string()
}

/// `POST /schedules/{function}` on the stack's control port, as
/// scripts/run-schedule sends it.
async fn run_schedule(api: &TestStack, function: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/schedules/{function}", api.stack.console_url))
        .send()
        .await
        .unwrap()
}

/// A new user whose phone synced one note.
async fn user_with_a_note(api: &TestStack) -> User {
    let user = api.user().await;
    let note = mutation(1, "milk", "put", Some("milk"), &e2e::hlc_now("phone"));
    let pushed = api.push(&user, "phone", vec![note]).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    user
}

/// Runs `work` on the user's tablet (its file in `dir`), on a blocking
/// thread: the app library's HTTP is blocking, and the replica is opened
/// and dropped there.
async fn on_tablet<T: Send + 'static>(
    api: &TestStack,
    user: &User,
    dir: &std::path::Path,
    work: impl FnOnce(&Replica<HttpTransport>) -> T + Send + 'static,
) -> T {
    let (url, token) = (api.stack.api_url.clone(), user.access_token.clone());
    let db = dir.join("tablet.db");
    tokio::task::spawn_blocking(move || {
        let transport = HttpTransport::new(&url).unwrap();
        transport.set_access_token(Some(token));
        let tablet = Replica::open(db.to_str().unwrap(), "tablet", transport).unwrap();
        work(&tablet)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn compacted_deletes_never_come_back() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let dir = tempfile::tempdir().unwrap();
    let own = Partition::User(user.user_id.clone());

    // The phone writes three notes; the tablet pulls them.
    let pushed = api
        .push(
            &user,
            "phone",
            vec![
                mutation(1, "milk", "put", Some("milk"), &e2e::hlc_now("phone")),
                mutation(2, "eggs", "put", Some("eggs"), &e2e::hlc_now("phone")),
                mutation(3, "bread", "put", Some("bread"), &e2e::hlc_now("phone")),
            ],
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    on_tablet(&api, &user, dir.path(), |tablet| {
        tablet.sync().unwrap();
        assert_eq!(tablet.list("notes").unwrap().len(), 3);
    })
    .await;

    // The phone deletes two of them; the tablet is offline and edits
    // bread.
    let deleted_at = e2e::hlc_now("phone");
    let pushed = api
        .push(
            &user,
            "phone",
            vec![
                mutation(4, "milk", "delete", None, &deleted_at),
                mutation(5, "eggs", "delete", None, &deleted_at),
            ],
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    on_tablet(&api, &user, dir.path(), |tablet| {
        tablet
            .put_at(
                "notes",
                "bread",
                serde_json::Map::from_iter([("text".to_string(), json!("rye bread"))]),
                mobile_sync::engine::wall_ms(),
            )
            .unwrap();
    })
    .await;

    // Forty days later the janitor compacts both tombstones.
    let deps = janitor(&api, Duration::ZERO).await;
    let report = janitor::run(&deps, in_40_days()).await.unwrap();
    assert_eq!(report.tombstones_compacted, 2, "{report:?}");
    assert!(report.walk_finished);
    let keys = api.partition_keys(&own).await;
    assert!(
        !keys
            .iter()
            .any(|k| k == "REC#notes#milk" || k == "REC#notes#eggs"),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k == "REC#notes#bread"));

    // The tablet never saw the deletes: its pull is told to start over,
    // and its copy ends as the server's, with its own edit on top.
    on_tablet(&api, &user, dir.path(), |tablet| {
        let report = tablet.sync().unwrap();
        assert_eq!(report.pushed, 1);
        let notes = tablet.list("notes").unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].1["text"], "rye bread");
        assert_eq!(tablet.pending_count().unwrap(), 0);
    })
    .await;

    // An edit of a compacted record older than its delete is refused; a
    // newer one writes the record again, as it would have before.
    let pushed = api
        .push(
            &user,
            "phone",
            vec![
                mutation(
                    6,
                    "milk",
                    "put",
                    Some("stale"),
                    &hlc_ago(Duration::from_secs(120)),
                ),
                mutation(7, "eggs", "put", Some("fresh eggs"), &e2e::hlc_now("phone")),
            ],
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(
        pushed.body["rejected"],
        json!([{"id": 6, "code": "stale_edit"}]),
        "{pushed:?}"
    );
    on_tablet(&api, &user, dir.path(), |tablet| {
        tablet.sync().unwrap();
        let notes: Vec<String> = tablet
            .list("notes")
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(notes, ["bread", "eggs"]);
    })
    .await;

    // A second run finds nothing left to do.
    let again = janitor::run(&deps, in_40_days()).await.unwrap();
    assert_eq!(again.tombstones_compacted, 0, "{again:?}");
    // A recent delete is kept.
    let recent = janitor::run(&deps, Utc::now()).await.unwrap();
    assert_eq!(recent.tombstones_compacted, 0);
}

#[tokio::test]
async fn a_run_cut_off_after_announcing_is_redone_whole() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let own = Partition::User(user.user_id.clone());
    let mut mutations = Vec::new();
    for i in 0..30u64 {
        let record = format!("n{i}");
        mutations.push(mutation(
            i * 2 + 1,
            &record,
            "put",
            Some("x"),
            &e2e::hlc_now("phone"),
        ));
        mutations.push(mutation(
            i * 2 + 2,
            &record,
            "delete",
            None,
            &e2e::hlc_now("phone"),
        ));
    }
    assert_eq!(api.push(&user, "phone", mutations).await.status, 200);
    let before = api
        .get(
            "/sync/pull?clientId=tablet&limit=1",
            Some(&user.access_token),
        )
        .await;
    assert_eq!(before.status, 200, "{before:?}");
    let cursor = before.body["cursor"].as_str().unwrap().to_string();

    // Three items a page: the walk of ~35 items takes several pages, and
    // the run is stopped in its grace, after announcing, before deleting.
    let mut slow = janitor(&api, Duration::from_secs(60)).await;
    slow.page_size = 3;
    slow.pages_per_run = 100;
    let cut = tokio::time::timeout(Duration::from_secs(3), janitor::run(&slow, in_40_days())).await;
    assert!(cut.is_err(), "the run was still waiting out its grace");
    assert_eq!(
        api.partition_keys(&own)
            .await
            .iter()
            .filter(|k| k.starts_with("REC#"))
            .count(),
        30,
        "nothing was deleted"
    );
    // Announced already: the old cursor must start over.
    api.get(
        &format!("/sync/pull?clientId=tablet&cursor={cursor}"),
        Some(&user.access_token),
    )
    .await
    .assert_problem(410, "cursor_expired");

    let mut quick = janitor(&api, Duration::ZERO).await;
    quick.page_size = 3;
    quick.pages_per_run = 100;
    let report = janitor::run(&quick, in_40_days()).await.unwrap();
    assert_eq!(report.tombstones_compacted, 30, "{report:?}");
    assert!(report.walk_finished);
    assert_eq!(
        api.partition_keys(&own)
            .await
            .iter()
            .filter(|k| k.starts_with("REC#"))
            .count(),
        0
    );
    // A pull from the start is complete, and empty.
    let fresh = api
        .get("/sync/pull?clientId=tablet", Some(&user.access_token))
        .await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.body["changes"], json!([]));
}

#[tokio::test]
async fn abandoned_uploads_and_dead_devices_are_removed_on_schedule() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let upload = api
        .post(
            "/uploads",
            json!({"contentType": "image/jpeg", "bytes": 1000}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(upload.status, 201, "{upload:?}");
    let media_id = upload.body["mediaId"].as_str().unwrap().to_string();

    // Two phones; APNs reports one's token dead, and SNS disables it.
    for (device, token) in [("old-phone", "dead-token"), ("new-phone", "live-token")] {
        let registered = api
            .send(
                api.request(
                    "PUT",
                    &format!("/devices/{device}"),
                    Some(&user.access_token),
                )
                .json(&json!({"platform": "ios", "token": token})),
            )
            .await;
        assert!(registered.status.is_success(), "{registered:?}");
    }
    let table = api.table().await;
    let devices = table.devices(&user.user_id).await.unwrap();
    let dead = devices.iter().find(|d| d.token == "dead-token").unwrap();
    let sns = aws_sdk_sns::Client::new(&api.sdk().await);
    sns.set_endpoint_attributes()
        .endpoint_arn(&dead.endpoint_arn)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();

    // The schedule, run now through the control port, as
    // scripts/run-schedule does.
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("{}/schedules", api.stack.console_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["schedules"],
        json!([{"function": "JanitorFunction", "schedule": "rate(1 hour)"}])
    );
    let ran = run_schedule(&api, "JanitorFunction").await;
    assert_eq!(ran.status(), 200);
    let ran: Value = ran.json().await.unwrap();
    assert_eq!(ran["ok"], true, "{ran}");
    let left: Vec<String> = table
        .devices(&user.user_id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id.to_string())
        .collect();
    assert_eq!(left, ["new-phone"]);
    assert!(
        sns.get_endpoint_attributes()
            .endpoint_arn(&dead.endpoint_arn)
            .send()
            .await
            .is_err(),
        "the dead endpoint is deleted"
    );
    // Today's pending upload is still inside its window.
    let media = api
        .get(&format!("/media/{media_id}"), Some(&user.access_token))
        .await;
    assert_eq!(media.body["status"], "pending");
    let unknown = run_schedule(&api, "NoSuchFunction").await;
    assert_eq!(unknown.status(), 404);

    // Two days later nothing can complete it: it goes.
    let deps = janitor(&api, Duration::ZERO).await;
    let later = Utc::now() + chrono::Duration::days(2);
    let report = janitor::run(&deps, later).await.unwrap();
    assert_eq!(report.pending_media_removed, 1, "{report:?}");
    api.get(&format!("/media/{media_id}"), Some(&user.access_token))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_deletion_whose_purge_was_never_queued_is_purged_after_an_hour() {
    let api = TestStack::start().await;
    let user = user_with_a_note(&api).await;
    // Marked deleted two hours ago, as DELETE /me does, but its queue
    // message was never sent (the request answered 503 and the app never
    // retried).
    let table = api.table().await;
    let profile = table.profile(&user.user_id).await.unwrap().unwrap();
    let two_hours_ago = Utc::now().timestamp() - 7200;
    table.mark_deleted(&profile, two_hours_ago).await.unwrap();
    let own = Partition::User(user.user_id.clone());

    let deps = janitor(&api, Duration::ZERO).await;
    let report = janitor::run(&deps, Utc::now()).await.unwrap();
    assert_eq!(report.purges_queued, 1, "{report:?}");
    api.wait_until_purged().await;
    assert_eq!(api.partition_keys(&own).await, ["PROFILE"]);
    // Finished purges are marked, and not queued again.
    let again = janitor::run(&deps, Utc::now()).await.unwrap();
    assert_eq!(again.purges_queued, 0, "{again:?}");
}

#[tokio::test]
async fn an_announcement_only_ever_widens_what_was_compacted() {
    use shared::sync::compaction::Compaction;
    let api = TestStack::start().await;
    let user = user_with_a_note(&api).await;
    let table = api.table().await;
    let own = Partition::User(user.user_id.clone());
    let announce = |through, before| {
        let (table, own) = (&table, &own);
        async move {
            table
                .announce_compaction(own, Compaction { through, before })
                .await
                .unwrap()
        }
    };
    // A later page of the walk can meet an older tombstone of the
    // partition: its lower version must not lower what expires cursors.
    announce(10, 100).await;
    announce(7, 200).await;
    let counter = aws_sdk_dynamodb::Client::new(&api.sdk().await)
        .get_item()
        .table_name(&api.stack.resources.table_name)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(shared::keys::partition_key(&own)),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("SYNCVER".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(counter["compactedThrough"].as_n().unwrap(), "10");
    assert_eq!(counter["compactedBefore"].as_n().unwrap(), "200");
}
