//! Media items: an upload's life from `pending` to `ready` or `failed`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::profile::Table;
use crate::{Error, aws, keys};

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
    pub media_id: String,
    pub user_id: String,
    pub status: Status,
    pub content_type: String,
    /// Declared at upload time; the real size once processed.
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
        media_id: impl Into<String>,
        user_id: impl Into<String>,
        content_type: impl Into<String>,
        bytes: u64,
    ) -> Self {
        Self {
            media_id: media_id.into(),
            user_id: user_id.into(),
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

    /// Where the client uploads the original.
    pub fn upload_key(&self) -> String {
        upload_key(&self.user_id, &self.media_id)
    }
}

pub fn upload_key(user_id: &str, media_id: &str) -> String {
    format!("uploads/{user_id}/{media_id}")
}

/// Every prefix that holds a user's objects (originals and variants).
pub fn user_prefixes(user_id: &str) -> [String; 2] {
    [format!("uploads/{user_id}/"), format!("media/{user_id}/")]
}

/// The prefix of every variant of a media item.
pub fn variants_prefix(user_id: &str, media_id: &str) -> String {
    format!("media/{user_id}/{media_id}/")
}

#[derive(Serialize, Deserialize)]
struct MediaItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    media: Media,
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

/// A page of media, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Media>,
    /// The last media id of this page when more follow.
    pub next: Option<String>,
}

fn media_key(user_id: &str, media_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (keys::PK.into(), AttributeValue::S(keys::user(user_id))),
        (keys::SK.into(), AttributeValue::S(keys::media(media_id))),
    ])
}

impl Table {
    pub async fn put_pending_media(&self, media: &Media) -> Result<(), Error> {
        let item = serde_dynamo::to_item(MediaItem {
            pk: keys::user(&media.user_id),
            sk: keys::media(&media.media_id),
            media: media.clone(),
            expires_at: Some(media.created_at.timestamp() + PENDING_TTL_SECONDS),
        })
        .map_err(Error::internal)?;
        self.client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    pub async fn media(&self, user_id: &str, media_id: &str) -> Result<Option<Media>, Error> {
        let item: Option<MediaItem> = self.get(keys::user(user_id), keys::media(media_id)).await?;
        Ok(item.map(|i| i.media))
    }

    /// The user's media, newest first (media ids are time-ordered UUIDv7).
    pub async fn list_media(
        &self,
        user_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> Result<Page, Error> {
        let mut query = self
            .client()
            .query()
            .table_name(self.name())
            .key_condition_expression("PK = :pk AND begins_with(SK, :media)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::user(user_id)))
            .expression_attribute_values(":media", AttributeValue::S(keys::media("")))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(after) = after {
            query = query.set_exclusive_start_key(Some(media_key(user_id, after)));
        }
        let output = query.send().await.map_err(aws::classify)?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item::<_, MediaItem>(item).map(|i| i.media))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::internal)?;
        let more = output.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let next = if more {
            items.last().map(|m| m.media_id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Deletes the item; false if there was none.
    pub async fn delete_media(&self, user_id: &str, media_id: &str) -> Result<bool, Error> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(media_key(user_id, media_id)))
            .condition_expression("attribute_exists(PK)")
            .send()
            .await;
        aws::conditional(result)
    }

    /// `pending -> ready`, only from pending: a redelivered event, or an item
    /// deleted meanwhile, changes nothing (false).
    pub async fn mark_media_ready(&self, media: &Media) -> Result<bool, Error> {
        let variants =
            serde_dynamo::to_attribute_value(&media.variants).map_err(Error::internal)?;
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(media_key(&media.user_id, &media.media_id)))
            .update_expression(
                "SET #status = :ready, width = :w, height = :h, bytes = :b, variants = :v, placeholder = :p REMOVE expiresAt",
            )
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ready", AttributeValue::S("ready".into()))
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .expression_attribute_values(":w", AttributeValue::N(media.width.unwrap_or(0).to_string()))
            .expression_attribute_values(":h", AttributeValue::N(media.height.unwrap_or(0).to_string()))
            .expression_attribute_values(":b", AttributeValue::N(media.bytes.to_string()))
            .expression_attribute_values(":v", variants)
            .expression_attribute_values(
                ":p",
                AttributeValue::S(media.placeholder.clone().unwrap_or_default()),
            )
            .send()
            .await;
        aws::conditional(result)
    }

    /// `pending -> failed` with a reason a user can read.
    pub async fn mark_media_failed(
        &self,
        user_id: &str,
        media_id: &str,
        reason: &str,
    ) -> Result<bool, Error> {
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(media_key(user_id, media_id)))
            .update_expression("SET #status = :failed, failureReason = :reason REMOVE expiresAt")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
            .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
            .expression_attribute_values(":reason", AttributeValue::S(reason.into()))
            .send()
            .await;
        aws::conditional(result)
    }
}
