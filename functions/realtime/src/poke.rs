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
use shared::model::ids::{ClientId, MediaId, Partition, UserId};
use shared::model::media::Status;
use shared::store::{Table, TableChange};
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
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name),
            sockets: Sockets::new(sdk, &config.management_url),
        }
    }
}

/// What one user is sent for a batch, and the first record that asked
/// (reported if sending fails).
#[derive(Debug, Default)]
struct PokeWork {
    first_sequence: String,
    /// The highest feed version among the batch's sync changes.
    version: u64,
    /// The apps whose pushes those changes are (None: an operator's).
    origins: BTreeSet<Option<ClientId>>,
    /// Photos that finished: their ids and new status.
    media: Vec<(MediaId, Status)>,
}

fn note(work: &mut BTreeMap<UserId, PokeWork>, record: &EventRecord) {
    let change = TableChange::decode(
        &record.event_name,
        &record.change.new_image,
        &record.change.old_image,
    );
    let (user, media) = match &change {
        Some(TableChange::Record {
            partition: Partition::User(user),
            ..
        }) => (user.clone(), None),
        Some(change) => match change.finished_media() {
            Some((user, media_id, status)) => (user.clone(), Some((media_id.clone(), status))),
            None => return,
        },
        None => return,
    };
    let user_work = work.entry(user).or_insert_with(|| PokeWork {
        first_sequence: record.change.sequence_number.clone().unwrap_or_default(),
        ..PokeWork::default()
    });
    match (media, change) {
        (Some(finished), _) => user_work.media.push(finished),
        (
            None,
            Some(TableChange::Record {
                version, origin, ..
            }),
        ) => {
            user_work.version = user_work.version.max(version);
            user_work.origins.insert(origin);
        }
        _ => {}
    }
}

/// Consumes one batch of the table stream.
pub async fn handle_stream(deps: &Deps, event: Event) -> Result<DynamoDbEventResponse, Error> {
    let mut work: BTreeMap<UserId, PokeWork> = BTreeMap::new();
    for record in &event.records {
        note(&mut work, record);
    }
    let mut users = tokio::task::JoinSet::new();
    for (user_id, user_work) in work {
        let deps = deps.clone();
        users.spawn(async move {
            let outcome = send(&deps, &user_id, &user_work).await;
            (user_work.first_sequence, outcome)
        });
    }
    let mut failures = Vec::new();
    let mut totals = Totals::default();
    while let Some(joined) = users.join_next().await {
        let (sequence, outcome) = joined.map_err(Error::internal)?;
        match outcome {
            Ok(sent) => totals.add(&sent),
            Err(err) => {
                tracing::warn!(error = %err, "live channel: sending failed; the record is retried");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(sequence);
                failures.push(failure);
            }
        }
    }
    failures.sort_by(|a, b| a.item_identifier.cmp(&b.item_identifier));
    if totals.pokes + totals.media + totals.gone > 0 {
        Metrics::new("realtime")
            .count("PokesSent", totals.pokes)
            .count("MediaMessagesSent", totals.media)
            .count("ConnectionsGone", totals.gone)
            .emit();
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}

#[derive(Debug, Default)]
struct Totals {
    pokes: usize,
    media: usize,
    gone: usize,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.pokes += other.pokes;
        self.media += other.media;
        self.gone += other.gone;
    }
}

/// Whether `connection` is poked for changes pushed by `origins`: not the
/// app that pushed them all (it has them), and not again for a version it
/// was already poked for (a redelivered batch).
fn wants_poke(connection: &Connection, work: &PokeWork) -> bool {
    let only_its_own =
        work.origins.len() == 1 && work.origins.contains(&Some(connection.client_id.clone()));
    work.version > 0 && !only_its_own && connection.poked_version < work.version
}

/// Posts in flight at once, per user.
const POST_CONCURRENCY: usize = 32;

/// What became of one connection's messages.
enum Delivered {
    /// Sent; `poked` if a poke was among them.
    Sent {
        poked: bool,
        media: usize,
    },
    Gone,
}

async fn deliver(
    deps: &Deps,
    connection: &Connection,
    messages: &[ServerMessage],
) -> Result<Delivered, Error> {
    let mut delivered = Delivered::Sent {
        poked: false,
        media: 0,
    };
    for message in messages {
        match deps
            .sockets
            .post(&connection.connection_id, message)
            .await?
        {
            Posted::Gone => return Ok(Delivered::Gone),
            Posted::Sent => {
                if let Delivered::Sent { poked, media } = &mut delivered {
                    match message {
                        ServerMessage::Poke { .. } => *poked = true,
                        _ => *media += 1,
                    }
                }
            }
        }
    }
    Ok(delivered)
}

async fn send(deps: &Deps, user_id: &UserId, work: &PokeWork) -> Result<Totals, Error> {
    use futures_util::stream::{self, StreamExt};

    let connections = deps.table.connections(user_id).await?;
    let poke = ServerMessage::Poke {
        cursor: encode_cursor(PullCursor {
            own: work.version,
            generation: 0,
        }),
    };
    let media: Vec<ServerMessage> = work
        .media
        .iter()
        .map(|(media_id, status)| ServerMessage::Media {
            media_id: media_id.to_string(),
            status: status.as_str().into(),
        })
        .collect();
    // Owned per connection: the futures run concurrently, within a task.
    let outcomes: Vec<(Connection, Result<Delivered, Error>)> = stream::iter(connections)
        .map(|connection| {
            let mut messages = Vec::new();
            if wants_poke(&connection, work) {
                messages.push(poke.clone());
            }
            messages.extend(media.iter().cloned());
            let deps = deps.clone();
            async move {
                let outcome = deliver(&deps, &connection, &messages).await;
                (connection, outcome)
            }
        })
        .buffer_unordered(POST_CONCURRENCY)
        .collect()
        .await;

    let mut totals = Totals::default();
    let mut poked = Vec::new();
    let mut failed = None;
    for (connection, outcome) in outcomes {
        match outcome {
            Ok(Delivered::Sent {
                poked: was_poked,
                media,
            }) => {
                totals.media += media;
                if was_poked {
                    totals.pokes += 1;
                    poked.push(connection);
                }
            }
            Ok(Delivered::Gone) => {
                totals.gone += 1;
                deps.table
                    .delete_connection(user_id, &connection.connection_id)
                    .await?;
            }
            // The others are still marked; the batch is reported.
            Err(err) => failed = Some(err),
        }
    }
    deps.table.mark_poked(&poked, work.version).await?;
    match failed {
        Some(err) => Err(err),
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
        }
    }

    #[test]
    fn a_batch_becomes_one_poke_per_user_at_its_highest_version() {
        let mut work = BTreeMap::new();
        for r in [
            sync_record("1", "alice", 7, "phone"),
            sync_record("2", "alice", 9, "phone"),
            sync_record("3", "bob", 3, "laptop"),
            media_record("4", "alice", "pending", "ready"),
            media_record("5", "bob", "ready", "ready"),
            media_record("6", "bob", "pending", "failed"),
        ] {
            note(&mut work, &r);
        }
        let user = |name: &str| UserId::parse(name).unwrap();
        let m1 = MediaId::parse("m1").unwrap();
        let alice = &work[&user("alice")];
        assert_eq!((alice.version, alice.first_sequence.as_str()), (9, "1"));
        assert_eq!(
            alice.origins,
            BTreeSet::from([ClientId::parse("phone").ok()])
        );
        assert_eq!(alice.media, vec![(m1.clone(), Status::Ready)]);
        let bob = &work[&user("bob")];
        assert_eq!(bob.version, 3);
        assert_eq!(bob.media, vec![(m1, Status::Failed)]);
    }

    #[test]
    fn profiles_devices_and_removals_ask_for_nothing() {
        let mut work = BTreeMap::new();
        let profile = json!({"PK": {"S": "USER#u"}, "SK": {"S": "PROFILE"}});
        note(
            &mut work,
            &record("1", "MODIFY", profile.clone(), json!({})),
        );
        note(&mut work, &record("2", "REMOVE", json!({}), profile));
        assert!(work.is_empty());
    }

    #[test]
    fn the_pusher_is_not_poked_and_nobody_is_poked_twice() {
        let work = PokeWork {
            version: 9,
            origins: BTreeSet::from([ClientId::parse("phone").ok()]),
            ..PokeWork::default()
        };
        assert!(!wants_poke(&connection("phone", 0), &work));
        assert!(wants_poke(&connection("tablet", 0), &work));
        assert!(wants_poke(&connection("tablet", 8), &work));
        assert!(
            !wants_poke(&connection("tablet", 9), &work),
            "a redelivered batch"
        );
        let two_pushers = PokeWork {
            version: 9,
            origins: BTreeSet::from([
                ClientId::parse("phone").ok(),
                ClientId::parse("tablet").ok(),
            ]),
            ..PokeWork::default()
        };
        assert!(wants_poke(&connection("phone", 0), &two_pushers));
        let media_only = PokeWork::default();
        assert!(!wants_poke(&connection("tablet", 0), &media_only));
    }
}
