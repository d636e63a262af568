//! Shared spaces: a list, an album or a board several users share, each
//! member with one role, one owner per space, and invitations whose codes
//! are bearer secrets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::model::access::Role;
use crate::model::ids::{InvitationId, SpaceId, UserId};

/// Names are 1-100 characters, none of them a control character.
pub const MAX_NAME_CHARS: usize = 100;

/// An invitation lives a week unless its owner says otherwise, and at
/// most 30 days.
pub const DEFAULT_INVITATION_SECONDS: i64 = 7 * 24 * 3600;
pub const MAX_INVITATION_SECONDS: i64 = 30 * 24 * 3600;

/// How many times one invitation may be accepted, at most.
pub const MAX_INVITATION_USES: u32 = 100;

/// A member's removal is remembered this long, so that each of their
/// devices is told at its next pull (a device offline for longer pulls
/// from the start).
pub const REMOVAL_MEMORY_SECONDS: i64 = 30 * 24 * 3600;

/// Random bytes in an invitation code: 144 bits, so a code cannot be
/// guessed (the issue asks for at least 128).
const CODE_BYTES: usize = 18;

/// A space's name, checked.
pub fn space_name(raw: &str) -> Result<String, Error> {
    let chars = raw.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&chars) || raw.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "name must be 1-{MAX_NAME_CHARS} characters, none of them a control character"
        )));
    }
    if raw.trim().is_empty() {
        return Err(Error::invalid("name must not be blank"));
    }
    Ok(raw.to_string())
}

/// A space id an app made (so a space can be created offline): a UUID,
/// kept in its lowercase hyphenated form so one space has one id.
pub fn client_space_id(raw: &str) -> Result<SpaceId, Error> {
    let uuid = uuid::Uuid::parse_str(raw)
        .map_err(|_| Error::invalid("spaceId must be a UUID (the app may make one offline)"))?;
    Ok(SpaceId::parse(&uuid.hyphenated().to_string())?)
}

/// A fresh space id, when the app sent none.
pub fn new_space_id() -> SpaceId {
    SpaceId::parse(&uuid::Uuid::new_v4().hyphenated().to_string()).expect("a UUID is key-safe")
}

/// The space's own item: what every member reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Space {
    pub space_id: SpaceId,
    pub name: String,
    /// Counts renames, so a device learns of one at its next pull.
    #[serde(default)]
    pub name_version: u64,
    pub owner_id: UserId,
    pub created_at: DateTime<Utc>,
    /// Members now: the owner may leave only when alone.
    pub members: u32,
    /// Set once by the owner's deletion: from then on the space is gone
    /// for everyone, while its items are deleted in the background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The version counter of the space's records.
    #[serde(default)]
    pub ver: u64,
}

impl Space {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// One member as the space lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: UserId,
    /// Members see each other's e-mail address (documented): it is how
    /// people recognise who they share with.
    pub email: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// One pull position of one client in a space: how far it has read, and
/// what it was last told of the membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The generation of the pull answer that wrote it.
    #[serde(rename = "g")]
    pub generation: u64,
    /// The last version of the space's feed the client was sent.
    #[serde(rename = "v")]
    pub version: u64,
    /// The membership it was sent under (a re-join is a new one).
    #[serde(rename = "e")]
    pub epoch: String,
    /// The role it was told.
    #[serde(rename = "r")]
    pub role: Role,
    /// The space name version it was told.
    #[serde(rename = "n")]
    pub name_version: u64,
    /// The client was told it is no longer in the space.
    #[serde(rename = "x", default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// A user's membership as they list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub space_id: SpaceId,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    /// Names this membership: leaving and re-joining makes a new one.
    pub epoch: String,
    /// When the user left or was removed; the item stays a while so their
    /// devices learn of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<DateTime<Utc>>,
    /// Each client's pull positions: at most two per client, the one its
    /// last presented cursor names and the one its last answer wrote.
    #[serde(default, rename = "pos")]
    pub positions: std::collections::BTreeMap<String, Vec<Position>>,
}

impl Membership {
    pub fn is_current(&self) -> bool {
        self.removed_at.is_none()
    }
}

/// An invitation as its owner lists it (never with its code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub invitation_id: InvitationId,
    pub space_id: SpaceId,
    pub role: Role,
    pub uses_left: u32,
    /// Stored as `validUntil`: the table's TTL attribute is `expiresAt`.
    #[serde(rename = "validUntil")]
    pub expires_at: DateTime<Utc>,
    pub code_hash: String,
}

impl Invitation {
    /// Whether it may be accepted at `now`: compared here, since DynamoDB's
    /// TTL deletes an expired item only days later.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.uses_left > 0 && self.expires_at > now
    }
}

/// A new invitation code: shown once, to the owner who made it.
pub fn new_invitation_code() -> String {
    let mut bytes = [0u8; CODE_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system has randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a code: its SHA-256 (a code has 144 random bits, so
/// no slow hash is needed against guessing from the hash).
pub fn code_hash(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `code` could be one this module made: anything else is not
/// looked up at all.
pub fn plausible_code(code: &str) -> bool {
    code.len() == CODE_BYTES * 4 / 3
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The role an invitation may grant: never ownership (that is a
/// transfer).
pub fn invitable(role: Role) -> Result<Role, Error> {
    match role {
        Role::Editor | Role::Viewer => Ok(role),
        Role::Owner => Err(Error::invalid(
            "an invitation grants editor or viewer; ownership is transferred with PUT /spaces/{spaceId}/members/{userId}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(space_name("Groceries").is_ok());
        assert!(space_name(&"é".repeat(100)).is_ok());
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert!(space_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_ids_are_uuids_in_one_form() {
        let id = client_space_id("6F0E9C1A-1B2C-4D5E-8F90-123456789ABC").unwrap();
        assert_eq!(id.as_str(), "6f0e9c1a-1b2c-4d5e-8f90-123456789abc");
        assert!(client_space_id("groceries").is_err());
    }

    #[test]
    fn codes_are_long_random_and_only_their_hash_is_kept() {
        let codes: std::collections::BTreeSet<String> =
            (0..1000).map(|_| new_invitation_code()).collect();
        assert_eq!(codes.len(), 1000);
        for code in &codes {
            assert!(plausible_code(code), "{code}");
            assert_eq!(code_hash(code).len(), 64);
            assert!(!code_hash(code).contains(code.as_str()));
        }
        assert!(!plausible_code("short"));
        assert!(!plausible_code(&"a#".repeat(12)));
    }

    #[test]
    fn an_invitation_never_grants_ownership() {
        assert!(invitable(Role::Owner).is_err());
        assert_eq!(invitable(Role::Viewer).unwrap(), Role::Viewer);
    }
}
