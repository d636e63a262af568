//! HTTP glue shared by every HTTP function: API Gateway (HTTP API, payload
//! v2) request in, typed command out; domain result in, JSON or
//! `application/problem+json` out. The only place that knows both sides.
//!
//! Each HTTP function declares its routes once, in a [`Route`] table that
//! [`handle`] dispatches on method and path; a test holds each table equal
//! to the template's routes and the OpenAPI document.

mod delivery;
mod idempotency;
mod limits;
mod request;
mod response;
mod routes;
pub mod testing;

pub use delivery::{COMPRESS_ABOVE, etag};
pub use idempotency::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
pub use limits::{Limiter, Limits};
pub use request::{Caller, json_body};
pub use response::{Reply, problem_response};
pub use routes::{Access, BoxReply, Call, Route, Service, handle, match_path, page_cursor};

/// The limit for every JSON body but a sync push (which has its own): the
/// requests are a few fields each; anything bigger is a mistake or an attack.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;
