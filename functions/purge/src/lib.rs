//! `purge`: the purge queue's messages (`shared::model::purge`) become
//! deleted accounts and spaces. Each message is one bounded step; the
//! function queues what follows it before the message is acknowledged, so
//! a crash between the two repeats a step (harmless: steps only delete)
//! and never drops the rest. A message that fails is reported as a batch
//! item failure and redelivered; one that fails every time (or is not a
//! job at all) ends in the dead-letter queue.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::Error;
use shared::adapters::identity::Identity;
use shared::adapters::objects::Objects;
use shared::adapters::push::Push;
use shared::adapters::queue::Queue;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable, PushApplications, UserPool};
use shared::keys;
use shared::metrics::Metrics;
use shared::model::purge::{PurgeJob, Step, Swept, Target};
use shared::store::Table;

/// What `purge` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub media_bucket: String,
    pub user_pool: UserPool,
    pub push: PushApplications,
    /// `PURGE_QUEUE_URL`: where the next step goes (its own queue).
    pub queue_url: String,
    /// `PURGE_STEP_SIZE`: items or objects one step deletes at most. A
    /// step of 1,000 items is 40 `BatchWriteItem` calls, well inside the
    /// function's timeout.
    pub step_size: usize,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            table_name: config::table_name(env)?,
            media_bucket: config::media_bucket(env)?,
            user_pool: UserPool::read(env)?,
            push: PushApplications::read(env)?,
            queue_url: env.required("PURGE_QUEUE_URL")?,
            step_size: usize::try_from(env.number("PURGE_STEP_SIZE", 1000).max(2)).unwrap_or(1000),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub objects: Objects,
    pub push: Push,
    pub identity: Identity,
    pub queue: Queue,
    pub step_size: usize,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name),
            objects: Objects::new(sdk, &config.media_bucket),
            push: Push::new(sdk, &config.push.apns, &config.push.fcm),
            identity: Identity::new(
                shared::adapters::identity::client(sdk),
                &config.user_pool.id,
                &config.user_pool.client_id,
            ),
            queue: Queue::new(sdk, &config.queue_url),
            step_size: config.step_size,
        }
    }
}

/// Runs each message's step; the failed ones are redelivered.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        if let Err(err) = run_message(deps, &message).await {
            tracing::warn!(
                message_id = message.message_id.as_deref().unwrap_or_default(),
                code = err.code.as_str(),
                error = %err,
                "purge step failed; it will be retried"
            );
            response.add_failure(message.message_id.clone().unwrap_or_default());
        }
    }
    response
}

async fn run_message(deps: &Deps, message: &SqsMessage) -> Result<(), Error> {
    let body = message.body.as_deref().unwrap_or_default();
    let job: PurgeJob = serde_json::from_str(body)
        .map_err(|err| Error::invalid(format!("not a purge job: {err}")))?;
    let swept = run_step(deps, &job).await?;
    let follow_up = if swept.more {
        Some(job.clone())
    } else {
        job.next()
    };
    match &follow_up {
        Some(next) => deps.queue.send(next).await?,
        // The janitor queues again a purge never marked finished.
        None => deps.table.mark_purged(&job.target).await?,
    }
    tracing::info!(
        target_kind = job.target.kind(),
        step = ?job.step,
        deleted = swept.deleted,
        more = swept.more,
        done = follow_up.is_none(),
        "purge step"
    );
    Metrics::new("purge")
        .count("PurgedThings", swept.deleted)
        .count("PurgesFinished", usize::from(follow_up.is_none()))
        .emit();
    Ok(())
}

/// One bounded step of a job: deletes what it can and says if more is left.
pub async fn run_step(deps: &Deps, job: &PurgeJob) -> Result<Swept, Error> {
    let partition = job.target.partition();
    match (&job.target, job.step) {
        (Target::Account { user_id }, Step::Devices) => {
            let devices = deps.table.devices(user_id).await?;
            for device in &devices {
                deps.push.delete_endpoint(&device.endpoint_arn).await?;
                deps.table.release_token(device).await?;
            }
            Ok(Swept {
                deleted: devices.len(),
                more: false,
            })
        }
        (Target::Account { user_id }, Step::Memberships) => Ok(Swept {
            deleted: deps.table.leave_every_space(user_id).await?,
            more: false,
        }),
        (Target::Account { user_id }, Step::Identity) => {
            deps.identity.delete_user(user_id).await?;
            Ok(Swept {
                deleted: 1,
                more: false,
            })
        }
        (_, Step::Objects) => {
            deps.objects
                .delete_some(&keys::object_prefixes(&partition), deps.step_size)
                .await
        }
        (_, Step::Items) => deps.table.sweep_partition(&partition, deps.step_size).await,
        // `Target::steps` never pairs a space with these.
        (Target::Space { .. }, Step::Devices | Step::Memberships | Step::Identity) => {
            Ok(Swept::default())
        }
    }
}
