//! A table stream record, decoded once into what changed, in the store's
//! terms: the stream consumers (`notify`, `poke`) read this, never the
//! attribute names or status strings of the items.

use serde::Deserialize;

use crate::keys::ItemKey;
use crate::model::ids::{ClientId, MediaId, Partition, SpaceId, UserId};
use crate::model::media::Status;

/// A change some consumer acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum TableChange {
    /// A sync record was written in `partition`, taking feed `version`.
    Record {
        partition: Partition,
        version: u64,
        /// The client whose push wrote it (None for an operator's write):
        /// that app is not poked for its own change.
        origin: Option<ClientId>,
        /// The user whose client that is (a space's records are written by
        /// many users; None in records from before spaces, which are the
        /// partition's own user's).
        origin_user: Option<UserId>,
    },
    /// A user's membership of a space began, changed role, or ended: the
    /// user is poked (a pull tells what changed). Writes of the pull
    /// positions alone are not this.
    Membership { user: UserId, space: SpaceId },
    /// A media item's status was written.
    Media {
        partition: Partition,
        /// Who uploaded it (None in items written before spaces: the
        /// partition's own user).
        uploader: Option<UserId>,
        media_id: MediaId,
        status: Status,
        /// The status before (None for a new item).
        previous: Option<Status>,
    },
}

/// Who pushed a batch's changes of one space: a user's app each, or
/// (None, None) an operator's. A consumer tells each member's own pushing
/// apps from everyone else's: those apps are not poked for their change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pushers(std::collections::BTreeSet<(Option<UserId>, Option<ClientId>)>);

impl Pushers {
    pub fn insert(&mut self, user: Option<UserId>, client: Option<ClientId>) {
        self.0.insert((user, client));
    }

    /// The pushers as `member` sees them: their own apps by client id,
    /// anyone else's as None.
    pub fn as_seen_by<'a>(
        &'a self,
        member: &'a UserId,
    ) -> impl Iterator<Item = Option<ClientId>> + 'a {
        self.0.iter().map(move |(user, client)| {
            if user.as_ref() == Some(member) {
                client.clone()
            } else {
                None
            }
        })
    }
}

/// The attributes of an image the consumers read.
#[derive(Deserialize)]
struct Image {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    status: Option<Status>,
    origin: Option<String>,
    #[serde(rename = "originUser")]
    origin_user: Option<String>,
    role: Option<String>,
    epoch: Option<String>,
    #[serde(rename = "removedAt")]
    removed_at: Option<String>,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    #[serde(rename = "feedVer")]
    feed_version: Option<u64>,
}

fn image(item: &serde_dynamo::Item) -> Option<Image> {
    if item.is_empty() {
        return None;
    }
    serde_dynamo::from_item(item.clone()).ok()
}

impl TableChange {
    /// From a stream record's event name and images. None for what no
    /// consumer acts on: removals, other items, and images that do not
    /// decode (an item this code never wrote is no one's change).
    pub fn decode(
        event_name: &str,
        new: &serde_dynamo::Item,
        old: &serde_dynamo::Item,
    ) -> Option<Self> {
        if event_name == "REMOVE" {
            return None;
        }
        let new = image(new)?;
        match ItemKey::parse(&new.pk, &new.sk)? {
            ItemKey::Record { partition, .. } => Some(TableChange::Record {
                partition,
                version: new.feed_version?,
                origin: new.origin.and_then(|origin| ClientId::parse(&origin).ok()),
                origin_user: new.origin_user.and_then(|user| UserId::parse(&user).ok()),
            }),
            ItemKey::Membership { user, space } => {
                let old = image(old);
                let same = old.is_some_and(|old| {
                    (&old.role, &old.epoch, &old.removed_at)
                        == (&new.role, &new.epoch, &new.removed_at)
                });
                (!same).then_some(TableChange::Membership { user, space })
            }
            ItemKey::Media {
                partition,
                media_id,
            } => Some(TableChange::Media {
                uploader: new.user_id.and_then(|user| UserId::parse(&user).ok()),
                partition,
                media_id,
                status: new.status?,
                previous: image(old).and_then(|old| old.status),
            }),
            _ => None,
        }
    }
}

impl TableChange {
    /// A photo that reached `ready` or `failed` with this write, in its
    /// partition.
    pub fn finished_media(&self) -> Option<(&Partition, &MediaId, Status)> {
        match self {
            TableChange::Media {
                partition,
                media_id,
                status: status @ (Status::Ready | Status::Failed),
                previous,
                ..
            } if previous.as_ref() != Some(status) => Some((partition, media_id, *status)),
            _ => None,
        }
    }

    /// A photo that became `ready` from `pending` (or new) with this write,
    /// and who uploaded it (whose devices are told).
    pub fn newly_ready_media(&self) -> Option<(&UserId, &MediaId)> {
        match self {
            TableChange::Media {
                partition,
                uploader,
                media_id,
                status: Status::Ready,
                previous: None | Some(Status::Pending),
            } => {
                let uploader = match (uploader, partition) {
                    (Some(uploader), _) => uploader,
                    (None, Partition::User(user)) => user,
                    (None, Partition::Space(_)) => return None,
                };
                Some((uploader, media_id))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: serde_json::Value) -> serde_dynamo::Item {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn records_and_finished_photos_decode_and_the_rest_is_nothing() {
        let record = item(json!({
            "PK": {"S": "USER#u"}, "SK": {"S": "REC#notes#n1"},
            "feedVer": {"N": "7"}, "origin": {"S": "phone"}
        }));
        assert_eq!(
            TableChange::decode("MODIFY", &record, &item(json!({}))),
            Some(TableChange::Record {
                partition: Partition::User(UserId::parse("u").unwrap()),
                version: 7,
                origin: ClientId::parse("phone").ok(),
                origin_user: None,
            })
        );
        // A membership's role, epoch or end is a change; its positions
        // (written by every pull) are not.
        let membership = |role: &str, pos: u64| {
            item(
                json!({"PK": {"S": "USER#u"}, "SK": {"S": "SPACEOF#s"}, "role": {"S": role},
                        "epoch": {"S": "e1"}, "pos": {"M": {"phone": {"N": pos.to_string()}}}}),
            )
        };
        assert_eq!(
            TableChange::decode("MODIFY", &membership("editor", 2), &membership("editor", 1)),
            None
        );
        assert_eq!(
            TableChange::decode("MODIFY", &membership("viewer", 2), &membership("editor", 1)),
            Some(TableChange::Membership {
                user: UserId::parse("u").unwrap(),
                space: SpaceId::parse("s").unwrap()
            })
        );
        let media = |status: &str| {
            item(json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "status": {"S": status}}))
        };
        let ready = TableChange::decode("MODIFY", &media("ready"), &media("pending")).unwrap();
        assert!(ready.newly_ready_media().is_some() && ready.finished_media().is_some());
        let again = TableChange::decode("MODIFY", &media("ready"), &media("ready")).unwrap();
        assert!(again.newly_ready_media().is_none() && again.finished_media().is_none());
        let failed = TableChange::decode("INSERT", &media("failed"), &item(json!({}))).unwrap();
        assert_eq!(
            failed.finished_media().map(|(_, _, s)| s),
            Some(Status::Failed)
        );
        assert!(failed.newly_ready_media().is_none());
        // Removals, other items, and what does not decode.
        assert_eq!(TableChange::decode("REMOVE", &record, &record), None);
        let profile = item(json!({"PK": {"S": "USER#u"}, "SK": {"S": "PROFILE"}}));
        assert_eq!(
            TableChange::decode("MODIFY", &profile, &item(json!({}))),
            None
        );
        let odd =
            item(json!({"PK": {"S": "USER#u"}, "SK": {"S": "MEDIA#m"}, "status": {"S": "weird"}}));
        assert_eq!(TableChange::decode("MODIFY", &odd, &item(json!({}))), None);
    }

    #[test]
    fn a_member_sees_only_their_own_apps_among_the_pushers() {
        let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
        let phone = ClientId::parse("phone").ok();
        let mut pushers = Pushers::default();
        pushers.insert(Some(ann.clone()), phone.clone());
        assert_eq!(pushers.as_seen_by(&ann).collect::<Vec<_>>(), vec![phone]);
        assert_eq!(pushers.as_seen_by(&bob).collect::<Vec<_>>(), vec![None]);
    }
}
