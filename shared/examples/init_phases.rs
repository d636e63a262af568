//! Where a function's init goes, phase by phase, in a release build: run
//! with a function's environment. Prints microseconds.
use std::time::Instant;

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let mut last = started;
    let mut phase = |name: &str| {
        let now = Instant::now();
        println!("{name:28} {:>6} us", (now - last).as_micros());
        last = now;
    };
    shared::telemetry::init();
    phase("telemetry");
    let sdk = shared::adapters::aws::sdk_config().await;
    phase("aws config");
    let table = shared::store::Table::new(&sdk, "t");
    phase("DynamoDB client");
    let objects = shared::adapters::objects::Objects::new(&sdk, "b");
    phase("S3 client");
    let identity = shared::adapters::identity::client(&sdk);
    phase("Cognito client");
    let push = shared::adapters::push::Push::new(&sdk, "", "");
    phase("SNS client");
    drop((table, objects, identity, push));
    println!("{:28} {:>6} us", "total", started.elapsed().as_micros());
}
