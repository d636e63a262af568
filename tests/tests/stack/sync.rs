//! Offline-first sync end to end: exactly-once pushes, field-level merge,
//! delta pulls, and two devices converging.

use std::collections::BTreeMap;

use e2e::{TestStack, User};
use serde_json::{Value, json};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn hlc(millis: u64, counter: u32, client: &str) -> String {
    format!("{millis:015}-{counter:05}-{client}")
}

fn put(id: u64, record: &str, fields: Value, hlc: String) -> Value {
    json!({"id": id, "collection": "notes", "recordId": record, "op": "put", "fields": fields, "hlc": hlc})
}

fn delete(id: u64, record: &str, hlc: String) -> Value {
    json!({"id": id, "collection": "notes", "recordId": record, "op": "delete", "hlc": hlc})
}

/// Pulls every page from `cursor`; returns the changes and the last cursor.
async fn pull_all(
    api: &TestStack,
    user: &User,
    client: &str,
    cursor: Option<&str>,
    limit: u32,
) -> (Vec<Value>, String, u64) {
    let mut cursor = cursor.map(str::to_string);
    let mut changes = Vec::new();
    loop {
        let mut path = format!("/sync/pull?clientId={client}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&path, Some(&user.access_token)).await;
        assert_eq!(page.status, 200, "{page:?}");
        changes.extend(page.body["changes"].as_array().unwrap().iter().cloned());
        cursor = Some(page.body["cursor"].as_str().unwrap().to_string());
        if !page.body["hasMore"].as_bool().unwrap() {
            let watermark = page.body["lastMutationId"].as_u64().unwrap();
            return (changes, cursor.unwrap(), watermark);
        }
    }
}

/// The latest state per record, as a client would fold the changes.
fn fold(changes: &[Value]) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for change in changes {
        let id = change["recordId"].as_str().unwrap().to_string();
        state.insert(
            id,
            json!({"deleted": change["deleted"], "fields": change["fields"]}),
        );
    }
    state
}

#[tokio::test]
async fn pushes_apply_exactly_once_and_pull_returns_deltas() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let t = now_ms();
    let batch = vec![
        put(
            1,
            "n1",
            json!({"title": "milk", "done": false}),
            hlc(t, 0, "phone"),
        ),
        put(2, "n2", json!({"title": "eggs"}), hlc(t, 1, "phone")),
        put(3, "n1", json!({"done": true}), hlc(t, 2, "phone")),
    ];
    let pushed = api.push(&user, "phone", batch.clone()).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body["lastMutationId"], 3);

    let (changes, cursor, watermark) = pull_all(&api, &user, "phone", None, 100).await;
    assert_eq!(watermark, 3);
    let state = fold(&changes);
    assert_eq!(
        state["n1"]["fields"],
        json!({"title": "milk", "done": true})
    );
    assert_eq!(state["n2"]["fields"], json!({"title": "eggs"}));

    // A replay (the phone never saw the answer) changes nothing.
    let replay = api.push(&user, "phone", batch).await;
    assert_eq!(replay.body["lastMutationId"], 3, "{replay:?}");
    let (after_replay, cursor, _) = pull_all(&api, &user, "phone", Some(&cursor), 100).await;
    assert!(after_replay.is_empty(), "{after_replay:?}");

    // A gap is refused with the watermark to resend from.
    let gap = api
        .push(
            &user,
            "phone",
            vec![put(5, "n1", json!({"x": 1}), hlc(t, 3, "phone"))],
        )
        .await;
    gap.assert_problem(409, "mutation_gap");
    assert_eq!(gap.body["lastMutationId"], 3);

    // A delete is a tombstone in the next pull.
    let deleted = api
        .push(&user, "phone", vec![delete(4, "n2", hlc(t, 4, "phone"))])
        .await;
    assert_eq!(deleted.body["lastMutationId"], 4);
    let (changes, _, _) = pull_all(&api, &user, "phone", Some(&cursor), 100).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["recordId"], "n2");
    assert_eq!(changes[0]["deleted"], true);
    api.stop().await;
}

#[tokio::test]
async fn two_devices_editing_offline_converge() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let t = now_ms() - 60_000;
    // Both start from the same note.
    api.push(
        &user,
        "phone",
        vec![put(
            1,
            "n",
            json!({"title": "plan", "body": "", "pinned": false}),
            hlc(t, 0, "phone"),
        )],
    )
    .await;
    // Offline: the phone edits the title early and the body; the tablet
    // edits the title later and pins it.
    let phone = vec![
        put(
            2,
            "n",
            json!({"title": "phone title"}),
            hlc(t + 10, 0, "phone"),
        ),
        put(
            3,
            "n",
            json!({"body": "from phone"}),
            hlc(t + 30, 0, "phone"),
        ),
    ];
    let tablet = vec![
        put(
            1,
            "n",
            json!({"title": "tablet title"}),
            hlc(t + 20, 0, "tablet"),
        ),
        put(2, "n", json!({"pinned": true}), hlc(t + 25, 0, "tablet")),
    ];
    // The tablet syncs first, then the phone: order must not matter.
    assert_eq!(api.push(&user, "tablet", tablet).await.status, 200);
    assert_eq!(api.push(&user, "phone", phone).await.status, 200);

    let expected = json!({"title": "tablet title", "body": "from phone", "pinned": true});
    for client in ["phone", "tablet"] {
        let (changes, _, _) = pull_all(&api, &user, client, None, 100).await;
        assert_eq!(fold(&changes)["n"]["fields"], expected, "{client}");
    }
    let (_, _, phone_watermark) = pull_all(&api, &user, "phone", None, 100).await;
    let (_, _, tablet_watermark) = pull_all(&api, &user, "tablet", None, 100).await;
    assert_eq!((phone_watermark, tablet_watermark), (3, 2));
    api.stop().await;
}

/// Two clients push edits of one record at the same moment, round after
/// round, each sending its whole outbox as a real client does until it is
/// acknowledged (ids at or below the watermark are skipped). The emulator's
/// transactions are not isolated from each other under concurrency (a
/// failed one restores a snapshot over the other's commit), which a resend
/// of the outbox repairs; DynamoDB's are serializable.
#[tokio::test]
async fn concurrent_pushes_on_one_record_lose_nothing() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let t = now_ms() - 60_000;
    // Four devices edit the same record at once, round after round: each
    // sets a field of its own and the shared title. Every push must be
    // acknowledged as it is (no gap, no retry-later): the emulator's
    // transactions are isolated, as DynamoDB's are.
    let devices = ["a", "b", "c", "d"];
    let edit = |device: &str, index: u32, round: u64| {
        put(
            round,
            "shared",
            json!({format!("{device}{round}"): round, "title": format!("{device} {round}")}),
            hlc(t + round, index, device),
        )
    };
    for round in 1..=5u64 {
        let (a, b, c, d) = tokio::join!(
            api.push(&user, "a", vec![edit("a", 0, round)]),
            api.push(&user, "b", vec![edit("b", 1, round)]),
            api.push(&user, "c", vec![edit("c", 2, round)]),
            api.push(&user, "d", vec![edit("d", 3, round)]),
        );
        for reply in [a, b, c, d] {
            assert_eq!(reply.status, 200, "round {round}: {reply:?}");
            assert_eq!(reply.body["lastMutationId"], round, "{reply:?}");
        }
    }
    // Two replicas pulling from scratch hold the same record, with every
    // acknowledged edit, and the title of the latest stamp.
    let (first, _, _) = pull_all(&api, &user, "reader-1", None, 100).await;
    let (second, _, _) = pull_all(&api, &user, "reader-2", None, 7).await;
    assert_eq!(fold(&first), fold(&second));
    let fields = fold(&first)["shared"]["fields"].clone();
    for device in devices {
        for round in 1..=5u64 {
            assert_eq!(fields[format!("{device}{round}")], round, "{fields}");
        }
    }
    assert_eq!(fields["title"], "d 5");
    api.stop().await;
}

#[tokio::test]
async fn large_pushes_are_chunked_and_pulls_paginate() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let t = now_ms() - 60_000;
    let mutations: Vec<Value> = (1..=250u64)
        .map(|id| {
            put(
                id,
                &format!("r{id}"),
                json!({"n": id}),
                hlc(t, id as u32, "bulk"),
            )
        })
        .collect();
    let pushed = api.push(&user, "bulk", mutations).await;
    assert_eq!(pushed.body["lastMutationId"], 250, "{pushed:?}");

    let (changes, _, _) = pull_all(&api, &user, "bulk", None, 40).await;
    assert_eq!(changes.len(), 250);
    let versions: Vec<u64> = changes
        .iter()
        .map(|c| c["version"].as_u64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions ascend");
    assert_eq!(fold(&changes).len(), 250);
    api.stop().await;
}

#[tokio::test]
async fn bad_pushes_and_pulls_are_problems() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let t = now_ms();
    api.push(
        &user,
        "p",
        vec![put(1, "n", json!({"a": 1}), hlc(t + 3_600_000, 0, "p"))],
    )
    .await
    .assert_problem(400, "clock_skew");
    api.push(
        &user,
        "p",
        vec![put(1, "n", json!({"a": 1}), "yesterday".into())],
    )
    .await
    .assert_problem(400, "invalid_request");
    api.push(&user, "p", vec![json!({"id": 1, "collection": "notes", "recordId": "n", "op": "upsert", "hlc": hlc(t, 0, "p")})])
        .await
        .assert_problem(400, "invalid_request");
    // An over-long value is one mutation's problem, not the push's: it is
    // acknowledged (another client here, so p's watermark stays 0).
    let refused = api
        .push(
            &user,
            "q",
            vec![put(1, "n", json!({"a": "x".repeat(5000)}), hlc(t, 0, "q"))],
        )
        .await;
    assert_eq!(
        refused.body,
        json!({"lastMutationId": 1, "rejected": [{"id": 1, "code": "value_too_large"}]})
    );
    api.push(&user, "bad client!", vec![])
        .await
        .assert_problem(400, "invalid_request");
    api.post(
        "/sync/push",
        json!({"mutations": []}),
        Some(&user.access_token),
    )
    .await
    .assert_problem(400, "invalid_request");
    for query in [
        "",
        "?clientId=p&cursor=garbage",
        "?clientId=p&limit=0",
        "?clientId=p&limit=abc",
    ] {
        api.get(&format!("/sync/pull{query}"), Some(&user.access_token))
            .await
            .assert_problem(400, "invalid_request");
    }
    api.get("/sync/pull?clientId=p", None)
        .await
        .assert_problem(401, "unauthorized");
    // Nothing was written by any of that.
    let (changes, _, watermark) = pull_all(&api, &user, "p", None, 100).await;
    assert!(changes.is_empty());
    assert_eq!(watermark, 0);
    api.stop().await;
}

#[tokio::test]
async fn users_never_see_each_others_records() {
    let api = TestStack::start().await;
    let ann = api.user().await;
    let bob = api.user().await;
    api.push(
        &ann,
        "p",
        vec![put(1, "secret", json!({"a": 1}), hlc(now_ms(), 0, "p"))],
    )
    .await;
    let (changes, _, watermark) = pull_all(&api, &bob, "p", None, 100).await;
    assert!(changes.is_empty());
    assert_eq!(watermark, 0);
    api.stop().await;
}

/// The emulator's lagging-index mode (`infra/emulator/emulator.py`).
async fn index_lag(api: &TestStack, action: &str, body: Value) -> Value {
    let client = reqwest::Client::new();
    let url = format!("{}/_emulator/index-lag/{action}", api.emulator_url);
    let request = if action == "pending" {
        client
            .get(url)
            .query(&[("table", body["table"].as_str().unwrap())])
    } else {
        client.post(url).json(&body)
    };
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{action}: {response:?}");
    response.json().await.unwrap()
}

/// DynamoDB propagates each change to an index on its own, late and in any
/// order, even two changes of one transaction. Here the indexes are held,
/// a push writes two records in one transaction, and the index learns the
/// newer one first: a pull in that window must not move its cursor past
/// the older one. (Against the GSI-based feed this test fails: the first
/// pull returns version 2 only, its cursor passes version 1, and the pull
/// after the release returns nothing.)
#[tokio::test]
async fn pulls_never_skip_a_change_while_indexes_lag() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let table = json!({"table": api.stack.resources.table_name});
    let t = now_ms();
    index_lag(&api, "hold", table.clone()).await;
    let note = put(1, "n1", json!({"title": "older"}), hlc(t, 0, "phone"));
    let mut todo = put(2, "t1", json!({"title": "newer"}), hlc(t, 1, "phone"));
    todo["collection"] = json!("todos");
    let pushed = api.push(&user, "phone", vec![note, todo]).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");

    // The index shows the newer record only.
    let pending = index_lag(&api, "pending", table.clone()).await;
    let newest = pending
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["SK"]["S"].as_str().unwrap_or("").starts_with("REC#"))
        .max_by_key(|item| item["ver"]["N"].as_str().unwrap().parse::<u64>().unwrap())
        .expect("the push's records are pending in the index")
        .clone();
    let key = json!({"PK": newest["PK"], "SK": newest["SK"]});
    index_lag(
        &api,
        "release",
        json!({"table": table["table"], "keys": [key]}),
    )
    .await;
    let (during, cursor, _) = pull_all(&api, &user, "tablet", None, 100).await;

    index_lag(&api, "release", table).await;
    let (after, _, _) = pull_all(&api, &user, "tablet", Some(&cursor), 100).await;
    let seen: std::collections::BTreeSet<&str> = during
        .iter()
        .chain(&after)
        .map(|change| change["recordId"].as_str().unwrap())
        .collect();
    assert_eq!(
        seen,
        ["n1", "t1"].into(),
        "during the lag: {during:?}; after: {after:?}"
    );
}
