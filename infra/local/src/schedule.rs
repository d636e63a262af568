//! The schedule trigger: each function with a `Schedule` event runs on its
//! `rate(...)` as EventBridge would call it, with the scheduled event's
//! shape, and on demand (`POST /schedules/{function}` on the control
//! port, which `scripts/run-schedule` calls). A `cron(...)` expression
//! runs on demand only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use tokio::task::JoinHandle;

pub type Handler = Arc<
    dyn Fn(
            EventBridgeEvent,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), shared::Error>> + Send>>
        + Send
        + Sync,
>;

/// One scheduled function.
#[derive(Clone)]
struct Scheduled {
    handler: Handler,
    expression: String,
    rule_arn: String,
}

/// The stack's scheduled functions, by name.
#[derive(Clone, Default)]
pub struct Schedules {
    functions: BTreeMap<String, Scheduled>,
    region: String,
}

/// What a run on demand did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ran {
    pub function: String,
    pub ok: bool,
    pub duration_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Schedules {
    pub fn new(region: &str) -> Self {
        Self {
            functions: BTreeMap::new(),
            region: region.to_string(),
        }
    }

    pub fn add(&mut self, function: &str, expression: &str, handler: Handler) {
        let rule_arn = format!(
            "arn:aws:events:{}:{}:rule/{function}-schedule",
            self.region,
            crate::provision::ACCOUNT_ID
        );
        self.functions.insert(
            function.to_string(),
            Scheduled {
                handler,
                expression: expression.to_string(),
                rule_arn,
            },
        );
    }

    /// Each scheduled function and its expression.
    pub fn list(&self) -> Vec<(String, String)> {
        self.functions
            .iter()
            .map(|(name, s)| (name.clone(), s.expression.clone()))
            .collect()
    }

    /// Runs `function` once now; None if it has no schedule.
    pub async fn run(&self, function: &str) -> Option<Ran> {
        let scheduled = self.functions.get(function)?;
        let started = Instant::now();
        let outcome = (scheduled.handler)(event(&scheduled.rule_arn, &self.region)).await;
        Some(Ran {
            function: function.to_string(),
            ok: outcome.is_ok(),
            duration_ms: started.elapsed().as_millis(),
            error: outcome.err().map(|err| err.to_string()),
        })
    }

    /// A task per `rate(...)` schedule. The first run is one period after
    /// the start, as a new EventBridge rule's.
    pub fn spawn_timers(&self) -> Vec<JoinHandle<()>> {
        self.functions
            .iter()
            .filter_map(|(name, scheduled)| {
                let every = rate(&scheduled.expression)?;
                let schedules = self.clone();
                let name = name.clone();
                Some(tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(every);
                    ticks.tick().await;
                    loop {
                        ticks.tick().await;
                        if let Some(ran) = schedules.run(&name).await
                            && !ran.ok
                        {
                            tracing::warn!(function = %name, error = ?ran.error, "a scheduled run failed");
                        }
                    }
                }))
            })
            .collect()
    }
}

/// The period of `rate(N unit)`; None for anything else (a `cron(...)`).
pub fn rate(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim().trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count * seconds))
}

/// The event EventBridge sends a scheduled target.
fn event(rule_arn: &str, region: &str) -> EventBridgeEvent {
    let mut event = EventBridgeEvent::default();
    event.version = Some("0".into());
    event.id = Some(uuid::Uuid::new_v4().to_string());
    event.detail_type = "Scheduled Event".into();
    event.source = "aws.events".into();
    event.account = Some(crate::provision::ACCOUNT_ID.into());
    event.time = Some(chrono::Utc::now());
    event.region = Some(region.into());
    event.resources = Some(vec![rule_arn.into()]);
    event.detail = serde_json::json!({});
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_eventbridge_writes_them() {
        assert_eq!(rate("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(rate("rate(5 minutes)"), Some(Duration::from_secs(300)));
        assert_eq!(rate("rate(2 days)"), Some(Duration::from_secs(172_800)));
        assert_eq!(rate("rate(0 hours)"), None);
        assert_eq!(rate("cron(0 3 * * ? *)"), None);
    }

    #[test]
    fn the_event_has_the_scheduled_shape() {
        let event =
            serde_json::to_value(event("arn:aws:events:us-east-1:1:rule/x", "us-east-1")).unwrap();
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["detail"], serde_json::json!({}));
        assert_eq!(event["resources"][0], "arn:aws:events:us-east-1:1:rule/x");
    }
}
