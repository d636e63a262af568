//! `janitor`: what only grows unless something removes it, removed on a
//! schedule. Each run walks a bounded part of the table (`pages_per_run`
//! pages), from where the last run stopped, and:
//! - compacts sync tombstones older than the horizon
//!   (`shared::sync::compaction`): announced in each partition's counter,
//!   then, after a grace that outlasts any pull, deleted;
//! - removes photos still pending a day after their upload, with any
//!   object that arrived;
//! - forgets devices whose push endpoint SNS disabled (the phone's token
//!   died while nothing was sent to it);
//! - queues the purge again of an account or space marked deleted over an
//!   hour ago whose purge never finished (its message was never sent, or
//!   it waits in the dead-letter queue): purge steps are idempotent.
//!
//! Every action is a conditional write on what was read, so a run repeated
//! or overlapping another does nothing twice, and the walk's position is
//! saved only after the run's work: an interrupted run is redone.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use shared::Error;
use shared::adapters::objects::Objects;
use shared::adapters::push::Push;
use shared::adapters::queue::Queue;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable, PushApplications};
use shared::metrics::Metrics;
use shared::model::device::{Device, TokenOwner};
use shared::model::ids::Partition;
use shared::model::media::{Media, PENDING_TTL_SECONDS};
use shared::model::purge::PurgeJob;
use shared::store::{Finding, Table};
use shared::sync::RecordKey;
use shared::sync::compaction::{self, Compaction};

/// What `janitor` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub media_bucket: String,
    pub push: PushApplications,
    /// `TOMBSTONE_DAYS`: how long a delete is kept (30).
    pub tombstone_days: u64,
    /// `JANITOR_PAGES_PER_RUN` of `JANITOR_PAGE_SIZE` items: how much of
    /// the table one run walks (20 x 1,000).
    pub pages_per_run: usize,
    pub page_size: usize,
    /// `COMPACTION_GRACE_SECONDS`: between announcing a compaction and
    /// deleting; longer than the sync function's `Timeout` (30).
    pub grace_seconds: u64,
    /// `PURGE_QUEUE_URL`: where an unfinished purge is queued again.
    pub purge_queue_url: String,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        let size = |name: &str, default: u64| {
            usize::try_from(env.number(name, default).max(1)).unwrap_or(1)
        };
        Ok(Self {
            table_name: config::table_name(env)?,
            media_bucket: config::media_bucket(env)?,
            push: PushApplications::read(env)?,
            tombstone_days: env.number("TOMBSTONE_DAYS", 30),
            pages_per_run: size("JANITOR_PAGES_PER_RUN", 20),
            page_size: size("JANITOR_PAGE_SIZE", 1000),
            grace_seconds: env.number("COMPACTION_GRACE_SECONDS", 30),
            purge_queue_url: env.required("PURGE_QUEUE_URL")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub objects: Objects,
    pub push: Push,
    pub purge_queue: Queue,
    pub horizon_millis: u64,
    pub pages_per_run: usize,
    pub page_size: usize,
    pub grace: Duration,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name),
            objects: Objects::new(sdk, &config.media_bucket),
            push: Push::new(sdk, &config.push.apns, &config.push.fcm),
            purge_queue: Queue::new(sdk, &config.purge_queue_url),
            horizon_millis: config.tombstone_days * 24 * 3600 * 1000,
            pages_per_run: config.pages_per_run,
            page_size: config.page_size,
            grace: Duration::from_secs(config.grace_seconds),
        }
    }
}

/// What one run did; each count is a metric.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scanned: usize,
    pub tombstones_compacted: usize,
    pub pending_media_removed: usize,
    pub devices_removed: usize,
    pub purges_queued: usize,
    /// Findings whose action failed: the next walk tries them again.
    pub failures: usize,
    /// Whether the run reached the end of the table (the next starts over).
    pub walk_finished: bool,
}

/// A scheduled run. Its failure is the schedule's retry; the findings
/// that failed alone are counted, logged and left for the next walk.
pub async fn handle(deps: &Deps, _event: EventBridgeEvent) -> Result<(), Error> {
    let report = run(deps, Utc::now()).await?;
    tracing::info!(?report, "janitor run");
    Metrics::new("janitor")
        .count("ItemsScanned", report.scanned)
        .count("TombstonesCompacted", report.tombstones_compacted)
        .count("PendingMediaRemoved", report.pending_media_removed)
        .count("DevicesRemoved", report.devices_removed)
        .count("PurgesQueued", report.purges_queued)
        .count("JanitorFailures", report.failures)
        .emit();
    Ok(())
}

/// A purge runs in minutes (50,000 records: four); one still unfinished
/// an hour after the deletion was lost or is stuck.
const PURGE_OVERDUE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// A tombstone to compact once its partition's announcement is out.
struct Tombstone {
    partition: Partition,
    key: RecordKey,
    version: u64,
}

pub async fn run(deps: &Deps, now: DateTime<Utc>) -> Result<Report, Error> {
    let mut report = Report::default();
    let start = deps.table.janitor_position().await?;
    let mut position = start.clone();
    let mut tombstones: Vec<Tombstone> = Vec::new();
    for _ in 0..deps.pages_per_run {
        let page = deps
            .table
            .scan_page(position.as_ref(), deps.page_size)
            .await?;
        report.scanned += page.scanned;
        let mut compactions: BTreeMap<Partition, Compaction> = BTreeMap::new();
        for finding in page.findings {
            match finding {
                Finding::Record {
                    partition,
                    key,
                    state,
                    version,
                    updated_at_millis,
                } => {
                    let Some(deleted_at) = compaction::compactable(
                        &state,
                        updated_at_millis,
                        now.timestamp_millis(),
                        deps.horizon_millis,
                    ) else {
                        continue;
                    };
                    let widened = compactions
                        .get(&partition)
                        .copied()
                        .unwrap_or_default()
                        .with(version, deleted_at);
                    compactions.insert(partition.clone(), widened);
                    tombstones.push(Tombstone {
                        partition,
                        key,
                        version,
                    });
                }
                Finding::Pending(media) if abandoned(&media, now) => {
                    tally(
                        &mut report.pending_media_removed,
                        &mut report.failures,
                        remove_pending(deps, &media).await,
                    );
                }
                Finding::Device(device) => {
                    tally(
                        &mut report.devices_removed,
                        &mut report.failures,
                        forget_if_dead(deps, &device).await,
                    );
                }
                Finding::Unpurged { target, deleted_at } if now - deleted_at > PURGE_OVERDUE => {
                    let queued = deps.purge_queue.send(&PurgeJob::start(target)).await;
                    tally(
                        &mut report.purges_queued,
                        &mut report.failures,
                        queued.map(|()| true),
                    );
                }
                Finding::Pending(_) | Finding::Unpurged { .. } => {}
            }
        }
        // Announced before anything of the page is deleted.
        for (partition, compaction) in compactions {
            deps.table
                .announce_compaction(&partition, compaction)
                .await?;
        }
        position = page.next;
        if position.is_none() {
            report.walk_finished = true;
            break;
        }
    }
    if !tombstones.is_empty() {
        // A pull that read a counter before its announcement is over by now.
        tokio::time::sleep(deps.grace).await;
        for tombstone in &tombstones {
            let compacted = deps
                .table
                .compact_tombstone(&tombstone.partition, &tombstone.key, tombstone.version)
                .await;
            tally(
                &mut report.tombstones_compacted,
                &mut report.failures,
                compacted,
            );
        }
    }
    if position != start || report.walk_finished {
        deps.table.save_janitor_position(position.as_ref()).await?;
    }
    Ok(report)
}

/// Counts an action that did something, or one that failed (logged).
fn tally(done: &mut usize, failures: &mut usize, outcome: Result<bool, Error>) {
    match outcome {
        Ok(true) => *done += 1,
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(code = err.code.as_str(), error = %err, "a janitor action failed; the next walk retries it");
            *failures += 1;
        }
    }
}

/// Still pending a day after it was created: the presigned upload expired
/// long before, so nothing can complete it.
fn abandoned(media: &Media, now: DateTime<Utc>) -> bool {
    (now - media.created_at).num_seconds() > PENDING_TTL_SECONDS
}

/// Objects first: if the item's delete then fails, the next walk finds it
/// and deletes both again.
async fn remove_pending(deps: &Deps, media: &Media) -> Result<bool, Error> {
    deps.objects
        .delete(&[media.upload_key()], &[media.variants_prefix()])
        .await?;
    deps.table
        .delete_pending_media(&media.partition(), &media.media_id)
        .await
}

async fn forget_if_dead(deps: &Deps, device: &Device) -> Result<bool, Error> {
    if deps.push.endpoint_enabled(&device.endpoint_arn).await? {
        return Ok(false);
    }
    deps.push.delete_endpoint(&device.endpoint_arn).await?;
    deps.table.release_token(device).await?;
    let owner = TokenOwner {
        user_id: device.user_id.clone(),
        device_id: device.device_id.clone(),
    };
    deps.table
        .delete_device_with_token(&owner, &device.token)
        .await?;
    Ok(true)
}
