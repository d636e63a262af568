//! The local stack: reads `template.yaml`, creates its resources in the AWS
//! emulator, and serves the HTTP API on loopback with the function handlers
//! running in process on real API Gateway v2 events.

pub mod authorizer;
pub mod events;
pub mod provision;
pub mod server;
pub mod template;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::provision::Resources;
use crate::server::{Api, Handler};
use crate::template::Template;

#[derive(Debug, Clone)]
pub struct Options {
    /// The emulator's endpoint, e.g. `http://127.0.0.1:4566`.
    pub emulator_url: String,
    pub region: String,
    /// 0 picks a free port.
    pub api_port: u16,
    /// Prefix of every resource name, so stacks can share one emulator.
    pub stack_name: String,
    pub template: PathBuf,
}

impl Options {
    /// The repository's `template.yaml`.
    pub fn default_template() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
    }
}

pub struct LocalStack {
    pub api_url: String,
    pub resources: Resources,
    pub routes: Vec<template::Route>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    pollers: Vec<JoinHandle<()>>,
}

impl LocalStack {
    /// Stops serving and waits for in-flight requests to finish.
    pub async fn stop(mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }

    /// Resolves when the server stops on its own (it should not).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.server.abort();
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

pub async fn start(options: Options) -> Result<LocalStack> {
    let template = Template::load(&options.template)?;
    let sdk = shared::aws::sdk_config_for(&options.emulator_url, &options.region).await;
    let resources = provision::provision(&sdk, &template, &options.stack_name)
        .await
        .with_context(|| format!("provisioning in the emulator at {}", options.emulator_url))?;
    let routes = template.routes();

    let mut handlers: HashMap<String, Handler> = HashMap::new();
    for function in routes.iter().map(|r| r.function.clone()) {
        if handlers.contains_key(&function) {
            continue;
        }
        let config = function_config(&template, &resources, &function)?;
        let handler = handler_for(&function, &sdk, &config)
            .with_context(|| format!("the local stack has no handler for {function}"))?;
        handlers.insert(function, handler);
    }

    let mut pollers = Vec::new();
    for (function, queue_url) in &resources.upload_queues {
        let config = function_config(&template, &resources, function)?;
        let handler = s3_handler_for(function, &sdk, &config)
            .with_context(|| format!("the local stack has no S3 handler for {function}"))?;
        pollers.push(events::spawn_s3_poller(
            aws_sdk_sqs::Client::new(&sdk),
            queue_url.clone(),
            function.clone(),
            handler,
        ));
    }

    for function in template.stream_consumers() {
        let config = function_config(&template, &resources, &function)?;
        let handler = stream_handler_for(&function, &sdk, &config)
            .with_context(|| format!("the local stack has no stream handler for {function}"))?;
        pollers.push(events::spawn_stream_poller(
            &sdk,
            resources.table_name.clone(),
            function,
            handler,
        ));
    }

    let authorizer = authorizer::Authorizer::new(
        &options.emulator_url,
        &options.region,
        &resources.user_pool_id,
        &resources.user_pool_client_id,
    )
    .await?;
    let api = Arc::new(Api {
        routes: routes.clone(),
        handlers,
        authorizer,
    });
    let app = axum::Router::new().fallback(server::serve).with_state(api);
    let listener = TcpListener::bind(("127.0.0.1", options.api_port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", options.api_port))?;
    let api_url = format!("http://{}", listener.local_addr()?);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(err) = serving.await {
            tracing::error!(error = %err, "the API server stopped");
        }
    });
    Ok(LocalStack {
        api_url,
        resources,
        routes,
        shutdown: Some(shutdown),
        server,
        pollers,
    })
}

/// A function's `Config`, from its environment in the template.
fn function_config(
    template: &Template,
    resources: &Resources,
    function: &str,
) -> Result<shared::Config> {
    let env = template.environment(function, &resources.physical);
    shared::Config::from_lookup(|name| env.get(name).cloned())
        .with_context(|| format!("environment of {function}"))
}

/// A function crate's `Deps` and `handle`, as an in-process handler.
macro_rules! in_process {
    ($function:ident, $sdk:expr, $config:expr) => {{
        let deps = Arc::new($function::Deps::new($sdk, $config));
        let handler: Handler = Arc::new(move |req| {
            let deps = deps.clone();
            Box::pin(async move { $function::handle(&deps, req).await })
        });
        Some(handler)
    }};
}

/// The in-process handler of a function of the template, by logical id.
fn handler_for(
    function: &str,
    sdk: &aws_config::SdkConfig,
    config: &shared::Config,
) -> Option<Handler> {
    match function {
        "AuthFunction" => in_process!(auth, sdk, config),
        "SyncFunction" => in_process!(sync, sdk, config),
        "UploadFunction" => in_process!(upload, sdk, config),
        "DevicesFunction" => in_process!(notify, sdk, config),
        _ => None,
    }
}

/// The in-process S3 event handler of a function, by logical id.
fn s3_handler_for(
    function: &str,
    sdk: &aws_config::SdkConfig,
    config: &shared::Config,
) -> Option<events::S3Handler> {
    match function {
        "ResizeFunction" => {
            let deps = Arc::new(resize::Deps::new(sdk, config));
            Some(Arc::new(move |event| {
                let deps = deps.clone();
                Box::pin(async move { resize::handle(&deps, event).await })
            }))
        }
        _ => None,
    }
}

/// The in-process stream handler of a function, by logical id.
fn stream_handler_for(
    function: &str,
    sdk: &aws_config::SdkConfig,
    config: &shared::Config,
) -> Option<events::StreamHandler> {
    match function {
        "NotifyFunction" => {
            let deps = Arc::new(notify::Deps::new(sdk, config));
            Some(Arc::new(move |event| {
                let deps = deps.clone();
                Box::pin(async move { notify::handle_stream(&deps, event).await })
            }))
        }
        _ => None,
    }
}
