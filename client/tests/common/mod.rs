//! The sync API over the server's rules in memory, answered as the HTTP API
//! answers: what the simulated transports of the client tests share.

#![allow(dead_code)] // each test binary uses its own part

use mobile_sync::SyncError;
use mobile_sync::store::{PullPage, PushAnswer, RejectedId};
use shared::model::ids::{ClientId, UserId};
use shared::sync::WireMutation;
use shared::sync::feed::{PullCursor, decode_cursor, encode_cursor};
use shared::sync::memory::MemoryServer;

/// `POST /sync/push` of the one user at `now_ms`.
pub fn push(
    rules: &mut MemoryServer,
    client_id: &str,
    mutations: &[WireMutation],
    now_ms: u64,
) -> Result<PushAnswer, SyncError> {
    push_as(rules, &me(), client_id, mutations, now_ms)
}

/// `POST /sync/push` of `user` at `now_ms`: the watermark, `MutationGap`
/// with the server's watermark, or the problem the server would answer.
pub fn push_as(
    rules: &MemoryServer,
    user: &UserId,
    client_id: &str,
    mutations: &[WireMutation],
    now_ms: u64,
) -> Result<PushAnswer, SyncError> {
    match rules.push_own(user, &client(client_id), mutations.to_vec(), now_ms) {
        Ok(pushed) => Ok(PushAnswer {
            last_mutation_id: pushed.watermark,
            rejected: pushed
                .rejected
                .into_iter()
                .map(|r| RejectedId {
                    id: r.id,
                    code: r.code.as_str().to_string(),
                })
                .collect(),
        }),
        Err(err) if err.code == shared::Code::MutationGap => Err(SyncError::MutationGap {
            last_mutation_id: rules.watermark(user, &client(client_id)),
        }),
        Err(err) => Err(SyncError::Server {
            status: err.status(),
            code: err.code.as_str().to_string(),
            detail: err.detail,
        }),
    }
}

/// `GET /sync/pull` from `cursor` (here the feed version as text).
pub fn pull(rules: &MemoryServer, client_id: &str, cursor: Option<&str>, limit: u32) -> PullPage {
    let after = cursor.map_or(0, |c| c.parse().unwrap());
    let feed = rules.pull_own(&me(), &client(client_id), after, limit as usize);
    PullPage {
        cursor: shared::sync::feed::next_cursor(after, &feed.changes).to_string(),
        changes: feed.changes,
        spaces: Vec::new(),
        has_more: feed.has_more,
        last_mutation_id: feed.watermark,
    }
}

/// `GET /sync/pull` of `user`: their own records and every space they are
/// in, from an opaque cursor, as the HTTP API answers it.
pub fn pull_as(
    rules: &MemoryServer,
    user: &UserId,
    client_id: &str,
    cursor: Option<&str>,
    limit: u32,
) -> PullPage {
    let cursor = cursor.map_or(PullCursor::default(), |c| decode_cursor(c).unwrap());
    let page = rules.pull_all(user, &client(client_id), cursor, limit as usize);
    PullPage {
        changes: page.changes,
        spaces: page.spaces,
        cursor: encode_cursor(page.cursor),
        has_more: page.has_more,
        last_mutation_id: page.watermark,
    }
}

/// The one user the simulated devices belong to.
pub fn me() -> UserId {
    UserId::parse("me").unwrap()
}

pub fn client(id: &str) -> ClientId {
    ClientId::parse(id).unwrap()
}
