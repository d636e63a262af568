//! The local stack: reads `template.yaml`, creates its resources in the AWS
//! emulator, and serves the HTTP API on loopback with the function handlers
//! running in process on real API Gateway v2 events.

pub mod authorizer;
pub mod cdn;
pub mod console;
pub mod control;
pub mod filter;
pub mod invocations;
pub mod provision;
pub mod queue;
pub mod registry;
pub mod s3;
pub mod schedule;
pub mod server;
pub mod state;
pub mod stream;
pub mod template;
pub mod websocket;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::provision::Resources;
use crate::registry::Trigger;
use crate::server::Api;
use crate::template::Template;

#[derive(Debug, Clone)]
pub struct Options {
    /// The emulator's endpoint, e.g. `http://127.0.0.1:4566`.
    pub emulator_url: String,
    pub region: String,
    /// 0 picks a free port.
    pub api_port: u16,
    /// The media distribution's port; 0 picks a free one.
    pub cdn_port: u16,
    /// The live channel's port; 0 picks a free one.
    pub websocket_port: u16,
    /// The console (and run a schedule now); 0 picks a free one.
    pub console_port: u16,
    /// The live channel's idle and maximum durations.
    pub websocket_limits: websocket::Limits,
    /// Prefix of every resource name, so stacks can share one emulator.
    pub stack_name: String,
    pub template: PathBuf,
    /// Where the stack keeps what survives a restart (stream positions,
    /// open connections); None starts and stays fresh, as tests do.
    pub state_dir: Option<PathBuf>,
    /// The emulator's log, whose tail the console shows.
    pub emulator_log: Option<PathBuf>,
}

impl Options {
    /// The repository's `template.yaml`.
    pub fn default_template() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
    }
}

pub struct LocalStack {
    pub api_url: String,
    /// The media distribution (signed variant URLs point here).
    pub cdn_url: String,
    /// What the distribution served (the cost benchmark's CloudFront lines).
    pub cdn_served: Arc<cdn::Served>,
    /// The distribution's trusted keys: add and remove keys to rehearse a
    /// rotation.
    pub media_key_group: Arc<RwLock<shared::media::cdn::KeyGroup>>,
    /// The live channel: `ws://127.0.0.1:PORT` (also its management API
    /// over `http://`).
    pub websocket_url: String,
    pub gateway: Arc<websocket::Gateway>,
    /// The console and control port: `http://127.0.0.1:PORT`.
    pub console_url: String,
    /// Every function's recent calls.
    pub invocations: invocations::Invocations,
    /// The functions with a `Schedule` event, to run now.
    pub schedules: schedule::Schedules,
    pub resources: Resources,
    pub routes: Vec<template::Route>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    /// The distribution, the WebSocket gateway and the control port.
    side_servers: Vec<JoinHandle<()>>,
    pollers: Vec<JoinHandle<()>>,
}

impl LocalStack {
    /// Stops serving and waits for in-flight requests to finish.
    pub async fn stop(mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
        for server in &self.side_servers {
            server.abort();
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
        for server in &self.side_servers {
            server.abort();
        }
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

pub async fn start(options: Options) -> Result<LocalStack> {
    let template = Template::load(&options.template)?;
    let state = options
        .state_dir
        .as_ref()
        .map(state::StateDir::new)
        .transpose()
        .context("creating the state folder")?;
    let sdk = shared::adapters::aws::sdk_config_for(&options.emulator_url, &options.region).await;
    let resources = provision::provision(&sdk, &template, &options.stack_name)
        .await
        .with_context(|| format!("provisioning in the emulator at {}", options.emulator_url))?;
    let routes = template.routes();

    let media_key_group = Arc::new(RwLock::new(resources.media_key_group.clone()));
    let cdn_served = Arc::new(cdn::Served::default());
    let cdn_listener = TcpListener::bind(("127.0.0.1", options.cdn_port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", options.cdn_port))?;
    let cdn_host = cdn_listener.local_addr()?.to_string();
    let cdn_url = format!("http://{cdn_host}");
    let cdn_app = axum::Router::new()
        .fallback(cdn::serve)
        .with_state(Arc::new(cdn::Cdn {
            url: cdn_url.clone(),
            key_group: media_key_group.clone(),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            ),
            bucket: resources.bucket.clone(),
            served: cdn_served.clone(),
        }));
    let cdn = tokio::spawn(async move {
        if let Err(err) = axum::serve(cdn_listener, cdn_app).await {
            tracing::error!(error = %err, "the media distribution stopped");
        }
    });
    let websocket_listener = TcpListener::bind(("127.0.0.1", options.websocket_port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", options.websocket_port))?;
    let websocket_host = websocket_listener.local_addr()?.to_string();
    let endpoints = LocalEndpoints {
        cdn_host: cdn_host.clone(),
        websocket_host: websocket_host.clone(),
    };
    let mut socket_authorizer = None;
    let mut socket_handlers: HashMap<String, websocket::Handler> = HashMap::new();

    let mut handlers: HashMap<String, server::Handler> = HashMap::new();
    let mut pollers = Vec::new();
    let mut schedules = schedule::Schedules::new(&options.region);
    let invocations = invocations::Invocations::default();
    for function in template.functions() {
        let env = environment(&template, &resources, &function, &endpoints)?;
        let identity = identity(&options, &template, &resources, &function).await?;
        let trigger = registry::build(
            &function,
            &identity,
            &env,
            template.timeout(&function),
            &invocations,
        )
        .with_context(|| format!("{function} is not in infra/local/src/registry.rs"))??;
        match trigger {
            Trigger::Http(handler) => {
                handlers.insert(function, handler);
            }
            Trigger::S3(handler) => {
                let queue_url = resources
                    .upload_queues
                    .iter()
                    .find(|(of, _)| *of == function)
                    .map(|(_, url)| url.clone())
                    .with_context(|| format!("{function} has no S3 event in the template"))?;
                pollers.push(s3::spawn_poller(
                    aws_sdk_sqs::Client::new(&sdk),
                    queue_url,
                    function,
                    handler,
                ));
            }
            Trigger::Queue(handler) => {
                let (queue, batch_size) = template
                    .queue_event(&function)
                    .with_context(|| format!("{function} has no SQS event in the template"))?;
                let (queue_url, queue_arn) = resources
                    .queues
                    .get(&queue)
                    .with_context(|| format!("{function}'s SQS event names {queue}, not a queue"))?
                    .clone();
                // Lambda hides a batch for the queue's visibility timeout;
                // the handler is cut off at its Timeout, so locally a lost
                // receive comes back sooner.
                let visibility_timeout = template
                    .visibility_timeout(&queue)
                    .min(template.timeout(&function).as_secs() as i32 + 5);
                pollers.push(queue::spawn_poller(
                    queue::poller_client(&sdk),
                    options.region.clone(),
                    function,
                    handler,
                    queue::Mapping {
                        queue_url,
                        queue_arn,
                        batch_size,
                        visibility_timeout,
                    },
                ));
            }
            Trigger::Schedule(handler) => {
                let expression = template
                    .schedule_event(&function)
                    .with_context(|| format!("{function} has no Schedule event in the template"))?;
                schedules.add(&function, &expression, handler);
            }
            Trigger::SocketAuthorizer(handler) => socket_authorizer = Some(handler),
            Trigger::Socket(handler) => {
                socket_handlers.insert(function, handler);
            }
            Trigger::Stream(handler) => {
                let (mut mapping, destination) = template
                    .stream_event(&function)
                    .with_context(|| format!("{function} has no DynamoDB event in the template"))?;
                mapping.filter = template.stream_filter(&function)?;
                if let Some(queue) = destination {
                    let (queue_url, _) = resources
                        .queues
                        .get(&queue)
                        .with_context(|| format!("the destination {queue} is not a queue"))?;
                    mapping.on_failure = Some(stream::Destination {
                        queue_url: queue_url.clone(),
                        function_arn: format!(
                            "arn:aws:lambda:{}:{}:function:{function}",
                            options.region,
                            provision::ACCOUNT_ID
                        ),
                    });
                }
                pollers.push(stream::spawn_poller(
                    &sdk,
                    resources.table_name.clone(),
                    function,
                    handler,
                    mapping,
                    state.clone(),
                ));
            }
        }
    }

    let gateway = Arc::new(websocket::Gateway::new(
        socket_authorizer.context("the template's WebSocket authorizer has no function")?,
        template
            .websocket_routes()
            .into_iter()
            .map(|(route, function)| {
                let handler = socket_handlers.get(&function).cloned().with_context(|| {
                    format!("the route {route} targets {function}, not a socket function")
                })?;
                Ok((route, handler))
            })
            .collect::<Result<_>>()?,
        options.websocket_limits,
        &options.region,
        state.clone(),
    ));
    gateway.disconnect_previous().await;
    let websocket = tokio::spawn(websocket::serve_gateway(
        websocket_listener,
        gateway.clone(),
    ));

    pollers.extend(schedules.spawn_timers());

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

    let console_listener = TcpListener::bind(("127.0.0.1", options.console_port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", options.console_port))?;
    let console_url = format!("http://{}", console_listener.local_addr()?);
    let console_app = console::router(Arc::new(console::Console {
        sdk: sdk.clone(),
        emulator_url: options.emulator_url.clone(),
        resources: resources.clone(),
        api: api.clone(),
        gateway: gateway.clone(),
        invocations: invocations.clone(),
        schedules: schedules.clone(),
        signer: shared::media::cdn::UrlSigner::new(
            &cdn_url,
            &resources.media_signing_key.key_pair_id,
            &resources.media_signing_key.private_pem,
            std::time::Duration::from_secs(24 * 60 * 60),
        )?,
        emulator_log: options.emulator_log.clone(),
    }));
    let console = tokio::spawn(async move {
        if let Err(err) = axum::serve(console_listener, console_app).await {
            tracing::error!(error = %err, "the console stopped");
        }
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
        cdn_url,
        cdn_served,
        media_key_group,
        websocket_url: format!("ws://{websocket_host}"),
        gateway,
        console_url,
        invocations,
        schedules,
        side_servers: vec![cdn, websocket, console],
        resources,
        routes,
        shutdown: Some(shutdown),
        server,
        pollers,
    })
}

/// Where the stack serves what AWS would give a domain to.
pub struct LocalEndpoints {
    /// The media distribution.
    pub cdn_host: String,
    /// The WebSocket API (and its management API).
    pub websocket_host: String,
}

/// A function's environment from the template, as on AWS but for the
/// domains AWS gives out: the media distribution and the WebSocket API's
/// stage are the stack's loopback servers, over plain HTTP.
pub fn environment(
    template: &Template,
    resources: &Resources,
    function: &str,
    endpoints: &LocalEndpoints,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut physical = resources.physical.clone();
    let (distribution, _) = template.single("AWS::CloudFront::Distribution")?;
    physical.insert(
        format!("{distribution}.DomainName"),
        endpoints.cdn_host.clone(),
    );
    let stage_url = format!(
        "https://{}.execute-api.{}.amazonaws.com/{}",
        provision::WEBSOCKET_API_ID,
        physical
            .get("AWS::Region")
            .map_or("us-east-1", String::as_str),
        provision::WEBSOCKET_STAGE,
    );
    let mut env = template.environment(function, &physical);
    for value in env.values_mut() {
        if *value == stage_url {
            *value = format!("http://{}", endpoints.websocket_host);
        } else if let Some(rest) = value.strip_prefix("https://")
            && rest.starts_with(&endpoints.cdn_host)
        {
            *value = format!("http://{rest}");
        }
    }
    Ok(env)
}

/// The function's own identity in the emulator: an IAM user holding exactly
/// its policy from the template, so a missing permission fails here with
/// AccessDenied as it would on AWS.
async fn identity(
    options: &Options,
    template: &Template,
    resources: &Resources,
    function: &str,
) -> Result<aws_config::SdkConfig> {
    let policy = template.policy(function, &resources.physical)?;
    let name = format!("{}-{function}", options.stack_name);
    let response = reqwest::Client::new()
        .post(format!("{}/_emulator/iam/identity", options.emulator_url))
        .json(&serde_json::json!({"name": name, "policy": policy}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| {
            format!(
                "creating the identity of {function}: the emulator must be infra/emulator/emulator.py"
            )
        })?;
    let keys: serde_json::Value = response.json().await?;
    let key = |name: &str| keys[name].as_str().unwrap_or_default().to_string();
    Ok(shared::adapters::aws::sdk_config_as(
        &options.emulator_url,
        &options.region,
        &key("accessKeyId"),
        &key("secretAccessKey"),
    )
    .await)
}
