//! Which crate runs each function of `template.yaml`, and on which kind of
//! trigger: one line per function. The stack's trigger modules (`server`
//! for HTTP routes, `s3`, `stream`) take the details (routes, queues, the
//! stream) from the template itself; nothing else names a function.
//!
//! Every function crate has the same shape: `Config` (read from the
//! function's environment in the template), `Deps::new(sdk, &config)`, and
//! a handler over the trigger's event.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use shared::config::FromEnv;

use crate::{s3, server, stream, websocket};

/// A function, ready to be called by its trigger.
pub enum Trigger {
    /// API Gateway HTTP API routes (the template's `HttpApi` events).
    Http(server::Handler),
    /// S3 notifications (the template's `S3` events).
    S3(s3::Handler),
    /// The table's stream (the template's `DynamoDB` events).
    Stream(stream::Handler),
    /// The WebSocket API's `$connect` REQUEST authorizer.
    SocketAuthorizer(websocket::Authorizer),
    /// The WebSocket API's routes.
    Socket(websocket::Handler),
}

type Build = fn(&SdkConfig, &dyn Fn(&str) -> Option<String>) -> Result<Trigger>;

/// The function `id` of the template, built from its environment `env`;
/// None if no crate is registered for it.
pub fn build(id: &str, sdk: &SdkConfig, env: &BTreeMap<String, String>) -> Option<Result<Trigger>> {
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
        _ => return None,
    };
    let lookup = |name: &str| env.get(name).cloned();
    Some(build(sdk, &lookup).with_context(|| format!("the environment of {id}")))
}

/// `Trigger::$kind` calling `$module::$handler` with the module's `Deps`,
/// built once from its `Config` (a function crate, or one module of a
/// crate with several binaries).
macro_rules! function {
    ($kind:ident, $($module:ident)::+, $handler:ident) => {
        |sdk, lookup| {
            let config = $($module)::+::Config::from_lookup(lookup)?;
            let deps = Arc::new($($module)::+::Deps::new(sdk, &config));
            Ok(Trigger::$kind(Arc::new(move |event| {
                let deps = deps.clone();
                Box::pin(async move { $($module)::+::$handler(&deps, event).await })
            })))
        }
    };
}
use function;
