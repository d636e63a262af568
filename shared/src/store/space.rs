//! Shared spaces in the table: the space's own item (name, owner, member
//! count, and its records' counter), a member item per member in the
//! space's partition (what a write is checked against), the same
//! membership in the member's partition (what they list, and where each
//! of their clients stands in the space), and invitations with their
//! code hashes. Every change of a membership writes both of its items in
//! one transaction.

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};

use super::{Ended, Item, Stored, Table, ended, item_key, number};
use crate::keys::{self, ItemKey};
use crate::model::access::{Grant, Role, Session};
use crate::model::ids::{InvitationId, SpaceId, UserId};
use crate::model::quota;
use crate::model::space::{
    Invitation, Member, Membership, Position, REMOVAL_MEMORY_SECONDS, Space, code_hash,
    new_invitation_code,
};
use crate::{Code, Error, adapters::aws};

/// A member's way into one space, checked: the space (live) and their role.
#[derive(Debug, Clone)]
pub struct SpaceAccess {
    pub space: Space,
    pub grant: Grant,
}

impl SpaceAccess {
    pub fn role(&self) -> Role {
        self.grant.role()
    }

    /// Refuses a role not among `allowed` with 403 `insufficient_role`
    /// (the caller is a member, so the space's existence is no secret to
    /// them).
    pub fn require(&self, allowed: &[Role]) -> Result<(), Error> {
        if allowed.contains(&self.role()) {
            Ok(())
        } else {
            Err(Error::new(
                Code::InsufficientRole,
                format!("a {} of this space may not do this", self.role().as_str()),
            ))
        }
    }
}

/// An invitation as created: its code is shown once.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub invitation: Invitation,
    pub code: String,
}

/// What accepting an invitation did.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub space: Space,
    pub role: Role,
}

/// A page of the caller's spaces.
#[derive(Debug, Clone)]
pub struct SpacePage {
    pub items: Vec<(Space, Role)>,
    pub next: Option<SpaceId>,
}

/// The stored form of an invitation code's lookup item.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeLookup {
    space_id: SpaceId,
    invitation_id: InvitationId,
}

fn space_key(space: &SpaceId) -> ItemKey {
    ItemKey::Space {
        space: space.clone(),
    }
}

pub(super) fn member_key(space: &SpaceId, user: &UserId) -> ItemKey {
    ItemKey::Member {
        space: space.clone(),
        user: user.clone(),
    }
}

fn membership_key(user: &UserId, space: &SpaceId) -> ItemKey {
    ItemKey::Membership {
        user: user.clone(),
        space: space.clone(),
    }
}

fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn put(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, Error> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_string))
                .build()
                .map_err(Error::internal)?,
        )
        .build())
}

/// A new membership in the member's partition, or a re-join over the
/// remembered removal: its positions stay, so each client sees the new
/// epoch and drops what it held before the fresh state.
fn join_membership(
    table: &str,
    user: &UserId,
    space: &SpaceId,
    role: Role,
    now: DateTime<Utc>,
) -> Result<TransactWriteItem, Error> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(item_key(&membership_key(user, space))))
        .update_expression(
            "SET spaceId = :space, #role = :role, joinedAt = :now, epoch = :epoch, pos = if_not_exists(pos, :empty) REMOVE removedAt, expiresAt",
        )
        .condition_expression("attribute_not_exists(PK) OR attribute_exists(removedAt)")
        .expression_attribute_names("#role", "role")
        .expression_attribute_values(":space", text(space.as_str()))
        .expression_attribute_values(":role", text(role.as_str()))
        .expression_attribute_values(":now", text(&now.to_rfc3339()))
        .expression_attribute_values(":epoch", text(&uuid::Uuid::new_v4().simple().to_string()))
        .expression_attribute_values(":empty", AttributeValue::M(Default::default()))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// The membership's role, in both of its items.
fn set_role(
    table: &str,
    space: &SpaceId,
    user: &UserId,
    role: Role,
) -> Result<[TransactWriteItem; 2], Error> {
    let one = |key: &ItemKey| {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(item_key(key)))
            .update_expression("SET #role = :role")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(removedAt)")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":role", text(role.as_str()))
            .build()
            .map_err(Error::internal)?;
        Ok::<_, Error>(TransactWriteItem::builder().update(update).build())
    };
    Ok([
        one(&member_key(space, user))?,
        one(&membership_key(user, space))?,
    ])
}

/// Holds a transaction to `user` being the space's owner.
fn owner_check(table: &str, space: &SpaceId, user: &UserId) -> Result<TransactWriteItem, Error> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(item_key(&space_key(space))))
        .condition_expression("ownerId = :me AND attribute_not_exists(deletedAt)")
        .expression_attribute_values(":me", text(user.as_str()))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// Moves the member count by `by`, only while the space is not deleted
/// (and, with `owner`, while they own it: a transaction may touch the
/// space's item once, so the owner's check rides on the count).
fn count_members(
    table: &str,
    space: &SpaceId,
    by: i64,
    owner: Option<&UserId>,
) -> Result<TransactWriteItem, Error> {
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(item_key(&space_key(space))))
        .update_expression("ADD members :by")
        .expression_attribute_values(":by", number(by));
    update = match owner {
        Some(owner) => update
            .condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(deletedAt) AND ownerId = :owner",
            )
            .expression_attribute_values(":owner", text(owner.as_str())),
        None => {
            update.condition_expression("attribute_exists(PK) AND attribute_not_exists(deletedAt)")
        }
    };
    let update = update.build().map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// One more member, only while the space has fewer than `limit`: joins
/// racing for the last place cannot both take it.
fn join_within(table: &str, space: &SpaceId, limit: u32) -> Result<TransactWriteItem, Error> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(item_key(&space_key(space))))
        .update_expression("ADD members :one")
        .condition_expression(
            "attribute_exists(PK) AND attribute_not_exists(deletedAt) AND members < :limit",
        )
        .expression_attribute_values(":one", number(1))
        .expression_attribute_values(":limit", number(limit))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

impl Table {
    /// Runs one transaction; false if a condition failed (a concurrent
    /// change won).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, Error> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        Ok(matches!(ended(result)?, Ended::Committed))
    }

    /// How many spaces `user` owns now.
    pub async fn spaces_owned(&self, user: &UserId) -> Result<u64, Error> {
        let memberships = self.memberships(user).await?;
        let owned = memberships
            .iter()
            .filter(|m| m.is_current() && m.role == Role::Owner);
        Ok(owned.count() as u64)
    }

    /// Creates a space owned by the caller. The same id again from a member
    /// answers the space as it is (created false); from anyone else it is
    /// `space_id_taken`.
    pub async fn create_space(
        &self,
        session: &Session,
        space_id: SpaceId,
        name: String,
    ) -> Result<(Space, bool), Error> {
        let now = Utc::now();
        let owner = session.user();
        let owned = self.spaces_owned(owner).await?;
        if let Err(full) = quota::check("spacesPerUser", owned, self.quotas.spaces_per_user) {
            // The same id again is the space made before, not a new one.
            return match self.space_access(session, &space_id).await {
                Ok(access) => Ok((access.space, false)),
                Err(_) => Err(full),
            };
        }
        let space = Space {
            space_id: space_id.clone(),
            name,
            name_version: 0,
            owner_id: owner.clone(),
            created_at: now,
            members: 1,
            deleted_at: None,
            ver: 0,
        };
        let member = Member {
            user_id: owner.clone(),
            email: session
                .profile()
                .map(|p| p.email.clone())
                .unwrap_or_default(),
            role: Role::Owner,
            joined_at: now,
        };
        let items = vec![
            put(
                &self.name,
                Stored::item(&space_key(&space_id), &space, None)?,
                Some("attribute_not_exists(PK)"),
            )?,
            put(
                &self.name,
                Stored::item(&member_key(&space_id, owner), &member, None)?,
                None,
            )?,
            join_membership(&self.name, owner, &space_id, Role::Owner, now)?,
        ];
        if self.transact(items).await? {
            return Ok((space, true));
        }
        match self.space_access(session, &space_id).await {
            Ok(access) => Ok((access.space, false)),
            Err(err) if err.code == Code::NotFound => Err(Error::new(
                Code::SpaceIdTaken,
                "another space has this id; make a new UUID",
            )),
            Err(err) => Err(err),
        }
    }

    /// The caller's access to a space: 404 `not_found` unless they are a
    /// member of it and it was not deleted (never 403: no one learns that a
    /// space they are not in exists).
    pub async fn space_access(
        &self,
        session: &Session,
        space_id: &SpaceId,
    ) -> Result<SpaceAccess, Error> {
        let items = self
            .get_consistent(vec![
                item_key(&space_key(space_id)),
                item_key(&member_key(space_id, session.user())),
            ])
            .await?;
        let mut space: Option<Space> = None;
        let mut member: Option<Member> = None;
        for item in items {
            let is_member = item
                .get(keys::SK)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with(keys::member_prefix()));
            if is_member {
                member = super::decode_each::<Member>(vec![item], "member").pop();
            } else {
                space = super::decode_each::<Space>(vec![item], "space").pop();
            }
        }
        match (space, member) {
            (Some(space), Some(member)) if !space.is_deleted() => Ok(SpaceAccess {
                grant: Grant::space(session.user().clone(), space_id.clone(), member.role),
                space,
            }),
            _ => Err(Error::not_found("space")),
        }
    }

    /// A space's members, owner first, then by when they joined.
    pub async fn members(&self, space_id: &SpaceId) -> Result<Vec<Member>, Error> {
        let items = self
            .query_prefix(&keys::space_partition(space_id), keys::member_prefix())
            .await?;
        let mut members: Vec<Member> = super::decode_each(items, "member");
        members.sort_by_key(|m| (m.role != Role::Owner, m.joined_at));
        Ok(members)
    }

    /// Every item of a partition whose sort key starts with `prefix`,
    /// read consistently.
    async fn query_prefix(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, Error> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", text(pk))
            .expression_attribute_values(":prefix", text(prefix))
            .consistent_read(true)
            .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
            .into_paginator()
            .send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(aws::classify)?;
            self.usage
                .add(page.consumed_capacity().and_then(|c| c.capacity_units()));
            items.extend(page.items.unwrap_or_default());
        }
        Ok(items)
    }

    /// Every membership of the user, current or remembered as removed,
    /// in space id order.
    pub async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, Error> {
        let items = self
            .query_prefix(&keys::user_partition(user), keys::membership_prefix())
            .await?;
        Ok(super::decode_each(items, "membership"))
    }

    /// The caller's spaces (current memberships of live spaces), in space
    /// id order, `limit` at a time after `after`.
    pub async fn list_spaces(
        &self,
        user: &UserId,
        limit: usize,
        after: Option<&SpaceId>,
    ) -> Result<SpacePage, Error> {
        let current: Vec<Membership> = self
            .memberships(user)
            .await?
            .into_iter()
            .filter(|m| m.is_current() && after.is_none_or(|after| &m.space_id > after))
            .collect();
        let spaces = self.spaces(current.iter().map(|m| &m.space_id)).await?;
        let mut items: Vec<(Space, Role)> = current
            .iter()
            .filter_map(|m| {
                let space = spaces.iter().find(|s| s.space_id == m.space_id)?;
                (!space.is_deleted()).then(|| (space.clone(), m.role))
            })
            .collect();
        items.sort_by(|a, b| a.0.space_id.cmp(&b.0.space_id));
        let next = (items.len() > limit).then(|| items[limit - 1].0.space_id.clone());
        items.truncate(limit);
        Ok(SpacePage { items, next })
    }

    /// Whether `owner` deleted this space (a retried `DELETE` finds it
    /// gone, and only queues its purge again).
    pub async fn deleted_by(&self, space: &SpaceId, owner: &UserId) -> Result<bool, Error> {
        Ok(self
            .spaces(std::iter::once(space))
            .await?
            .first()
            .is_some_and(|found| found.is_deleted() && found.owner_id == *owner))
    }

    /// The items of these spaces (deleted ones too).
    async fn spaces<'a>(
        &self,
        ids: impl Iterator<Item = &'a SpaceId>,
    ) -> Result<Vec<Space>, Error> {
        let keys = ids.map(|id| item_key(&space_key(id))).collect();
        Ok(super::decode_each(
            self.get_consistent(keys).await?,
            "space",
        ))
    }

    /// Renames the space (an owner's or editor's), telling each member's
    /// devices at their next pull.
    pub async fn rename_space(&self, access: &SpaceAccess, name: String) -> Result<Space, Error> {
        let space = &access.space.space_id;
        let update = Update::builder()
            .table_name(&self.name)
            .set_key(Some(item_key(&space_key(space))))
            .update_expression("SET #name = :name ADD nameVersion :one")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(deletedAt)")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", text(&name))
            .expression_attribute_values(":one", number(1))
            .build()
            .map_err(Error::internal)?;
        let check = ConditionCheck::builder()
            .table_name(&self.name)
            .set_key(Some(item_key(&member_key(space, access.grant.holder()))))
            .condition_expression("#role IN (:owner, :editor)")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":owner", text(Role::Owner.as_str()))
            .expression_attribute_values(":editor", text(Role::Editor.as_str()))
            .build()
            .map_err(Error::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().condition_check(check).build(),
        ];
        if !self.transact(items).await? {
            return Err(Error::not_found("space"));
        }
        Ok(Space {
            name,
            name_version: access.space.name_version + 1,
            ..access.space.clone()
        })
    }

    /// Deletes the space for everyone at once: its item is marked, and
    /// every read checks the mark. Its records, photos and invitations are
    /// removed by the background deletion.
    pub async fn delete_space(&self, access: &SpaceAccess) -> Result<(), Error> {
        let item = mark_deleted(&self.name, &access.space.space_id, access.grant.holder())?;
        if !self.transact(vec![item]).await? {
            return Err(Error::not_found("space"));
        }
        Ok(())
    }

    /// A new invitation of the space (its owner's), with its code.
    pub async fn create_invitation(
        &self,
        access: &SpaceAccess,
        role: Role,
        uses: u32,
        lifetime_seconds: i64,
    ) -> Result<NewInvitation, Error> {
        let space = &access.space.space_id;
        quota::check(
            "openInvitationsPerSpace",
            self.invitations(space).await?.len() as u64,
            self.quotas.open_invitations_per_space,
        )?;
        let code = new_invitation_code();
        let invitation = Invitation {
            invitation_id: InvitationId::parse(&uuid::Uuid::new_v4().simple().to_string())?,
            space_id: space.clone(),
            role,
            uses_left: uses,
            expires_at: Utc::now() + chrono::Duration::seconds(lifetime_seconds),
            code_hash: code_hash(&code),
        };
        // Kept a day past its end, so an expired code still reads as
        // expired rather than unknown in the owner's list.
        let ttl = invitation.expires_at.timestamp() + 24 * 3600;
        let lookup = CodeLookup {
            space_id: space.clone(),
            invitation_id: invitation.invitation_id.clone(),
        };
        let items = vec![
            put(
                &self.name,
                Stored::item(
                    &ItemKey::Invitation {
                        space: space.clone(),
                        invitation_id: invitation.invitation_id.clone(),
                    },
                    &invitation,
                    Some(ttl),
                )?,
                None,
            )?,
            put(
                &self.name,
                Stored::item(
                    &ItemKey::InvitationCode {
                        code_hash: invitation.code_hash.clone(),
                    },
                    &lookup,
                    Some(ttl),
                )?,
                Some("attribute_not_exists(PK)"),
            )?,
            owner_check(&self.name, space, access.grant.holder())?,
        ];
        if !self.transact(items).await? {
            return Err(Error::not_found("space"));
        }
        Ok(NewInvitation { invitation, code })
    }

    /// The space's invitations that can still be accepted, newest first.
    pub async fn invitations(&self, space_id: &SpaceId) -> Result<Vec<Invitation>, Error> {
        let items = self
            .query_prefix(&keys::space_partition(space_id), keys::invitation_prefix())
            .await?;
        let now = Utc::now();
        let mut live: Vec<Invitation> = super::decode_each::<Invitation>(items, "invitation")
            .into_iter()
            .filter(|i| i.is_live(now))
            .collect();
        live.sort_by_key(|i| std::cmp::Reverse(i.expires_at));
        Ok(live)
    }

    /// Revokes an invitation: its code stops working at once.
    pub async fn revoke_invitation(
        &self,
        space_id: &SpaceId,
        invitation_id: &InvitationId,
    ) -> Result<(), Error> {
        let key = ItemKey::Invitation {
            space: space_id.clone(),
            invitation_id: invitation_id.clone(),
        };
        let Some(stored) = self.get::<Stored<Invitation>>(&key).await? else {
            return Err(Error::not_found("invitation"));
        };
        let delete = |key: &ItemKey| {
            Delete::builder()
                .table_name(&self.name)
                .set_key(Some(item_key(key)))
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
                .map_err(Error::internal)
        };
        let items = vec![
            delete(&key)?,
            delete(&ItemKey::InvitationCode {
                code_hash: stored.value.code_hash,
            })?,
        ];
        self.transact(items).await?;
        Ok(())
    }

    /// Joins the caller to the space of a live invitation code with its
    /// role. A current member accepting again changes nothing (even with
    /// a used-up code); an unknown, revoked, expired or used-up code, or
    /// one of a deleted space, is 404.
    pub async fn accept_invitation(
        &self,
        session: &Session,
        code: &str,
    ) -> Result<Accepted, Error> {
        let unknown = || Error::not_found("invitation");
        let lookup: Option<Stored<CodeLookup>> = self
            .get(&ItemKey::InvitationCode {
                code_hash: code_hash(code),
            })
            .await?;
        let lookup = lookup.ok_or_else(unknown)?.value;
        for _ in 0..4 {
            if let Ok(access) = self.space_access(session, &lookup.space_id).await {
                return Ok(Accepted {
                    role: access.role(),
                    space: access.space,
                });
            }
            let invitation_key = ItemKey::Invitation {
                space: lookup.space_id.clone(),
                invitation_id: lookup.invitation_id.clone(),
            };
            let invitation: Option<Stored<Invitation>> = self.get(&invitation_key).await?;
            let invitation = invitation.ok_or_else(unknown)?.value;
            let now = Utc::now();
            if !invitation.is_live(now) {
                return Err(unknown());
            }
            let space = self
                .spaces(std::iter::once(&lookup.space_id))
                .await?
                .pop()
                .filter(|s| !s.is_deleted())
                .ok_or_else(unknown)?;
            let limit = self.quotas.members_per_space;
            quota::check("membersPerSpace", u64::from(space.members), limit)?;
            let user = session.user();
            let member = Member {
                user_id: user.clone(),
                email: session
                    .profile()
                    .map(|p| p.email.clone())
                    .unwrap_or_default(),
                role: invitation.role,
                joined_at: now,
            };
            let spend = Update::builder()
                .table_name(&self.name)
                .set_key(Some(item_key(&invitation_key)))
                .update_expression("SET usesLeft = :left")
                .condition_expression("usesLeft = :read")
                .expression_attribute_values(":left", number(invitation.uses_left - 1))
                .expression_attribute_values(":read", number(invitation.uses_left))
                .build()
                .map_err(Error::internal)?;
            let items = vec![
                TransactWriteItem::builder().update(spend).build(),
                join_within(&self.name, &space.space_id, limit)?,
                put(
                    &self.name,
                    Stored::item(&member_key(&space.space_id, user), &member, None)?,
                    Some("attribute_not_exists(PK)"),
                )?,
                join_membership(&self.name, user, &space.space_id, invitation.role, now)?,
            ];
            if self.transact(items).await? {
                return Ok(Accepted {
                    role: invitation.role,
                    space: Space {
                        members: space.members + 1,
                        ..space
                    },
                });
            }
        }
        Err(Error::unavailable(std::io::Error::other(
            "accepting kept racing other changes of the space",
        )))
    }

    /// Sets a member's role (the owner's call). `Owner` transfers the
    /// space: the old owner becomes an editor.
    pub async fn change_role(
        &self,
        access: &SpaceAccess,
        user: &UserId,
        role: Role,
    ) -> Result<(), Error> {
        let space = &access.space.space_id;
        let owner = access.grant.holder();
        if user == owner {
            return match role {
                Role::Owner => Ok(()),
                _ => Err(Error::new(
                    Code::OwnerMustTransfer,
                    "the owner keeps the owner role until they transfer it to another member",
                )),
            };
        }
        let mut items = Vec::with_capacity(6);
        items.extend(set_role(&self.name, space, user, role)?);
        if role == Role::Owner {
            items.extend(set_role(&self.name, space, owner, Role::Editor)?);
            let update = Update::builder()
                .table_name(&self.name)
                .set_key(Some(item_key(&space_key(space))))
                .update_expression("SET ownerId = :new")
                .condition_expression("ownerId = :me AND attribute_not_exists(deletedAt)")
                .expression_attribute_values(":new", text(user.as_str()))
                .expression_attribute_values(":me", text(owner.as_str()))
                .build()
                .map_err(Error::internal)?;
            items.push(TransactWriteItem::builder().update(update).build());
        } else {
            items.push(owner_check(&self.name, space, owner)?);
        }
        if !self.transact(items).await? {
            return Err(Error::not_found("member"));
        }
        Ok(())
    }

    /// Removes a member (the owner's call, or the member's own: leaving).
    /// The owner may leave only when alone, which deletes the space.
    pub async fn remove_member(&self, access: &SpaceAccess, user: &UserId) -> Result<(), Error> {
        let space = &access.space.space_id;
        let caller = access.grant.holder();
        let leaving = user == caller;
        if !leaving {
            access.require(&[Role::Owner])?;
        }
        if leaving && access.role() == Role::Owner {
            if access.space.members > 1 {
                return Err(Error::new(
                    Code::OwnerMustTransfer,
                    "transfer ownership to another member before leaving",
                ));
            }
            // The last member leaving: the space goes, for its only member.
            return self.delete_space(access).await;
        }
        let now = Utc::now();
        let delete = Delete::builder()
            .table_name(&self.name)
            .set_key(Some(item_key(&member_key(space, user))))
            .condition_expression("attribute_exists(PK) AND #role <> :owner")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":owner", text(Role::Owner.as_str()))
            .build()
            .map_err(Error::internal)?;
        let remembered = Update::builder()
            .table_name(&self.name)
            .set_key(Some(item_key(&membership_key(user, space))))
            .update_expression("SET removedAt = :now, expiresAt = :until")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(removedAt)")
            .expression_attribute_values(":now", text(&now.to_rfc3339()))
            .expression_attribute_values(":until", number(now.timestamp() + REMOVAL_MEMORY_SECONDS))
            .build()
            .map_err(Error::internal)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(remembered).build(),
            count_members(&self.name, space, -1, (!leaving).then_some(caller))?,
        ];
        if !self.transact(items).await? {
            return Err(Error::not_found("member"));
        }
        Ok(())
    }

    /// Stores this client's positions in each space (an empty list forgets
    /// them). A membership deleted meanwhile (its account went) is skipped.
    pub async fn write_positions(
        &self,
        user: &UserId,
        client: &crate::model::ids::ClientId,
        writes: &[(SpaceId, Vec<Position>)],
    ) -> Result<(), Error> {
        for (space, positions) in writes {
            let mut update = self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(item_key(&membership_key(user, space))))
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_names("#client", client.as_str());
            update = if positions.is_empty() {
                update.update_expression("REMOVE pos.#client")
            } else {
                update
                    .update_expression("SET pos.#client = :positions")
                    .expression_attribute_values(
                        ":positions",
                        serde_dynamo::to_attribute_value(positions).map_err(Error::internal)?,
                    )
            };
            match update.send().await {
                Ok(_) => self.usage.add(None),
                Err(err) if aws::error_code(&err) == Some("ConditionalCheckFailedException") => {}
                Err(err) => return Err(aws::classify(err)),
            }
        }
        Ok(())
    }
}

impl Table {
    /// `by`'s access to `space`, as a route's caller would have it.
    async fn access_of(&self, by: &UserId, space: &SpaceId) -> Result<SpaceAccess, Error> {
        self.space_access(&Session::new(by.clone(), None), space)
            .await
    }

    /// The owner's access to `space`: what inviting, re-roling and deleting
    /// take.
    async fn owner_access(&self, owner: &UserId, space: &SpaceId) -> Result<SpaceAccess, Error> {
        let access = self.access_of(owner, space).await?;
        access.require(&[Role::Owner])?;
        Ok(access)
    }
}

/// The spaces routes' success paths, for the conformance suite: each
/// call goes through the same store calls as its route.
impl crate::sync::store::Memberships for Table {
    async fn create_space(&self, owner: &UserId, space: &SpaceId, name: &str) -> Result<(), Error> {
        let session = Session::new(owner.clone(), None);
        let (_, created) = Table::create_space(self, &session, space.clone(), name.into()).await?;
        if created {
            Ok(())
        } else {
            Err(Error::new(Code::SpaceIdTaken, "the space existed"))
        }
    }

    async fn add_member(
        &self,
        owner: &UserId,
        space: &SpaceId,
        user: &UserId,
        role: Role,
    ) -> Result<(), Error> {
        let access = self.owner_access(owner, space).await?;
        let invitation = self.create_invitation(&access, role, 1, 600).await?;
        self.accept_invitation(&Session::new(user.clone(), None), &invitation.code)
            .await?;
        Ok(())
    }

    async fn set_role(
        &self,
        owner: &UserId,
        space: &SpaceId,
        user: &UserId,
        role: Role,
    ) -> Result<(), Error> {
        let access = self.owner_access(owner, space).await?;
        self.change_role(&access, user, role).await
    }

    async fn remove_member(
        &self,
        by: &UserId,
        space: &SpaceId,
        user: &UserId,
    ) -> Result<(), Error> {
        let access = self.access_of(by, space).await?;
        Table::remove_member(self, &access, user).await
    }

    async fn delete_space(&self, owner: &UserId, space: &SpaceId) -> Result<(), Error> {
        let access = self.owner_access(owner, space).await?;
        Table::delete_space(self, &access).await
    }
}

impl Table {
    /// The account's deletion leaves every space: a space the user owns
    /// passes to its longest-standing other member, or is deleted when
    /// nobody else is in it. The records they wrote stay: they are the
    /// space's. Safe to run again (what is done is skipped). Returns the
    /// spaces left.
    pub async fn leave_every_space(&self, user: &UserId) -> Result<usize, Error> {
        let mut left = 0;
        for membership in self.memberships(user).await? {
            if !membership.is_current() {
                continue;
            }
            let space = &membership.space_id;
            let Some(found) = self.spaces(std::iter::once(space)).await?.pop() else {
                continue;
            };
            if found.is_deleted() {
                continue;
            }
            let leave = Delete::builder()
                .table_name(&self.name)
                .set_key(Some(item_key(&member_key(space, user))))
                .condition_expression("attribute_exists(PK)")
                .build()
                .map_err(Error::internal)?;
            let mut items = vec![TransactWriteItem::builder().delete(leave).build()];
            if found.owner_id == *user {
                let heir = self
                    .members(space)
                    .await?
                    .into_iter()
                    .filter(|m| &m.user_id != user)
                    .min_by_key(|m| m.joined_at);
                match heir {
                    None => {
                        items.push(mark_deleted(&self.name, space, user)?);
                    }
                    Some(heir) => {
                        let update = Update::builder()
                            .table_name(&self.name)
                            .set_key(Some(item_key(&space_key(space))))
                            .update_expression("SET ownerId = :heir ADD members :minus")
                            .condition_expression(
                                "ownerId = :me AND attribute_not_exists(deletedAt)",
                            )
                            .expression_attribute_values(":heir", text(heir.user_id.as_str()))
                            .expression_attribute_values(":me", text(user.as_str()))
                            .expression_attribute_values(":minus", number(-1))
                            .build()
                            .map_err(Error::internal)?;
                        items.push(TransactWriteItem::builder().update(update).build());
                        items.extend(set_role(&self.name, space, &heir.user_id, Role::Owner)?);
                    }
                }
            } else {
                items.push(count_members(&self.name, space, -1, None)?);
            }
            if self.transact(items).await? {
                left += 1;
            }
        }
        Ok(left)
    }
}

/// Marks the space deleted, only by its owner and once.
fn mark_deleted(table: &str, space: &SpaceId, owner: &UserId) -> Result<TransactWriteItem, Error> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(item_key(&space_key(space))))
        .update_expression("SET deletedAt = :now")
        .condition_expression("ownerId = :me AND attribute_not_exists(deletedAt)")
        .expression_attribute_values(":now", text(&Utc::now().to_rfc3339()))
        .expression_attribute_values(":me", text(owner.as_str()))
        .build()
        .map_err(Error::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}
