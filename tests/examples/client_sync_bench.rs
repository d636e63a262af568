//! `sync()` of 1,000 pending mutations from mobile_sync against the local
//! stack (the `sync` function over HTTP, DynamoDB in the emulator), and a
//! second device pulling them. Run by scripts/bench against the emulator at
//! AWS_ENDPOINT_URL. Usage: client_sync_bench [MUTATIONS] [RUNS]

use std::time::Instant;

use e2e::TestStack;
use mobile_sync::Replica;
use mobile_sync::http::HttpTransport;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mutations: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    let runs: usize = args.next().map_or(Ok(3), |n| n.parse())?;
    let api = TestStack::start().await;
    println!("| run | mutations | sync() pushing them | second device's sync() pulling them |");
    println!("|---:|---:|---:|---:|");
    for run in 1..=runs {
        let user = api.user().await;
        let api_url = api.stack.api_url.clone();
        let (push_ms, pull_ms) = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let open = |id: &str| {
                let transport = HttpTransport::new(&api_url).unwrap();
                transport.set_access_token(Some(user.access_token.clone()));
                let db = dir.path().join(format!("{id}.db"));
                Replica::open(db.to_str().unwrap(), id, transport).unwrap()
            };
            let (phone, tablet) = (open("phone"), open("tablet"));
            let now = mobile_sync::engine::wall_ms();
            for i in 0..mutations {
                let fields = json!({"title": format!("note {i}"), "done": false});
                phone
                    .put_at(
                        "notes",
                        &format!("n{i}"),
                        fields.as_object().unwrap().clone(),
                        now,
                    )
                    .unwrap();
            }
            let started = Instant::now();
            let pushed = phone.sync().unwrap();
            let push_ms = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(pushed.pushed as usize, mutations);
            let started = Instant::now();
            let pulled = tablet.sync().unwrap();
            let pull_ms = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(pulled.pulled as usize, mutations);
            (push_ms, pull_ms)
        })
        .await?;
        println!("| {run} | {mutations} | {push_ms:.0} ms | {pull_ms:.0} ms |");
    }
    api.stop().await;
    Ok(())
}
