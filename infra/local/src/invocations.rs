//! The recent invocations of every function, as the console lists them
//! (CloudWatch's view of a Lambda, kept in memory): which function, on which
//! trigger, when, for how long, and how it ended. The registry records each
//! call where it already wraps every handler in its `Timeout`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many invocations are kept, the newest.
const KEPT: usize = 500;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub function: String,
    pub trigger: &'static str,
    pub at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: f64,
    pub ok: bool,
    /// The status code, or the error, or how many items of a batch failed.
    pub outcome: String,
}

#[derive(Debug, Clone, Default)]
pub struct Invocations(Arc<Mutex<Kept>>);

#[derive(Debug, Default)]
struct Kept {
    recent: VecDeque<Invocation>,
    /// Every call since the start, per function: (calls, milliseconds).
    totals: std::collections::BTreeMap<String, (u64, f64)>,
}

impl Invocations {
    pub fn record(
        &self,
        function: &str,
        trigger: &'static str,
        started: Instant,
        outcome: &impl Outcome,
    ) {
        let (ok, outcome) = outcome.outcome();
        let elapsed: Duration = started.elapsed();
        let invocation = Invocation {
            function: function.to_string(),
            trigger,
            at: chrono::Utc::now() - elapsed,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            ok,
            outcome,
        };
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total = kept.totals.entry(invocation.function.clone()).or_default();
        total.0 += 1;
        total.1 += invocation.duration_ms;
        if kept.recent.len() == KEPT {
            kept.recent.pop_front();
        }
        kept.recent.push_back(invocation);
    }

    /// The newest first.
    pub fn recent(&self) -> Vec<Invocation> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.recent.iter().rev().cloned().collect()
    }

    /// Calls and milliseconds per function since the start (the cost
    /// benchmark's Lambda lines).
    pub fn totals(&self) -> std::collections::BTreeMap<String, (u64, f64)> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.totals.clone()
    }
}

/// How one invocation ended: whether it went well, and a short word for it.
pub trait Outcome {
    fn outcome(&self) -> (bool, String);
}

impl Outcome for lambda_http::Response<lambda_http::Body> {
    fn outcome(&self) -> (bool, String) {
        let status = self.status().as_u16();
        (status < 500, status.to_string())
    }
}

impl Outcome for aws_lambda_events::apigw::ApiGatewayProxyResponse {
    fn outcome(&self) -> (bool, String) {
        (self.status_code < 500, self.status_code.to_string())
    }
}

impl Outcome for aws_lambda_events::sqs::SqsBatchResponse {
    fn outcome(&self) -> (bool, String) {
        match self.batch_item_failures.len() {
            0 => (true, "ok".into()),
            failed => (false, format!("{failed} failed")),
        }
    }
}

impl<T> Outcome for Result<T, shared::Error> {
    fn outcome(&self) -> (bool, String) {
        match self {
            Ok(_) => (true, "ok".into()),
            Err(err) => (false, format!("{}: {}", err.code.as_str(), err.detail)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_first_and_reads_each_outcome() {
        let invocations = Invocations::default();
        let started = Instant::now();
        invocations.record("A", "http", started, &Ok::<(), shared::Error>(()));
        let failed: Result<(), shared::Error> =
            Err(shared::Error::new(shared::Code::NotFound, "gone"));
        invocations.record("B", "stream", started, &failed);
        let recent = invocations.recent();
        assert_eq!(recent[0].function, "B");
        assert!(!recent[0].ok);
        assert_eq!(recent[0].outcome, "not_found: gone");
        assert_eq!((recent[1].function.as_str(), recent[1].ok), ("A", true));
        for _ in 0..KEPT {
            invocations.record("C", "http", started, &Ok::<(), shared::Error>(()));
        }
        assert_eq!(invocations.recent().len(), KEPT);
        assert_eq!(invocations.totals()["C"].0, KEPT as u64);
        assert_eq!(invocations.totals()["A"].0, 1);
    }
}
