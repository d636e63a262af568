//! One suite of tests every [`SyncStore`] must pass: the in-memory server
//! in the unit tests (`scripts/test --quick`), the DynamoDB table against
//! the emulator in the full run (`tests/tests/stack/conformance.rs`). Each
//! case uses users of its own, so one store serves every case.

use serde_json::{Value, json};

use super::feed::PullCursor;
use super::store::SyncStore;
use super::{Limits, Mutation, PullPage, Rejected, Rejection, WireMutation, validate};
use crate::Code;
use crate::model::access::Grant;
use crate::model::ids::{ClientId, UserId};

/// Every case, in turn; panics naming the first that fails.
pub async fn run_all<S: SyncStore>(store: &S) {
    pushes_apply_exactly_once(store).await;
    a_gap_is_refused_with_the_watermark(store).await;
    fields_merge_by_stamp_and_deletes_win_over_older_edits(store).await;
    rejections_are_answered_again_until_pushed_past(store).await;
    partitions_and_clients_do_not_see_each_other(store).await;
    the_feed_pages_in_version_order(store).await;
    any_interleaving_converges_to_the_merge_of_all(store).await;
}

const NOW: u64 = 1_800_000_000_000;

/// A user no other case (or run against the same table) has.
fn fresh_user() -> Grant {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("conformance-{nanos}-{}-{n}", std::process::id());
    Grant::trusted(UserId::parse(&id).expect("a valid id"))
}

fn client(name: &str) -> ClientId {
    ClientId::parse(name).expect("a valid client id")
}

fn put(id: u64, record: &str, fields: Value, millis: u64, client: &str) -> WireMutation {
    WireMutation {
        id,
        space_id: None,
        collection: "notes".into(),
        record_id: record.into(),
        op: "put".into(),
        fields: fields.as_object().cloned(),
        hlc: super::hlc::Hlc::new(millis, 0, client).to_string(),
    }
}

fn delete(id: u64, record: &str, millis: u64, client: &str) -> WireMutation {
    WireMutation {
        id,
        space_id: None,
        collection: "notes".into(),
        record_id: record.into(),
        op: "delete".into(),
        fields: None,
        hlc: super::hlc::Hlc::new(millis, 0, client).to_string(),
    }
}

fn checked(client: &ClientId, wires: Vec<WireMutation>) -> Vec<Mutation> {
    validate(client, wires, &Limits::default(), NOW).expect("a valid push")
}

async fn pull_all<S: SyncStore>(store: &S, grant: &Grant, client: &ClientId) -> PullPage {
    let mut all = PullPage {
        changes: Vec::new(),
        spaces: Vec::new(),
        has_more: false,
        watermark: 0,
        cursor: PullCursor::default(),
    };
    loop {
        let page = store
            .pull(grant, client, all.cursor, 100)
            .await
            .expect("a pull");
        all.cursor = page.cursor;
        all.watermark = page.watermark;
        all.spaces.extend(page.spaces);
        let more = page.has_more;
        all.changes.extend(page.changes);
        if !more {
            return all;
        }
    }
}

async fn pushes_apply_exactly_once<S: SyncStore>(store: &S) {
    let (grant, phone) = (fresh_user(), client("phone"));
    let batch = || {
        checked(
            &phone,
            vec![
                put(1, "n1", json!({"title": "milk"}), NOW - 3, "phone"),
                put(2, "n2", json!({"title": "eggs"}), NOW - 2, "phone"),
                put(3, "n1", json!({"done": true}), NOW - 1, "phone"),
            ],
        )
    };
    let first = store.push(&grant, &phone, batch()).await.expect("a push");
    assert_eq!(
        (first.watermark, first.applied),
        (3, 3),
        "exactly once: first"
    );
    let again = store.push(&grant, &phone, batch()).await.expect("a resend");
    assert_eq!(
        (again.watermark, again.applied),
        (3, 0),
        "exactly once: resend"
    );
    let feed = pull_all(store, &grant, &phone).await;
    assert_eq!(feed.watermark, 3, "exactly once: the pulled watermark");
    assert_eq!(feed.changes.len(), 2, "exactly once: one change per record");
    let n1 = feed.changes.iter().find(|c| c.record_id == "n1").unwrap();
    assert_eq!(n1.fields["title"], "milk");
    assert_eq!(n1.fields["done"], true);
}

async fn a_gap_is_refused_with_the_watermark<S: SyncStore>(store: &S) {
    let (grant, phone) = (fresh_user(), client("phone"));
    let first = checked(&phone, vec![put(1, "n", json!({"a": 1}), NOW, "phone")]);
    store.push(&grant, &phone, first).await.expect("a push");
    let gap = checked(&phone, vec![put(3, "n", json!({"a": 3}), NOW, "phone")]);
    let err = store.push(&grant, &phone, gap).await.unwrap_err();
    assert_eq!(err.code, Code::MutationGap, "a gap");
    assert_eq!(
        err.extensions.get("lastMutationId"),
        Some(&json!(1)),
        "a gap names the watermark"
    );
}

async fn fields_merge_by_stamp_and_deletes_win_over_older_edits<S: SyncStore>(store: &S) {
    let grant = fresh_user();
    let (phone, tablet) = (client("phone"), client("tablet"));
    let newer = checked(
        &phone,
        vec![put(1, "n", json!({"title": "newer"}), NOW - 10, "phone")],
    );
    store.push(&grant, &phone, newer).await.expect("a push");
    let older = checked(
        &tablet,
        vec![put(
            1,
            "n",
            json!({"title": "older", "body": "kept"}),
            NOW - 20,
            "tablet",
        )],
    );
    let outcome = store.push(&grant, &tablet, older).await.expect("a push");
    assert_eq!(outcome.superseded, 0, "merge: one field still won");
    let feed = pull_all(store, &grant, &phone).await;
    assert_eq!(
        feed.changes[0].fields,
        [
            ("body".into(), json!("kept")),
            ("title".into(), json!("newer"))
        ]
        .into(),
        "merge: field by field"
    );
    let gone = checked(&tablet, vec![delete(2, "n", NOW - 5, "tablet")]);
    store.push(&grant, &tablet, gone).await.expect("a delete");
    let late = checked(
        &phone,
        vec![put(
            2,
            "n",
            json!({"title": "before the delete"}),
            NOW - 7,
            "phone",
        )],
    );
    let late = store.push(&grant, &phone, late).await.expect("a push");
    assert_eq!(
        late.superseded, 1,
        "merge: an edit older than the delete loses"
    );
    let feed = pull_all(store, &grant, &phone).await;
    assert!(feed.changes[0].deleted, "merge: the record stays deleted");
}

/// 64 fields of 4 KB: two of these outgrow one record.
fn wide(prefix: &str) -> Value {
    Value::Object(
        (0..64)
            .map(|f| (format!("{prefix}{f}"), json!("x".repeat(4000))))
            .collect(),
    )
}

async fn rejections_are_answered_again_until_pushed_past<S: SyncStore>(store: &S) {
    let (grant, phone) = (fresh_user(), client("phone"));
    let batch = || {
        checked(
            &phone,
            vec![
                put(1, "big", wide("a"), NOW - 3, "phone"),
                put(2, "big", wide("b"), NOW - 2, "phone"),
                put(3, "small", json!({"v": 1}), NOW - 1, "phone"),
            ],
        )
    };
    let expected = vec![Rejected {
        id: 2,
        code: Rejection::RecordTooLarge,
    }];
    let first = store.push(&grant, &phone, batch()).await.expect("a push");
    assert_eq!(first.watermark, 3, "rejections: the watermark passes them");
    assert_eq!(first.rejected, expected, "rejections: listed");
    let again = store.push(&grant, &phone, batch()).await.expect("a resend");
    assert_eq!(again.rejected, expected, "rejections: answered again");
    let next = checked(&phone, vec![put(4, "small", json!({"v": 2}), NOW, "phone")]);
    let next = store.push(&grant, &phone, next).await.expect("a push");
    assert_eq!(
        next.rejected,
        vec![],
        "rejections: forgotten once pushed past"
    );
    let feed = pull_all(store, &grant, &phone).await;
    let big = feed.changes.iter().find(|c| c.record_id == "big").unwrap();
    assert!(
        big.fields.contains_key("a0") && !big.fields.contains_key("b0"),
        "rejections: never applied"
    );
}

async fn partitions_and_clients_do_not_see_each_other<S: SyncStore>(store: &S) {
    let (ann, bob) = (fresh_user(), fresh_user());
    let phone = client("phone");
    let mine = checked(
        &phone,
        vec![put(1, "n", json!({"who": "ann"}), NOW, "phone")],
    );
    store.push(&ann, &phone, mine).await.expect("a push");
    let theirs = pull_all(store, &bob, &phone).await;
    assert!(
        theirs.changes.is_empty(),
        "isolation: another user's records"
    );
    assert_eq!(theirs.watermark, 0, "isolation: another user's watermark");
    // The same client id under another user starts at 1.
    let bobs = checked(
        &phone,
        vec![put(1, "n", json!({"who": "bob"}), NOW, "phone")],
    );
    let pushed = store.push(&bob, &phone, bobs).await.expect("a push");
    assert_eq!(pushed.applied, 1, "isolation: watermarks per user");
    let feed = pull_all(store, &ann, &client("tablet")).await;
    assert_eq!(feed.changes[0].fields["who"], "ann");
    assert_eq!(feed.watermark, 0, "isolation: watermarks per client");
}

async fn the_feed_pages_in_version_order<S: SyncStore>(store: &S) {
    let (grant, phone) = (fresh_user(), client("phone"));
    let wires = (1..=250)
        .map(|i| {
            put(
                i,
                &format!("r{i}"),
                json!({"i": i}),
                NOW - 1000 + i,
                "phone",
            )
        })
        .collect();
    store
        .push(&grant, &phone, checked(&phone, wires))
        .await
        .expect("a push");
    let page = store
        .pull(&grant, &phone, PullCursor::default(), 100)
        .await
        .expect("a pull");
    assert_eq!(page.changes.len(), 100, "paging: a full page");
    assert!(page.has_more, "paging: more to come");
    let feed = pull_all(store, &grant, &phone).await;
    let versions: Vec<u64> = feed.changes.iter().map(|c| c.version).collect();
    assert_eq!(versions.len(), 250, "paging: every change once");
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "paging: ascending versions"
    );
    assert_eq!(feed.cursor.own, 250, "paging: the counter");
}

/// Two clients push interleaved edits of a few records in small batches;
/// whatever the order, the store ends where merging every mutation ends.
async fn any_interleaving_converges_to_the_merge_of_all<S: SyncStore>(store: &S) {
    use std::collections::BTreeMap;

    use super::RecordKey;
    use super::merge::RecordState;

    let grant = fresh_user();
    let clients = [client("phone"), client("tablet")];
    // A fixed pseudo-random schedule: (client, record, value; 0 deletes).
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut ids = [0u64; 2];
    let mut expected: BTreeMap<RecordKey, RecordState> = BTreeMap::new();
    for round in 0..12u64 {
        let who = (next() % 2) as usize;
        let mut wires = Vec::new();
        for _ in 0..(1 + next() % 4) {
            ids[who] += 1;
            let record = format!("r{}", next() % 3);
            let value = next() % 4;
            let millis = NOW - 10_000 + round * 10 + next() % 50;
            let name = clients[who].as_str();
            wires.push(if value == 0 {
                delete(ids[who], &record, millis, name)
            } else {
                put(
                    ids[who],
                    &record,
                    json!({ format!("f{}", value % 2): value }),
                    millis,
                    name,
                )
            });
        }
        let mutations = checked(&clients[who], wires);
        for m in &mutations {
            expected
                .entry(m.key.clone())
                .or_default()
                .apply(&m.op, &m.hlc);
        }
        store
            .push(&grant, &clients[who], mutations)
            .await
            .expect("a push");
    }
    let feed = pull_all(store, &grant, &clients[0]).await;
    let mut held: BTreeMap<RecordKey, Change> = BTreeMap::new();
    for change in feed.changes {
        held.insert(change.key(), change);
    }
    assert_eq!(held.len(), expected.len(), "convergence: every record");
    for (key, state) in &expected {
        let change = &held[key];
        assert_eq!(change.deleted, state.is_deleted(), "convergence: {key:?}");
        assert_eq!(change.fields, state.values(), "convergence: {key:?}");
    }
}

use super::Change;

#[cfg(test)]
mod tests {
    /// The memory server's futures are ready at once: polled, not run.
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the memory server never waits"),
        }
    }

    #[test]
    fn the_memory_server_conforms() {
        ready(super::run_all(&crate::sync::memory::MemoryServer::default()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn spaces_converge_in_memory(seed in proptest::prelude::any::<u64>()) {
            ready(super::run_spaces(&crate::sync::memory::MemoryServer::default(), &[seed]));
        }
    }
}

// ------------------------------------------------------------------ spaces

/// Every spaces case, with the schedules `seeds` pick.
pub async fn run_spaces<S: Memberships>(store: &S, seeds: &[u64]) {
    for seed in seeds {
        spaces_converge_and_admit_only_their_writers(store, *seed).await;
    }
}

/// A device of the spaces schedule: its queued edits, its cursor, and
/// what it holds, as an app library would.
struct Device {
    user: usize,
    client: ClientId,
    next_id: u64,
    outbox: Vec<WireMutation>,
    cursor: PullCursor,
    held: BTreeMap<RecordKey, Change>,
}

impl Device {
    /// Takes a pulled page as the app library does: a removed space's
    /// records go first, then the changes land; whether more pages follow.
    fn apply(&mut self, page: PullPage) -> bool {
        for change in &page.spaces {
            if change.removed {
                self.held
                    .retain(|key, _| key.space.as_ref() != Some(&change.space_id));
            }
        }
        for change in page.changes {
            self.held.insert(change.key(), change);
        }
        self.cursor = page.cursor;
        page.has_more
    }
}

/// The schedule's independent account of who may write where: the
/// membership timeline as the suite made it, never read from the store.
#[derive(Default)]
struct Timeline {
    roles: BTreeMap<(SpaceId, usize), Role>,
    deleted: BTreeSet<SpaceId>,
}

impl Timeline {
    fn role(&self, space: &SpaceId, user: usize) -> Option<Role> {
        if self.deleted.contains(space) {
            return None;
        }
        self.roles.get(&(space.clone(), user)).copied()
    }

    fn owner(&self, space: &SpaceId) -> Option<usize> {
        self.roles
            .iter()
            .find(|((s, _), role)| s == space && **role == Role::Owner)
            .map(|((_, user), _)| *user)
            .filter(|_| !self.deleted.contains(space))
    }

    fn members(&self, space: &SpaceId) -> usize {
        self.roles.keys().filter(|(s, _)| s == space).count()
    }
}

/// A pseudo-random schedule of several users and devices: spaces made,
/// joined, re-roled, left, removed, transferred and deleted, between
/// offline edits, pushes answered twice and pulls whose answer is lost.
/// Checks against an independent timeline that:
/// - every mutation is acknowledged once, applied or rejected, and
///   rejected exactly when its writer was not (`not_a_member`) or only a
///   viewer (`read_only`) of its space at the push;
/// - a device holds nothing of a space after the pull that follows its
///   user's removal;
/// - in the end every device holds exactly its partitions' server state,
///   which is the merge of the admitted mutations alone.
async fn spaces_converge_and_admit_only_their_writers<S: Memberships>(store: &S, seed: u64) {
    use crate::sync::merge::RecordState;

    let mut seed = seed | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let users: Vec<Grant> = (0..3).map(|_| fresh_user()).collect();
    let id_of = |user: usize| users[user].holder().clone();
    let spaces: Vec<SpaceId> = (0..2)
        .map(|n| SpaceId::parse(&format!("{}-s{n}", users[0].holder())).expect("a space id"))
        .collect();
    let mut devices: Vec<Device> = [(0, "a"), (0, "b"), (1, "c"), (2, "d")]
        .into_iter()
        .map(|(user, name)| Device {
            user,
            client: client(name),
            next_id: 0,
            outbox: Vec::new(),
            cursor: PullCursor::default(),
            held: BTreeMap::new(),
        })
        .collect();
    let mut timeline = Timeline::default();
    let mut created: BTreeSet<SpaceId> = BTreeSet::new();
    // What the server must hold: the merge of the admitted mutations.
    let mut expected: BTreeMap<(Option<usize>, RecordKey), RecordState> = BTreeMap::new();
    let mut clock = NOW - 100_000;

    for step in 0..60 {
        let roll = next() % 10;
        let device = (next() % devices.len() as u64) as usize;
        let space = spaces[(next() % spaces.len() as u64) as usize].clone();
        let user = (next() % users.len() as u64) as usize;
        match roll {
            // An edit, queued offline: into a space, or the user's own.
            0..=3 => {
                let d = &mut devices[device];
                d.next_id += 1;
                clock += 1 + next() % 5;
                let record = format!("r{}", next() % 3);
                let value = next() % 4;
                let mut wire = if value == 0 {
                    delete(d.next_id, &record, clock, d.client.as_str())
                } else {
                    put(
                        d.next_id,
                        &record,
                        json!({ format!("f{}", value % 2): value }),
                        clock,
                        d.client.as_str(),
                    )
                };
                if next() % 4 != 0 {
                    wire.space_id = Some(space.clone());
                }
                d.outbox.push(wire);
            }
            // A push of everything queued, answered twice.
            4 | 5 => {
                let d = &mut devices[device];
                if d.outbox.is_empty() {
                    continue;
                }
                let grant = &users[d.user];
                let mutations = checked(&d.client, d.outbox.clone());
                let first = store
                    .push(grant, &d.client, mutations.clone())
                    .await
                    .expect("a push");
                let again = store
                    .push(grant, &d.client, mutations.clone())
                    .await
                    .expect("a resend");
                let last = mutations.last().map_or(0, |m| m.id);
                assert_eq!(
                    first.watermark, last,
                    "spaces {step}: every id acknowledged"
                );
                assert_eq!(again.watermark, last, "spaces {step}: once");
                assert_eq!(again.applied, 0, "spaces {step}: a resend applies nothing");
                assert_eq!(
                    again.rejected, first.rejected,
                    "spaces {step}: the same answer"
                );
                let mut refused = Vec::new();
                for m in &mutations {
                    let code = match m.key.space.as_ref().map(|s| timeline.role(s, d.user)) {
                        Some(None) => Some(Rejection::NotAMember),
                        Some(Some(Role::Viewer)) => Some(Rejection::ReadOnly),
                        _ => None,
                    };
                    match code {
                        Some(code) => refused.push(Rejected { id: m.id, code }),
                        None => {
                            expected
                                .entry(partition_of(d.user, &m.key))
                                .or_default()
                                .apply(&m.op, &m.hlc);
                        }
                    }
                }
                assert_eq!(
                    first.rejected, refused,
                    "spaces {step}: rejected exactly the non-writers"
                );
                d.outbox.clear();
            }
            // A pull to the end; sometimes its last answer is lost.
            6 | 7 => {
                let lose = next() % 3 == 0;
                let d = &mut devices[device];
                let grant = &users[d.user];
                loop {
                    let page = store
                        .pull(grant, &d.client, d.cursor, 3)
                        .await
                        .expect("a pull");
                    if lose && !page.has_more {
                        break;
                    }
                    if !d.apply(page) {
                        break;
                    }
                }
                if !lose {
                    for key in d.held.keys() {
                        if let Some(space) = &key.space {
                            assert!(
                                timeline.role(space, d.user).is_some(),
                                "spaces {step}: a device holds {key:?} of a space its user left"
                            );
                        }
                    }
                }
            }
            // A membership change, as the routes take it.
            _ => {
                let owner = timeline.owner(&space);
                let target = id_of(user);
                if !created.contains(&space) {
                    store
                        .create_space(&id_of(user), &space, "shared")
                        .await
                        .expect("a space");
                    created.insert(space.clone());
                    timeline.roles.insert((space.clone(), user), Role::Owner);
                    continue;
                }
                let Some(owner) = owner else { continue };
                let role = timeline.role(&space, user);
                match (next() % 6, role) {
                    (0 | 1, None) => {
                        let role = if next() % 2 == 0 {
                            Role::Editor
                        } else {
                            Role::Viewer
                        };
                        store
                            .add_member(&id_of(owner), &space, &target, role)
                            .await
                            .expect("a member added");
                        timeline.roles.insert((space.clone(), user), role);
                    }
                    (2, Some(current)) if current != Role::Owner => {
                        let role = [Role::Editor, Role::Viewer, Role::Owner][(next() % 3) as usize];
                        store
                            .set_role(&id_of(owner), &space, &target, role)
                            .await
                            .expect("a role set");
                        if role == Role::Owner {
                            timeline.roles.insert((space.clone(), owner), Role::Editor);
                        }
                        timeline.roles.insert((space.clone(), user), role);
                    }
                    (3, Some(current)) if current != Role::Owner => {
                        store
                            .remove_member(&id_of(owner), &space, &target)
                            .await
                            .expect("a member removed");
                        timeline.roles.remove(&(space.clone(), user));
                    }
                    (4, Some(current))
                        if current != Role::Owner || timeline.members(&space) == 1 =>
                    {
                        store
                            .remove_member(&target, &space, &target)
                            .await
                            .expect("a member left");
                        if current == Role::Owner {
                            timeline.deleted.insert(space.clone());
                        }
                        timeline.roles.remove(&(space.clone(), user));
                    }
                    (5, _) if next() % 4 == 0 => {
                        store
                            .delete_space(&id_of(owner), &space)
                            .await
                            .expect("a space deleted");
                        timeline.deleted.insert(space.clone());
                    }
                    _ => {}
                }
            }
        }
    }

    // Everything pushed and pulled: each device holds exactly the server
    // state of its partitions, the merge of what was admitted.
    for d in &mut devices {
        if !d.outbox.is_empty() {
            let mutations = checked(&d.client, std::mem::take(&mut d.outbox));
            for m in &mutations {
                let admitted = match &m.key.space {
                    None => true,
                    Some(space) => timeline.role(space, d.user).is_some_and(Role::may_write),
                };
                if admitted {
                    expected
                        .entry(partition_of(d.user, &m.key))
                        .or_default()
                        .apply(&m.op, &m.hlc);
                }
            }
            store
                .push(&users[d.user], &d.client, mutations)
                .await
                .expect("a push");
        }
    }
    for d in &mut devices {
        loop {
            let page = store
                .pull(&users[d.user], &d.client, d.cursor, 3)
                .await
                .expect("a pull");
            if !d.apply(page) {
                break;
            }
        }
        let mine: BTreeMap<&RecordKey, &RecordState> = expected
            .iter()
            .filter(|((owner, key), _)| match &key.space {
                None => *owner == Some(d.user),
                Some(space) => timeline.role(space, d.user).is_some(),
            })
            .map(|((_, key), state)| (key, state))
            .collect();
        let held: Vec<&RecordKey> = d.held.keys().collect();
        let wanted: Vec<&RecordKey> = mine.keys().copied().collect();
        assert_eq!(
            held, wanted,
            "spaces: device {} holds its partitions",
            d.client
        );
        for (key, state) in mine {
            let change = &d.held[key];
            assert_eq!(change.deleted, state.is_deleted(), "spaces: {key:?}");
            assert_eq!(change.fields, state.values(), "spaces: {key:?}");
        }
    }
}

/// Where the schedule expects a record of `user`'s push: their own
/// (keyed by user, since every user has an `r0`), or its space's.
fn partition_of(user: usize, key: &RecordKey) -> (Option<usize>, RecordKey) {
    (key.space.is_none().then_some(user), key.clone())
}

use std::collections::{BTreeMap, BTreeSet};

use super::RecordKey;
use super::store::Memberships;
use crate::model::access::Role;
use crate::model::ids::SpaceId;
