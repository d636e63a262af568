//! The sync store's contract: a push applied exactly once into a granted
//! partition, and the partition's change feed read in version order. The
//! DynamoDB table (`store::sync`) and the in-memory server (`memory`)
//! implement it; one conformance suite (`conformance`) holds both to it,
//! so a property shown with the memory server holds for the table too.

use crate::Error;
use crate::model::access::Grant;
use crate::model::ids::ClientId;

use super::{FeedPage, Mutation, PushOutcome};

pub trait SyncStore: Send + Sync {
    /// Applies validated mutations (in id order) of `client_id`, whose
    /// watermark lives with the grant's holder, into the grant's
    /// partition, exactly once: ids at or below the watermark are skipped,
    /// a gap is `mutation_gap`, refused ones are acknowledged and listed.
    fn push(
        &self,
        grant: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> impl Future<Output = Result<PushOutcome, Error>> + Send;

    /// The partition's changes after version `after`, oldest first, at
    /// most `limit`, with the client's watermark. A page never holds a
    /// version whose predecessors could still appear.
    fn pull(
        &self,
        grant: &Grant,
        client_id: &ClientId,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<FeedPage, Error>> + Send;
}
