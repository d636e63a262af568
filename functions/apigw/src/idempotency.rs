//! `Idempotency-Key` on the routes whose table entry says so.

use lambda_http::Request;
use shared::Error;
use shared::model::idempotency::{self, Decision, StoredResponse};
use shared::store::Table;

use crate::{Caller, Reply};

/// The header a client sets to make a POST safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that replays the first one for its key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Runs `handler` once per `Idempotency-Key` (if the request has one): a
/// repeat within 24 hours gets the first response back, marked
/// `Idempotent-Replayed: true`. The key is scoped to the caller and route.
pub(crate) async fn idempotent(
    req: &Request,
    route: &str,
    table: &Table,
    caller: &Caller,
    handler: impl Future<Output = Result<Reply, Error>>,
) -> Result<Reply, Error> {
    let Some(raw) = req.headers().get(IDEMPOTENCY_KEY) else {
        return handler.await;
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|key| idempotency::valid_key(key))
        .ok_or_else(|| Error::invalid("Idempotency-Key must be 1-255 visible ASCII characters"))?;
    let user = &caller.user_id;
    let fingerprint = idempotency::fingerprint(req.body().as_ref());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match table
        .claim_idempotency_key(user, route, key, &fingerprint, now)
        .await?
    {
        Decision::Replay(stored) => Ok(Reply {
            status: stored.status,
            body: stored
                .body
                .map(|body| serde_json::from_str(&body).map_err(Error::internal))
                .transpose()?,
            replayed: true,
        }),
        Decision::Run => {
            let result = handler.await;
            // The work is done either way: failing to remember it must not
            // turn a success into an error. Logged; the lease runs out.
            let remembered = match &result {
                Ok(reply) => {
                    let stored = StoredResponse {
                        status: reply.status,
                        body: reply.body.as_ref().map(|body| body.to_string()),
                    };
                    table
                        .complete_idempotency_key(user, route, key, &stored)
                        .await
                }
                Err(_) => table.release_idempotency_key(user, route, key).await,
            };
            if let Err(err) = remembered {
                tracing::warn!(route, error = %err, "idempotency record not updated");
            }
            result
        }
    }
}
