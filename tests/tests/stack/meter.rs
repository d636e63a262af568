//! The emulator's meter records what DynamoDB bills (`infra/emulator/meter.py`),
//! checked request by request on an emulator of the test's own (the meter
//! is one per process): the units the cost benchmark prices come from here.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem,
};
use e2e::bill::ReadMode;
use e2e::{OwnEmulator, free_port, read_meter, start_meter, stop_meter};

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[tokio::test]
async fn the_meter_records_what_dynamodb_bills() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = OwnEmulator::start(&dir.path().join("state"), free_port()).await;
    let sdk = shared::adapters::aws::sdk_config_for(&emulator.url, "us-east-1").await;
    let client = Client::new(&sdk);
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name("metered")
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .attribute_definitions(attribute("PK", ScalarAttributeType::S))
        .attribute_definitions(attribute("SK", ScalarAttributeType::S))
        .attribute_definitions(attribute("feedVer", ScalarAttributeType::N))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name("Feed")
                .key_schema(key("PK", KeyType::Hash))
                .key_schema(key("feedVer", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    start_meter(&emulator.url).await;
    // 2 + 2 bytes of keys, "text" (4) and 1,500 bytes: 1,510 bytes, two
    // write units; in the Feed index (it has feedVer, 7 + 2 bytes) too.
    let text = "x".repeat(1500);
    client
        .put_item()
        .table_name("metered")
        .item("PK", s("u"))
        .item("SK", s("r1"))
        .item("text", s(&text))
        .item("feedVer", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    // Not in the index (no feedVer); a transaction doubles it.
    let small = |sk: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name("metered")
                    .item("PK", s("u"))
                    .item("SK", s(sk))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    client
        .transact_write_items()
        .transact_items(small("a"))
        .transact_items(small("b"))
        .send()
        .await
        .unwrap();
    client
        .get_item()
        .table_name("metered")
        .key("PK", s("u"))
        .key("SK", s("r1"))
        .send()
        .await
        .unwrap();
    client
        .query()
        .table_name("metered")
        .key_condition_expression("PK = :u")
        .expression_attribute_values(":u", s("u"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let metered = read_meter(&emulator.url).await;
    stop_meter(&emulator.url).await;

    let ops: Vec<&str> = metered.dynamodb.iter().map(|r| r.op.as_str()).collect();
    assert_eq!(ops, ["PutItem", "TransactWriteItems", "GetItem", "Query"]);
    let [put, transaction, get, query] = &metered.dynamodb[..] else {
        unreachable!()
    };
    let size = 2 + 1 + 2 + 2 + 4 + 1500 + 7 + 2;
    assert_eq!(put.writes.len(), 1);
    assert_eq!((put.writes[0].bytes, put.writes[0].tx), (size, false));
    assert_eq!(put.index_writes.len(), 1, "one Feed entry");
    assert_eq!(put.index_writes[0].index, "Feed");
    assert_eq!(
        put.write_units(),
        4.0,
        "2 for the item, 2 for its index entry"
    );
    assert!(transaction.writes.iter().all(|w| w.tx));
    assert!(transaction.index_writes.is_empty());
    assert_eq!(transaction.write_units(), 4.0, "two items, 2 units each");
    assert_eq!(get.reads.len(), 1);
    assert_eq!(
        (get.reads[0].bytes, get.reads[0].mode),
        (size, ReadMode::Eventual)
    );
    assert_eq!(get.read_units(), 0.5);
    // The three items together are under 4 KB: one strongly consistent unit.
    assert_eq!(query.reads.len(), 1);
    assert_eq!(query.reads[0].mode, ReadMode::Strong);
    assert_eq!(query.read_units(), 1.0);
    assert!(metered.table_bytes["metered"] > size);
    assert!(
        metered
            .requests
            .keys()
            .any(|name| name.starts_with("dynamodb PutItem"))
    );
    emulator.stop();
}
