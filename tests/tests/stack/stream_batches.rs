//! The stream handler on real DynamoDB stream event JSON: records it does
//! not care about cost nothing, and a transient failure is reported for
//! exactly the record that caused it.

use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use e2e::TestStack;
use e2e::events::stream_record as record;
use serde_json::{Value, json};
use shared::adapters::push::{Platform, Push};
use shared::model::device::Device;

fn sync_record(user: &str, origin: &str) -> Value {
    json!({
        "PK": {"S": format!("USER#{user}")}, "SK": {"S": "REC#notes#n1"},
        "feedVer": {"N": "1"},
        "origin": {"S": origin}, "ver": {"N": "1"}
    })
}

#[tokio::test]
async fn one_failing_record_is_reported_precisely() {
    let api = TestStack::start().await;
    let table = api.table().await;
    // Alice has a device; Bob has none.
    table
        .put_device(&Device {
            device_id: shared::model::ids::DeviceId::parse("alice-phone").unwrap(),
            user_id: shared::model::ids::UserId::parse("alice").unwrap(),
            platform: Platform::Android,
            token: "t".into(),
            endpoint_arn: "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/x".into(),
            updated_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    // SNS is unreachable: every publish fails transiently.
    let down = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "t", "t", None, None, "test",
        ))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let deps = notify::Deps {
        table,
        push: Push::new(&down, "", ""),
    };
    let event: Event = serde_json::from_value(json!({"Records": [
        record("100", "INSERT", json!({"PK": {"S": "USER#alice"}, "SK": {"S": "PROFILE"}, "email": {"S": "a@example.com"}}), json!({})),
        record("200", "MODIFY", sync_record("alice", "alice-tablet"), json!({})),
        record("300", "INSERT", sync_record("bob", "bob-phone"), json!({})),
        record("400", "REMOVE", json!({}), sync_record("alice", "x")),
    ]}))
    .unwrap();
    let response = notify::handle_stream(&deps, event).await.unwrap();
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![Some("200".to_string())]);
    api.stop().await;
}

#[test]
fn records_nobody_cares_about_ask_for_nothing() {
    let event: Event = serde_json::from_value(json!({"Records": [
        record("1", "INSERT", json!({"PK": {"S": "USER#u"}, "SK": {"S": "DEVICE#d"}}), json!({})),
        record("2", "MODIFY", json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "mediaId": {"S": "m"}, "status": {"S": "failed"}}),
               json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "status": {"S": "pending"}})),
        record("3", "MODIFY", json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "mediaId": {"S": "m"}, "status": {"S": "ready"}}),
               json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "status": {"S": "pending"}})),
        record("4", "MODIFY", json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "mediaId": {"S": "m"}, "status": {"S": "ready"}}),
               json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "status": {"S": "ready"}})),
    ]}))
    .unwrap();
    let interests: Vec<_> = event.records.iter().map(notify::interest).collect();
    assert_eq!(
        interests,
        vec![
            None,
            None,
            Some(notify::Interest::MediaReady {
                user_id: shared::model::ids::UserId::parse("u").unwrap(),
                media_id: shared::model::ids::MediaId::parse("m").unwrap()
            }),
            None,
        ]
    );
}

/// The template's mapping for the notify function, emulated: a record the
/// function always fails is isolated by bisecting, retried the declared
/// number of times, and described in the failed-events queue; the records
/// around it are processed; a record older than the maximum age is given up
/// without a call.
#[tokio::test]
async fn a_poison_record_ends_in_the_failed_events_queue_and_its_neighbours_go_through() {
    use std::sync::{Arc, Mutex};

    use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
    use local_stack::stream::{Destination, GivenUp, Handler, Target, deliver};

    let api = TestStack::start().await;
    let template =
        local_stack::template::Template::load(&local_stack::Options::default_template()).unwrap();
    let (mut mapping, destination) = template.stream_event("NotifyFunction").unwrap();
    let (queue_url, _) = api.stack.resources.queues[&destination.unwrap()].clone();
    mapping.on_failure = Some(Destination {
        queue_url: queue_url.clone(),
        function_arn: "arn:aws:lambda:us-east-1:123456789012:function:NotifyFunction".into(),
    });

    // Every call, by the sequence numbers it carried; 500 always fails.
    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let seen = calls.clone();
    let handler: Handler = Arc::new(move |event: Event| {
        let sequences: Vec<String> = event
            .records
            .iter()
            .map(|r| r.change.sequence_number.clone().unwrap())
            .collect();
        seen.lock().unwrap().push(sequences.clone());
        Box::pin(async move {
            let mut response = DynamoDbEventResponse::default();
            if sequences.iter().any(|s| s == "500") {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some("500".into());
                response.batch_item_failures = vec![failure];
            }
            Ok(response)
        })
    });
    let now = chrono::Utc::now().timestamp();
    let records: Vec<Value> = (1..=8)
        .map(|n| {
            let mut r = record(
                &format!("{n}00"),
                "MODIFY",
                sync_record("alice", "x"),
                json!({}),
            );
            let age = if n == 8 { 7200 } else { 0 };
            r["dynamodb"]["ApproximateCreationDateTime"] = json!(now - age);
            r
        })
        .collect();
    let sqs = aws_sdk_sqs::Client::new(&api.sdk().await);
    let target = Target {
        function: "NotifyFunction",
        handler: &handler,
        mapping: &mapping,
        sqs: &sqs,
    };
    let given_up = deliver(&target, records).await;

    let sequences = |batch: &[Value]| -> Vec<String> {
        batch
            .iter()
            .map(|r| {
                r["dynamodb"]["SequenceNumber"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let reasons: Vec<(GivenUp, Vec<String>)> = given_up
        .iter()
        .map(|(why, batch)| (*why, sequences(batch)))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (GivenUp::RecordAgeExceeded, vec!["800".to_string()]),
            (GivenUp::RetryAttemptsExhausted, vec!["500".to_string()]),
        ]
    );
    let calls = calls.lock().unwrap().clone();
    let with_poison = calls
        .iter()
        .filter(|c| c.contains(&"500".to_string()))
        .count();
    assert_eq!(
        with_poison,
        1 + 5,
        "the first call and the declared 5 retries: {calls:?}"
    );
    for neighbour in ["100", "200", "300", "400", "600", "700"] {
        assert!(
            calls.iter().flatten().any(|s| s == neighbour),
            "{neighbour} was never delivered: {calls:?}"
        );
    }
    assert!(
        !calls.iter().flatten().any(|s| s == "800"),
        "too old to call"
    );

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages: Vec<Value> = received
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let exhausted = messages
        .iter()
        .find(|m| m["requestContext"]["condition"] == "RetryAttemptsExhausted")
        .expect("the poison record is described");
    assert_eq!(
        exhausted["DDBStreamBatchInfo"]["startSequenceNumber"],
        "500"
    );
    assert_eq!(exhausted["DDBStreamBatchInfo"]["batchSize"], 1);
}

/// A record whose image the Lambda event shape cannot hold fails its
/// batch, as the runtime's decoding would on AWS: bisecting isolates it,
/// the failed-events queue describes it, and the shard moves on.
#[tokio::test]
async fn a_record_that_does_not_decode_is_isolated_not_a_stalled_shard() {
    use std::sync::{Arc, Mutex};

    use aws_lambda_events::streams::DynamoDbEventResponse;
    use local_stack::stream::{GivenUp, Handler, Target, deliver};

    let api = TestStack::start().await;
    let template =
        local_stack::template::Template::load(&local_stack::Options::default_template()).unwrap();
    let (mapping, _) = template.stream_event("PokeFunction").unwrap();
    let delivered: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = delivered.clone();
    let handler: Handler = Arc::new(move |event: Event| {
        seen.lock().unwrap().extend(
            event
                .records
                .iter()
                .map(|r| r.change.sequence_number.clone().unwrap()),
        );
        Box::pin(async { Ok(DynamoDbEventResponse::default()) })
    });
    let records: Vec<Value> = (1..=4)
        .map(|n| {
            let mut image = sync_record("alice", "x");
            if n == 3 {
                image["fields"] = json!({"BOGUS": "not an attribute value"});
            }
            let mut r = record(&format!("{n}00"), "MODIFY", image, json!({}));
            r["dynamodb"]["ApproximateCreationDateTime"] = json!(chrono::Utc::now().timestamp());
            r
        })
        .collect();
    let sqs = aws_sdk_sqs::Client::new(&api.sdk().await);
    let target = Target {
        function: "PokeFunction",
        handler: &handler,
        mapping: &mapping,
        sqs: &sqs,
    };
    let given_up = deliver(&target, records).await;
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    assert_eq!(given_up[0].0, GivenUp::RetryAttemptsExhausted);
    assert_eq!(given_up[0].1[0]["dynamodb"]["SequenceNumber"], "300");
    let mut delivered = delivered.lock().unwrap().clone();
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered, ["100", "200", "400"]);
}

/// The fan-out reads devices through each user's index: devices written
/// before the index existed are found (the index is completed from a query
/// once), later registrations join it, and an id whose device is gone
/// leaves it.
#[tokio::test]
async fn the_device_index_finds_old_devices_and_forgets_gone_ones() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::model::ids::{DeviceId, UserId};

    let api = TestStack::start().await;
    let table = api.table().await;
    let client = aws_sdk_dynamodb::Client::new(&api.sdk().await);
    let name = &api.stack.resources.table_name;
    let device = |user: &str, id: &str| Device {
        device_id: DeviceId::parse(id).unwrap(),
        user_id: UserId::parse(user).unwrap(),
        platform: Platform::Android,
        token: format!("token-{id}"),
        endpoint_arn: format!("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/{id}"),
        updated_at: chrono::Utc::now(),
    };
    let index_of = |user: &str| {
        let client = client.clone();
        let key = format!("USER#{user}");
        async move {
            client
                .get_item()
                .table_name(name)
                .key("PK", AttributeValue::S(key))
                .key("SK", AttributeValue::S("DEVICES".into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
        }
    };
    // Ann's phone was registered before the index: only its item exists.
    table.put_device(&device("ann", "ann-phone")).await.unwrap();
    client
        .delete_item()
        .table_name(name)
        .key("PK", AttributeValue::S("USER#ann".into()))
        .key("SK", AttributeValue::S("DEVICES".into()))
        .send()
        .await
        .unwrap();
    let users = [UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap()];
    let found = table.devices_of(&users).await.unwrap();
    assert_eq!(
        found[&users[0]].len(),
        1,
        "the old device is found: {found:?}"
    );
    assert!(found[&users[1]].is_empty(), "bob has none");
    let index = index_of("ann").await.unwrap();
    assert_eq!(index["complete"], AttributeValue::Bool(true));
    assert!(
        index_of("bob").await.is_some(),
        "an empty index is known complete too"
    );

    // A tablet joins the index; the phone's item goes behind its back.
    table
        .put_device(&device("ann", "ann-tablet"))
        .await
        .unwrap();
    client
        .delete_item()
        .table_name(name)
        .key("PK", AttributeValue::S("USER#ann".into()))
        .key("SK", AttributeValue::S("DEVICE#ann-phone".into()))
        .send()
        .await
        .unwrap();
    let found = table.devices_of(&users).await.unwrap();
    let ids: Vec<&str> = found[&users[0]]
        .iter()
        .map(|d| d.device_id.as_str())
        .collect();
    assert_eq!(ids, vec!["ann-tablet"]);
    let index = index_of("ann").await.unwrap();
    assert_eq!(
        index["ids"],
        AttributeValue::Ss(vec!["ann-tablet".into()]),
        "the gone phone left the index"
    );
    api.stop().await;
}
