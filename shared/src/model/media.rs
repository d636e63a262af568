//! Media items: an upload's life from `pending` to `ready` or `failed`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::model::ids::{MediaId, Partition, SpaceId, UserId};

/// Content types a client may declare, and what S3 will be told to enforce.
/// HEIC/HEIF are not listed: no decoder here reads them yet, and accepting
/// an upload only to fail it later helps nobody.
pub const ALLOWED_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

/// An item left `pending` (the upload never came) expires after a day.
pub const PENDING_TTL_SECONDS: i64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Ready,
    Failed,
}

impl Status {
    /// As the API and the live channel spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Failed => "failed",
        }
    }
}

/// One produced image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub bytes: u64,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    pub media_id: MediaId,
    /// Who uploaded it.
    pub user_id: UserId,
    /// The space it belongs to; None for the uploader's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<SpaceId>,
    pub status: Status,
    pub content_type: String,
    /// The size of the original: declared at upload time, and checked
    /// against the object the client sent when it is processed.
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl Media {
    /// A media item waiting for its upload: nothing known but what the
    /// client declared.
    pub fn pending(
        media_id: MediaId,
        user_id: UserId,
        content_type: impl Into<String>,
        bytes: u64,
    ) -> Self {
        Self {
            media_id,
            user_id,
            space_id: None,
            status: Status::Pending,
            content_type: content_type.into(),
            bytes,
            created_at: Utc::now(),
            width: None,
            height: None,
            variants: Vec::new(),
            placeholder: None,
            failure_reason: None,
        }
    }

    /// What it takes in the bucket: its variants (the original is deleted
    /// once they exist).
    pub fn stored_bytes(&self) -> u64 {
        self.variants.iter().map(|v| v.bytes).sum()
    }

    /// The partition it lives in: its space's, or the uploader's.
    pub fn partition(&self) -> Partition {
        match &self.space_id {
            Some(space) => Partition::Space(space.clone()),
            None => Partition::User(self.user_id.clone()),
        }
    }

    /// Where the client uploads the original.
    pub fn upload_key(&self) -> String {
        keys::upload_object(&self.partition(), &self.media_id)
    }

    /// The folder of its variants (what a signed URL for it covers).
    pub fn variants_prefix(&self) -> String {
        keys::variants_prefix(&self.partition(), &self.media_id)
    }
}
