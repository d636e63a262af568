//! Simulated devices against the server's own rules in memory
//! (`shared::sync::memory::MemoryServer`: the same validation, watermark
//! and merge the Lambda runs): random offline periods, answers lost after
//! the server applied a push, duplicated and reordered deliveries of old
//! pushes, crashes between a push and its acknowledgement, and wall clocks
//! that are wrong by minutes. Afterwards every replica agrees with every
//! other and with the server, and every mutation was applied exactly once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use mobile_sync::store::{PullPage, PushAnswer};
use mobile_sync::{Replica, SyncError, Transport};
use proptest::prelude::*;

mod common;
use serde_json::{Map, Value, json};
use shared::sync::WireMutation;
use shared::sync::memory::MemoryServer;

const START_MS: u64 = 1_800_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// No network: nothing reaches the server.
    Offline,
    /// The server applies the push; the answer never arrives.
    LostAnswer,
}

/// The server's side: its rules, its clock, the idempotency records of
/// `POST /sync/push`, and every push delivered (for re-delivery).
#[derive(Default)]
struct Server {
    rules: MemoryServer,
    now_ms: u64,
    answers: BTreeMap<String, (Vec<WireMutation>, Result<PushAnswer, SyncError>)>,
    delivered: Vec<(String, Vec<WireMutation>, String)>,
}

impl Server {
    fn push(
        &mut self,
        client_id: &str,
        mutations: &[WireMutation],
        key: &str,
    ) -> Result<PushAnswer, SyncError> {
        self.delivered
            .push((client_id.to_string(), mutations.to_vec(), key.to_string()));
        // As `apigw::idempotency`: a repeat of a key replays its answer.
        if let Some((body, answer)) = self.answers.get(key) {
            assert_eq!(body, mutations, "a key was reused for another batch");
            return answer.clone();
        }
        let answer = common::push(&mut self.rules, client_id, mutations, self.now_ms);
        if let Err(refused @ SyncError::Server { .. }) = &answer {
            panic!("the server refused a client's push: {refused}");
        }
        self.answers
            .insert(key.to_string(), (mutations.to_vec(), answer.clone()));
        answer
    }
}

/// One device's network: the shared server and the faults to come.
#[derive(Clone)]
struct Network {
    server: Arc<Mutex<Server>>,
    faults: Arc<Mutex<VecDeque<Fault>>>,
}

impl Transport for Network {
    fn push(
        &self,
        client_id: &str,
        mutations: &[WireMutation],
        key: &str,
    ) -> Result<PushAnswer, SyncError> {
        let fault = self.faults.lock().unwrap().pop_front();
        let offline = || SyncError::Transport {
            reason: "offline".into(),
        };
        match fault {
            Some(Fault::Offline) => Err(offline()),
            Some(Fault::LostAnswer) => {
                let _ = self.server.lock().unwrap().push(client_id, mutations, key);
                Err(offline())
            }
            None => self.server.lock().unwrap().push(client_id, mutations, key),
        }
    }

    fn pull(
        &self,
        client_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<PullPage, SyncError> {
        if self.faults.lock().unwrap().front() == Some(&Fault::Offline) {
            return Err(SyncError::Transport {
                reason: "offline".into(),
            });
        }
        let server = self.server.lock().unwrap();
        Ok(common::pull(&server.rules, client_id, cursor, limit))
    }
}

struct Device {
    id: String,
    path: String,
    replica: Option<Replica<Network>>,
    network: Network,
    /// How wrong its wall clock is.
    skew_ms: i64,
    queued: u64,
}

impl Device {
    fn replica(&mut self) -> &Replica<Network> {
        if self.replica.is_none() {
            self.replica = Some(Replica::open(&self.path, &self.id, self.network.clone()).unwrap());
        }
        self.replica.as_ref().unwrap()
    }

    fn wall(&self, server_ms: u64) -> u64 {
        (server_ms as i64 + self.skew_ms) as u64
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// A put of one field (value > 0) or a delete (0), offline.
    Edit {
        device: usize,
        record: u8,
        field: u8,
        value: u8,
    },
    Sync {
        device: usize,
        fault: Option<Fault>,
        crash: bool,
    },
    /// The network delivers an old push again, late.
    Redeliver {
        index: usize,
    },
    Wait {
        ms: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, 0u8..5, 0u8..3, 0u8..4)
            .prop_map(|(device, record, field, value)| Step::Edit { device, record, field, value }),
        3 => (0usize..3, prop_oneof![Just(None), Just(Some(Fault::Offline)), Just(Some(Fault::LostAnswer))], any::<bool>())
            .prop_map(|(device, fault, crash)| Step::Sync { device, fault, crash }),
        1 => (0usize..64).prop_map(|index| Step::Redeliver { index }),
        1 => (0u64..5_000).prop_map(|ms| Step::Wait { ms }),
    ]
}

fn visible(server: &MemoryServer) -> BTreeMap<(String, String), Map<String, Value>> {
    server
        .records(&common::me())
        .iter()
        .filter(|(_, (state, _))| !state.fields.is_empty())
        .map(|(key, (state, _))| {
            (
                (key.collection.clone(), key.record_id.clone()),
                state.values().into_iter().collect(),
            )
        })
        .collect()
}

fn run(steps: Vec<Step>, skews: [i64; 3]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Mutex::new(Server {
        now_ms: START_MS,
        ..Server::default()
    }));
    let mut devices: Vec<Device> = (0..3)
        .map(|i| Device {
            id: format!("device-{i}"),
            path: dir
                .path()
                .join(format!("device-{i}.db"))
                .display()
                .to_string(),
            replica: None,
            network: Network {
                server: server.clone(),
                faults: Arc::default(),
            },
            skew_ms: skews[i],
            queued: 0,
        })
        .collect();
    let mut keys = BTreeSet::new();

    for step in steps {
        let now = server.lock().unwrap().now_ms;
        match step {
            Step::Edit {
                device,
                record,
                field,
                value,
            } => {
                let device = &mut devices[device];
                let wall = device.wall(now);
                let (collection, record_id) = ("notes", format!("n{record}"));
                keys.insert((collection.to_string(), record_id.clone()));
                if value == 0 {
                    device
                        .replica()
                        .delete_at(collection, &record_id, wall)
                        .unwrap();
                } else {
                    let fields = json!({format!("f{field}"): value})
                        .as_object()
                        .unwrap()
                        .clone();
                    device
                        .replica()
                        .put_at(collection, &record_id, fields.clone(), wall)
                        .unwrap();
                    // Visible at once, whatever is pending or pulled.
                    let seen = device
                        .replica()
                        .get(collection, &record_id)
                        .unwrap()
                        .unwrap();
                    prop_assert_eq!(&seen[&format!("f{field}")], &json!(value));
                }
                device.queued += 1;
            }
            Step::Sync {
                device,
                fault,
                crash,
            } => {
                let device = &mut devices[device];
                if let Some(fault) = fault {
                    device.network.faults.lock().unwrap().push_back(fault);
                }
                let pending_before = device.replica().pending_count().unwrap();
                let result = device.replica().sync();
                device.network.faults.lock().unwrap().clear();
                if result.is_err() {
                    // A failed sync leaves the outbox intact.
                    prop_assert_eq!(device.replica().pending_count().unwrap(), pending_before);
                }
                if crash {
                    device.replica = None;
                }
            }
            Step::Redeliver { index } => {
                let mut server = server.lock().unwrap();
                if !server.delivered.is_empty() {
                    let (client, mutations, key) =
                        server.delivered[index % server.delivered.len()].clone();
                    let _ = server.push(&client, &mutations, &key);
                }
            }
            Step::Wait { ms } => server.lock().unwrap().now_ms += ms,
        }
    }

    // The network heals: everyone syncs twice (the second round brings
    // each device what the others pushed in the first).
    for _ in 0..2 {
        for device in &mut devices {
            device.replica().sync().unwrap();
        }
    }
    let server = server.lock().unwrap();
    let truth = visible(&server.rules);
    for device in &mut devices {
        prop_assert_eq!(device.replica().pending_count().unwrap(), 0);
        // Exactly once: the server applied every queued mutation, each
        // under its own consecutive id.
        prop_assert_eq!(
            server
                .rules
                .watermark(&common::me(), &common::client(&device.id)),
            device.queued
        );
        for (collection, record_id) in &keys {
            let seen = device.replica().get(collection, record_id).unwrap();
            let expected = truth.get(&(collection.clone(), record_id.clone())).cloned();
            prop_assert_eq!(
                seen,
                expected,
                "{} sees {}/{} differently",
                device.id,
                collection,
                record_id
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_with_each_other_and_the_server(
        steps in prop::collection::vec(step(), 1..60),
        skews in [-600_000i64..240_000, -600_000i64..240_000, -600_000i64..240_000],
    ) {
        run(steps, skews)?;
    }
}
