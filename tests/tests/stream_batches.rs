//! The stream handler on real DynamoDB stream event JSON: records it does
//! not care about cost nothing, and a transient failure is reported for
//! exactly the record that caused it.

use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use e2e::TestStack;
use e2e::events::stream_record as record;
use serde_json::{Value, json};
use shared::device::Device;
use shared::push::{Platform, Push};

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
            device_id: "alice-phone".into(),
            user_id: "alice".into(),
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
                user_id: "u".into(),
                media_id: "m".into()
            }),
            None,
        ]
    );
}
