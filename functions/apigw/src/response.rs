//! A handler's result as the HTTP response, logged in one line.

use std::time::Instant;

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Response};
use serde::Serialize;
use shared::{Error, Problem};

use crate::IDEMPOTENT_REPLAYED;

/// A success: status plus an optional JSON body.
#[derive(Debug)]
pub struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<serde_json::Value>,
    /// Set when this is the stored answer to an earlier request.
    pub(crate) replayed: bool,
}

impl Reply {
    pub fn json(status: u16, body: impl Serialize) -> Result<Self, Error> {
        Ok(Self {
            status,
            body: Some(serde_json::to_value(body).map_err(Error::internal)?),
            replayed: false,
        })
    }

    pub fn ok(body: impl Serialize) -> Result<Self, Error> {
        Self::json(200, body)
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            body: None,
            replayed: false,
        }
    }
}

/// Turns a handler's result into the HTTP response and logs the request in
/// one line. 5xx log their source; nothing else about the body is logged.
pub(crate) fn respond(
    route: &str,
    started: Instant,
    result: Result<Reply, Error>,
) -> Response<Body> {
    let cold_start = shared::telemetry::take_cold_start();
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(reply) => {
            tracing::info!(
                route,
                status = reply.status,
                latency_ms,
                cold_start,
                "request"
            );
            let mut builder = Response::builder().status(reply.status);
            if reply.replayed {
                builder = builder.header(IDEMPOTENT_REPLAYED, "true");
            }
            match reply.body {
                Some(body) => builder
                    .header(CONTENT_TYPE, "application/json")
                    .body(Body::Text(body.to_string())),
                None => builder.body(Body::Empty),
            }
            .unwrap_or_else(|_| problem_response(&Error::internal("response build failed")))
        }
        Err(err) => {
            let status = err.status();
            if status >= 500 {
                tracing::error!(route, status, code = %err.code, latency_ms, cold_start, error = ?std::error::Error::source(&err), "request failed");
            } else {
                tracing::info!(route, status, code = %err.code, latency_ms, cold_start, "request refused");
            }
            problem_response(&err)
        }
    }
}

/// The problem document for an error.
pub fn problem_response(err: &Error) -> Response<Body> {
    let problem = err.problem();
    let body = serde_json::to_string(&problem).unwrap_or_default();
    Response::builder()
        .status(problem.status)
        .header(CONTENT_TYPE, Problem::CONTENT_TYPE)
        .body(Body::Text(body))
        .expect("a status from Code and a static header are always valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Code;

    #[test]
    fn problems_are_problem_json() {
        let response = respond(
            "GET /me",
            Instant::now(),
            Err(Error::new(Code::NotFound, "nope")),
        );
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        let Body::Text(text) = response.body() else {
            panic!("text body")
        };
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["code"], "not_found");
    }
}
