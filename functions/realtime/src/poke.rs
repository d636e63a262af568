//! The table stream's second consumer: sync changes become one poke per
//! user and batch to each of the user's connections but the pushing app's;
//! photos that finish become a media message. A connection that answers
//! 410 is forgotten; other failures are reported per record.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::Error;
use shared::adapters::sockets::{Posted, Sockets};
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable};
use shared::metrics::Metrics;
use shared::model::connection::{Connection, ServerMessage};
use shared::model::ids::{ClientId, MediaId, Partition, SpaceId, UserId};
use shared::model::media::Status;
use shared::store::{Pushers, Table, TableChange};
use shared::sync::feed::{PullCursor, encode_cursor};

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// `WEBSOCKET_MANAGEMENT_URL`: the WebSocket API stage's HTTPS URL.
    pub management_url: String,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            table_name: config::table_name(env)?,
            management_url: env.required("WEBSOCKET_MANAGEMENT_URL")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub sockets: Sockets,
    pub members: MemberCache,
    pub connections: ConnectionCache,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name),
            sockets: Sockets::new(sdk, &config.management_url),
            members: MemberCache::default(),
            connections: ConnectionCache::default(),
        }
    }
}

/// How long a container trusts what it read: a space's members, the
/// connection items.
const CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// What this container read lately, each entry trusted for [`CACHED_FOR`].
#[derive(Debug)]
pub struct Cache<K, V>(std::sync::Arc<std::sync::Mutex<BTreeMap<K, (std::time::Instant, V)>>>);

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<K: Ord, V: Clone> Cache<K, V> {
    fn fresh(&self, key: &K) -> Option<V> {
        let cached = self.0.lock().ok()?;
        let (read_at, value) = cached.get(key)?;
        (read_at.elapsed() < CACHED_FOR).then(|| value.clone())
    }

    fn keep(&self, entries: impl IntoIterator<Item = (K, V)>) {
        if let Ok(mut cached) = self.0.lock() {
            cached.retain(|_, (read_at, _)| read_at.elapsed() < CACHED_FOR);
            let now = std::time::Instant::now();
            for (key, value) in entries {
                cached.insert(key, (now, value));
            }
        }
    }

    fn forget(&self, key: &K) {
        if let Ok(mut cached) = self.0.lock() {
            cached.remove(key);
        }
    }
}

/// The members of the spaces this container poked lately: a busy space's
/// batches then skip the members query, the largest read of a fan-out.
/// A poke carries no data (the pull it asks for is authorized), so a
/// member removed meanwhile being poked for a few seconds more leaks
/// nothing; a membership change in a batch drops its space's entry, and a
/// new member pulls when they join anyway.
pub type MemberCache = Cache<SpaceId, Vec<UserId>>;

/// The connection items this container read or wrote lately, by id: a
/// busy fan-out then reads only its members' presence (which ids are open,
/// always read afresh) and skips re-reading the connections it already
/// holds, the second read of every round. What a connection was poked for
/// is kept here as this container pokes it, and in the table only when a
/// batch is to be redelivered; a mark that lags (another container's, or
/// a batch redelivered although it was done) can only make a poke go out
/// twice, never hold one back, and a poke is a hint. A connection that
/// went away answers 410 and is forgotten.
pub type ConnectionCache = Cache<String, Connection>;

fn keep_connections(cache: &ConnectionCache, connections: &[Connection]) {
    cache.keep(
        connections
            .iter()
            .map(|c| (c.connection_id.clone(), c.clone())),
    );
}

/// The open connections of `users`: presence read afresh, connection
/// items from the cache where it holds them.
async fn open_connections(
    deps: &Deps,
    users: &[UserId],
) -> Result<BTreeMap<UserId, Vec<Connection>>, Error> {
    let mut open = Vec::new();
    let mut unknown = Vec::new();
    for (user, id) in deps.table.present(users).await? {
        match deps.connections.fresh(&id) {
            Some(connection) => open.push(connection),
            None => unknown.push((user, id)),
        }
    }
    let read = deps.table.connections_named(&unknown).await?;
    keep_connections(&deps.connections, &read);
    open.extend(read);
    Ok(shared::store::by_user(open, |c: &Connection| &c.user_id))
}

/// Changes of one partition a user is poked for.
#[derive(Debug, Default, Clone)]
struct Changed {
    /// The highest feed version among the batch's changes.
    version: u64,
    /// Which of the user's apps pushed them (None: another user, or an
    /// operator).
    origins: BTreeSet<Option<ClientId>>,
}

impl Changed {
    /// Whether `connection`, last poked at `poked` for this partition, is
    /// poked now: not the app that pushed all of it (it has it), and not
    /// again for a version it was already poked for (a redelivered batch).
    fn wants_poke(&self, connection: &Connection, poked: u64) -> bool {
        let only_its_own =
            self.origins.len() == 1 && self.origins.contains(&Some(connection.client_id.clone()));
        self.version > 0 && !only_its_own && poked < self.version
    }
}

/// What one user is sent for a batch, and the first record that asked
/// (reported if sending fails).
#[derive(Debug, Default)]
struct PokeWork {
    first_sequence: String,
    /// Their own records.
    own: Changed,
    /// Records of spaces they are in.
    spaces: BTreeMap<SpaceId, Changed>,
    /// Spaces whose membership of theirs began, changed or ended.
    memberships: BTreeSet<SpaceId>,
    /// Photos that finished: their ids and new status.
    media: Vec<(MediaId, Status)>,
}

/// Changes of one space in a batch, before they are known per member.
#[derive(Debug, Default)]
struct SpaceWork {
    first_sequence: String,
    version: u64,
    /// Who pushed them.
    origins: Pushers,
    /// The space's photos that finished.
    media: Vec<(MediaId, Status)>,
}

/// The batch sorted by whom it concerns: users directly, spaces (whose
/// members are looked up once per space).
#[derive(Debug, Default)]
struct Batch {
    users: BTreeMap<UserId, PokeWork>,
    spaces: BTreeMap<SpaceId, SpaceWork>,
}

impl Batch {
    fn user(&mut self, user: UserId, sequence: &str) -> &mut PokeWork {
        self.users.entry(user).or_insert_with(|| PokeWork {
            first_sequence: sequence.to_string(),
            ..PokeWork::default()
        })
    }

    fn space(&mut self, space: SpaceId, sequence: &str) -> &mut SpaceWork {
        self.spaces.entry(space).or_insert_with(|| SpaceWork {
            first_sequence: sequence.to_string(),
            ..SpaceWork::default()
        })
    }
}

fn note(batch: &mut Batch, record: &EventRecord) {
    let Some(change) = TableChange::decode(
        &record.event_name,
        &record.change.new_image,
        &record.change.old_image,
    ) else {
        return;
    };
    let sequence = record.change.sequence_number.clone().unwrap_or_default();
    if let Some((partition, media_id, status)) = change.finished_media() {
        let finished = (media_id.clone(), status);
        match partition {
            Partition::User(user) => batch.user(user.clone(), &sequence).media.push(finished),
            Partition::Space(space) => batch.space(space.clone(), &sequence).media.push(finished),
        }
        return;
    }
    match change {
        TableChange::Record {
            partition: Partition::User(user),
            version,
            origin,
            ..
        } => {
            let own = &mut batch.user(user, &sequence).own;
            own.version = own.version.max(version);
            own.origins.insert(origin);
        }
        TableChange::Record {
            partition: Partition::Space(space),
            version,
            origin,
            origin_user,
        } => {
            let work = batch.space(space, &sequence);
            work.version = work.version.max(version);
            work.origins.insert(origin_user, origin);
        }
        TableChange::Membership { user, space } => {
            batch.user(user, &sequence).memberships.insert(space);
        }
        TableChange::Media { .. } => {}
    }
}

/// Adds each space's changes to the work of each of its members (as read
/// within [`CACHED_FOR`]: see [`MemberCache`]). A space whose members cannot
/// be read is its first record's failure.
async fn expand_spaces(deps: &Deps, batch: &mut Batch) -> Vec<String> {
    let mut failed = Vec::new();
    for work in batch.users.values() {
        for space in &work.memberships {
            deps.members.forget(space);
        }
    }
    let spaces = std::mem::take(&mut batch.spaces);
    for (space, work) in spaces {
        let members = match deps.members.fresh(&space) {
            Some(members) => members,
            None => match deps.table.members(&space).await {
                Ok(members) => {
                    let ids: Vec<UserId> = members.into_iter().map(|m| m.user_id).collect();
                    deps.members.keep([(space.clone(), ids.clone())]);
                    ids
                }
                Err(err) => {
                    tracing::warn!(error = %err, %space, "live channel: the members of a space could not be read");
                    failed.push(work.first_sequence);
                    continue;
                }
            },
        };
        for member in members {
            let origins = work.origins.as_seen_by(&member).collect();
            let member_work = batch.user(member.clone(), &work.first_sequence);
            member_work.media.extend(work.media.iter().cloned());
            if work.version > 0 {
                let changed = Changed {
                    version: work.version,
                    origins,
                };
                member_work.spaces.insert(space.clone(), changed);
            }
        }
    }
    failed
}

/// Consumes one batch of the table stream.
pub async fn handle_stream(deps: &Deps, event: Event) -> Result<DynamoDbEventResponse, Error> {
    let mut batch = Batch::default();
    for record in &event.records {
        note(&mut batch, record);
    }
    let mut failed = expand_spaces(deps, &mut batch).await;
    let ids: Vec<UserId> = batch.users.keys().cloned().collect();
    let mut open = match Box::pin(open_connections(deps, &ids)).await {
        Ok(open) => open,
        Err(err) => {
            tracing::warn!(error = %err, "live channel: connections could not be read; the batch is retried");
            failed.extend(
                std::mem::take(&mut batch.users)
                    .into_values()
                    .map(|work| work.first_sequence),
            );
            BTreeMap::new()
        }
    };
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(USER_CONCURRENCY));
    let mut users = tokio::task::JoinSet::new();
    for (user_id, user_work) in batch.users {
        let connections = open.remove(&user_id).unwrap_or_default();
        if connections.is_empty() {
            continue;
        }
        let (deps, limit) = (deps.clone(), limit.clone());
        users.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let outcome = send(&deps, &user_id, &user_work, connections).await;
            (user_work.first_sequence, outcome)
        });
    }
    let mut totals = Totals::default();
    let mut marked = Vec::new();
    while let Some(joined) = users.join_next().await {
        let (sequence, outcome) = joined.map_err(Error::internal)?;
        match outcome {
            Ok(mut sent) => {
                marked.append(&mut sent.marked);
                totals.add(&sent);
            }
            Err((err, mut sent)) => {
                tracing::warn!(error = %err, "live channel: sending failed; the record is retried");
                marked.append(&mut sent);
                failed.push(sequence);
            }
        }
    }
    // What was poked is kept for the next batches in this container, and
    // saved (25 connections a call) only when part of this batch is to be
    // redelivered: a batch the stream takes as done is not read again.
    // Saving every poke was a write per connection per change, 200 for
    // one change in a space of 200, each one a stream record to filter.
    keep_connections(&deps.connections, &marked);
    if !failed.is_empty() {
        deps.table.save_pokes(&marked).await?;
    }
    failed.sort();
    failed.dedup();
    if totals.pokes + totals.media + totals.gone > 0 {
        Metrics::new("realtime")
            .count("PokesSent", totals.pokes)
            .count("MediaMessagesSent", totals.media)
            .count("ConnectionsGone", totals.gone)
            .emit();
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    Ok(response)
}

#[derive(Debug, Default)]
struct Totals {
    pokes: usize,
    media: usize,
    gone: usize,
    /// Connections to save as poked.
    marked: Vec<Connection>,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.pokes += other.pokes;
        self.media += other.media;
        self.gone += other.gone;
    }
}

/// Posts in flight at once, per user.
const POST_CONCURRENCY: usize = 32;

/// Users whose connections are posted to at once.
const USER_CONCURRENCY: usize = 64;

/// What became of one connection's messages.
enum Delivered {
    /// Sent: this many pokes and media messages.
    Sent {
        pokes: usize,
        media: usize,
    },
    Gone,
}

async fn deliver(
    deps: &Deps,
    connection: &Connection,
    messages: &[ServerMessage],
) -> Result<Delivered, Error> {
    let mut delivered = Delivered::Sent { pokes: 0, media: 0 };
    for message in messages {
        match deps
            .sockets
            .post(&connection.connection_id, message)
            .await?
        {
            Posted::Gone => return Ok(Delivered::Gone),
            Posted::Sent => {
                if let Delivered::Sent { pokes, media } = &mut delivered {
                    match message {
                        ServerMessage::Poke { .. } => *pokes += 1,
                        _ => *media += 1,
                    }
                }
            }
        }
    }
    Ok(delivered)
}

/// The messages for one connection, and the connection as it is once they
/// are sent (what it was poked for).
fn messages_for(connection: &Connection, work: &PokeWork) -> (Vec<ServerMessage>, Connection) {
    let mut messages = Vec::new();
    let mut marked = connection.clone();
    if work.own.wants_poke(connection, connection.poked_version) {
        messages.push(ServerMessage::Poke {
            cursor: Some(encode_cursor(PullCursor {
                own: work.own.version,
                generation: 0,
            })),
            space_id: None,
        });
        marked.poked_version = work.own.version;
    }
    let mut spaces: BTreeSet<&SpaceId> = work.memberships.iter().collect();
    for (space, changed) in &work.spaces {
        let poked = connection.poked_spaces.get(space).copied().unwrap_or(0);
        if changed.wants_poke(connection, poked) {
            spaces.insert(space);
            marked.poked_spaces.insert(space.clone(), changed.version);
        }
    }
    // A space's poke has no cursor: the positions of spaces live on the
    // server, per client, and a pull reads them.
    messages.extend(spaces.into_iter().map(|space| ServerMessage::Poke {
        cursor: None,
        space_id: Some(space.clone()),
    }));
    messages.extend(
        work.media
            .iter()
            .map(|(media_id, status)| ServerMessage::Media {
                media_id: media_id.to_string(),
                status: status.as_str().into(),
            }),
    );
    (messages, marked)
}

/// Posts a user's messages; what was sent, with the connections to mark as
/// poked (saved for the whole batch at once), or the first failure and the
/// connections marked before it.
async fn send(
    deps: &Deps,
    user_id: &UserId,
    work: &PokeWork,
    connections: Vec<Connection>,
) -> Result<Totals, (Error, Vec<Connection>)> {
    use futures_util::stream::{self, StreamExt};

    // Owned per connection: the futures run concurrently, within a task.
    let outcomes: Vec<(Connection, Connection, Result<Delivered, Error>)> =
        stream::iter(connections)
            .map(|connection| {
                let (messages, marked) = messages_for(&connection, work);
                let deps = deps.clone();
                async move {
                    let outcome = deliver(&deps, &connection, &messages).await;
                    (connection, marked, outcome)
                }
            })
            .buffer_unordered(POST_CONCURRENCY)
            .collect()
            .await;

    let mut totals = Totals::default();
    let mut poked = Vec::new();
    let mut failed = None;
    for (connection, marked, outcome) in outcomes {
        match outcome {
            Ok(Delivered::Sent { pokes, media }) => {
                totals.media += media;
                totals.pokes += pokes;
                if marked != connection {
                    poked.push(marked);
                }
            }
            Ok(Delivered::Gone) => {
                totals.gone += 1;
                deps.connections.forget(&connection.connection_id);
                if let Err(err) = deps
                    .table
                    .delete_connection(user_id, &connection.connection_id)
                    .await
                {
                    failed = Some(err);
                }
            }
            // The others are still marked; the batch is reported.
            Err(err) => failed = Some(err),
        }
    }
    totals.marked = poked;
    match failed {
        Some(err) => Err((err, totals.marked)),
        None => Ok(totals),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn record(sequence: &str, name: &str, new_image: Value, old_image: Value) -> EventRecord {
        serde_json::from_value(json!({
            "eventID": sequence,
            "eventName": name,
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"PK": new_image.get("PK").or(old_image.get("PK")), "SK": new_image.get("SK").or(old_image.get("SK"))},
                "NewImage": new_image,
                "OldImage": old_image,
                "SequenceNumber": sequence,
                "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        }))
        .unwrap()
    }

    fn sync_record(sequence: &str, user: &str, version: u64, origin: &str) -> EventRecord {
        record(
            sequence,
            "MODIFY",
            json!({"PK": {"S": format!("USER#{user}")}, "SK": {"S": "REC#notes#n1"},
                   "feedVer": {"N": version.to_string()}, "origin": {"S": origin}}),
            json!({}),
        )
    }

    fn media_record(sequence: &str, user: &str, old: &str, new: &str) -> EventRecord {
        let image = |status: &str| json!({"PK": {"S": format!("USER#{user}")}, "SK": {"S": "MEDIA#m1"}, "status": {"S": status}});
        record(sequence, "MODIFY", image(new), image(old))
    }

    fn connection(client_id: &str, poked_version: u64) -> Connection {
        Connection {
            connection_id: format!("c-{client_id}"),
            user_id: UserId::parse("u").unwrap(),
            client_id: ClientId::parse(client_id).unwrap(),
            connected_at: chrono::Utc::now(),
            poked_version,
            poked_spaces: BTreeMap::new(),
        }
    }

    #[test]
    fn a_batch_becomes_one_poke_per_user_at_its_highest_version() {
        let mut batch = Batch::default();
        for r in [
            sync_record("1", "alice", 7, "phone"),
            sync_record("2", "alice", 9, "phone"),
            sync_record("3", "bob", 3, "laptop"),
            media_record("4", "alice", "pending", "ready"),
            media_record("5", "bob", "ready", "ready"),
            media_record("6", "bob", "pending", "failed"),
            record(
                "7",
                "MODIFY",
                json!({"PK": {"S": "SPACE#s1"}, "SK": {"S": "REC#items#i1"}, "feedVer": {"N": "4"},
                       "origin": {"S": "phone"}, "originUser": {"S": "alice"}}),
                json!({}),
            ),
        ] {
            note(&mut batch, &r);
        }
        let user = |name: &str| UserId::parse(name).unwrap();
        let m1 = MediaId::parse("m1").unwrap();
        let alice = &batch.users[&user("alice")];
        assert_eq!((alice.own.version, alice.first_sequence.as_str()), (9, "1"));
        assert_eq!(
            alice.own.origins,
            BTreeSet::from([ClientId::parse("phone").ok()])
        );
        assert_eq!(alice.media, vec![(m1.clone(), Status::Ready)]);
        let bob = &batch.users[&user("bob")];
        assert_eq!(bob.own.version, 3);
        assert_eq!(bob.media, vec![(m1, Status::Failed)]);
        // A space's records wait for its members to be known.
        let space = &batch.spaces[&SpaceId::parse("s1").unwrap()];
        assert_eq!((space.version, space.first_sequence.as_str()), (4, "7"));
        let mut pushers = Pushers::default();
        pushers.insert(Some(user("alice")), ClientId::parse("phone").ok());
        assert_eq!(space.origins, pushers);
    }

    #[test]
    fn profiles_devices_and_removals_ask_for_nothing() {
        let mut batch = Batch::default();
        let profile = json!({"PK": {"S": "USER#u"}, "SK": {"S": "PROFILE"}});
        note(
            &mut batch,
            &record("1", "MODIFY", profile.clone(), json!({})),
        );
        note(&mut batch, &record("2", "REMOVE", json!({}), profile));
        assert!(batch.users.is_empty() && batch.spaces.is_empty());
    }

    #[test]
    fn the_pusher_is_not_poked_and_nobody_is_poked_twice() {
        let own = Changed {
            version: 9,
            origins: BTreeSet::from([ClientId::parse("phone").ok()]),
        };
        assert!(!own.wants_poke(&connection("phone", 0), 0));
        assert!(own.wants_poke(&connection("tablet", 0), 0));
        assert!(own.wants_poke(&connection("tablet", 8), 8));
        assert!(
            !own.wants_poke(&connection("tablet", 9), 9),
            "a redelivered batch"
        );
        let two_pushers = Changed {
            version: 9,
            origins: BTreeSet::from([
                ClientId::parse("phone").ok(),
                ClientId::parse("tablet").ok(),
            ]),
        };
        assert!(two_pushers.wants_poke(&connection("phone", 0), 0));
        assert!(!Changed::default().wants_poke(&connection("tablet", 0), 0));
    }

    #[test]
    fn a_space_poke_names_the_space_and_is_remembered_per_space() {
        let space = SpaceId::parse("s1").unwrap();
        let work = PokeWork {
            spaces: BTreeMap::from([(
                space.clone(),
                Changed {
                    version: 4,
                    // Another member pushed: every app of this user is poked.
                    origins: BTreeSet::from([None]),
                },
            )]),
            ..PokeWork::default()
        };
        let (messages, marked) = messages_for(&connection("phone", 0), &work);
        assert_eq!(
            messages,
            vec![ServerMessage::Poke {
                cursor: None,
                space_id: Some(space.clone())
            }]
        );
        assert_eq!(marked.poked_spaces[&space], 4);
        let (again, _) = messages_for(&marked, &work);
        assert!(again.is_empty(), "a redelivered batch");
    }
}
