//! The stream consumer: table changes become pushes.
use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = notify::Config::from_env()?;
    let deps = notify::Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(|event: LambdaEvent<Event>| async {
        notify::handle_stream(&deps, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
