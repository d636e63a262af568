//! The `sync` function: `POST /sync/push` and `GET /sync/pull`.

use apigw::{Call, Reply, Route, Service};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::Error;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable};
use shared::metrics::Metrics;
use shared::model::ids::ClientId;
use shared::model::quota::Quotas;
use shared::store::Table;
use shared::sync::feed::{PullCursor, decode_cursor, encode_cursor};
use shared::sync::spaces::SpaceChange;
use shared::sync::store::SyncStore;
use shared::sync::{Change, Limits, Rejected, WireMutation, validate};

/// A push of 1000 mutations with a few small fields each fits well within.
pub const PUSH_BODY_LIMIT: usize = 1024 * 1024;
pub const DEFAULT_PULL_LIMIT: usize = 100;
pub const MAX_PULL_LIMIT: usize = 500;

/// What `sync` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// What a user or partition may hold (`MAX_*`, template `Globals`).
    pub quotas: Quotas,
    /// `SYNC_MAX_CLOCK_SKEW_SECONDS`: how far ahead a client's hlc may be
    /// (default 300).
    pub max_clock_skew_seconds: u64,
    /// The caller's rate limits (`USER_WRITES_PER_MINUTE`, `USER_READS_PER_MINUTE`).
    pub limits: apigw::Limits,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            limits: apigw::Limits::read(env)?,
            table_name: config::table_name(env)?,
            quotas: Quotas::read(env),
            max_clock_skew_seconds: env.number("SYNC_MAX_CLOCK_SKEW_SECONDS", 300),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub limits: Limits,
    pub limiter: std::sync::Arc<apigw::Limiter>,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            limiter: std::sync::Arc::new(apigw::Limiter::new(config.limits)),
            table: Table::new(sdk, &config.table_name).with_quotas(config.quotas),
            limits: Limits {
                max_clock_skew_ms: config.max_clock_skew_seconds * 1000,
                ..Limits::default()
            },
        }
    }
}

impl Service for Deps {
    const ROUTES: &'static [Route<Self>] = &[
        Route::session("POST", "/sync/push", |d, c| Box::pin(push(d, c))).idempotent(),
        Route::session("GET", "/sync/pull", |d, c| Box::pin(pull(d, c))),
    ];

    fn table(&self) -> &Table {
        &self.table
    }

    fn limiter(&self) -> &apigw::Limiter {
        &self.limiter
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    apigw::handle(deps, req).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushBody {
    client_id: ClientId,
    mutations: Vec<WireMutation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PushReply {
    last_mutation_id: u64,
    /// Mutations acknowledged but not applied, with why.
    rejected: Vec<Rejected>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PullReply {
    changes: Vec<Change>,
    /// Membership changes since the cursor, removals first.
    spaces: Vec<SpaceChange>,
    cursor: String,
    has_more: bool,
    last_mutation_id: u64,
}

async fn push(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let grant = call.session()?.own();
    let body: PushBody = call.json(PUSH_BODY_LIMIT)?;
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mutations = validate(&body.client_id, body.mutations, &deps.limits, now_ms)?;
    let count = mutations.len();
    let pushed = deps.table.push(&grant, &body.client_id, mutations).await?;
    tracing::info!(mutations = count, watermark = pushed.watermark, "sync push");
    Metrics::new("sync")
        .count("MutationsApplied", pushed.applied)
        .count("MutationsSuperseded", pushed.superseded)
        .count("MutationsRedelivered", count - pushed.applied)
        .count("MutationsRejected", pushed.rejected.len())
        .emit();
    for rejected in &pushed.rejected {
        tracing::info!(
            id = rejected.id,
            code = rejected.code.as_str(),
            "sync mutation rejected"
        );
    }
    Reply::ok(PushReply {
        last_mutation_id: pushed.watermark,
        rejected: pushed.rejected,
    })
}

async fn pull(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let grant = call.session()?.own();
    let client_id = call
        .query("clientId")
        .and_then(|id| ClientId::parse(id).ok())
        .ok_or_else(|| Error::invalid("clientId is required: 1-64 of [A-Za-z0-9_.:-]"))?;
    let cursor = match call.query("cursor").filter(|c| !c.is_empty()) {
        Some(cursor) => decode_cursor(cursor)?,
        None => PullCursor::default(),
    };
    let limit = call.limit(DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT)?;
    let page = deps.table.pull(&grant, &client_id, cursor, limit).await?;
    Reply::ok(PullReply {
        changes: page.changes,
        spaces: page.spaces,
        cursor: encode_cursor(page.cursor),
        has_more: page.has_more,
        last_mutation_id: page.watermark,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_the_template_and_the_contract() {
        apigw::testing::assert_routes_are_the_contract::<Deps>("SyncFunction");
    }
}
