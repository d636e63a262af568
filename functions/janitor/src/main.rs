//! The janitor, on its EventBridge schedule.
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = janitor::Config::from_env()?;
    let deps = janitor::Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(|event: LambdaEvent<EventBridgeEvent>| async {
        janitor::handle(&deps, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
