//! `notify`: table changes become pushes (`handle_stream`, DynamoDB stream).
//! A photo that became ready is a visible push to each of the user's
//! devices; sync changes are one silent poke per user and batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::Error;
use shared::adapters::push::{Notification, PublishError, Push};
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable, PushApplications};
use shared::metrics::Metrics;
use shared::model::device::Device;
use shared::model::ids::{ClientId, MediaId, Partition, SpaceId, UserId};
use shared::store::{Pushers, Table, TableChange};
use tokio::sync::Semaphore;

/// Publishes in flight at once, per batch.
const PUBLISH_CONCURRENCY: usize = 8;

/// What `notify` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub push: PushApplications,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            table_name: config::table_name(env)?,
            push: PushApplications::read(env)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub push: Push,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name),
            push: Push::new(sdk, &config.push.apns, &config.push.fcm),
        }
    }
}

/// What a stream record asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Interest {
    /// A media item became ready: a visible push to every device.
    MediaReady { user_id: UserId, media_id: MediaId },
    /// A sync record changed: a silent poke to every device but the origin.
    SyncChange {
        user_id: UserId,
        origin: Option<ClientId>,
    },
    /// A record of a space changed: the same poke to every member's
    /// devices but the pushing one (a user and client id).
    SpaceChange {
        space: SpaceId,
        origin_user: Option<UserId>,
        origin: Option<ClientId>,
    },
}

/// What a record asks for; most records (profiles, devices, watermarks,
/// idempotency) ask for nothing and cost no AWS call.
pub fn interest(record: &EventRecord) -> Option<Interest> {
    let change = TableChange::decode(
        &record.event_name,
        &record.change.new_image,
        &record.change.old_image,
    )?;
    if let Some((user, media_id)) = change.newly_ready_media() {
        return Some(Interest::MediaReady {
            user_id: user.clone(),
            media_id: media_id.clone(),
        });
    }
    match change {
        TableChange::Record {
            partition: Partition::User(user_id),
            origin,
            ..
        } => Some(Interest::SyncChange { user_id, origin }),
        TableChange::Record {
            partition: Partition::Space(space),
            origin,
            origin_user,
            ..
        } => Some(Interest::SpaceChange {
            space,
            origin_user,
            origin,
        }),
        _ => None,
    }
}

/// The pushes one user gets from a batch, and the first record that asked
/// (reported if the user's pushes fail).
#[derive(Debug, Default)]
struct PushWork {
    first_sequence: String,
    ready: Vec<MediaId>,
    /// Clients whose changes are in this batch (None: an operator's); one
    /// poke covers them all.
    sync_origins: BTreeSet<Option<ClientId>>,
}

fn work_of<'a>(
    work: &'a mut BTreeMap<UserId, PushWork>,
    user: UserId,
    sequence: &str,
) -> &'a mut PushWork {
    work.entry(user).or_insert_with(|| PushWork {
        first_sequence: sequence.to_string(),
        ..PushWork::default()
    })
}

/// Consumes one batch. Transient failures are reported per record (the
/// first record of the affected user) so only those are retried; dead
/// endpoints are deleted along with their device.
pub async fn handle_stream(deps: &Deps, event: Event) -> Result<DynamoDbEventResponse, Error> {
    let mut work: BTreeMap<UserId, PushWork> = BTreeMap::new();
    // Per space: its first record, and who pushed its changes.
    let mut spaces: BTreeMap<SpaceId, (String, Pushers)> = BTreeMap::new();
    let mut failures = Vec::new();
    for record in &event.records {
        let Some(interest) = interest(record) else {
            continue;
        };
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        match interest {
            Interest::MediaReady { user_id, media_id } => {
                work_of(&mut work, user_id, &sequence).ready.push(media_id);
            }
            Interest::SyncChange { user_id, origin } => {
                work_of(&mut work, user_id, &sequence)
                    .sync_origins
                    .insert(origin);
            }
            Interest::SpaceChange {
                space,
                origin_user,
                origin,
            } => {
                let (_, origins) = spaces
                    .entry(space)
                    .or_insert_with(|| (sequence, Pushers::default()));
                origins.insert(origin_user, origin);
            }
        }
    }
    // Every current member of a changed space: their own devices but the
    // pushing one, the others' devices all.
    for (space, (sequence, origins)) in spaces {
        match deps.table.members(&space).await {
            Ok(members) => {
                for member in members {
                    let seen = origins.as_seen_by(&member.user_id);
                    work_of(&mut work, member.user_id.clone(), &sequence)
                        .sync_origins
                        .extend(seen);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, %space, "the members of a space could not be read");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(sequence);
                failures.push(failure);
            }
        }
    }

    // Every user's devices at once: a space of hundreds of members is a
    // few batch reads, not a query each.
    let users: Vec<UserId> = work.keys().cloned().collect();
    let mut devices = match deps.table.devices_of(&users).await {
        Ok(devices) => devices,
        Err(err) => {
            tracing::warn!(error = %err, "reading devices failed; the batch is retried");
            failures.extend(work.values().map(|user_work| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(user_work.first_sequence.clone());
                failure
            }));
            work.clear();
            BTreeMap::new()
        }
    };
    let limit = Arc::new(Semaphore::new(PUBLISH_CONCURRENCY));
    let mut users = tokio::task::JoinSet::new();
    for (user_id, user_work) in work {
        let devices = devices.remove(&user_id).unwrap_or_default();
        if devices.is_empty() {
            continue;
        }
        let deps = deps.clone();
        let limit = limit.clone();
        users.spawn(async move {
            let outcomes = notify_user(&deps, &user_id, &user_work, devices, &limit).await;
            (user_work.first_sequence, outcomes)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = users.join_next().await {
        let (sequence, outcomes) = joined.map_err(Error::internal)?;
        let ok = !outcomes.contains(&Delivery::Failed);
        all.extend(outcomes);
        if !ok {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failures.push(failure);
        }
    }
    failures.sort_by(|a, b| a.item_identifier.cmp(&b.item_identifier));
    if !all.is_empty() {
        let count = |kind| all.iter().filter(|sent| **sent == kind).count();
        Metrics::new("notify")
            .count("PushesSent", count(Delivery::Sent))
            .count("PushesFailed", count(Delivery::Failed))
            .count("PushesDeduplicated", count(Delivery::Duplicate))
            .count("EndpointsRemoved", count(Delivery::EndpointGone))
            .emit();
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}

/// What became of one notification to one device.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Delivery {
    Sent,
    /// A redelivered record whose push this device already got.
    Duplicate,
    /// The endpoint is disabled; it and its device were removed.
    EndpointGone,
    /// Worth retrying: the record is reported as a batch item failure.
    Failed,
}

/// Sends one notification to one device. A visible push is sent at most once per media and device even
/// when the stream redelivers its record; silent pokes need no such care
/// (a second poke finds nothing new to pull).
async fn send_once(
    deps: &Deps,
    user_id: &UserId,
    device: &Device,
    notification: &Notification,
) -> Delivery {
    let claimed_media = match notification {
        Notification::MediaReady { media_id } => {
            match deps
                .table
                .claim_ready_push(user_id, media_id, &device.device_id)
                .await
            {
                Ok(true) => Some(media_id),
                Ok(false) => return Delivery::Duplicate,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming a push failed");
                    return Delivery::Failed;
                }
            }
        }
        Notification::SyncPoke => None,
    };
    match deps
        .push
        .publish(&device.endpoint_arn, device.platform, notification, user_id)
        .await
    {
        Ok(()) => Delivery::Sent,
        Err(PublishError::Gone) => {
            tracing::info!(device = %device.device_id, "endpoint disabled; forgetting the device");
            let forgotten = deps
                .push
                .delete_endpoint(&device.endpoint_arn)
                .await
                .is_ok()
                && deps
                    .table
                    .delete_device(&device.user_id, &device.device_id)
                    .await
                    .is_ok();
            if forgotten {
                Delivery::EndpointGone
            } else {
                Delivery::Failed
            }
        }
        Err(PublishError::Transient(err)) => {
            tracing::warn!(error = %err, "publish failed; the record will be retried");
            if let Some(media_id) = claimed_media
                && let Err(err) = deps
                    .table
                    .release_ready_push(user_id, media_id, &device.device_id)
                    .await
            {
                tracing::warn!(error = %err, "releasing a push claim failed");
            }
            Delivery::Failed
        }
    }
}

/// Sends one user's pushes to their devices; what became of each.
async fn notify_user(
    deps: &Deps,
    user_id: &UserId,
    work: &PushWork,
    devices: Vec<Device>,
    limit: &Arc<Semaphore>,
) -> Vec<Delivery> {
    let mut sends = tokio::task::JoinSet::new();
    for device in devices {
        let mut notifications: Vec<Notification> = work
            .ready
            .iter()
            .map(|media_id| Notification::MediaReady {
                media_id: media_id.clone(),
            })
            .collect();
        // Poke a device unless every change came from it.
        if work
            .sync_origins
            .iter()
            .any(|origin| origin.as_ref().map(ClientId::as_str) != Some(device.device_id.as_str()))
        {
            notifications.push(Notification::SyncPoke);
        }
        for notification in notifications {
            let (deps, device, limit) = (deps.clone(), device.clone(), limit.clone());
            let user_id = user_id.clone();
            sends.spawn(async move {
                let _permit = limit.acquire_owned().await;
                send_once(&deps, &user_id, &device, &notification).await
            });
        }
    }
    let mut outcomes = Vec::new();
    while let Some(sent) = sends.join_next().await {
        outcomes.push(sent.unwrap_or(Delivery::Failed));
    }
    outcomes
}
