//! Every key of the single table and every object key of the media bucket
//! is built here, and parsed back here: no other non-test code writes or
//! strips a prefix. Every key a user can touch starts with that user's
//! `sub`, so authorization is a prefix, never a filter.

pub const PK: &str = "PK";
pub const SK: &str = "SK";

/// The change feed: a local secondary index over the user's partition,
/// sorted by `feedVer`, which only sync records carry. Read with
/// `ConsistentRead`, it never shows a later version before an earlier one.
pub const FEED: &str = "Feed";
pub const FEED_VERSION: &str = "feedVer";

const USER: &str = "USER#";
const PROFILE: &str = "PROFILE";
const SYNC_VERSION: &str = "SYNCVER";
const MEDIA: &str = "MEDIA#";
const DEVICE: &str = "DEVICE#";
const CLIENT: &str = "CLIENT#";
const PUSHED: &str = "PUSHED#";
const IDEMPOTENCY: &str = "IDEMPOTENCY#";
const RECORD: &str = "REC#";
const CONNECTION: &str = "CONN#";
const PUSH_TOKEN: &str = "PUSHTOKEN#";
const OWNER: &str = "OWNER";

const UPLOADS: &str = "uploads/";
const VARIANTS: &str = "media/";

/// One item of the table, named by what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKey {
    /// The user's profile (`USER#<sub>`, `PROFILE`).
    Profile { user: String },
    /// The user's sync version counter.
    SyncVersion { user: String },
    /// A media item (ids are UUIDv7: sort order is upload order).
    Media { user: String, media_id: String },
    /// A registered phone.
    Device { user: String, device_id: String },
    /// A sync client's watermark: the last mutation id applied.
    Client { user: String, client_id: String },
    /// Marks that the ready push of a media item reached a device: stream
    /// records are redelivered, pushes must not be.
    Pushed {
        user: String,
        media_id: String,
        device_id: String,
    },
    /// A stored first response for an `Idempotency-Key`, per route.
    Idempotency {
        user: String,
        route: String,
        key: String,
    },
    /// A sync record, in its user's partition (`REC#<collection>#<id>`:
    /// collection names hold no `#`).
    Record {
        user: String,
        collection: String,
        record_id: String,
    },
    /// An open WebSocket of the live channel.
    Connection { user: String, connection_id: String },
    /// Which user's device a push token belongs to (`PUSHTOKEN#<hash>`,
    /// `OWNER`): a token is one user's at a time. Outside every user's
    /// partition, since the token is the phone's, not the user's.
    PushToken { token_hash: String },
}

impl ItemKey {
    pub fn pk(&self) -> String {
        match self {
            Self::Profile { user }
            | Self::SyncVersion { user }
            | Self::Media { user, .. }
            | Self::Device { user, .. }
            | Self::Client { user, .. }
            | Self::Pushed { user, .. }
            | Self::Idempotency { user, .. }
            | Self::Record { user, .. }
            | Self::Connection { user, .. } => user_partition(user),
            Self::PushToken { token_hash } => format!("{PUSH_TOKEN}{token_hash}"),
        }
    }

    pub fn sk(&self) -> String {
        match self {
            Self::Profile { .. } => PROFILE.into(),
            Self::SyncVersion { .. } => SYNC_VERSION.into(),
            Self::Media { media_id, .. } => format!("{MEDIA}{media_id}"),
            Self::Device { device_id, .. } => format!("{DEVICE}{device_id}"),
            Self::Client { client_id, .. } => format!("{CLIENT}{client_id}"),
            Self::Pushed {
                media_id,
                device_id,
                ..
            } => format!("{PUSHED}{media_id}#{device_id}"),
            Self::Idempotency { route, key, .. } => format!("{IDEMPOTENCY}{route}#{key}"),
            Self::Record {
                collection,
                record_id,
                ..
            } => format!("{RECORD}{collection}#{record_id}"),
            Self::Connection { connection_id, .. } => format!("{CONNECTION}{connection_id}"),
            Self::PushToken { .. } => OWNER.into(),
        }
    }

    /// What an item is, from its key; None for a key this crate never wrote.
    pub fn parse(pk: &str, sk: &str) -> Option<Self> {
        if let Some(token_hash) = pk.strip_prefix(PUSH_TOKEN) {
            return (sk == OWNER).then(|| Self::PushToken {
                token_hash: token_hash.into(),
            });
        }
        let user = parse_user_partition(pk)?.to_string();
        let key = if sk == PROFILE {
            Self::Profile { user }
        } else if sk == SYNC_VERSION {
            Self::SyncVersion { user }
        } else if let Some(media_id) = sk.strip_prefix(MEDIA) {
            Self::Media {
                user,
                media_id: media_id.into(),
            }
        } else if let Some(device_id) = sk.strip_prefix(DEVICE) {
            Self::Device {
                user,
                device_id: device_id.into(),
            }
        } else if let Some(client_id) = sk.strip_prefix(CLIENT) {
            Self::Client {
                user,
                client_id: client_id.into(),
            }
        } else if let Some(rest) = sk.strip_prefix(PUSHED) {
            let (media_id, device_id) = rest.split_once('#')?;
            Self::Pushed {
                user,
                media_id: media_id.into(),
                device_id: device_id.into(),
            }
        } else if let Some(rest) = sk.strip_prefix(RECORD) {
            let (collection, record_id) = rest.split_once('#')?;
            Self::Record {
                user,
                collection: collection.into(),
                record_id: record_id.into(),
            }
        } else if let Some(connection_id) = sk.strip_prefix(CONNECTION) {
            Self::Connection {
                user,
                connection_id: connection_id.into(),
            }
        } else if let Some(rest) = sk.strip_prefix(IDEMPOTENCY) {
            // Routes hold no '#'; keys may.
            let (route, key) = rest.split_once('#')?;
            Self::Idempotency {
                user,
                route: route.into(),
                key: key.into(),
            }
        } else {
            return None;
        };
        Some(key)
    }

    /// The user the item belongs to; None for an item of no one user's.
    pub fn user(&self) -> Option<&str> {
        Some(match self {
            Self::Profile { user }
            | Self::SyncVersion { user }
            | Self::Media { user, .. }
            | Self::Device { user, .. }
            | Self::Client { user, .. }
            | Self::Pushed { user, .. }
            | Self::Idempotency { user, .. }
            | Self::Record { user, .. }
            | Self::Connection { user, .. } => user,
            Self::PushToken { .. } => return None,
        })
    }
}

/// The partition of everything of one user.
pub fn user_partition(user: &str) -> String {
    format!("{USER}{user}")
}

/// The user of a partition key; None for any other key (including the
/// `USER#<sub>#<collection>` partitions of the layout before the feed).
pub fn parse_user_partition(pk: &str) -> Option<&str> {
    pk.strip_prefix(USER).filter(|user| !user.contains('#'))
}

/// The sort-key prefix shared by every item of one family, for
/// `begins_with` queries over a user's partition.
pub fn media_prefix() -> &'static str {
    MEDIA
}

pub fn device_prefix() -> &'static str {
    DEVICE
}

pub fn connection_prefix() -> &'static str {
    CONNECTION
}

// ---------------------------------------------------------------- objects

/// Where a client uploads an original: `uploads/<sub>/<mediaId>`.
pub fn upload_object(user: &str, media_id: &str) -> String {
    format!("{UPLOADS}{user}/{media_id}")
}

/// `uploads/<sub>/<mediaId>` back to (sub, mediaId); None for any other key.
pub fn parse_upload_object(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(UPLOADS)?;
    let (user, media_id) = rest.split_once('/')?;
    let valid = |s: &str| !s.is_empty() && !s.contains('/') && !s.contains('#');
    (valid(user) && valid(media_id)).then_some((user, media_id))
}

/// The prefix under which S3 notifies the resize function.
pub fn uploads_prefix() -> &'static str {
    UPLOADS
}

/// The prefix of every variant of a media item.
pub fn variants_prefix(user: &str, media_id: &str) -> String {
    format!("{VARIANTS}{user}/{media_id}/")
}

/// Where every variant lives (what the distribution may read).
pub fn variants_root() -> &'static str {
    VARIANTS
}

/// Every prefix that holds a user's objects (originals and variants).
pub fn user_object_prefixes(user: &str) -> [String; 2] {
    [format!("{UPLOADS}{user}/"), format!("{VARIANTS}{user}/")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.:-]{1,20}"
    }

    fn item_key() -> impl Strategy<Value = ItemKey> {
        prop_oneof![
            id().prop_map(|user| ItemKey::Profile { user }),
            id().prop_map(|user| ItemKey::SyncVersion { user }),
            (id(), id()).prop_map(|(user, media_id)| ItemKey::Media { user, media_id }),
            (id(), id()).prop_map(|(user, device_id)| ItemKey::Device { user, device_id }),
            (id(), id()).prop_map(|(user, client_id)| ItemKey::Client { user, client_id }),
            (id(), id()).prop_map(|(user, connection_id)| ItemKey::Connection {
                user,
                connection_id
            }),
            (id(), id(), id()).prop_map(|(user, media_id, device_id)| ItemKey::Pushed {
                user,
                media_id,
                device_id
            }),
            (id(), "(POST|GET) /[a-z/]{1,10}", "[!-~]{1,30}")
                .prop_map(|(user, route, key)| { ItemKey::Idempotency { user, route, key } }),
            (id(), "[A-Za-z0-9_-]{1,20}", "[!-~]{1,30}").prop_map(
                |(user, collection, record_id)| ItemKey::Record {
                    user,
                    collection,
                    record_id
                }
            ),
            "[0-9a-f]{64}".prop_map(|token_hash| ItemKey::PushToken { token_hash }),
        ]
    }

    proptest! {
        #[test]
        fn every_key_parses_back_to_itself(key in item_key()) {
            prop_assert_eq!(ItemKey::parse(&key.pk(), &key.sk()), Some(key.clone()));
            if let Some(user) = key.user() {
                prop_assert!(key.pk().starts_with(&user_partition(user)));
            }
        }

        #[test]
        fn upload_objects_parse_back(user in id(), media in id()) {
            let key = upload_object(&user, &media);
            prop_assert_eq!(parse_upload_object(&key), Some((user.as_str(), media.as_str())));
        }
    }

    #[test]
    fn foreign_keys_are_not_parsed() {
        assert_eq!(ItemKey::parse("ORG#x", "PROFILE"), None);
        assert_eq!(ItemKey::parse("USER#u", "SOMETHING"), None);
        assert_eq!(ItemKey::parse("USER#u#notes", "PROFILE"), None);
        assert_eq!(ItemKey::parse("USER#u#notes", "REC#n1"), None);
        for key in [
            "media/u/m",
            "uploads/u",
            "uploads//m",
            "uploads/u/m/x",
            "uploads/u#x/m",
        ] {
            assert_eq!(parse_upload_object(key), None, "{key}");
        }
    }
}
