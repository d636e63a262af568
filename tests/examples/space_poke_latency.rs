//! A shared space on the live channel through the local stack: from the
//! start of a `POST /sync/push` into a space to the poke on every other
//! member's connection, with 200 members (p50, p99) and 1,000 (the time
//! until all are poked); then how many pushes into one space go through
//! per second from concurrent writers (one counter per space). Members are
//! made through the store and connect with tokens the emulator's key
//! signs, so the figures are the fan-out's, not sign-ups'. Run by
//! scripts/bench against the emulator at AWS_ENDPOINT_URL.

use std::time::{Duration, Instant};

use e2e::{TestStack, hlc_now};
use futures_util::StreamExt;
use serde_json::json;
use shared::model::access::Role;
use shared::model::ids::{SpaceId, UserId};
use shared::sync::store::Memberships;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Waits for the next poke on every socket; each one's time since `from`.
async fn pokes(sockets: &mut [Socket], from: Instant) -> Vec<Duration> {
    let waits = sockets.iter_mut().map(|socket| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(60), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) if text.contains("\"poke\"") => {
                    return Some(from.elapsed());
                }
                Ok(Some(Ok(_))) => continue,
                other => {
                    eprintln!("no poke: {other:?} after {:?}", from.elapsed());
                    return None;
                }
            }
        }
    });
    let all = futures_util::future::join_all(waits).await;
    let missing = all.iter().filter(|d| d.is_none()).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} connections got no poke",
        all.len()
    );
    all.into_iter().flatten().collect()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Drains what is already queued on each socket (the pokes of joining).
async fn settle(sockets: &mut [Socket]) {
    for socket in sockets.iter_mut() {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), socket.next()).await
        {
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pushes: u64 = std::env::args().nth(1).map_or(Ok(10), |n| n.parse())?;
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    // Writers push faster than a user's write limit allows (120 a
    // minute): the limit is lifted, so the figure is the space counter's.
    let template = e2e::template_with(
        "  UserWritesPerMinute:\n    Type: Number\n    Default: 120",
        "  UserWritesPerMinute:\n    Type: Number\n    Default: 1000000",
    );
    let api = TestStack::start_with_template(template).await;
    let table = api.table().await;
    let (key, kid) = e2e::tokens::emulator_signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid);
    let owner = api.user().await;
    let claims = e2e::tokens::claims_of(&owner.access_token);
    let token_of = |user: &UserId| {
        let mut claims = claims.clone();
        claims["sub"] = json!(user.as_str());
        claims["username"] = json!(user.as_str());
        jsonwebtoken::encode(&header, &claims, &key).expect("a token")
    };

    println!("| members with a connection | pushes | push -> poke p50 | p99 | slowest |");
    println!("|---:|---:|---:|---:|---:|");
    let mut next_id = 0;
    let sizes: Vec<usize> = std::env::var("SPACE_MEMBERS").map_or(vec![200, 1000], |v| {
        v.split(",").map(|n| n.parse().unwrap()).collect()
    });
    // A space holds at most this many members, the owner (who pushes)
    // included: "1,000 members" is the owner and 999 connected others.
    let most = shared::model::quota::Quotas::default().members_per_space as usize - 1;
    for members in sizes.into_iter().map(|n| n.min(most)) {
        let space = SpaceId::parse(&uuid::Uuid::new_v4().to_string())?;
        Memberships::create_space(&table, &owner.user_id, &space, "bench").await?;
        let started = Instant::now();
        let mut sockets = Vec::with_capacity(members);
        for i in 0..members {
            let member = UserId::parse(&format!("member-{members}-{i}"))?;
            table
                .add_member(&owner.user_id, &space, &member, Role::Editor)
                .await?;
            let url = format!(
                "{}/?clientId=phone&token={}",
                api.stack.websocket_url,
                token_of(&member)
            );
            sockets.push(connect_async(url).await?.0);
        }
        let joined = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        settle(&mut sockets).await;
        let rounds = if members == 200 { pushes } else { 1 };
        let mut latencies = Vec::new();
        let mut last = Vec::new();
        for _ in 0..rounds {
            next_id += 1;
            let started = Instant::now();
            let pushed = api
                .push(
                    &owner,
                    "owner-phone",
                    vec![
                        json!({"id": next_id, "spaceId": space, "collection": "cards",
                                "recordId": format!("c{next_id}"), "op": "put",
                                "fields": {"t": "x"}, "hlc": hlc_now("owner-phone")}),
                    ],
                )
                .await;
            assert_eq!(pushed.body["rejected"], json!([]), "{pushed:?}");
            let mut round = pokes(&mut sockets, started).await;
            round.sort();
            last.push(*round.last().unwrap());
            latencies.extend(round);
        }
        latencies.sort();
        last.sort();
        println!(
            "| {members} | {rounds} | {} | {} | {} (all poked, p50 of rounds: {}; joined and connected in {}) |",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap()),
            ms(percentile(&last, 0.5)),
            ms(joined),
        );
    }

    // Writers pushing into one space at once, each its own member and
    // client, for ten seconds.
    let space = SpaceId::parse(&uuid::Uuid::new_v4().to_string())?;
    Memberships::create_space(&table, &owner.user_id, &space, "bench").await?;
    println!(
        "\n| concurrent writers | pushes in 10 s | pushes / s | p99 push | 503 (every retry lost) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for writers in [1usize, 4, 16] {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let member = UserId::parse(&format!("writer-{writers}-{w}"))?;
            table
                .add_member(&owner.user_id, &space, &member, Role::Editor)
                .await?;
            let token = token_of(&member);
            let url = api.url("/sync/push");
            let space = space.clone();
            tasks.spawn(async move {
                let http = reqwest::Client::new();
                let started = Instant::now();
                let mut times = Vec::new();
                let mut refused = 0usize;
                let mut id = 0u64;
                while started.elapsed() < Duration::from_secs(10) {
                    id += 1;
                    let client = format!("w{w}");
                    let began = Instant::now();
                    let response = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"clientId": client, "mutations": [{
                            "id": id, "spaceId": space, "collection": "cards",
                            "recordId": format!("{client}-{id}"), "op": "put",
                            "fields": {"t": id}, "hlc": hlc_now(&client)}]}))
                        .send()
                        .await
                        .expect("an answer");
                    match response.status().as_u16() {
                        200 => times.push(began.elapsed()),
                        // Lost every optimistic retry to the other writers:
                        // 503, and the app resends the same ids later.
                        503 => {
                            refused += 1;
                            id -= 1;
                        }
                        other => panic!("push answered {other}"),
                    }
                }
                (times, refused)
            });
        }
        let mut times = Vec::new();
        let mut refused = 0;
        while let Some(done) = tasks.join_next().await {
            let (done, lost) = done?;
            times.extend(done);
            refused += lost;
        }
        times.sort();
        println!(
            "| {writers} | {} | {:.0} | {} | {refused} |",
            times.len(),
            times.len() as f64 / 10.0,
            ms(percentile(&times, 0.99))
        );
    }
    api.stop().await;
    Ok(())
}
