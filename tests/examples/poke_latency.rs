//! The live channel's latency through the local stack: from the start of a
//! `POST /sync/push` to the poke arriving on the user's other devices, with
//! 1 and 200 of them connected, and the fan-out time to 1,000 connections.
//! The stream is polled every 200 ms here (Lambda polls a shard about four
//! times a second), so that poll dominates. Run by scripts/bench against
//! the emulator at AWS_ENDPOINT_URL. Usage: poke_latency [PUSHES]

use std::time::{Duration, Instant};

use e2e::{TestStack, User, hlc_now};
use futures_util::StreamExt;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(api: &TestStack, user: &User, client_id: &str) -> Socket {
    let url = format!(
        "{}/?clientId={client_id}&token={}",
        api.stack.websocket_url, user.access_token
    );
    connect_async(url).await.expect("the channel opens").0
}

async fn wait_for_connections(api: &TestStack, user: &User, count: usize) {
    let table = api.table().await;
    while table.connections(&user.user_id).await.unwrap().len() < count {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the next poke on every socket; each one's time since `from`.
async fn pokes(sockets: &mut [Socket], from: Instant) -> Vec<Duration> {
    let waits = sockets.iter_mut().map(|socket| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) if text.contains("\"poke\"") => {
                    return from.elapsed();
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no poke: {other:?}"),
            }
        }
    });
    futures_util::future::join_all(waits).await
}

async fn push(api: &TestStack, user: &User, id: u64) {
    let pushed = api
        .post(
            "/sync/push",
            json!({"clientId": "phone", "mutations": [{
                "id": id, "collection": "notes", "recordId": format!("n{id}"), "op": "put",
                "fields": {"title": "x"}, "hlc": hlc_now("phone")}]}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(pushed.status, 200);
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pushes: u64 = std::env::args().nth(1).map_or(Ok(20), |n| n.parse())?;
    let api = TestStack::start().await;
    println!("| connected devices | pushes | push -> poke p50 | p99 | slowest |");
    println!("|---:|---:|---:|---:|---:|");
    for devices in [1usize, 200] {
        let user = api.user().await;
        let mut sockets = Vec::with_capacity(devices);
        for i in 0..devices {
            sockets.push(open(&api, &user, &format!("tablet-{i}")).await);
        }
        wait_for_connections(&api, &user, devices).await;
        let mut latencies = Vec::new();
        for id in 1..=pushes {
            let started = Instant::now();
            push(&api, &user, id).await;
            latencies.extend(pokes(&mut sockets, started).await);
        }
        latencies.sort();
        println!(
            "| {devices} | {pushes} | {} | {} | {} |",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap())
        );
    }

    let user = api.user().await;
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(1000);
    for i in 0..1000 {
        sockets.push(open(&api, &user, &format!("device-{i}")).await);
    }
    wait_for_connections(&api, &user, 1000).await;
    let connected = started.elapsed();
    let started = Instant::now();
    push(&api, &user, 1).await;
    let mut latencies = pokes(&mut sockets, started).await;
    latencies.sort();
    println!(
        "\n1,000 connections of one user (opened in {}): push -> first poke {}, p50 {}, last poke {}",
        ms(connected),
        ms(latencies[0]),
        ms(percentile(&latencies, 0.5)),
        ms(*latencies.last().unwrap())
    );
    api.stop().await;
    Ok(())
}
