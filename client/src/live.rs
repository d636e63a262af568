//! `listen()`: the live channel (infra/asyncapi.yaml) kept open, pulling on
//! connect and on every poke. Blocking, like the rest of the API: an app
//! runs it on a background thread while it is in the foreground and calls
//! `stop_listening()` when it leaves.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::SyncError;

/// API Gateway closes a connection idle for 10 minutes.
const PING_EVERY: Duration = Duration::from_secs(9 * 60);
/// How often a blocked read wakes up to check `stop` and the ping timer.
const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the channel asked for.
pub enum Event<'a> {
    /// Connected: pull (anything may have changed while disconnected).
    Connected,
    /// A poke with its cursor: pull unless already there.
    Poke(&'a str),
}

/// Keeps the channel at `url` open until `stop` is set, calling `on_event`
/// on connect and on every poke. Transport failures reconnect with
/// exponential backoff and full jitter; a refused handshake (the token) is
/// returned, for the app to refresh it and listen again.
pub fn run(
    url: &str,
    token: impl Fn() -> Option<String>,
    client_id: &str,
    stop: &AtomicBool,
    mut on_event: impl FnMut(Event<'_>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let mut attempt: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let token = token().ok_or(SyncError::Unauthorized)?;
        let address = format!(
            "{}/?token={token}&clientId={client_id}",
            url.trim_end_matches('/')
        );
        let connected_at = Instant::now();
        match tungstenite::connect(address.as_str()) {
            Ok((mut socket, _)) => {
                set_read_timeout(&socket, TICK);
                let outcome = serve(&mut socket, stop, &mut on_event);
                let _ = socket.close(None);
                outcome?;
                // A connection that lasted a while starts backoff afresh.
                if connected_at.elapsed() > Duration::from_secs(60) {
                    attempt = 0;
                }
            }
            Err(tungstenite::Error::Http(response))
                if matches!(response.status().as_u16(), 401 | 403) =>
            {
                return Err(SyncError::Unauthorized);
            }
            // Refused for now (a limit): wait what it asks before the
            // next attempt, on top of the backoff.
            Err(tungstenite::Error::Http(response)) if response.status().as_u16() == 429 => {
                let asked = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                sleep_unless_stopped(Duration::from_secs(asked.min(300)), stop);
            }
            Err(_) => {}
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        sleep_unless_stopped(backoff(attempt), stop);
        attempt = attempt.saturating_add(1);
    }
    Ok(())
}

/// Random in [0, min(30 s, 0.5 s x 2^attempt)].
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(500)
        .saturating_mul(1u32 << attempt.min(10))
        .min(MAX_BACKOFF);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    Duration::from_millis(random % (ceiling.as_millis() as u64 + 1))
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let until = Instant::now() + total;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK.min(until - Instant::now()));
    }
}

fn set_read_timeout(socket: &WebSocket<MaybeTlsStream<TcpStream>>, timeout: Duration) {
    let tcp = match socket.get_ref() {
        MaybeTlsStream::Plain(tcp) => Some(tcp),
        MaybeTlsStream::Rustls(tls) => Some(tls.get_ref()),
        _ => None,
    };
    if let Some(tcp) = tcp {
        let _ = tcp.set_read_timeout(Some(timeout));
    }
}

/// One connection's life: pull on connect, on every poke; ping when quiet.
fn serve(
    socket: &mut WebSocket<MaybeTlsStream<TcpStream>>,
    stop: &AtomicBool,
    on_event: &mut impl FnMut(Event<'_>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    on_event(Event::Connected)?;
    let mut last_sent = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_sent.elapsed() >= PING_EVERY {
            if socket.send(Message::text(r#"{"type":"ping"}"#)).is_err() {
                return Ok(());
            }
            last_sent = Instant::now();
        }
        match socket.read() {
            Ok(Message::Text(text)) => {
                let message: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if message["type"] == "poke" {
                    on_event(Event::Poke(message["cursor"].as_str().unwrap_or("")))?;
                }
            }
            Ok(Message::Close(_)) => return Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Closed, reset: reconnect.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}
