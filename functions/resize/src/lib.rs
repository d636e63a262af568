//! The `resize` function: an S3 `ObjectCreated` event on `uploads/` becomes
//! variants under `media/`, and the media item moves `pending -> ready` (or
//! `failed` with a reason). Bad input never fails the invocation, so it
//! never crash-loops; only transient AWS errors do, and Lambda retries.

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use shared::Error;
use shared::adapters::objects::Objects;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable};
use shared::keys;
use shared::media::pipeline::{self, Options};
use shared::metrics::Metrics;
use shared::model::media::{Media, Status, Variant};
use shared::model::quota::Quotas;
use shared::store::{Readied, Table};

const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// What `resize` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// What a user or partition may hold (`MAX_*`, template `Globals`).
    pub quotas: Quotas,
    pub media_bucket: String,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            table_name: config::table_name(env)?,
            quotas: Quotas::read(env),
            media_bucket: config::media_bucket(env)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub objects: Objects,
    pub options: Options,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name).with_quotas(config.quotas),
            objects: Objects::new(sdk, &config.media_bucket),
            options: Options::default(),
        }
    }
}

/// What happened to one record; for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ready {
        variants: usize,
    },
    Failed {
        reason: String,
    },
    /// Not ours, not pending any more (a redelivery), or already gone.
    Skipped(&'static str),
}

pub async fn handle(deps: &Deps, event: S3Event) -> Result<(), Error> {
    for record in &event.records {
        let started = std::time::Instant::now();
        let outcome = handle_record(deps, record).await?;
        tracing::info!(?outcome, "upload processed");
        let metrics = Metrics::new("resize");
        match outcome {
            Outcome::Ready { .. } => metrics
                .count("MediaReady", 1)
                .millis("ResizeDuration", started.elapsed().as_millis()),
            Outcome::Failed { .. } => metrics.count("ResizeFailures", 1),
            Outcome::Skipped(_) => metrics.count("ResizeSkipped", 1),
        }
        .emit();
    }
    Ok(())
}

/// S3 event keys are URL-encoded with `+` for spaces.
pub fn decode_key(raw: &str) -> String {
    let raw = raw.replace('+', " ");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn handle_record(deps: &Deps, record: &S3EventRecord) -> Result<Outcome, Error> {
    let created = record
        .event_name
        .as_deref()
        .is_some_and(|name| name.starts_with("ObjectCreated"));
    let Some(raw_key) = record.s3.object.key.as_deref().filter(|_| created) else {
        return Ok(Outcome::Skipped("not an upload"));
    };
    let key = decode_key(raw_key);
    let Some((partition, media_id)) = keys::parse_upload_object(&key) else {
        return Ok(Outcome::Skipped("not an upload"));
    };
    let Some(media) = deps.table.media(&partition, &media_id).await? else {
        // No item: deleted meanwhile, or never asked for. Keep nothing.
        deps.objects.delete(std::slice::from_ref(&key), &[]).await?;
        return Ok(Outcome::Skipped("no media item"));
    };
    if media.status != Status::Pending {
        return Ok(Outcome::Skipped("already processed"));
    }
    // Read one byte past the declared size to notice a bigger body.
    let Some(bytes) = deps.objects.get_bounded(&key, media.bytes + 1).await? else {
        return Ok(Outcome::Skipped("original already gone"));
    };
    if bytes.len() as u64 > media.bytes {
        return fail(
            deps,
            &media,
            &key,
            "the upload is larger than declared".into(),
        )
        .await;
    }
    let options = deps.options.clone();
    let started = std::time::Instant::now();
    let processed = tokio::task::spawn_blocking(move || pipeline::process(&bytes, &options))
        .await
        .map_err(Error::internal)?;
    let processed = match processed {
        Ok(processed) => processed,
        Err(err) => return fail(deps, &media, &key, err.to_string()).await,
    };
    tracing::info!(
        %media_id,
        ms = started.elapsed().as_millis() as u64,
        "pipeline finished"
    );

    let prefix = keys::variants_prefix(&partition, &media_id);
    let mut variants = Vec::with_capacity(processed.variants.len());
    let mut total = 0;
    for encoded in processed.variants {
        let variant_key = format!("{prefix}{}", encoded.name);
        total += encoded.bytes.len() as u64;
        variants.push(Variant {
            name: encoded.name,
            width: encoded.width,
            height: encoded.height,
            content_type: encoded.content_type.to_string(),
            bytes: encoded.bytes.len() as u64,
            key: variant_key.clone(),
        });
        deps.objects
            .put(
                &variant_key,
                encoded.bytes,
                encoded.content_type,
                CACHE_CONTROL,
            )
            .await?;
    }
    let ready = Media {
        status: Status::Ready,
        width: Some(processed.width),
        height: Some(processed.height),
        bytes: media.bytes.max(total.min(media.bytes)),
        variants,
        placeholder: Some(processed.placeholder),
        ..media
    };
    let count = ready.variants.len();
    match deps.table.mark_media_ready(&ready).await? {
        Readied::Ready => {}
        Readied::NotPending => {
            // Deleted (or processed by a concurrent delivery) while we worked.
            if deps.table.media(&partition, &media_id).await?.is_none() {
                deps.objects.delete(&[], &[prefix]).await?;
            }
            return Ok(Outcome::Skipped("no longer pending"));
        }
        Readied::OverQuota => {
            // Checked when the upload was asked for; uploads asked for at
            // once can still pass it together, and this one came last.
            deps.objects.delete(&[], &[prefix]).await?;
            let quotas = deps.table.quotas();
            let reason = format!(
                "over the photo quota: {} photos or {} bytes",
                quotas.photos_per_partition, quotas.photo_bytes_per_partition
            );
            return fail(deps, &ready, &key, reason).await;
        }
    }
    // The original may carry GPS and other metadata: only variants stay.
    deps.objects.delete(&[key], &[]).await?;
    Ok(Outcome::Ready { variants: count })
}

async fn fail(deps: &Deps, media: &Media, key: &str, reason: String) -> Result<Outcome, Error> {
    deps.table
        .mark_media_failed(&media.partition(), &media.media_id, &reason)
        .await?;
    deps.objects.delete(&[key.to_string()], &[]).await?;
    Ok(Outcome::Failed { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(decode_key("uploads/a%2Bb/c+d%20e"), "uploads/a+b/c d e");
        assert_eq!(decode_key("100%"), "100%");
    }

    #[test]
    fn real_s3_event_json_deserializes() {
        let event: S3Event = serde_json::from_str(include_str!(
            "../../../tests/fixtures/s3-object-created.json"
        ))
        .unwrap();
        let record = &event.records[0];
        assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Post"));
        let key = decode_key(record.s3.object.key.as_deref().unwrap());
        assert_eq!(key, "uploads/user 1/0193b0b2-7c1e-7f00-8000-000000000001");
        // A space is no user id of ours: such an object is skipped.
        assert_eq!(keys::parse_upload_object(&key), None);
    }
}
