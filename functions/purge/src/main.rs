//! The purge queue's consumer: deleted accounts and spaces, step by step.
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = purge::Config::from_env()?;
    let deps = purge::Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(purge::handle(&deps, event.payload).await)
    }))
    .await
}
