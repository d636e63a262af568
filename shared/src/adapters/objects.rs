//! The S3 adapter: presigned uploads, bounded reads, variant
//! writes and deletions, all in the media bucket.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::media::presign::{PostUpload, PresignedPost, SigningCredentials, presigned_post};
use crate::model::purge::Swept;
use crate::{Error, adapters::aws};

#[derive(Debug, Clone)]
pub struct Objects {
    client: Client,
    bucket: String,
    region: String,
    /// Set when talking to an emulator: path-style URLs on that endpoint.
    endpoint: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
}

/// A presigned form upload: POST `fields` + `file` to `url`.
#[derive(Debug, Clone)]
pub struct FormUpload {
    pub url: String,
    pub post: PresignedPost,
}

impl Objects {
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> Self {
        let endpoint = sdk
            .endpoint_url()
            .map(|e| e.trim_end_matches('/').to_string());
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(endpoint.is_some())
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: bucket.into(),
            region: sdk
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
            endpoint,
            credentials: sdk.credentials_provider(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A form upload S3 will accept only for this key, type and size.
    pub async fn presigned_post(
        &self,
        key: &str,
        content_type: &str,
        max_bytes: u64,
        expires_in: Duration,
    ) -> Result<FormUpload, Error> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| Error::internal("no credentials to sign uploads with"))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(Error::unavailable)?;
        let post = presigned_post(
            &PostUpload {
                bucket: &self.bucket,
                key,
                content_type,
                max_bytes,
                expires_in,
                region: &self.region,
            },
            &SigningCredentials {
                access_key_id: credentials.access_key_id(),
                secret_access_key: credentials.secret_access_key(),
                session_token: credentials.session_token(),
            },
            SystemTime::now(),
        );
        let url = match &self.endpoint {
            Some(endpoint) => format!("{endpoint}/{}", self.bucket),
            None => format!("https://{}.s3.{}.amazonaws.com", self.bucket, self.region),
        };
        Ok(FormUpload { url, post })
    }

    /// The object's bytes, refusing more than `max_bytes`; None if absent.
    pub async fn get_bounded(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, Error> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{max_bytes}"))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) if matches!(aws::error_code(&err), Some("NoSuchKey" | "NotFound")) => {
                return Ok(None);
            }
            Err(err) => return Err(aws::classify(err)),
        };
        let mut body = output.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(Error::unavailable)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                break;
            }
        }
        Ok(Some(bytes))
    }

    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        cache_control: &str,
    ) -> Result<(), Error> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .cache_control(cache_control)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Deletes these keys and everything under these prefixes.
    pub async fn delete(&self, keys: &[String], prefixes: &[String]) -> Result<usize, Error> {
        let mut all: Vec<String> = keys.to_vec();
        for prefix in prefixes {
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(aws::classify)?;
                all.extend(keys_of(&page));
            }
        }
        self.delete_keys(&all).await?;
        Ok(all.len())
    }

    /// Deletes at most `limit` objects under these prefixes, the first
    /// ones each listing finds, and says whether any are left: one bounded
    /// step of a larger deletion, which the next call resumes.
    pub async fn delete_some(&self, prefixes: &[String], limit: usize) -> Result<Swept, Error> {
        let mut found = Vec::new();
        let mut more = false;
        for prefix in prefixes {
            let room = limit.saturating_sub(found.len());
            if room == 0 {
                more = true;
                break;
            }
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(i32::try_from(room.min(1000)).unwrap_or(1000))
                .send()
                .await
                .map_err(aws::classify)?;
            found.extend(keys_of(&page));
            more |= page.is_truncated() == Some(true);
        }
        self.delete_keys(&found).await?;
        Ok(Swept {
            deleted: found.len(),
            more,
        })
    }

    /// `DeleteObjects` in batches of 1,000 (its limit).
    async fn delete_keys(&self, all: &[String]) -> Result<(), Error> {
        for chunk in all.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|key| {
                    ObjectIdentifier::builder()
                        .key(key)
                        .build()
                        .map_err(Error::internal)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .map_err(Error::internal)?,
                )
                .send()
                .await
                .map_err(aws::classify)?;
            // DeleteObjects answers 200 and lists the keys it could not
            // delete: those are failures too, or objects would be left.
            if let Some(failed) = output.errors().first() {
                let detail = format!(
                    "DeleteObjects left {} keys, first {:?}: {:?}",
                    output.errors().len(),
                    failed.key(),
                    failed.code()
                );
                return Err(match failed.code() {
                    Some("SlowDown" | "InternalError" | "ServiceUnavailable") => {
                        Error::unavailable(std::io::Error::other(detail))
                    }
                    _ => Error::internal(detail),
                });
            }
        }
        Ok(())
    }
}

fn keys_of(page: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output) -> Vec<String> {
    page.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}
