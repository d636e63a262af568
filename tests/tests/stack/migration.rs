//! The upgrade to the change-feed table (`migrate-sync-feed`): an old table
//! in the layout before the `Feed` index is copied into a stack's new one,
//! twice, with an edit pushed in between.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use base64::Engine;
use e2e::{TestStack, hlc_now};
use serde_json::{Value, json};
use shared::sync::hlc::Hlc;
use shared::sync::merge::{Op, RecordState};

/// An item of the old layout, as its DynamoDB attribute map.
fn item(value: Value) -> std::collections::HashMap<String, AttributeValue> {
    serde_dynamo::to_item(value).unwrap()
}

/// A sync record as the GSI1 layout stored it.
fn legacy_record(user: &str, collection: &str, id: &str, title: &str, ver: u64) -> Value {
    let mut state = RecordState::default();
    let fields = BTreeMap::from([("title".to_string(), json!(title))]);
    state.apply(
        &Op::Put(fields),
        &Hlc::new(1_700_000_000_000 + ver, 0, "phone"),
    );
    let mut record = serde_json::to_value(&state).unwrap();
    let extra = json!({
        "PK": format!("USER#{user}#{collection}"), "SK": format!("REC#{id}"),
        "GSI1PK": format!("USER#{user}"), "GSI1SK": ver,
        "collection": collection, "recordId": id, "ver": ver,
        "origin": "phone", "updatedAt": 1_700_000_000_000u64,
    });
    record
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    record
}

#[tokio::test]
async fn the_old_layout_is_copied_merged_and_safe_to_run_again() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let sdk = api.sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let old = format!("old-{}", uuid::Uuid::new_v4().simple());
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let string = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    dynamodb
        .create_table()
        .table_name(&old)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .attribute_definitions(string("PK"))
        .attribute_definitions(string("SK"))
        .send()
        .await
        .unwrap();
    let sub = user.user_id.as_str();
    for value in [
        legacy_record(sub, "notes", "n1", "first note", 1),
        legacy_record(sub, "notes", "n2", "second note", 2),
        legacy_record(sub, "todos", "t1", "a todo", 3),
        json!({"PK": format!("USER#{sub}"), "SK": "SYNCVER", "ver": 3}),
        json!({"PK": format!("USER#{sub}"), "SK": "CLIENT#phone", "lastMutationId": 7}),
        json!({"PK": format!("USER#{sub}"), "SK": "DEVICE#tablet", "deviceId": "tablet"}),
    ] {
        dynamodb
            .put_item()
            .table_name(&old)
            .set_item(Some(item(value)))
            .send()
            .await
            .unwrap();
    }
    let new = &api.stack.resources.table_name;

    let first = operator_tools::migrate::run(&sdk, &old, new).await.unwrap();
    assert_eq!(first.read, 6);
    assert_eq!(first.records_changed, 3);
    assert_eq!(first.items_written, 2, "the watermark and the device");

    let pull = |cursor: Option<String>| {
        let api = &api;
        let token = user.access_token.clone();
        async move {
            let mut path = "/sync/pull?clientId=phone".to_string();
            if let Some(cursor) = cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            api.get(&path, Some(&token)).await
        }
    };
    let page = pull(None).await;
    assert_eq!(page.status, 200, "{page:?}");
    let titles: BTreeMap<String, Value> = page.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["recordId"].as_str().unwrap().to_string(),
                c["fields"]["title"].clone(),
            )
        })
        .collect();
    assert_eq!(titles["n1"], "first note");
    assert_eq!(titles["n2"], "second note");
    assert_eq!(titles["t1"], "a todo");
    assert_eq!(page.body["lastMutationId"], 7, "the watermark came along");

    // A cursor of the old feed asks the client to start over.
    let old_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("v1:3");
    pull(Some(old_cursor))
        .await
        .assert_problem(410, "cursor_expired");

    // The phone goes on where its mutation ids left off, and edits n1.
    let edit = json!({"clientId": "phone", "mutations": [{
        "id": 8, "collection": "notes", "recordId": "n1", "op": "put",
        "fields": {"title": "edited"}, "hlc": hlc_now("phone")}]});
    let pushed = api.post("/sync/push", edit, Some(&user.access_token)).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");

    // Running again changes nothing, and keeps the newer edit.
    let second = operator_tools::migrate::run(&sdk, &old, new).await.unwrap();
    assert_eq!(second.records_changed, 0);
    assert_eq!(second.items_written, 0);
    let cursor = page.body["cursor"].as_str().unwrap().to_string();
    let after = pull(Some(cursor)).await;
    let changes = after.body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{after:?}");
    assert_eq!(changes[0]["fields"]["title"], "edited");
}
