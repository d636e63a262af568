//! The user's profile item and the table operations that span a whole user.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, aws, keys};

pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    Client::new(sdk)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// Access tokens issued before this instant (Unix seconds) are refused:
    /// Cognito's global sign-out revokes refresh tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_valid_after: Option<i64>,
    /// The `jti` of the token that signed out: it was issued in the same
    /// second as `tokensValidAfter` (token times have one-second precision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_token_id: Option<String>,
}

impl Profile {
    /// Whether an access token issued at `issued_at` with id `token_id` was
    /// revoked by a sign-out, a password reset or a deletion.
    pub fn revokes(&self, issued_at: i64, token_id: Option<&str>) -> bool {
        self.tokens_valid_after
            .is_some_and(|after| issued_at < after)
            || (token_id.is_some() && token_id == self.revoked_token_id.as_deref())
    }
}

#[derive(Serialize, Deserialize)]
struct ProfileItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    profile: Profile,
}

/// The single table.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes the profile unless one exists: the first sign-in creates it,
    /// later ones leave `createdAt` alone.
    pub async fn create_profile_if_absent(&self, profile: &Profile) -> Result<(), Error> {
        let item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(ProfileItem {
                pk: keys::user(&profile.user_id),
                sk: keys::PROFILE.into(),
                profile: profile.clone(),
            })
            .map_err(Error::internal)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        // Already there: later sign-ins leave it alone.
        aws::conditional(result).map(|_| ())
    }

    pub async fn profile(&self, user_id: &str) -> Result<Option<Profile>, Error> {
        let item: Option<ProfileItem> = self.get(keys::user(user_id), keys::PROFILE.into()).await?;
        Ok(item.map(|i| i.profile))
    }

    /// Refuses an access token that a sign-out or password reset revoked
    /// (Cognito keeps access tokens valid until they expire). One read of
    /// the profile per request; a user without a profile has nothing to
    /// revoke.
    pub async fn check_session(
        &self,
        user_id: &str,
        issued_at: i64,
        token_id: Option<&str>,
    ) -> Result<(), Error> {
        match self.profile(user_id).await? {
            Some(profile) if profile.revokes(issued_at, token_id) => Err(Error::new(
                crate::Code::TokenRevoked,
                "this token was revoked by a sign-out; sign in again",
            )),
            _ => Ok(()),
        }
    }

    /// One item by key (consistent read), deserialized; None if absent.
    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<T>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws::classify)?;
        output
            .item
            .map(serde_dynamo::from_item)
            .transpose()
            .map_err(Error::internal)
    }

    /// Refuses every access token issued before `at` (Unix seconds), and the
    /// token `token_id` whatever its time.
    pub async fn revoke_tokens(
        &self,
        user_id: &str,
        at: i64,
        token_id: Option<&str>,
    ) -> Result<(), Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(keys::PK, AttributeValue::S(keys::user(user_id)))
            .key(keys::SK, AttributeValue::S(keys::PROFILE.into()))
            .update_expression("SET tokensValidAfter = :at, revokedTokenId = :jti")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .expression_attribute_values(
                ":jti",
                token_id.map_or(AttributeValue::Null(true), |id| {
                    AttributeValue::S(id.into())
                }),
            )
            .send()
            .await;
        match aws::conditional(result)? {
            true => Ok(()),
            false => Err(Error::not_found("profile")),
        }
    }

    /// Deletes every item of the user: their partition (profile, devices,
    /// media, watermarks) and their sync records, found through GSI1.
    /// Returns how many items were deleted.
    pub async fn delete_user_items(&self, user_id: &str) -> Result<usize, Error> {
        let user = AttributeValue::S(keys::user(user_id));
        let partition = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", user.clone())
            .projection_expression("PK, SK")
            .consistent_read(true);
        let indexed = self
            .client
            .query()
            .table_name(&self.name)
            .index_name(keys::GSI1)
            .key_condition_expression("GSI1PK = :pk")
            .expression_attribute_values(":pk", user)
            .projection_expression("PK, SK");
        let mut keys = Vec::new();
        for query in [partition, indexed] {
            let mut pages = query.into_paginator().items().send();
            while let Some(item) = pages.next().await {
                keys.push(item.map_err(aws::classify)?);
            }
        }
        let deleted = keys.len();
        for chunk in keys.chunks(25) {
            let requests = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(Error::internal)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>, Error>>()?;
            self.batch_write(requests).await?;
        }
        Ok(deleted)
    }

    /// `BatchWriteItem` until nothing is left unprocessed, backing off between
    /// rounds as AWS asks.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), Error> {
        for attempt in 0..8u32 {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.name, requests)
                .send()
                .await
                .map_err(aws::classify)?;
            requests = output
                .unprocessed_items
                .and_then(|mut left| left.remove(&self.name))
                .unwrap_or_default();
        }
        Err(Error::unavailable(std::io::Error::other(
            "BatchWriteItem left items unprocessed after 8 attempts",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(after: Option<i64>, jti: Option<&str>) -> Profile {
        Profile {
            user_id: "u".into(),
            email: "u@example.com".into(),
            created_at: Utc::now(),
            tokens_valid_after: after,
            revoked_token_id: jti.map(str::to_string),
        }
    }

    #[test]
    fn revokes_older_tokens_and_the_signed_out_one() {
        let p = profile(Some(100), Some("signed-out"));
        assert!(p.revokes(99, Some("other")));
        assert!(p.revokes(100, Some("signed-out")));
        assert!(!p.revokes(100, Some("new-session")));
        assert!(!p.revokes(101, None));
        assert!(!profile(None, None).revokes(0, None));
    }

    #[test]
    fn profile_items_round_trip() {
        let p = profile(Some(5), None);
        let item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(ProfileItem {
                pk: keys::user("u"),
                sk: keys::PROFILE.into(),
                profile: p.clone(),
            })
            .unwrap();
        let back: ProfileItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.profile, p);
    }
}
