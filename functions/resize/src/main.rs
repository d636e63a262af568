use aws_lambda_events::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = resize::Config::from_env()?;
    let deps = resize::Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(|event: LambdaEvent<S3Event>| async {
        resize::handle(&deps, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
