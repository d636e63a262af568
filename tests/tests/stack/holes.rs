//! Regression tests for the holes an afternoon of probing found (issue 21):
//! each fails on the code before its fix.

use std::time::Duration;

use e2e::{TestStack, hlc_now};
use serde_json::{Value, json};

use crate::realtime::{next_message, open, wait_for_connections};

fn nested(levels: usize) -> Value {
    let mut value = json!("leaf");
    for _ in 0..levels {
        value = json!({ "k": value });
    }
    value
}

fn put(id: u64, record: &str, fields: Value, client: &str) -> Value {
    json!({"id": id, "collection": "notes", "recordId": record, "op": "put",
           "fields": fields, "hlc": hlc_now(client)})
}

/// 64 fields of 4 KB: two of these outgrow one DynamoDB item.
fn wide(prefix: &str) -> Value {
    let fields: serde_json::Map<String, Value> = (0..64)
        .map(|f| (format!("{prefix}{f}"), json!("x".repeat(4000))))
        .collect();
    Value::Object(fields)
}

#[tokio::test]
async fn a_value_nested_too_deep_is_rejected_and_nothing_else_stalls() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let mut tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;

    let batch = vec![
        put(1, "deep", json!({ "v": nested(61) }), "phone"),
        put(2, "ceiling", json!({ "v": nested(29) }), "phone"),
        put(3, "deep", json!({ "v": nested(30) }), "phone"),
        put(4, "plain", json!({ "title": "after" }), "phone"),
    ];
    let pushed = api.push(&user, "phone", batch.clone()).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body["lastMutationId"], 4);
    assert_eq!(
        pushed.body["rejected"],
        json!([{"id": 1, "code": "value_too_deep"}, {"id": 3, "code": "value_too_deep"}])
    );
    // The resend of an acknowledged batch gets the same answer.
    let again = api.push(&user, "phone", batch).await;
    assert_eq!(again.body, pushed.body);

    // Pulls work, and the value at the ceiling comes back whole.
    let pulled = api
        .get("/sync/pull?clientId=tablet", Some(&user.access_token))
        .await;
    assert_eq!(pulled.status, 200, "{pulled:?}");
    let changes = pulled.body["changes"].as_array().unwrap();
    let ids: Vec<&str> = changes
        .iter()
        .map(|c| c["recordId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ceiling", "plain"]);
    assert_eq!(changes[0]["fields"]["v"], nested(29));

    // The stream still flows: the other device is poked.
    let poke = next_message(&mut tablet, Duration::from_secs(10)).await;
    assert_eq!(poke.expect("a poke")["type"], "poke");

    // The next batch pushes past the rejections: they are forgotten.
    let next = api
        .push(
            &user,
            "phone",
            vec![put(5, "plain", json!({"n": 5}), "phone")],
        )
        .await;
    assert_eq!(next.body, json!({"lastMutationId": 5, "rejected": []}));
    api.stop().await;
}

#[tokio::test]
async fn the_emulator_refuses_what_dynamodb_refuses_one_level_past_the_ceiling() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let api = TestStack::start().await;
    let client = aws_sdk_dynamodb::Client::new(&api.sdk().await);
    let table = api.stack.resources.table_name.clone();
    let wrapped = |wraps: usize| {
        let mut value = AttributeValue::S("leaf".into());
        for _ in 0..wraps {
            value = AttributeValue::M([("k".to_string(), value)].into());
        }
        value
    };
    for (wraps, accepted) in [(31, true), (32, false)] {
        let result = client
            .put_item()
            .table_name(&table)
            .item("PK", AttributeValue::S("PROBE".into()))
            .item("SK", AttributeValue::S(format!("DEPTH#{wraps}")))
            .item("v", wrapped(wraps))
            .send()
            .await;
        assert_eq!(result.is_ok(), accepted, "{wraps} wraps: {result:?}");
    }
    api.stop().await;
}

#[tokio::test]
async fn a_record_that_would_outgrow_an_item_is_rejected_and_the_device_goes_on() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let first = api
        .push(&user, "phone", vec![put(1, "big", wide("a"), "phone")])
        .await;
    assert_eq!(first.body["rejected"], json!([]), "{first:?}");
    let second = api
        .push(&user, "phone", vec![put(2, "big", wide("b"), "phone")])
        .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        second.body,
        json!({"lastMutationId": 2, "rejected": [{"id": 2, "code": "record_too_large"}]})
    );
    // Its later edits, deletes included, still apply.
    let delete = json!({"id": 3, "collection": "notes", "recordId": "big", "op": "delete",
                        "hlc": hlc_now("phone")});
    let third = api.push(&user, "phone", vec![delete]).await;
    assert_eq!(third.body["lastMutationId"], 3, "{third:?}");
    let pulled = api
        .get("/sync/pull?clientId=phone", Some(&user.access_token))
        .await;
    assert_eq!(pulled.body["changes"][0]["deleted"], true, "{pulled:?}");

    // 21 records of 260 KB, then one small edit of each: one push whose
    // records take 5.5 MB, more than a transaction carries.
    let mut id = 4;
    for batch in 0..7 {
        let wide_ones: Vec<Value> = (0..3)
            .map(|i| {
                id += 1;
                put(id - 1, &format!("r{batch}-{i}"), wide("c"), "phone")
            })
            .collect();
        let pushed = api.push(&user, "phone", wide_ones).await;
        assert_eq!(pushed.body["rejected"], json!([]), "{pushed:?}");
    }
    let touches: Vec<Value> = (0..21)
        .map(|n| {
            put(
                id + n,
                &format!("r{}-{}", n / 3, n % 3),
                json!({"seen": true}),
                "phone",
            )
        })
        .collect();
    let heavy = api.push(&user, "phone", touches).await;
    assert_eq!(heavy.status, 200, "{heavy:?}");
    assert_eq!(
        heavy.body,
        json!({"lastMutationId": id + 20, "rejected": []})
    );
    api.stop().await;
}

#[tokio::test]
async fn only_a_malformed_envelope_is_refused_whole() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let gap = vec![
        put(1, "a", json!({"v": 1}), "phone"),
        put(3, "a", json!({"v": 1}), "phone"),
    ];
    api.push(&user, "phone", gap)
        .await
        .assert_problem(400, "invalid_request");
    let missing = json!({"id": 1, "collection": "notes", "op": "put", "hlc": hlc_now("phone")});
    api.push(&user, "phone", vec![missing])
        .await
        .assert_problem(400, "invalid_request");
    api.stop().await;
}
