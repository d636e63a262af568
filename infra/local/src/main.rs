//! `local-stack`: the HTTP API of `template.yaml` on loopback, backed by the
//! emulator at `AWS_ENDPOINT_URL`. `scripts/dev` starts the emulator first.

use anyhow::{Context, Result};
use local_stack::Options;

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber_init();
    let emulator_url =
        std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL must point at the emulator")?;
    let options = Options {
        emulator_url: emulator_url.clone(),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        api_port: std::env::var("API_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3000),
        cdn_port: std::env::var("CDN_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3002),
        websocket_port: std::env::var("WS_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3001),
        console_port: std::env::var("CONSOLE_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3003),
        websocket_limits: local_stack::websocket::Limits::default(),
        stack_name: std::env::var("STACK_NAME").unwrap_or_else(|_| "local".into()),
        template: std::env::var("TEMPLATE")
            .map(Into::into)
            .unwrap_or_else(|_| "template.yaml".into()),
        state_dir: std::env::var_os("STATE_DIR").map(Into::into),
        emulator_log: std::env::var_os("EMULATOR_LOG").map(Into::into),
    };
    eprintln!("provisioning template.yaml's resources in the emulator and starting the functions");
    let mut stack = local_stack::start(options).await?;
    let r = &stack.resources;
    eprintln!(
        "\nlocal stack ready\n  API           {}\n  media CDN     {}\n  live channel  {}/?token=<accessToken>&clientId=<id>\n  console       {} (what is in the stack; scripts/run-schedule JanitorFunction)\n  emulator      {emulator_url}\n  table         {}\n  bucket        {}\n  user pool     {}\n  app client    {}\n  routes        {}\n\nCtrl-C stops it.\n",
        stack.api_url,
        stack.cdn_url,
        stack.websocket_url,
        stack.console_url,
        r.table_name,
        r.bucket,
        r.user_pool_id,
        r.user_pool_client_id,
        stack.routes.len(),
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        _ = stack.wait() => anyhow::bail!("the API server stopped unexpectedly"),
    }
    stack.stop().await;
    Ok(())
}

fn tracing_subscriber_init() {
    // Function logs are JSON lines (as in CloudWatch); the stack's own
    // one-line-per-request log shares the same subscriber.
    shared::telemetry::init();
}
