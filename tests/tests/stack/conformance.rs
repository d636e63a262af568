//! The sync store's conformance suite (`shared::sync::conformance`) against
//! the DynamoDB table in the emulator: the same cases the in-memory server
//! passes in the unit tests.

use e2e::TestStack;

#[tokio::test]
async fn the_dynamodb_table_conforms() {
    let api = TestStack::start().await;
    shared::sync::conformance::run_all(&api.table().await).await;
    api.stop().await;
}
