//! Ids, parsed once at the edge into types that cannot be swapped: a user id
//! where a client id belongs is a compile error, not a key that silently
//! names the wrong item. Each keeps the alphabet its keys allow (never `#`
//! or `/`, which separate key parts).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an id that failed to parse was meant to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 1-{max} of [A-Za-z0-9_.:-]")]
pub struct InvalidId {
    pub what: &'static str,
    pub max: usize,
}

impl From<InvalidId> for crate::Error {
    fn from(err: InvalidId) -> Self {
        crate::Error::invalid(err.to_string())
    }
}

/// 1-`max` of `[A-Za-z0-9_.:-]`.
fn key_safe(raw: &str, max: usize) -> bool {
    (1..=max).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                if key_safe(raw, $max) {
                    Ok(Self(raw.to_string()))
                } else {
                    Err(InvalidId { what: $what, max: $max })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(raw: String) -> Result<Self, InvalidId> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

id!(
    /// A user: the Cognito `sub`.
    UserId,
    "a user id",
    128
);
id!(
    /// A shared space (a list, an album, a board).
    SpaceId,
    "a space id",
    128
);
id!(
    /// An invitation into a space (not its code, which is a secret).
    InvitationId,
    "an invitation id",
    64
);
id!(
    /// One install of the app: the sync client id, whose mutation ids are
    /// consecutive and whose stamps it signs.
    ClientId,
    "clientId",
    64
);
id!(
    /// A photo (UUIDv7: sort order is upload order).
    MediaId,
    "a media id",
    128
);
id!(
    /// A registered phone (the same alphabet as client ids: apps use one
    /// for both).
    DeviceId,
    "a device id",
    64
);

/// Where an item lives: a user's own partition, or a shared space's.
/// Records, their version counter and photos live in one; what belongs to
/// a person (profile, devices, watermarks, sockets) lives in the user's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Partition {
    User(UserId),
    Space(SpaceId),
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::User(user) => write!(f, "user {user}"),
            Partition::Space(space) => write!(f, "space {space}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_to_the_key_alphabet() {
        assert!(UserId::parse("6f0e9c1a-1b2c-4d5e-8f90-123456789abc").is_ok());
        for bad in ["", "a#b", "a/b", "a b", &"x".repeat(65)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ClientId::parse("").unwrap_err().to_string(),
            "clientId must be 1-64 of [A-Za-z0-9_.:-]"
        );
        let id: DeviceId = serde_json::from_str("\"phone-1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"phone-1\"");
        assert!(serde_json::from_str::<DeviceId>("\"no spaces\"").is_err());
    }
}
