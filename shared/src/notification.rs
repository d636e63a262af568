//! What a push says to each platform, and the delivery headers each kind
//! needs: plain rules, published through SNS by [`crate::adapters::push`].
//!
//! - A visible "photo ready" alert: APNs push type `alert`, priority 10,
//!   expiring after a day (a photo is still worth showing then). FCM: a
//!   notification message with the data the app needs to open the photo.
//! - A silent sync poke: APNs push type `background` and priority 5, as
//!   Apple requires for `content-available` pushes (priority 10 on one is an
//!   error); a collapse id per user, so pokes waiting for an offline phone
//!   replace each other; expiring after an hour (the app pulls on launch
//!   anyway). FCM: a data-only message, high priority so that it wakes the
//!   app, with the same collapse key and expiry.
//!
//! Android payloads use the FCM HTTP v1 shape (`fcmV1Message`), the only one
//! that reaches `android.priority`, `android.ttl` and `android.collapse_key`.

use std::collections::BTreeMap;

use crate::model::ids::{MediaId, UserId};
use serde_json::{Value, json};

use crate::model::device::Platform;

/// What a push says.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// Visible: a photo finished processing.
    MediaReady { media_id: MediaId },
    /// Silent: records changed; pull.
    SyncPoke,
}

impl Notification {
    /// How long a push that could not be delivered is worth delivering.
    pub fn ttl_seconds(&self) -> u64 {
        match self {
            Notification::MediaReady { .. } => 24 * 60 * 60,
            Notification::SyncPoke => 60 * 60,
        }
    }
}

/// One SNS publish to one endpoint: the `MessageStructure=json` message and
/// the message attributes that carry the platform's delivery headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub message: String,
    pub attributes: BTreeMap<String, String>,
}

const TITLE: &str = "Photo ready";
const BODY: &str = "Your photo is ready to view.";

/// The publish of `notification` to a device of `user_id` on `platform`;
/// `sandbox` for the APNs development environment.
pub fn publication(
    platform: Platform,
    notification: &Notification,
    user_id: &UserId,
    sandbox: bool,
) -> Publication {
    let ttl = notification.ttl_seconds();
    let collapse = format!("sync-{user_id}");
    let mut attributes = BTreeMap::new();
    let (key, payload) = match platform {
        Platform::Ios => {
            let service = if sandbox { "APNS_SANDBOX" } else { "APNS" };
            let (push_type, priority, payload) = match notification {
                Notification::MediaReady { media_id } => (
                    "alert",
                    "10",
                    json!({
                        "aps": {"alert": {"title": TITLE, "body": BODY}, "sound": "default"},
                        "type": "media_ready",
                        "mediaId": media_id,
                    }),
                ),
                Notification::SyncPoke => (
                    "background",
                    "5",
                    json!({"aps": {"content-available": 1}, "type": "sync"}),
                ),
            };
            attributes.insert("AWS.SNS.MOBILE.APNS.PUSH_TYPE".into(), push_type.into());
            attributes.insert("AWS.SNS.MOBILE.APNS.PRIORITY".into(), priority.into());
            attributes.insert(format!("AWS.SNS.MOBILE.{service}.TTL"), ttl.to_string());
            if *notification == Notification::SyncPoke {
                attributes.insert("AWS.SNS.MOBILE.APNS.COLLAPSE_ID".into(), collapse);
            }
            (service, payload)
        }
        Platform::Android => {
            attributes.insert("AWS.SNS.MOBILE.FCM.TTL".into(), ttl.to_string());
            let message = match notification {
                Notification::MediaReady { media_id } => json!({
                    "notification": {"title": TITLE, "body": BODY},
                    "data": {"type": "media_ready", "mediaId": media_id},
                    "android": {"priority": "high", "ttl": format!("{ttl}s")},
                }),
                Notification::SyncPoke => json!({
                    "data": {"type": "sync"},
                    "android": {"priority": "high", "ttl": format!("{ttl}s"), "collapse_key": collapse},
                }),
            };
            ("GCM", json!({"fcmV1Message": {"message": message}}))
        }
    };
    let default = match notification {
        Notification::MediaReady { .. } => BODY,
        Notification::SyncPoke => "sync",
    };
    let mut message = serde_json::Map::new();
    message.insert("default".into(), Value::String(default.into()));
    message.insert(key.into(), Value::String(payload.to_string()));
    Publication {
        message: Value::Object(message).to_string(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Notification {
        Notification::MediaReady {
            media_id: MediaId::parse("m-1").unwrap(),
        }
    }

    /// The platform payload inside the SNS message, and the attributes.
    fn published(
        platform: Platform,
        notification: &Notification,
        key: &str,
    ) -> (Value, BTreeMap<String, String>) {
        let publication = publication(
            platform,
            notification,
            &UserId::parse("u-1").unwrap(),
            false,
        );
        let message: Value = serde_json::from_str(&publication.message).unwrap();
        assert!(message["default"].is_string());
        let payload = serde_json::from_str(message[key].as_str().unwrap()).unwrap();
        (payload, publication.attributes)
    }

    fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_ios_poke_is_background_priority_5_collapsed_per_user_for_an_hour() {
        let (payload, attrs) = published(Platform::Ios, &Notification::SyncPoke, "APNS");
        assert_eq!(payload["aps"], json!({"content-available": 1}));
        assert_eq!(
            attrs,
            attributes(&[
                ("AWS.SNS.MOBILE.APNS.PUSH_TYPE", "background"),
                ("AWS.SNS.MOBILE.APNS.PRIORITY", "5"),
                ("AWS.SNS.MOBILE.APNS.COLLAPSE_ID", "sync-u-1"),
                ("AWS.SNS.MOBILE.APNS.TTL", "3600"),
            ])
        );
    }

    #[test]
    fn an_ios_photo_is_an_alert_priority_10_for_a_day() {
        let (payload, attrs) = published(Platform::Ios, &ready(), "APNS");
        assert_eq!(payload["aps"]["alert"]["title"], TITLE);
        assert_eq!(payload["mediaId"], "m-1");
        assert_eq!(
            attrs,
            attributes(&[
                ("AWS.SNS.MOBILE.APNS.PUSH_TYPE", "alert"),
                ("AWS.SNS.MOBILE.APNS.PRIORITY", "10"),
                ("AWS.SNS.MOBILE.APNS.TTL", "86400"),
            ])
        );
    }

    #[test]
    fn the_sandbox_expiry_is_named_for_the_sandbox() {
        let publication = publication(
            Platform::Ios,
            &Notification::SyncPoke,
            &UserId::parse("u").unwrap(),
            true,
        );
        let message: Value = serde_json::from_str(&publication.message).unwrap();
        assert!(message["APNS_SANDBOX"].is_string());
        assert_eq!(
            publication.attributes["AWS.SNS.MOBILE.APNS_SANDBOX.TTL"],
            "3600"
        );
    }

    #[test]
    fn an_android_poke_is_data_only_high_priority_fcm_v1() {
        let (payload, attrs) = published(Platform::Android, &Notification::SyncPoke, "GCM");
        let message = &payload["fcmV1Message"]["message"];
        assert_eq!(message["data"], json!({"type": "sync"}));
        assert!(message.get("notification").is_none(), "silent");
        assert_eq!(
            message["android"],
            json!({"priority": "high", "ttl": "3600s", "collapse_key": "sync-u-1"})
        );
        assert_eq!(attrs, attributes(&[("AWS.SNS.MOBILE.FCM.TTL", "3600")]));
    }

    #[test]
    fn an_android_photo_is_a_notification_with_the_media_id() {
        let (payload, attrs) = published(Platform::Android, &ready(), "GCM");
        let message = &payload["fcmV1Message"]["message"];
        assert_eq!(message["notification"]["title"], TITLE);
        assert_eq!(
            message["data"],
            json!({"type": "media_ready", "mediaId": "m-1"})
        );
        assert_eq!(
            message["android"],
            json!({"priority": "high", "ttl": "86400s"})
        );
        assert_eq!(attrs, attributes(&[("AWS.SNS.MOBILE.FCM.TTL", "86400")]));
    }

    #[test]
    fn fcm_data_values_are_strings() {
        // FCM refuses a data map with other than string values.
        for notification in [ready(), Notification::SyncPoke] {
            let (payload, _) = published(Platform::Android, &notification, "GCM");
            let data = payload["fcmV1Message"]["message"]["data"]
                .as_object()
                .unwrap();
            assert!(data.values().all(Value::is_string), "{data:?}");
        }
    }
}
