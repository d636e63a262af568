//! One pull across the caller's own records and every space they are in,
//! under a cursor whose size does not grow with the number of spaces.
//!
//! The cursor names the caller's own feed version and a *generation*.
//! Where each client stands in each space is kept on the server, on the
//! user's membership item, as [`Position`]s tagged with the generation of
//! the answer that wrote them. A request presenting generation `g` reads,
//! per space, the newest position tagged `g` or below; one tagged above
//! `g` was written by an answer the client never received (it presents
//! `g` again), so the next answer rewrites it. A position therefore
//! advances only once a request presents the cursor that names it, and a
//! pull whose answer was lost can be repeated.
//!
//! This module decides, from what the store read, what to announce, where
//! to read each space's feed from and which positions to write; the
//! stores only read and write.

use serde::{Deserialize, Serialize};

use super::feed::{PullCursor, next_cursor};
use super::{FeedRead, PullPage};
use crate::model::access::Role;
use crate::model::ids::{ClientId, SpaceId};
use crate::model::space::{Membership, Position};

/// A membership change as pull reports it: joined, renamed or a new
/// role (name and role set), or gone (`removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceChange {
    pub space_id: SpaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl SpaceChange {
    pub fn removed(space_id: SpaceId) -> Self {
        Self {
            space_id,
            name: None,
            role: None,
            removed: true,
        }
    }

    pub fn current(space_id: SpaceId, name: &str, role: Role) -> Self {
        Self {
            space_id,
            name: Some(name.to_string()),
            role: Some(role),
            removed: false,
        }
    }
}

/// What the store read of one space: its name, counter and whether it
/// was deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceHead {
    pub name: String,
    pub name_version: u64,
    pub version: u64,
    pub deleted: bool,
    /// The tombstones compacted away in the space.
    pub compaction: super::compaction::Compaction,
}

/// What one space contributes to one pull answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SpacePull {
    pub space_id: SpaceId,
    /// Told to the client, in this order.
    pub announce: Vec<SpaceChange>,
    /// Read the space's feed after this version up to `until`; None when
    /// the client is not (or no longer) in it.
    pub read_after: Option<u64>,
    pub until: u64,
    /// The position this answer would leave (before the feed is read: its
    /// version moves to what the page holds); None: tell nothing new.
    pub next: Option<Position>,
    /// The position the presented cursor names, kept beside the new one
    /// until the client presents the next cursor.
    pub base: Option<Position>,
    /// Positions above the presented generation exist: an answer the
    /// client never got wrote them, and the next answer must replace them.
    pub stale: bool,
}

impl SpacePull {
    /// The versions to read of the space's feed, `(after, until]`, when
    /// there are any and the page has room (`budget` changes left).
    pub fn range(&self, budget: usize) -> Option<(u64, u64)> {
        let after = self.read_after?;
        (after < self.until && budget > 0).then_some((after, self.until))
    }

    /// Whether the answer tells the client something new of this space:
    /// an announcement, or records up to `version`.
    pub fn advances(&self, version: Option<u64>) -> bool {
        self.next.as_ref().is_some_and(|next| {
            !self.announce.is_empty()
                || Some(version.unwrap_or(next.version)) != self.base.as_ref().map(|b| b.version)
        })
    }

    /// The positions to store for this client if the answer's generation
    /// is `generation` and the client was sent the feed up to `version`;
    /// None if nothing needs writing.
    pub fn positions(&self, generation: u64, version: Option<u64>) -> Option<Vec<Position>> {
        let moved = self.next.as_ref().map(|next| Position {
            generation,
            version: version.unwrap_or(next.version),
            ..next.clone()
        });
        let advanced = self.advances(version);
        if !advanced && !self.stale {
            return None;
        }
        let mut kept: Vec<Position> = self.base.iter().cloned().collect();
        if advanced {
            kept.extend(moved);
        }
        Some(kept)
    }
}

/// The newest position at or below `generation`, and whether any above it
/// exists.
fn base_of(positions: &[Position], generation: u64) -> (Option<Position>, bool) {
    let base = positions
        .iter()
        .filter(|p| p.generation <= generation)
        .max_by_key(|p| p.generation)
        .cloned();
    let stale = positions.iter().any(|p| p.generation > generation);
    (base, stale)
}

/// What a pull of `client` presenting `generation` does in a space the
/// user has (or had) a membership of, from the membership (which holds
/// each client's positions) and the space's head (None: the space item is
/// gone).
pub fn plan_space(
    generation: u64,
    membership: &Membership,
    client: &ClientId,
    head: Option<&SpaceHead>,
) -> SpacePull {
    let positions = membership
        .positions
        .get(client.as_str())
        .map_or(&[][..], Vec::as_slice);
    let (base, stale) = base_of(positions, generation);
    let space_id = membership.space_id.clone();
    let mut pull = SpacePull {
        space_id: space_id.clone(),
        announce: Vec::new(),
        read_after: None,
        until: 0,
        next: None,
        base: base.clone(),
        stale,
    };
    let live = head.filter(|head| !head.deleted && membership.is_current());
    let Some(head) = live else {
        // Gone for this client: say so once, if it was ever told of it.
        if let Some(base) = base.as_ref().filter(|b| !b.removed) {
            pull.announce.push(SpaceChange::removed(space_id));
            pull.next = Some(Position {
                removed: true,
                ..base.clone()
            });
        }
        return pull;
    };
    let from = match base.as_ref() {
        Some(base) if base.epoch == membership.epoch && !base.removed => {
            if base.role != membership.role || base.name_version != head.name_version {
                pull.announce.push(SpaceChange::current(
                    space_id.clone(),
                    &head.name,
                    membership.role,
                ));
            }
            base.version
        }
        Some(base) => {
            // Removed (and perhaps re-added) since: the client drops what
            // it held before the fresh state arrives.
            if !base.removed {
                pull.announce.push(SpaceChange::removed(space_id.clone()));
            }
            pull.announce.push(SpaceChange::current(
                space_id.clone(),
                &head.name,
                membership.role,
            ));
            0
        }
        None => {
            pull.announce.push(SpaceChange::current(
                space_id.clone(),
                &head.name,
                membership.role,
            ));
            0
        }
    };
    pull.read_after = Some(from);
    pull.until = head.version;
    pull.next = Some(Position {
        generation: 0,
        version: from,
        epoch: membership.epoch.clone(),
        role: membership.role,
        name_version: head.name_version,
        removed: false,
    });
    pull
}

/// A pull's answer, and the positions the store writes before sending it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    pub page: PullPage,
    /// Per space: this client's positions to store (empty: none left).
    pub writes: Vec<(SpaceId, Vec<Position>)>,
}

/// The answer to a pull presenting `cursor`: the own feed's read, then
/// each space's announcements and what was read of its feed (in the order
/// of `spaces`; None where [`SpacePull::range`] read nothing), with the
/// client's `watermark`.
pub fn assemble(
    cursor: PullCursor,
    own: FeedRead,
    watermark: u64,
    spaces: Vec<(SpacePull, Option<FeedRead>)>,
) -> Assembled {
    let own_next = next_cursor(cursor.own, &own.changes);
    let mut has_more = own.has_more;
    let mut changes = own.changes;
    let mut removals = Vec::new();
    let mut current = Vec::new();
    let read: Vec<(SpacePull, Option<u64>)> = spaces
        .into_iter()
        .map(|(pull, page)| {
            let until = match (pull.read_after, page) {
                (Some(after), Some(page)) => {
                    has_more |= page.has_more;
                    let last = next_cursor(after, &page.changes);
                    changes.extend(page.changes);
                    Some(last)
                }
                (Some(after), None) => {
                    has_more |= pull.until > after;
                    None
                }
                (None, _) => None,
            };
            (pull, until)
        })
        .collect();
    let advanced = read.iter().any(|(pull, until)| pull.advances(*until));
    let generation = cursor.generation + u64::from(advanced);
    let mut writes = Vec::new();
    for (pull, until) in read {
        for change in &pull.announce {
            if change.removed {
                removals.push(change.clone());
            } else {
                current.push(change.clone());
            }
        }
        if let Some(positions) = pull.positions(generation, until) {
            writes.push((pull.space_id, positions));
        }
    }
    // Removals first: a space left and re-joined is dropped before its
    // fresh state arrives.
    removals.extend(current);
    Assembled {
        page: PullPage {
            changes,
            spaces: removals,
            has_more,
            watermark,
            cursor: PullCursor {
                own: own_next,
                generation,
            },
        },
        writes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn space() -> SpaceId {
        SpaceId::parse("s1").unwrap()
    }

    fn membership(epoch: &str, role: Role, current: bool) -> Membership {
        Membership {
            space_id: space(),
            role,
            joined_at: Utc::now(),
            epoch: epoch.into(),
            removed_at: (!current).then(Utc::now),
            positions: Default::default(),
        }
    }

    /// `plan_space` for the client "phone" holding `positions`.
    fn plan(
        generation: u64,
        membership: &Membership,
        positions: &[Position],
        head: Option<&SpaceHead>,
    ) -> SpacePull {
        let mut membership = membership.clone();
        membership
            .positions
            .insert("phone".into(), positions.to_vec());
        let phone = ClientId::parse("phone").unwrap();
        plan_space(generation, &membership, &phone, head)
    }

    fn head(version: u64) -> SpaceHead {
        SpaceHead {
            name: "Groceries".into(),
            name_version: 0,
            version,
            deleted: false,
            compaction: Default::default(),
        }
    }

    fn position(generation: u64, version: u64, epoch: &str) -> Position {
        Position {
            generation,
            version,
            epoch: epoch.into(),
            role: Role::Editor,
            name_version: 0,
            removed: false,
        }
    }

    #[test]
    fn a_first_pull_announces_the_space_and_reads_it_whole() {
        let pull = plan(
            0,
            &membership("e1", Role::Editor, true),
            &[],
            Some(&head(7)),
        );
        assert_eq!(
            pull.announce,
            vec![SpaceChange::current(space(), "Groceries", Role::Editor)]
        );
        assert_eq!((pull.read_after, pull.until), (Some(0), 7));
        let written = pull.positions(1, Some(7)).unwrap();
        assert_eq!(written, vec![position(1, 7, "e1")]);
    }

    #[test]
    fn nothing_new_writes_nothing() {
        let pull = plan(
            3,
            &membership("e1", Role::Editor, true),
            &[position(2, 7, "e1")],
            Some(&head(7)),
        );
        assert!(pull.announce.is_empty());
        assert_eq!(pull.positions(4, None), None);
    }

    #[test]
    fn a_lost_answer_is_replayed_from_the_presented_position() {
        // Generation 3 was written but never received: the client
        // presents 2 again.
        let positions = [position(2, 5, "e1"), position(3, 9, "e1")];
        let pull = plan(
            2,
            &membership("e1", Role::Editor, true),
            &positions,
            Some(&head(9)),
        );
        assert_eq!(pull.read_after, Some(5));
        assert!(pull.stale);
        // Even when this answer does not reach the space (a full page),
        // the stale position goes.
        assert_eq!(pull.positions(3, Some(5)), Some(vec![position(2, 5, "e1")]));
    }

    #[test]
    fn a_removal_is_told_once_and_a_rejoin_starts_over() {
        let told = [position(1, 5, "e1")];
        let gone = plan(
            1,
            &membership("e1", Role::Editor, false),
            &told,
            Some(&head(5)),
        );
        assert_eq!(gone.announce, vec![SpaceChange::removed(space())]);
        assert_eq!(gone.read_after, None);
        let after = gone.positions(2, None).unwrap();
        let again = plan(
            2,
            &membership("e1", Role::Editor, false),
            &after,
            Some(&head(5)),
        );
        assert!(again.announce.is_empty());

        // Removed and re-added between two pulls: removed, then the new
        // membership, and the whole space again.
        let back = plan(
            1,
            &membership("e2", Role::Viewer, true),
            &told,
            Some(&head(8)),
        );
        assert_eq!(
            back.announce,
            vec![
                SpaceChange::removed(space()),
                SpaceChange::current(space(), "Groceries", Role::Viewer)
            ]
        );
        assert_eq!(back.read_after, Some(0));
    }

    #[test]
    fn a_deleted_space_is_gone_and_a_role_change_is_told() {
        let told = [position(1, 5, "e1")];
        let deleted = SpaceHead {
            deleted: true,
            ..head(5)
        };
        let pull = plan(
            1,
            &membership("e1", Role::Editor, true),
            &told,
            Some(&deleted),
        );
        assert_eq!(pull.announce, vec![SpaceChange::removed(space())]);
        let viewer = plan(
            1,
            &membership("e1", Role::Viewer, true),
            &told,
            Some(&head(5)),
        );
        assert_eq!(
            viewer.announce,
            vec![SpaceChange::current(space(), "Groceries", Role::Viewer)]
        );
        assert_eq!(viewer.read_after, Some(5));
    }
}
