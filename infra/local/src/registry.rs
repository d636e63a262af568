//! Which crate runs each function of `template.yaml`, and on which kind of
//! trigger: one line per function. The stack's trigger modules (`server`
//! for HTTP routes, `s3`, `stream`, `queue`, `schedule`) take the details (routes,
//! queues, the stream) from the template itself; nothing else names a
//! function. Every handler runs under its function's `Timeout`, as on
//! Lambda: past it the call is dropped and the trigger sees what it would
//! see on AWS ([`TimedOut`]).
//!
//! Every function crate has the same shape: `Config` (read from the
//! function's environment in the template), `Deps::new(sdk, &config)`, and
//! a handler over the trigger's event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use shared::config::FromEnv;

use crate::invocations::Invocations;
use crate::{queue, s3, schedule, server, stream, websocket};

/// A function, ready to be called by its trigger.
pub enum Trigger {
    /// API Gateway HTTP API routes (the template's `HttpApi` events).
    Http(server::Handler),
    /// S3 notifications (the template's `S3` events).
    S3(s3::Handler),
    /// The table's stream (the template's `DynamoDB` events).
    Stream(stream::Handler),
    /// An SQS queue (the template's `SQS` events).
    Queue(queue::Handler),
    /// An EventBridge schedule (the template's `Schedule` events).
    Schedule(schedule::Handler),
    /// The WebSocket API's `$connect` REQUEST authorizer.
    SocketAuthorizer(websocket::Authorizer),
    /// The WebSocket API's routes.
    Socket(websocket::Handler),
}

type Build = fn(&SdkConfig, &dyn Fn(&str) -> Option<String>, Duration, Recorder) -> Result<Trigger>;

/// Where a function's calls are recorded, under its template id.
#[derive(Clone)]
pub struct Recorder {
    pub function: String,
    pub invocations: Invocations,
}

/// The function `id` of the template, built from its environment `env`,
/// cut off after `timeout`, each call recorded in `invocations`; None if
/// no crate is registered for it.
pub fn build(
    id: &str,
    sdk: &SdkConfig,
    env: &BTreeMap<String, String>,
    timeout: Duration,
    invocations: &Invocations,
) -> Option<Result<Trigger>> {
    let build: Build = match id {
        "AuthFunction" => function!(Http, auth, handle),
        "UploadFunction" => function!(Http, upload, handle),
        "SyncFunction" => function!(Http, sync, handle),
        "DevicesFunction" => function!(Http, devices, handle),
        "SpacesFunction" => function!(Http, spaces, handle),
        "ResizeFunction" => function!(S3, resize, handle),
        "NotifyFunction" => function!(Stream, notify, handle_stream),
        "ConnectAuthorizerFunction" => function!(SocketAuthorizer, realtime::authorizer, handle),
        "RealtimeFunction" => function!(Socket, realtime::socket, handle),
        "PokeFunction" => function!(Stream, realtime::poke, handle_stream),
        "PurgeFunction" => function!(Queue, purge, handle),
        "JanitorFunction" => function!(Schedule, janitor, handle),
        _ => return None,
    };
    let lookup = |name: &str| env.get(name).cloned();
    let recorder = Recorder {
        function: id.to_string(),
        invocations: invocations.clone(),
    };
    Some(build(sdk, &lookup, timeout, recorder).with_context(|| format!("the environment of {id}")))
}

/// What a trigger gets from a function that ran past its `Timeout`.
pub trait TimedOut {
    fn timed_out(limit: Duration) -> Self;
}

/// The HTTP API answers a function error, a timeout included, with this.
impl TimedOut for lambda_http::Response<lambda_http::Body> {
    fn timed_out(_: Duration) -> Self {
        let mut response = lambda_http::Response::new(lambda_http::Body::from(
            r#"{"message":"Internal Server Error"}"#,
        ));
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// The WebSocket API refuses the frame or the connection.
impl TimedOut for aws_lambda_events::apigw::ApiGatewayProxyResponse {
    fn timed_out(_: Duration) -> Self {
        let mut response = Self::default();
        response.status_code = 500;
        response
    }
}

/// An event source (S3's retries, the stream's mapping, a schedule's
/// asynchronous invocation) retries the event.
impl<T> TimedOut for Result<T, shared::Error> {
    fn timed_out(limit: Duration) -> Self {
        Err(shared::Error::unavailable(std::io::Error::other(format!(
            "Task timed out after {:.2} seconds",
            limit.as_secs_f64()
        ))))
    }
}

/// An empty item identifier fails the whole batch, as Lambda reads it.
impl TimedOut for aws_lambda_events::sqs::SqsBatchResponse {
    fn timed_out(_: Duration) -> Self {
        let mut response = Self::default();
        response.add_failure("");
        response
    }
}

/// `Trigger::$kind` calling `$module::$handler` with the module's `Deps`,
/// built once from its `Config` (a function crate, or one module of a
/// crate with several binaries).
macro_rules! function {
    ($kind:ident, $($module:ident)::+, $handler:ident) => {
        |sdk, lookup, timeout, recorder: Recorder| {
            let config = $($module)::+::Config::from_lookup(lookup)?;
            let deps = Arc::new($($module)::+::Deps::new(sdk, &config));
            Ok(Trigger::$kind(Arc::new(move |event| {
                let deps = deps.clone();
                let recorder = recorder.clone();
                Box::pin(async move {
                    let started = std::time::Instant::now();
                    let call = $($module)::+::$handler(&deps, event);
                    let outcome = match tokio::time::timeout(timeout, call).await {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            tracing::error!(
                                timeout_ms = timeout.as_millis() as u64,
                                "the handler ran past its Timeout and was stopped"
                            );
                            TimedOut::timed_out(timeout)
                        }
                    };
                    recorder.invocations.record(
                        &recorder.function,
                        stringify!($kind),
                        started,
                        &outcome,
                    );
                    outcome
                })
            })))
        }
    };
}
use function;
