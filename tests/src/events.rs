//! Lambda event JSON as AWS delivers it, for calling handlers directly
//! (redeliveries, partial batch failures, benchmarks).

use serde_json::{Value, json};

/// The S3 `ObjectCreated` event for `key` in `bucket`, from a real event.
pub fn s3_object_created(bucket: &str, key: &str) -> Value {
    let mut event: Value = serde_json::from_str(include_str!("../fixtures/s3-object-created.json"))
        .expect("the fixture is JSON");
    event["Records"][0]["s3"]["bucket"]["name"] = bucket.into();
    event["Records"][0]["s3"]["object"]["key"] = key.into();
    event
}

/// One DynamoDB stream record (`NEW_AND_OLD_IMAGES`); an empty image is
/// `{}`, its keys are taken from the other one.
pub fn stream_record(sequence: &str, name: &str, new_image: Value, old_image: Value) -> Value {
    let keyed = if new_image.get("PK").is_some() {
        &new_image
    } else {
        &old_image
    };
    let keys = json!({"PK": keyed["PK"].clone(), "SK": keyed["SK"].clone()});
    json!({
        "eventID": format!("id-{sequence}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-11-26T00:00:00.000",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_795_000_000,
            "Keys": keys,
            "NewImage": new_image,
            "OldImage": old_image,
            "SequenceNumber": sequence,
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}
