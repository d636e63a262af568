//! The live channel's `$connect` authorizer.
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realtime::authorizer::{self, Config, Deps};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let deps = Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    // The JWKS once per container, during init (retried on first use if
    // the pool did not answer).
    if let Err(err) = deps.load_keys().await {
        tracing::warn!(error = %err, "the user pool's JWKS could not be fetched at init");
    }
    let deps = &deps;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            authorizer::handle(deps, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
