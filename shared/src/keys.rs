//! Every key of the single table and every object key of the media bucket
//! is built here, and parsed back here: no other non-test code writes or
//! strips a prefix. Every key a user can touch starts with that user's
//! `sub`, so authorization is a prefix, never a filter.

use crate::model::ids::{ClientId, DeviceId, InvitationId, MediaId, Partition, SpaceId, UserId};

pub const PK: &str = "PK";
pub const SK: &str = "SK";

/// The change feed: a local secondary index over the user's partition,
/// sorted by `feedVer`, which only sync records carry. Read with
/// `ConsistentRead`, it never shows a later version before an earlier one.
pub const FEED: &str = "Feed";
pub const FEED_VERSION: &str = "feedVer";

const USER: &str = "USER#";
const SPACE: &str = "SPACE#";
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
const MEDIA_LOCATION: &str = "MEDIAAT#";
const PRESENCE: &str = "PRESENCE";
const DEVICE_INDEX: &str = "DEVICES";
const SPACE_ITEM: &str = "SPACE";
const MEMBER: &str = "MEMBER#";
const MEMBERSHIP: &str = "SPACEOF#";
const INVITATION: &str = "INVITE#";
const INVITATION_CODE: &str = "INVITECODE#";
const CODE: &str = "CODE";
const JANITOR: &str = "JANITOR";
const LIMIT: &str = "LIMIT#";
const RATE: &str = "RATE#";
const SCAN: &str = "SCAN";

const UPLOADS: &str = "uploads/";
const VARIANTS: &str = "media/";

/// One item of the table, named by what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKey {
    /// The user's profile (`USER#<sub>`, `PROFILE`).
    Profile { user: UserId },
    /// The version counter of a user's own records. A space's counter is
    /// on the space's own item.
    SyncVersion { user: UserId },
    /// A shared space: its name, owner, member count and (beside them, so
    /// that one read answers both) the version counter of its records.
    Space { space: SpaceId },
    /// A member of a space, as the space lists them; the role a write into
    /// the space is checked against, in the write's own transaction.
    Member { space: SpaceId, user: UserId },
    /// The same membership as the user lists it (`SPACEOF#<space>`), kept
    /// a while after the user leaves so that each of their clients learns
    /// of the removal; it holds each client's pull position in the space.
    Membership { user: UserId, space: SpaceId },
    /// An invitation into a space, as its owner lists it.
    Invitation {
        space: SpaceId,
        invitation_id: InvitationId,
    },
    /// An invitation found by its code's hash (`INVITECODE#<sha256>`,
    /// `CODE`): the code itself is never stored.
    InvitationCode { code_hash: String },
    /// A media item (ids are UUIDv7: sort order is upload order), in the
    /// uploader's partition or its space's.
    Media {
        partition: Partition,
        media_id: MediaId,
    },
    /// Where a space's photo lives (`MEDIAAT#<mediaId>`, `SPACE`): found
    /// by its id alone, as `GET /media/{mediaId}` is.
    MediaLocation { media_id: MediaId },
    /// A registered phone.
    Device { user: UserId, device_id: DeviceId },
    /// A sync client's watermark: the last mutation id applied. In the
    /// user's partition whichever partitions its mutations reach: one
    /// mutation sequence per install.
    Watermark { user: UserId, client_id: ClientId },
    /// Marks that the ready notification of a media item reached a device:
    /// stream records are redelivered, notifications must not be.
    Notified {
        user: UserId,
        media_id: MediaId,
        device_id: DeviceId,
    },
    /// A stored first response for an `Idempotency-Key`, per route.
    Idempotency {
        user: UserId,
        route: String,
        key: String,
    },
    /// A sync record (`REC#<collection>#<id>`: collection names hold no
    /// `#`).
    Record {
        partition: Partition,
        collection: String,
        record_id: String,
    },
    /// An open WebSocket of the live channel.
    Connection { user: UserId, connection_id: String },
    /// The ids of a user's open WebSockets (`PRESENCE`): a fan-out to many
    /// users reads these 100 at a time instead of querying each user.
    Presence { user: UserId },
    /// The ids of a user's devices (`DEVICES`), and whether they are all
    /// of them: a space's push fan-out reads these 100 at a time.
    DeviceIndex { user: UserId },
    /// Which user's device a push token belongs to (`PUSHTOKEN#<hash>`,
    /// `OWNER`): a token is one user's at a time. Outside every user's
    /// partition, since the token is the phone's, not the user's.
    PushToken { token_hash: String },
    /// Where the janitor's walk over the table stopped (`JANITOR`, `SCAN`).
    JanitorPosition,
    /// The count of a rate limit's window (`RATE#<policy>#<window start>`):
    /// in the user's partition (so `DELETE /me` takes it), or for what has
    /// no account yet, under the subject's hash (`LIMIT#<sha256>`).
    Rate {
        subject: RateSubject,
        policy: String,
        window: i64,
    },
}

/// Whom a rate limit counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateSubject {
    User(UserId),
    /// A hash of an e-mail address or a refresh token.
    Hashed(String),
}

impl ItemKey {
    pub fn pk(&self) -> String {
        match self {
            Self::Profile { user }
            | Self::Device { user, .. }
            | Self::Watermark { user, .. }
            | Self::Notified { user, .. }
            | Self::Idempotency { user, .. }
            | Self::Connection { user, .. }
            | Self::SyncVersion { user }
            | Self::Presence { user }
            | Self::DeviceIndex { user }
            | Self::Membership { user, .. } => user_partition(user),
            Self::Record { partition, .. } | Self::Media { partition, .. } => {
                partition_key(partition)
            }
            Self::MediaLocation { media_id } => format!("{MEDIA_LOCATION}{media_id}"),
            Self::Space { space } | Self::Member { space, .. } | Self::Invitation { space, .. } => {
                space_partition(space)
            }
            Self::PushToken { token_hash } => format!("{PUSH_TOKEN}{token_hash}"),
            Self::InvitationCode { code_hash } => format!("{INVITATION_CODE}{code_hash}"),
            Self::JanitorPosition => JANITOR.into(),
            Self::Rate { subject, .. } => match subject {
                RateSubject::User(user) => user_partition(user),
                RateSubject::Hashed(hash) => format!("{LIMIT}{hash}"),
            },
        }
    }

    pub fn sk(&self) -> String {
        match self {
            Self::Profile { .. } => PROFILE.into(),
            Self::SyncVersion { .. } => SYNC_VERSION.into(),
            Self::Media { media_id, .. } => format!("{MEDIA}{media_id}"),
            Self::Device { device_id, .. } => format!("{DEVICE}{device_id}"),
            Self::Watermark { client_id, .. } => format!("{CLIENT}{client_id}"),
            Self::Notified {
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
            Self::Space { .. } => SPACE_ITEM.into(),
            Self::Member { user, .. } => format!("{MEMBER}{user}"),
            Self::Membership { space, .. } => format!("{MEMBERSHIP}{space}"),
            Self::Invitation { invitation_id, .. } => format!("{INVITATION}{invitation_id}"),
            Self::InvitationCode { .. } => CODE.into(),
            Self::MediaLocation { .. } => SPACE_ITEM.into(),
            Self::Presence { .. } => PRESENCE.into(),
            Self::DeviceIndex { .. } => DEVICE_INDEX.into(),
            Self::JanitorPosition => SCAN.into(),
            Self::Rate { policy, window, .. } => format!("{RATE}{policy}#{window}"),
        }
    }

    /// What an item is, from its key; None for a key this crate never wrote.
    pub fn parse(pk: &str, sk: &str) -> Option<Self> {
        if pk == JANITOR {
            return (sk == SCAN).then_some(Self::JanitorPosition);
        }
        if let Some(rest) = sk.strip_prefix(RATE) {
            let (policy, window) = rest.split_once('#')?;
            let subject = match pk.strip_prefix(LIMIT) {
                Some(hash) => RateSubject::Hashed(hash.into()),
                None => RateSubject::User(parse_user_partition(pk)?),
            };
            return Some(Self::Rate {
                subject,
                policy: policy.into(),
                window: window.parse().ok()?,
            });
        }
        if let Some(token_hash) = pk.strip_prefix(PUSH_TOKEN) {
            return (sk == OWNER).then(|| Self::PushToken {
                token_hash: token_hash.into(),
            });
        }
        if let Some(media_id) = pk.strip_prefix(MEDIA_LOCATION) {
            let media_id = MediaId::parse(media_id).ok()?;
            return (sk == SPACE_ITEM).then_some(Self::MediaLocation { media_id });
        }
        if let Some(code_hash) = pk.strip_prefix(INVITATION_CODE) {
            return (sk == CODE).then(|| Self::InvitationCode {
                code_hash: code_hash.into(),
            });
        }
        let partition = parse_partition(pk)?;
        if let Some(rest) = sk.strip_prefix(RECORD) {
            let (collection, record_id) = rest.split_once('#')?;
            return Some(Self::Record {
                partition,
                collection: collection.into(),
                record_id: record_id.into(),
            });
        }
        if let Some(media_id) = sk.strip_prefix(MEDIA) {
            return Some(Self::Media {
                partition,
                media_id: MediaId::parse(media_id).ok()?,
            });
        }
        let user = match partition {
            Partition::User(user) => user,
            Partition::Space(space) => return parse_space_item(space, sk),
        };
        let key = if sk == SYNC_VERSION {
            Self::SyncVersion { user }
        } else if sk == PRESENCE {
            Self::Presence { user }
        } else if sk == DEVICE_INDEX {
            Self::DeviceIndex { user }
        } else if let Some(space) = sk.strip_prefix(MEMBERSHIP) {
            Self::Membership {
                user,
                space: SpaceId::parse(space).ok()?,
            }
        } else if sk == PROFILE {
            Self::Profile { user }
        } else if let Some(device_id) = sk.strip_prefix(DEVICE) {
            Self::Device {
                user,
                device_id: DeviceId::parse(device_id).ok()?,
            }
        } else if let Some(client_id) = sk.strip_prefix(CLIENT) {
            Self::Watermark {
                user,
                client_id: ClientId::parse(client_id).ok()?,
            }
        } else if let Some(rest) = sk.strip_prefix(PUSHED) {
            let (media_id, device_id) = rest.split_once('#')?;
            Self::Notified {
                user,
                media_id: MediaId::parse(media_id).ok()?,
                device_id: DeviceId::parse(device_id).ok()?,
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

    /// The item that marks a partition deleted, and stays when the rest
    /// goes: the account's profile, or the space's own item.
    pub fn marker(partition: &Partition) -> Self {
        match partition {
            Partition::User(user) => Self::Profile { user: user.clone() },
            Partition::Space(space) => Self::Space {
                space: space.clone(),
            },
        }
    }

    /// The item counting what a partition holds (its sync version, live
    /// records, photos): the user's sync counter, or the space's own item.
    pub fn counter(partition: &Partition) -> Self {
        match partition {
            Partition::User(user) => Self::SyncVersion { user: user.clone() },
            Partition::Space(space) => Self::Space {
                space: space.clone(),
            },
        }
    }

    /// The partition the item lives in; None for an item of no partition.
    pub fn partition(&self) -> Option<Partition> {
        Some(match self {
            Self::Profile { user }
            | Self::Device { user, .. }
            | Self::Watermark { user, .. }
            | Self::Notified { user, .. }
            | Self::Idempotency { user, .. }
            | Self::Connection { user, .. }
            | Self::SyncVersion { user }
            | Self::Presence { user }
            | Self::DeviceIndex { user }
            | Self::Membership { user, .. } => Partition::User(user.clone()),
            Self::Record { partition, .. } | Self::Media { partition, .. } => partition.clone(),
            Self::Space { space } | Self::Member { space, .. } | Self::Invitation { space, .. } => {
                Partition::Space(space.clone())
            }
            Self::PushToken { .. }
            | Self::InvitationCode { .. }
            | Self::MediaLocation { .. }
            | Self::JanitorPosition => {
                return None;
            }
            Self::Rate { subject, .. } => match subject {
                RateSubject::User(user) => Partition::User(user.clone()),
                RateSubject::Hashed(_) => return None,
            },
        })
    }
}

/// An item of a space's partition other than a record.
fn parse_space_item(space: SpaceId, sk: &str) -> Option<ItemKey> {
    if sk == SPACE_ITEM {
        return Some(ItemKey::Space { space });
    }
    if let Some(user) = sk.strip_prefix(MEMBER) {
        let user = UserId::parse(user).ok()?;
        return Some(ItemKey::Member { space, user });
    }
    let invitation_id = InvitationId::parse(sk.strip_prefix(INVITATION)?).ok()?;
    Some(ItemKey::Invitation {
        space,
        invitation_id,
    })
}

/// The partition of everything of one user.
pub fn user_partition(user: &UserId) -> String {
    format!("{USER}{user}")
}

/// The partition key of `partition`.
pub fn partition_key(partition: &Partition) -> String {
    match partition {
        Partition::User(user) => user_partition(user),
        Partition::Space(space) => space_partition(space),
    }
}

/// The partition of everything of one space.
pub fn space_partition(space: &SpaceId) -> String {
    format!("{SPACE}{space}")
}

/// The partition a key names; None for any other key (including the
/// `USER#<sub>#<collection>` partitions of the layout before the feed).
pub fn parse_partition(pk: &str) -> Option<Partition> {
    if let Some(user) = pk.strip_prefix(USER) {
        return UserId::parse(user).ok().map(Partition::User);
    }
    let space = pk.strip_prefix(SPACE)?;
    SpaceId::parse(space).ok().map(Partition::Space)
}

/// The user of a partition key; None for any other key.
pub fn parse_user_partition(pk: &str) -> Option<UserId> {
    match parse_partition(pk)? {
        Partition::User(user) => Some(user),
        Partition::Space(_) => None,
    }
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

pub fn member_prefix() -> &'static str {
    MEMBER
}

pub fn membership_prefix() -> &'static str {
    MEMBERSHIP
}

pub fn invitation_prefix() -> &'static str {
    INVITATION
}

// ---------------------------------------------------------------- objects

/// The folder of a space's objects under `uploads/` and `media/`. No
/// user's folder can be it: user ids are Cognito `sub`s (UUIDs), and a
/// space's keys have one segment more.
const SPACES: &str = "spaces";

/// The folder of a partition's objects under `uploads/` and `media/`.
fn object_folder(partition: &Partition) -> String {
    match partition {
        Partition::User(user) => user.to_string(),
        Partition::Space(space) => format!("{SPACES}/{space}"),
    }
}

/// Where a client uploads an original: `uploads/<sub>/<mediaId>`, or
/// `uploads/spaces/<space>/<mediaId>` for a space's photo.
pub fn upload_object(partition: &Partition, media_id: &MediaId) -> String {
    format!("{UPLOADS}{}/{media_id}", object_folder(partition))
}

/// An upload's key back to its partition and media id; None for any other
/// key.
pub fn parse_upload_object(key: &str) -> Option<(Partition, MediaId)> {
    let rest = key.strip_prefix(UPLOADS)?;
    let (folder, media_id) = rest.rsplit_once('/')?;
    let media_id = MediaId::parse(media_id).ok()?;
    let partition = match folder.split_once('/') {
        Some((SPACES, space)) => Partition::Space(SpaceId::parse(space).ok()?),
        Some(_) => return None,
        None if folder == SPACES => return None,
        None => Partition::User(UserId::parse(folder).ok()?),
    };
    Some((partition, media_id))
}

/// The prefix under which S3 notifies the resize function.
pub fn uploads_prefix() -> &'static str {
    UPLOADS
}

/// The prefix of every variant of a media item: what its signed URLs
/// cover.
pub fn variants_prefix(partition: &Partition, media_id: &MediaId) -> String {
    format!("{VARIANTS}{}/{media_id}/", object_folder(partition))
}

/// Where every variant lives (what the distribution may read).
pub fn variants_root() -> &'static str {
    VARIANTS
}

/// Every prefix that holds a partition's objects (originals and
/// variants): a user's own, never their spaces'.
pub fn object_prefixes(partition: &Partition) -> [String; 2] {
    let folder = object_folder(partition);
    [
        format!("{UPLOADS}{folder}/"),
        format!("{VARIANTS}{folder}/"),
    ]
}

/// Every prefix that holds a user's own objects.
pub fn user_object_prefixes(user: &UserId) -> [String; 2] {
    object_prefixes(&Partition::User(user.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.:-]{1,20}"
    }

    fn user() -> impl Strategy<Value = UserId> {
        id().prop_map(|id| UserId::parse(&id).unwrap())
    }

    fn space() -> impl Strategy<Value = SpaceId> {
        id().prop_map(|id| SpaceId::parse(&id).unwrap())
    }

    fn partition() -> impl Strategy<Value = Partition> {
        prop_oneof![
            user().prop_map(Partition::User),
            space().prop_map(Partition::Space)
        ]
    }

    fn item_key() -> impl Strategy<Value = ItemKey> {
        let media = || id().prop_map(|id| MediaId::parse(&id).unwrap());
        let device = || id().prop_map(|id| DeviceId::parse(&id).unwrap());
        prop_oneof![
            user().prop_map(|user| ItemKey::Profile { user }),
            user().prop_map(|user| ItemKey::SyncVersion { user }),
            user().prop_map(|user| ItemKey::Presence { user }),
            user().prop_map(|user| ItemKey::DeviceIndex { user }),
            space().prop_map(|space| ItemKey::Space { space }),
            (space(), user()).prop_map(|(space, user)| ItemKey::Member { space, user }),
            (user(), space()).prop_map(|(user, space)| ItemKey::Membership { user, space }),
            (space(), id()).prop_map(|(space, id)| ItemKey::Invitation {
                space,
                invitation_id: InvitationId::parse(&id).unwrap()
            }),
            "[0-9a-f]{64}".prop_map(|code_hash| ItemKey::InvitationCode { code_hash }),
            (partition(), media()).prop_map(|(partition, media_id)| ItemKey::Media {
                partition,
                media_id
            }),
            media().prop_map(|media_id| ItemKey::MediaLocation { media_id }),
            (user(), device()).prop_map(|(user, device_id)| ItemKey::Device { user, device_id }),
            (user(), id()).prop_map(|(user, client)| ItemKey::Watermark {
                user,
                client_id: ClientId::parse(&client).unwrap()
            }),
            (user(), id()).prop_map(|(user, connection_id)| ItemKey::Connection {
                user,
                connection_id
            }),
            (user(), media(), device()).prop_map(|(user, media_id, device_id)| {
                ItemKey::Notified {
                    user,
                    media_id,
                    device_id,
                }
            }),
            (user(), "(POST|GET) /[a-z/]{1,10}", "[!-~]{1,30}")
                .prop_map(|(user, route, key)| { ItemKey::Idempotency { user, route, key } }),
            (partition(), "[A-Za-z0-9_-]{1,20}", "[!-~]{1,30}").prop_map(
                |(partition, collection, record_id)| ItemKey::Record {
                    partition,
                    collection,
                    record_id
                }
            ),
            "[0-9a-f]{64}".prop_map(|token_hash| ItemKey::PushToken { token_hash }),
            Just(ItemKey::JanitorPosition),
            (user(), "[a-z-]{1,12}", any::<i64>()).prop_map(|(user, policy, window)| {
                ItemKey::Rate {
                    subject: RateSubject::User(user),
                    policy,
                    window,
                }
            }),
            ("[0-9a-f]{64}", "[a-z-]{1,12}", any::<i64>()).prop_map(|(hash, policy, window)| {
                ItemKey::Rate {
                    subject: RateSubject::Hashed(hash),
                    policy,
                    window,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_key_parses_back_to_itself(key in item_key()) {
            prop_assert_eq!(ItemKey::parse(&key.pk(), &key.sk()), Some(key.clone()));
            if let Some(partition) = key.partition() {
                prop_assert_eq!(key.pk(), partition_key(&partition));
            }
        }

        #[test]
        fn upload_objects_parse_back(partition in partition(), media in id()) {
            let media = MediaId::parse(&media).unwrap();
            let key = upload_object(&partition, &media);
            prop_assert_eq!(parse_upload_object(&key), Some((partition.clone(), media.clone())));
            prop_assert!(variants_prefix(&partition, &media).starts_with(&object_prefixes(&partition)[1]));
        }
    }

    #[test]
    fn foreign_keys_are_not_parsed() {
        assert_eq!(ItemKey::parse("ORG#x", "PROFILE"), None);
        assert_eq!(ItemKey::parse("USER#u", "SOMETHING"), None);
        assert_eq!(ItemKey::parse("USER#u#notes", "PROFILE"), None);
        assert_eq!(ItemKey::parse("USER#u#notes", "REC#n1"), None);
        // A space holds records and a counter, nothing of a person's.
        assert_eq!(ItemKey::parse("SPACE#s", "PROFILE"), None);
        for key in [
            "media/u/m",
            "uploads/u",
            "uploads//m",
            "uploads/u/m/x",
            "uploads/spaces/m",
            "uploads/other/s/m",
            "uploads/u#x/m",
        ] {
            assert_eq!(parse_upload_object(key), None, "{key}");
        }
    }
}
