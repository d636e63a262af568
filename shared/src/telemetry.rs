//! JSON logs (and EMF metrics) for CloudWatch. One call at start-up; the Lambda runtime's span
//! adds the request id to every line, callers add `cold_start`.

use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

static COLD_START: AtomicBool = AtomicBool::new(true);

/// Sets up JSON logging at the level in `LOG_LEVEL` (default `info`).
/// Calling it twice is harmless (tests and the local stack do).
pub fn init() {
    init_with_writer(std::io::stdout);
}

/// [`init`], writing somewhere else: tests read what would be logged.
/// Metrics ([`crate::metrics`]) are written there too.
pub fn init_with_writer<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Clone + Send + Sync + 'static,
{
    let lines = writer.clone();
    crate::metrics::set_sink(Box::new(move |line| {
        use std::io::Write;
        let mut out = lines.make_writer();
        let _ = out.write_all(format!("{line}\n").as_bytes());
    }));
    let filter = EnvFilter::try_from_env("LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// True for the first invocation of this process, false afterwards.
pub fn take_cold_start() -> bool {
    COLD_START.swap(false, Ordering::Relaxed)
}
