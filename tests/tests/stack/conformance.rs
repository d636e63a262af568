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

/// The spaces schedule against the table: the same membership timeline
/// and checks the memory server passes for hundreds of seeds, for a few
/// (each step is a few round trips to the emulator).
#[tokio::test]
async fn the_dynamodb_table_conforms_with_spaces() {
    let api = TestStack::start().await;
    shared::sync::conformance::run_spaces(&api.table().await, &[1, 2, 3, 4, 5, 6]).await;
    api.stop().await;
}
