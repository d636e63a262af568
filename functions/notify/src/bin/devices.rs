//! Device registration: `PUT` and `DELETE /devices/{deviceId}`.
use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = shared::Config::from_env()?;
    let deps = notify::Deps::new(&shared::aws::sdk_config().await, &config);
    run(service_fn(|req| async {
        Ok::<_, Infallible>(notify::handle(&deps, req).await)
    }))
    .await
}
