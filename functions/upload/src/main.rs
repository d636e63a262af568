use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use shared::config::FromEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = upload::Config::from_env()?;
    let deps = upload::Deps::new(&shared::adapters::aws::sdk_config().await, &config);
    // The signing key is read during init, where a missing one stops the
    // container with its parameter's name instead of failing requests.
    deps.media_urls.signer().await?;
    run(service_fn(|req| async {
        Ok::<_, Infallible>(upload::handle(&deps, req).await)
    }))
    .await
}
