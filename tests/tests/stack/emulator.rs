//! The emulator behaves like DynamoDB where the functions depend on it
//! (`infra/emulator/emulator.py`): transactions are all or nothing, checked
//! before anything is written, and a retry with the same
//! `ClientRequestToken` is the same transaction.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use e2e::TestStack;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn bump(table: &str, pk: &str) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(table)
        .key("PK", s(pk))
        .key("SK", s("COUNTER"))
        .update_expression("ADD n :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .build()
        .unwrap();
    TransactWriteItem::builder().update(update).build()
}

fn put(table: &str, pk: &str, sk: &str) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .item("PK", s(pk))
        .item("SK", s(sk))
        .condition_expression("attribute_not_exists(PK)")
        .build()
        .unwrap();
    TransactWriteItem::builder().put(put).build()
}

async fn counter(client: &Client, table: &str, pk: &str) -> Option<String> {
    let item = client
        .get_item()
        .table_name(table)
        .key("PK", s(pk))
        .key("SK", s("COUNTER"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    item.get("n").and_then(|n| n.as_n().ok()).cloned()
}

#[tokio::test]
async fn a_retried_transaction_token_applies_once() {
    let api = TestStack::start().await;
    let client = Client::new(&api.sdk().await);
    let table = api.stack.resources.table_name.clone();
    let token = uuid::Uuid::new_v4().to_string();
    let items = vec![bump(&table, "T#1"), put(&table, "T#1", "ONCE")];
    for _ in 0..3 {
        // The SDK resends the same token when an answer is lost.
        client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .client_request_token(&token)
            .send()
            .await
            .expect("a retry with the same token succeeds");
    }
    assert_eq!(counter(&client, &table, "T#1").await.as_deref(), Some("1"));

    let other = client
        .transact_write_items()
        .transact_items(bump(&table, "T#1"))
        .client_request_token(&token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        shared::adapters::aws::error_code(&other),
        Some("IdempotentParameterMismatchException")
    );

    // Without a token, the same items are a new transaction, refused by
    // the put's condition.
    let again = client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        shared::adapters::aws::error_code(&again),
        Some("TransactionCanceledException")
    );
    assert_eq!(counter(&client, &table, "T#1").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_failed_condition_writes_nothing_and_undoes_nobody() {
    let api = TestStack::start().await;
    let client = Client::new(&api.sdk().await);
    let table = api.stack.resources.table_name.clone();
    let check = ConditionCheck::builder()
        .table_name(&table)
        .key("PK", s("T#2"))
        .key("SK", s("MISSING"))
        .condition_expression("attribute_exists(PK)")
        .build()
        .unwrap();
    let cancelled = client
        .transact_write_items()
        .transact_items(bump(&table, "T#2"))
        .transact_items(put(&table, "T#2", "NEVER"))
        .transact_items(TransactWriteItem::builder().condition_check(check).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        shared::adapters::aws::error_code(&cancelled),
        Some("TransactionCanceledException")
    );
    assert_eq!(counter(&client, &table, "T#2").await, None);

    // Another client's write made while transactions fail stays.
    let writes = (0..20).map(|i| {
        let client = client.clone();
        let table = table.clone();
        async move {
            if i % 2 == 0 {
                let _ = client
                    .transact_write_items()
                    .transact_items(put(&table, "T#3", "TAKEN"))
                    .transact_items(bump(&table, "T#3"))
                    .send()
                    .await;
            } else {
                client
                    .put_item()
                    .table_name(&table)
                    .item("PK", s("T#4"))
                    .item("SK", s(&format!("W{i}")))
                    .send()
                    .await
                    .unwrap();
            }
        }
    });
    let mut handles = Vec::new();
    for write in writes {
        handles.push(tokio::spawn(write));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let kept = client
        .query()
        .table_name(&table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", s("T#4"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.count(),
        10,
        "every plain write survived the failed transactions"
    );
    assert_eq!(counter(&client, &table, "T#3").await.as_deref(), Some("1"));
}
