//! The sync store's contract: a push applied exactly once into a granted
//! partition, and the partition's change feed read in version order. The
//! DynamoDB table (`store::sync`) and the in-memory server (`memory`)
//! implement it; one conformance suite (`conformance`) holds both to it,
//! so a property shown with the memory server holds for the table too.

use crate::Error;
use crate::model::access::{Grant, Role};
use crate::model::ids::{ClientId, SpaceId, UserId};

use super::feed::PullCursor;
use super::{Mutation, PullPage, PushOutcome};

pub trait SyncStore: Send + Sync {
    /// Applies validated mutations (in id order) of `client_id`, whose
    /// watermark lives in the holder's own partition (`own`), exactly
    /// once: ids at or below the watermark are skipped, a gap is
    /// `mutation_gap`, refused ones are acknowledged and listed. A
    /// mutation without a space goes to the holder's own records; one
    /// into a space only if the holder may write there when it commits
    /// (else `not_a_member` or `read_only`).
    fn push(
        &self,
        own: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> impl Future<Output = Result<PushOutcome, Error>> + Send;

    /// The holder's own changes and those of every space they are in
    /// after `cursor`, oldest first per partition, at most `limit`, with
    /// the membership changes since the cursor and the client's
    /// watermark. A page never holds a version whose predecessors could
    /// still appear; a page whose answer was lost can be pulled again.
    fn pull(
        &self,
        own: &Grant,
        client_id: &ClientId,
        cursor: PullCursor,
        limit: usize,
    ) -> impl Future<Output = Result<PullPage, Error>> + Send;
}

/// Membership changes as the spaces routes make them, without HTTP: what
/// the conformance suite drives a store's spaces with. The suite makes
/// only calls the route would take; a refusal is an error.
pub trait Memberships: SyncStore {
    /// `POST /spaces` by `owner`.
    fn create_space(
        &self,
        owner: &UserId,
        space: &SpaceId,
        name: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// `owner` invites and `user` accepts, with `role` (editor or viewer).
    fn add_member(
        &self,
        owner: &UserId,
        space: &SpaceId,
        user: &UserId,
        role: Role,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// `PUT /spaces/{space}/members/{user}` by `owner` (`Owner` transfers).
    fn set_role(
        &self,
        owner: &UserId,
        space: &SpaceId,
        user: &UserId,
        role: Role,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// `DELETE /spaces/{space}/members/{user}` by `by` (the owner, or the
    /// member leaving).
    fn remove_member(
        &self,
        by: &UserId,
        space: &SpaceId,
        user: &UserId,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// `DELETE /spaces/{space}` by `owner`.
    fn delete_space(
        &self,
        owner: &UserId,
        space: &SpaceId,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}
