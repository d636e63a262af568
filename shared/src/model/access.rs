//! Who may touch what, decided in one place.
//!
//! A handler never names a partition itself. It holds a [`Session`] (made
//! only by the store's session check, from a verified token no revocation
//! ended) and asks it for a [`Grant`]: the partition and the caller's role
//! in it. Store calls that read or write a partition take a `Grant`, and
//! only this crate makes one. Today a session is granted its own partition;
//! shared spaces add grants whose writes check the membership in their own
//! transaction.

use crate::model::ids::{Partition, SpaceId, UserId};
use crate::model::profile::Profile;

/// What a caller may do in a partition.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including deleting the partition and managing members.
    Owner,
    /// Read and write records.
    Editor,
    /// Read only.
    Viewer,
}

impl Role {
    pub fn may_write(self) -> bool {
        matches!(self, Role::Owner | Role::Editor)
    }

    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

/// A verified caller whose token no sign-out, reset or deletion revoked.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    user: UserId,
    profile: Option<Profile>,
}

impl Session {
    /// Only the session check makes one (the store: without it, none).
    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))]
    pub(crate) fn new(user: UserId, profile: Option<Profile>) -> Self {
        Self { user, profile }
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The caller's profile (None before their first sign-in).
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// The caller's own partition: theirs to read and write, with nothing
    /// to check at write time.
    pub fn own(&self) -> Grant {
        Grant {
            holder: self.user.clone(),
            partition: Partition::User(self.user.clone()),
            role: Role::Owner,
        }
    }
}

/// Access to one partition, decided for one caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    holder: UserId,
    partition: Partition,
    role: Role,
}

impl Grant {
    /// Who was granted access: their watermarks, sockets and devices live
    /// in their own partition, whichever partition this is.
    pub fn holder(&self) -> &UserId {
        &self.holder
    }

    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// A member's access to a space, with their role as the space's member
    /// item holds it (the store's space check makes it).
    #[cfg_attr(not(feature = "dynamodb"), allow(dead_code))]
    pub(crate) fn space(holder: UserId, space: SpaceId, role: Role) -> Self {
        Self {
            holder,
            partition: Partition::Space(space),
            role,
        }
    }

    /// The space this grant reaches, if it is one.
    pub fn space_id(&self) -> Option<&SpaceId> {
        match &self.partition {
            Partition::Space(space) => Some(space),
            Partition::User(_) => None,
        }
    }

    /// A user's own partition reached without a request: the store's own
    /// tests, and tools an operator runs.
    pub(crate) fn trusted(user: UserId) -> Self {
        Self {
            partition: Partition::User(user.clone()),
            holder: user,
            role: Role::Owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_granted_its_own_partition() {
        let user = UserId::parse("u-1").unwrap();
        let own = Session::new(user.clone(), None).own();
        assert_eq!(own.partition(), &Partition::User(user));
        assert!(own.role().may_write());
    }
}
