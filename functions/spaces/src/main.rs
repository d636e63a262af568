use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = spaces::Config::from_env()?;
    let deps = spaces::Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    run(service_fn(|req| async {
        Ok::<_, Infallible>(spaces::handle(&deps, req).await)
    }))
    .await
}
