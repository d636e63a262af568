//! `tls-probe https://127.0.0.1:PORT/PATH`: what a process pays to make its
//! first HTTPS request with rustls on one crypto provider (aws-lc-rs or
//! ring, by feature), the way the SDK's client does: load the native roots
//! (`SSL_CERT_FILE`), build the client config, connect, handshake, send one
//! request; then the same on a second connection. Prints microseconds as
//! `setup first second`. The cold-start bench runs it, built both ways.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[cfg(feature = "ring")]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(not(feature = "ring"))]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

async fn request(
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    port: u16,
    path: &str,
) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let mut tls = connector.connect(name, tcp).await?;
    let head = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    tls.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    if !answer.starts_with(b"HTTP/1.1") {
        return Err(std::io::Error::other("not an HTTP answer"));
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: tls-probe https://HOST:PORT/PATH")?;
    let rest = url.strip_prefix("https://").ok_or("an https URL")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = authority.split_once(':').ok_or("HOST:PORT")?;
    let (port, path) = (port.parse::<u16>()?, format!("/{path}"));

    let started = Instant::now();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let setup = started.elapsed();

    let first = Instant::now();
    request(&connector, host, port, &path).await?;
    let first = first.elapsed();
    let second = Instant::now();
    request(&connector, host, port, &path).await?;
    let second = second.elapsed();
    println!(
        "{} {} {}",
        setup.as_micros(),
        first.as_micros(),
        second.as_micros()
    );
    Ok(())
}
