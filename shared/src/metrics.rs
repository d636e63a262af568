//! Metrics as CloudWatch embedded metric format (EMF) lines: CloudWatch
//! Logs turns each line into metrics, so recording one costs no API call,
//! no latency and no IAM permission. Lines go wherever the logs go (see
//! [`crate::telemetry`]); without logging set up they go nowhere.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// Every metric of the product lives in this namespace, by `Service`.
pub const NAMESPACE: &str = "MobileBackend";

type Sink = Box<dyn Fn(&str) + Send + Sync>;
static SINK: OnceLock<Sink> = OnceLock::new();

/// Where EMF lines are written; the first call wins.
pub(crate) fn set_sink(sink: Sink) {
    let _ = SINK.set(sink);
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One EMF document: a few values of one service at one instant.
#[derive(Debug, Clone)]
#[must_use = "metrics are recorded by emit()"]
pub struct Metrics {
    service: &'static str,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            values: Vec::new(),
        }
    }

    pub fn count(mut self, name: &'static str, n: usize) -> Self {
        self.values.push((name, n as f64, Unit::Count));
        self
    }

    pub fn millis(mut self, name: &'static str, ms: u128) -> Self {
        self.values.push((name, ms as f64, Unit::Milliseconds));
        self
    }

    pub fn bytes(mut self, name: &'static str, bytes: u64) -> Self {
        self.values.push((name, bytes as f64, Unit::Bytes));
        self
    }

    /// The EMF document at `timestamp_ms`.
    pub fn document(&self, timestamp_ms: i64) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Service"]],
                    "Metrics": definitions,
                }],
            }),
        );
        document.insert("Service".into(), json!(self.service));
        for (name, value, _) in &self.values {
            document.insert((*name).into(), json!(value));
        }
        Value::Object(document)
    }

    /// Writes the document as one line (nothing if there are no values).
    pub fn emit(self) {
        if self.values.is_empty() {
            return;
        }
        if let Some(sink) = SINK.get() {
            sink(
                &self
                    .document(chrono::Utc::now().timestamp_millis())
                    .to_string(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let doc = Metrics::new("sync")
            .count("MutationsApplied", 3)
            .millis("PushDuration", 42)
            .document(1_800_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_800_000_000_000i64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "MutationsApplied", "Unit": "Count"},
                {"Name": "PushDuration", "Unit": "Milliseconds"}
            ])
        );
        // Every dimension and metric named in the directive is a member.
        assert_eq!(doc["Service"], "sync");
        assert_eq!(doc["MutationsApplied"], 3.0);
        assert_eq!(doc["PushDuration"], 42.0);
    }
}
