use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = auth::Config::from_env()?;
    let deps = auth::Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(|req| async {
        Ok::<_, Infallible>(auth::handle(&deps, req).await)
    }))
    .await
}
