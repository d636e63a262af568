//! A loopback proxy in front of the emulator that can break on demand:
//! drop connections (the emulator crashed), answer 500 (AWS has a bad
//! day), never answer (a network black hole), or fail only one operation
//! (to catch half-written state). Every request it forwards carries
//! `Connection: close`, so each one is judged under the current mode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Close every connection at once.
    Down,
    /// Answer every request with a 500.
    Errors,
    /// Accept and never answer.
    BlackHole,
    /// Answer 500 to requests whose head contains this text (an
    /// `X-Amz-Target` such as `TransactWriteItems`); forward the rest.
    FailOnly(&'static str),
    /// Hold the first request whose head contains this text this long
    /// before forwarding it (a write that reads, then commits late, so
    /// that another change lands in between); forward the rest.
    HoldFirst(&'static str, std::time::Duration),
}

pub struct FaultyProxy {
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    /// Whether `HoldFirst` held its request yet.
    held: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl FaultyProxy {
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::None));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held = Arc::new(AtomicBool::new(false));
        let acceptor = tokio::spawn({
            let (fault, connections, held) = (fault.clone(), connections.clone(), held.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let fault = fault.lock().unwrap().clone();
                    let task = tokio::spawn(serve(client, upstream.clone(), fault, held.clone()));
                    let mut live = connections.lock().unwrap();
                    live.retain(|t| !t.is_finished());
                    live.push(task);
                }
            }
        });
        Self {
            url,
            fault,
            held,
            connections,
            acceptor,
        }
    }

    /// Switches the fault; connections already open are cut.
    pub fn set(&self, fault: Fault) {
        self.switch(fault);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Switches the fault for the requests that follow; those in flight
    /// finish as they began. A cut long poll would leave its message
    /// invisible for the queue's whole visibility timeout, as on AWS.
    pub fn switch(&self, fault: Fault) {
        self.held.store(false, Ordering::SeqCst);
        *self.fault.lock().unwrap() = fault;
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

const SERVER_ERROR: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\n\
content-type: application/x-amz-json-1.0\r\nconnection: close\r\ncontent-length: 81\r\n\r\n\
{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\",\"message\":\"x\"}";

async fn serve(mut client: TcpStream, upstream: String, fault: Fault, held: Arc<AtomicBool>) {
    match fault {
        Fault::Down => return,
        Fault::BlackHole => {
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        _ => {}
    }
    // Read the request head.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let body_start = loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_string();
    let fail = match &fault {
        Fault::Errors => true,
        Fault::FailOnly(target) => text.contains(target),
        _ => false,
    };
    if fail {
        let _ = client.write_all(SERVER_ERROR).await;
        let _ = client.shutdown().await;
        return;
    }
    if let Fault::HoldFirst(target, delay) = &fault
        && text.contains(target)
        && !held.swap(true, Ordering::SeqCst)
    {
        tokio::time::sleep(*delay).await;
    }
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    // One request per connection, so the next one meets the current mode.
    let rewritten: String = text
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .map(|line| format!("{line}\r\n"))
        .collect::<String>()
        + "connection: close\r\n\r\n";
    if server.write_all(rewritten.as_bytes()).await.is_err()
        || server.write_all(&head[body_start..]).await.is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
