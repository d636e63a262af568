//! The live channel's routes: `$connect`, `$disconnect`, `$default`.
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realtime::socket::{self, Config, Deps};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let deps = Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async {
            Ok::<_, Error>(socket::handle(&deps, event.payload).await)
        },
    ))
    .await
}
