//! The live channel's stream consumer: table changes become pokes.
use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realtime::poke::{self, Config, Deps};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let deps = Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(|event: LambdaEvent<Event>| async {
        poke::handle_stream(&deps, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
