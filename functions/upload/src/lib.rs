//! The `upload` function: `POST /uploads`, `GET /media`, `GET /media/{id}`,
//! `DELETE /media/{id}`.

use std::time::Duration;

use apigw::{Call, DEFAULT_BODY_LIMIT, Reply, Route, Service};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable};
use shared::media::{ALLOWED_TYPES, Media, Status};
use shared::metrics::Metrics;
use shared::objects::Objects;
use shared::store::Table;
use shared::{Code, Error, keys};

/// Variant URLs outlive a screen's life but not much more.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 100;

/// What `upload` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub media_bucket: String,
    /// `MAX_UPLOAD_BYTES`: the largest upload a client may declare
    /// (default 25 MB).
    pub max_upload_bytes: u64,
    /// `UPLOAD_URL_TTL_SECONDS`: how long a presigned upload stays valid
    /// (default 600).
    pub upload_url_ttl_seconds: u64,
    /// `MEDIA_CDN_BASE_URL`: serve variants from a CDN instead of
    /// presigned GETs (optional).
    pub media_cdn_base_url: Option<String>,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            table_name: config::table_name(env)?,
            media_bucket: config::media_bucket(env)?,
            max_upload_bytes: env.number("MAX_UPLOAD_BYTES", 25 * 1024 * 1024),
            upload_url_ttl_seconds: env.number("UPLOAD_URL_TTL_SECONDS", 600),
            media_cdn_base_url: env.optional("MEDIA_CDN_BASE_URL"),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub objects: Objects,
    pub max_upload_bytes: u64,
    pub upload_url_ttl: Duration,
    pub cdn_base_url: Option<String>,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            table: Table::new(sdk, &config.table_name),
            objects: Objects::new(sdk, &config.media_bucket),
            max_upload_bytes: config.max_upload_bytes,
            upload_url_ttl: Duration::from_secs(config.upload_url_ttl_seconds),
            cdn_base_url: config.media_cdn_base_url.clone(),
        }
    }
}

impl Service for Deps {
    const ROUTES: &'static [Route<Self>] = &[
        Route::session("POST", "/uploads", |d, c| Box::pin(create_upload(d, c))).idempotent(),
        Route::session("GET", "/media", |d, c| Box::pin(list(d, c))),
        Route::session("GET", "/media/{mediaId}", |d, c| Box::pin(get(d, c))),
        Route::session("DELETE", "/media/{mediaId}", |d, c| Box::pin(delete(d, c))),
    ];

    fn table(&self) -> &Table {
        &self.table
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    apigw::handle(deps, req).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadRequest {
    content_type: String,
    bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadReply {
    media_id: String,
    upload: UploadForm,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadForm {
    url: String,
    fields: std::collections::BTreeMap<String, String>,
    expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VariantView {
    name: String,
    width: u32,
    height: u32,
    content_type: String,
    url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaView {
    media_id: String,
    status: Status,
    content_type: String,
    bytes: u64,
    width: Option<u32>,
    height: Option<u32>,
    placeholder: Option<String>,
    variants: Vec<VariantView>,
    failure_reason: Option<String>,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListReply {
    items: Vec<MediaView>,
    next_cursor: Option<String>,
}

async fn create_upload(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.caller()?;
    let body: UploadRequest = call.json(DEFAULT_BODY_LIMIT)?;
    let content_type = body.content_type.trim().to_ascii_lowercase();
    if !ALLOWED_TYPES.contains(&content_type.as_str()) {
        return Err(Error::new(
            Code::UnsupportedMediaType,
            format!("contentType must be one of {}", ALLOWED_TYPES.join(", ")),
        ));
    }
    if body.bytes == 0 {
        return Err(Error::invalid(
            "bytes must be the size of the file, above 0",
        ));
    }
    if body.bytes > deps.max_upload_bytes {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("uploads are limited to {} bytes", deps.max_upload_bytes),
        ));
    }
    let media = Media::pending(
        uuid::Uuid::now_v7().to_string(),
        &caller.user_id,
        &content_type,
        body.bytes,
    );
    deps.table.put_pending_media(&media).await?;
    Metrics::new("upload")
        .count("UploadsRequested", 1)
        .bytes("UploadBytesDeclared", body.bytes)
        .emit();
    let form = deps
        .objects
        .presigned_post(
            &media.upload_key(),
            &content_type,
            body.bytes,
            deps.upload_url_ttl,
        )
        .await?;
    Reply::json(
        201,
        UploadReply {
            media_id: media.media_id,
            upload: UploadForm {
                url: form.url,
                fields: form.post.fields,
                expires_at: form
                    .post
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
        },
    )
}

/// Media ids are UUIDs; anything else cannot exist (and must not reach a key).
fn media_id(raw: &str) -> Result<&str, Error> {
    uuid::Uuid::parse_str(raw)
        .map(|_| raw)
        .map_err(|_| Error::not_found("media"))
}

async fn view(deps: &Deps, media: Media) -> Result<MediaView, Error> {
    let mut variants = Vec::with_capacity(media.variants.len());
    for variant in media.variants {
        let url = match &deps.cdn_base_url {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), variant.key),
            None => {
                deps.objects
                    .presigned_get(&variant.key, DOWNLOAD_URL_TTL)
                    .await?
            }
        };
        variants.push(VariantView {
            name: variant.name,
            width: variant.width,
            height: variant.height,
            content_type: variant.content_type,
            url,
        });
    }
    Ok(MediaView {
        media_id: media.media_id,
        status: media.status,
        content_type: media.content_type,
        bytes: media.bytes,
        width: media.width,
        height: media.height,
        placeholder: media.placeholder.filter(|p| !p.is_empty()),
        variants,
        failure_reason: media.failure_reason,
        created_at: media
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

async fn get(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.caller()?;
    let media = deps
        .table
        .media(&caller.user_id, media_id(call.path("mediaId")?)?)
        .await?
        .ok_or_else(|| Error::not_found("media"))?;
    Reply::ok(view(deps, media).await?)
}

async fn list(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.caller()?;
    let limit = match call.query("limit") {
        Some(raw) => raw
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Error::invalid(format!("limit must be 1 to {MAX_PAGE}")))?,
        None => DEFAULT_PAGE,
    };
    let after = match call.query("cursor").filter(|c| !c.is_empty()) {
        Some(cursor) => Some(decode_cursor(cursor)?),
        None => None,
    };
    let page = deps
        .table
        .list_media(&caller.user_id, limit, after.as_deref())
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for media in page.items {
        items.push(view(deps, media).await?);
    }
    Reply::ok(ListReply {
        items,
        next_cursor: page.next.map(|id| URL_SAFE_NO_PAD.encode(id)),
    })
}

fn decode_cursor(cursor: &str) -> Result<String, Error> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .ok_or_else(|| Error::invalid("cursor is not valid; list without one to start over"))
}

/// Removes the original and every variant, then the item. Objects go first:
/// a failure leaves an item the user can delete again, never orphans.
async fn delete(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.caller()?;
    let id = media_id(call.path("mediaId")?)?;
    if deps.table.media(&caller.user_id, id).await?.is_none() {
        return Err(Error::not_found("media"));
    }
    deps.objects
        .delete(
            &[keys::upload_object(&caller.user_id, id)],
            &[keys::variants_prefix(&caller.user_id, id)],
        )
        .await?;
    deps.table.delete_media(&caller.user_id, id).await?;
    Ok(Reply::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_the_template_and_the_contract() {
        apigw::testing::assert_routes_are_the_contract::<Deps>("UploadFunction");
    }
}
