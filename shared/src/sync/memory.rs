//! The sync store in memory: every partition's records and version counter,
//! and every client's watermark and rejections, behind one lock. It
//! implements [`SyncStore`] with the same plan and versioning as the
//! DynamoDB table, and the conformance suite holds the two equal. The
//! app-side crate's property tests run devices against it without an
//! emulator.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::feed::PullCursor;
use super::merge::RecordState;
use super::spaces::{SpaceHead, assemble, plan_space};
use super::store::{Memberships, SyncStore};
use super::{
    Change, FeedPage, FeedRead, Limits, Mutation, PullPage, PushOutcome, RECORDS_PER_CHUNK,
    RecordKey, Rejected, Room, WireMutation, authorize, plan, rejections_within, unapplied,
    validate,
};
use crate::Error;
use crate::model::access::{Grant, Role};
use crate::model::ids::{ClientId, Partition, SpaceId, UserId};
use crate::model::space::Membership;

#[derive(Debug, Default)]
struct PartitionState {
    records: BTreeMap<RecordKey, (RecordState, u64)>,
    counter: u64,
}

#[derive(Debug, Default)]
struct ClientState {
    watermark: u64,
    rejected: Vec<Rejected>,
}

#[derive(Debug)]
struct SpaceState {
    name: String,
    name_version: u64,
    deleted: bool,
    members: BTreeMap<UserId, Role>,
}

#[derive(Debug, Default)]
struct State {
    partitions: BTreeMap<Partition, PartitionState>,
    clients: BTreeMap<(UserId, ClientId), ClientState>,
    spaces: BTreeMap<SpaceId, SpaceState>,
    /// Every user's memberships, current or remembered as removed, with
    /// each client's positions.
    memberships: BTreeMap<(UserId, SpaceId), Membership>,
    epochs: u64,
}

impl State {
    /// The role `user` may write with in `space`, if it is live.
    fn role(&self, space: &SpaceId, user: &UserId) -> Option<Role> {
        let space = self.spaces.get(space).filter(|s| !s.deleted)?;
        space.members.get(user).copied()
    }

    /// The partition's versions in `(after, until]`, oldest first, at
    /// most `limit`.
    fn feed(&self, partition: &Partition, after: u64, until: u64, limit: usize) -> FeedRead {
        let Some(partition) = self.partitions.get(partition) else {
            return FeedRead::default();
        };
        let mut changes: Vec<Change> = partition
            .records
            .iter()
            .filter(|(_, (_, version))| *version > after && *version <= until)
            .map(|(key, (state, version))| Change::new(key.clone(), state, *version))
            .collect();
        changes.sort_by_key(|change| change.version);
        let has_more = changes.len() > limit;
        changes.truncate(limit);
        FeedRead { changes, has_more }
    }

    fn counter(&self, partition: &Partition) -> u64 {
        self.partitions.get(partition).map_or(0, |p| p.counter)
    }
}

#[derive(Debug, Default)]
pub struct MemoryServer {
    state: Mutex<State>,
    limits: Limits,
}

impl MemoryServer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `POST /sync/push` of `user`'s app `client_id` at `now_ms`: validated,
    /// then pushed.
    pub fn push_own(
        &self,
        user: &UserId,
        client_id: &ClientId,
        mutations: Vec<WireMutation>,
        now_ms: u64,
    ) -> Result<PushOutcome, Error> {
        let mutations = validate(client_id, mutations, &self.limits, now_ms)?;
        self.apply(&Grant::trusted(user.clone()), client_id, mutations)
    }

    /// `GET /sync/pull` of `user`'s own partition alone, from version
    /// `after` (the clients of tests that share nothing).
    pub fn pull_own(
        &self,
        user: &UserId,
        client_id: &ClientId,
        after: u64,
        limit: usize,
    ) -> FeedPage {
        let state = self.state();
        let partition = Partition::User(user.clone());
        let version = state.counter(&partition);
        let FeedRead { changes, has_more } = state.feed(&partition, after, version, limit);
        FeedPage {
            changes,
            has_more,
            watermark: Self::watermark_in(&state, user, client_id),
            version,
        }
    }

    /// `GET /sync/pull` of everything `user` reads, from `cursor`.
    pub fn pull_all(
        &self,
        user: &UserId,
        client_id: &ClientId,
        cursor: PullCursor,
        limit: usize,
    ) -> PullPage {
        self.read(&Grant::trusted(user.clone()), client_id, cursor, limit)
    }

    fn watermark_in(state: &State, user: &UserId, client_id: &ClientId) -> u64 {
        state
            .clients
            .get(&(user.clone(), client_id.clone()))
            .map_or(0, |client| client.watermark)
    }

    pub fn watermark(&self, user: &UserId, client_id: &ClientId) -> u64 {
        Self::watermark_in(&self.state(), user, client_id)
    }

    /// Every record's state and version in a partition.
    pub fn partition_records(
        &self,
        partition: &Partition,
    ) -> BTreeMap<RecordKey, (RecordState, u64)> {
        self.state()
            .partitions
            .get(partition)
            .map(|partition| partition.records.clone())
            .unwrap_or_default()
    }

    /// Every record's state and version in `user`'s own partition.
    pub fn records(&self, user: &UserId) -> BTreeMap<RecordKey, (RecordState, u64)> {
        self.partition_records(&Partition::User(user.clone()))
    }

    /// The version counter of `user`'s own partition.
    pub fn counter(&self, user: &UserId) -> u64 {
        self.state().counter(&Partition::User(user.clone()))
    }

    // ------------------------------------------------------------ spaces

    /// The role `user` holds in `space` now, if they are a member of it
    /// and it is live.
    pub fn role(&self, space: &SpaceId, user: &UserId) -> Option<Role> {
        self.state().role(space, user)
    }

    fn apply(
        &self,
        own: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> Result<PushOutcome, Error> {
        let mut state = self.state();
        let state = &mut *state;
        let holder = own.holder();
        let client = state
            .clients
            .entry((holder.clone(), client_id.clone()))
            .or_default();
        let mut kept = rejections_within(&client.rejected, &mutations);
        let mut fresh = unapplied(mutations, client.watermark)?;
        let mut outcome = PushOutcome {
            watermark: client.watermark,
            applied: fresh.len(),
            ..PushOutcome::default()
        };
        if fresh.is_empty() {
            // A resend: the same answer, and the rejections stay as they were.
            outcome.rejected = kept;
            return Ok(outcome);
        }
        let spaces = &state.spaces;
        authorize(&mut fresh, |space| {
            let space = spaces.get(space).filter(|s| !s.deleted)?;
            space.members.get(holder).copied()
        });
        let mut current = BTreeMap::new();
        for mutation in &fresh {
            let partition = mutation.key.partition(holder);
            if let Some((record, _)) = state
                .partitions
                .get(&partition)
                .and_then(|p| p.records.get(&mutation.key))
            {
                current.insert(mutation.key.clone(), record.clone());
            }
        }
        // Each chunk is one transaction: its records, their versions, the
        // watermark and the rejections move together.
        for chunk in plan(&current, &fresh, RECORDS_PER_CHUNK, &Room::default()) {
            for (key, record) in chunk.changed {
                let partition = state.partitions.entry(key.partition(holder)).or_default();
                partition.counter += 1;
                partition.records.insert(key, (record, partition.counter));
            }
            outcome.watermark = chunk.last_mutation_id;
            outcome.superseded += chunk.superseded;
            kept.extend(chunk.rejected);
        }
        let client = state
            .clients
            .entry((holder.clone(), client_id.clone()))
            .or_default();
        client.watermark = outcome.watermark;
        client.rejected = kept.clone();
        outcome.rejected = kept;
        Ok(outcome)
    }

    fn read(
        &self,
        own: &Grant,
        client_id: &ClientId,
        cursor: PullCursor,
        limit: usize,
    ) -> PullPage {
        let mut state = self.state();
        let user = own.holder();
        let own_partition = Partition::User(user.clone());
        let own = state.feed(
            &own_partition,
            cursor.own,
            state.counter(&own_partition),
            limit,
        );
        let mut budget = limit - own.changes.len();
        let mut read = Vec::new();
        for ((_, space_id), membership) in state.memberships.iter().filter(|((u, _), _)| u == user)
        {
            let head = state.spaces.get(space_id).map(|space| SpaceHead {
                name: space.name.clone(),
                name_version: space.name_version,
                version: state.counter(&Partition::Space(space_id.clone())),
                deleted: space.deleted,
                compaction: Default::default(),
            });
            let pull = plan_space(cursor.generation, membership, client_id, head.as_ref());
            let page = pull.range(budget).map(|(after, until)| {
                let page = state.feed(&Partition::Space(space_id.clone()), after, until, budget);
                budget -= page.changes.len();
                page
            });
            read.push((pull, page));
        }
        let watermark = Self::watermark_in(&state, user, client_id);
        let assembled = assemble(cursor, own, watermark, read);
        for (space, positions) in assembled.writes {
            if let Some(membership) = state.memberships.get_mut(&(user.clone(), space)) {
                if positions.is_empty() {
                    membership.positions.remove(client_id.as_str());
                } else {
                    membership
                        .positions
                        .insert(client_id.as_str().to_string(), positions);
                }
            }
        }
        assembled.page
    }
}

fn refused(what: &str) -> Error {
    Error::new(
        crate::Code::NotFound,
        format!("{what} refused by the memory server"),
    )
}

impl Memberships for MemoryServer {
    async fn create_space(&self, owner: &UserId, space: &SpaceId, name: &str) -> Result<(), Error> {
        let mut state = self.state();
        if state.spaces.contains_key(space) {
            return Err(refused("a taken space id"));
        }
        state.spaces.insert(
            space.clone(),
            SpaceState {
                name: name.into(),
                name_version: 0,
                deleted: false,
                members: BTreeMap::new(),
            },
        );
        join(&mut state, space, owner, Role::Owner);
        Ok(())
    }

    async fn add_member(
        &self,
        owner: &UserId,
        space: &SpaceId,
        user: &UserId,
        role: Role,
    ) -> Result<(), Error> {
        let mut state = self.state();
        if state.role(space, owner) != Some(Role::Owner) || role == Role::Owner {
            return Err(refused("an invitation"));
        }
        // A current member accepting again changes nothing.
        if state.role(space, user).is_none() {
            join(&mut state, space, user, role);
        }
        Ok(())
    }

    async fn set_role(
        &self,
        owner: &UserId,
        space: &SpaceId,
        user: &UserId,
        role: Role,
    ) -> Result<(), Error> {
        let mut state = self.state();
        if state.role(space, owner) != Some(Role::Owner) || state.role(space, user).is_none() {
            return Err(refused("a role change"));
        }
        if user == owner {
            return if role == Role::Owner {
                Ok(())
            } else {
                Err(refused("the owner's own demotion"))
            };
        }
        let mut set = |user: &UserId, role: Role| {
            if let Some(live) = state.spaces.get_mut(space) {
                live.members.insert(user.clone(), role);
            }
            if let Some(membership) = state.memberships.get_mut(&(user.clone(), space.clone())) {
                membership.role = role;
            }
        };
        set(user, role);
        if role == Role::Owner {
            set(owner, Role::Editor);
        }
        Ok(())
    }

    async fn remove_member(
        &self,
        by: &UserId,
        space: &SpaceId,
        user: &UserId,
    ) -> Result<(), Error> {
        let mut state = self.state();
        let Some(role) = state.role(space, user) else {
            return Err(refused("a removal of a non-member"));
        };
        let leaving = by == user;
        if !leaving && state.role(space, by) != Some(Role::Owner) {
            return Err(refused("a removal by a non-owner"));
        }
        if role == Role::Owner {
            let alone = state
                .spaces
                .get(space)
                .is_some_and(|s| s.members.len() == 1);
            if !(leaving && alone) {
                return Err(refused("the owner leaving others behind"));
            }
            // The last member leaving deletes the space.
            if let Some(live) = state.spaces.get_mut(space) {
                live.deleted = true;
            }
            return Ok(());
        }
        if let Some(live) = state.spaces.get_mut(space) {
            live.members.remove(user);
        }
        if let Some(membership) = state.memberships.get_mut(&(user.clone(), space.clone())) {
            membership.removed_at = Some(chrono::Utc::now());
        }
        Ok(())
    }

    async fn delete_space(&self, owner: &UserId, space: &SpaceId) -> Result<(), Error> {
        let mut state = self.state();
        if state.role(space, owner) != Some(Role::Owner) {
            return Err(refused("a deletion by a non-owner"));
        }
        if let Some(live) = state.spaces.get_mut(space) {
            live.deleted = true;
        }
        Ok(())
    }
}

/// `user` joins `space` with `role`: a new membership, even over a removed
/// one (whose positions stay, so each client learns it was removed).
fn join(state: &mut State, space: &SpaceId, user: &UserId, role: Role) {
    let Some(live) = state.spaces.get_mut(space).filter(|s| !s.deleted) else {
        return;
    };
    live.members.insert(user.clone(), role);
    state.epochs += 1;
    let epoch = format!("e{}", state.epochs);
    let membership = state
        .memberships
        .entry((user.clone(), space.clone()))
        .or_insert_with(|| Membership {
            space_id: space.clone(),
            role,
            joined_at: chrono::Utc::now(),
            epoch: epoch.clone(),
            removed_at: None,
            positions: BTreeMap::new(),
        });
    membership.role = role;
    membership.epoch = epoch;
    membership.removed_at = None;
}

impl SyncStore for MemoryServer {
    async fn push(
        &self,
        own: &Grant,
        client_id: &ClientId,
        mutations: Vec<Mutation>,
    ) -> Result<PushOutcome, Error> {
        self.apply(own, client_id, mutations)
    }

    async fn pull(
        &self,
        own: &Grant,
        client_id: &ClientId,
        cursor: PullCursor,
        limit: usize,
    ) -> Result<PullPage, Error> {
        Ok(self.read(own, client_id, cursor, limit))
    }
}
