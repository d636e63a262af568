//! The `upload` function: `POST /uploads`, `GET /media`, `GET /media/{id}`,
//! `DELETE /media/{id}`.

use std::time::{Duration, Instant};

use apigw::{Caller, DEFAULT_BODY_LIMIT, Reply, json_body};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use shared::aws_config::SdkConfig;
use shared::media::{self, ALLOWED_TYPES, Media, Status};
use shared::metrics::Metrics;
use shared::objects::Objects;
use shared::profile::Table;
use shared::{Code, Config, Error};

/// Variant URLs outlive a screen's life but not much more.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 100;

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
            table: Table::new(shared::profile::client(sdk), &config.table_name),
            objects: Objects::new(sdk, &config.media_bucket),
            max_upload_bytes: config.max_upload_bytes,
            upload_url_ttl: Duration::from_secs(config.upload_url_ttl_seconds),
            cdn_base_url: config.media_cdn_base_url.clone(),
        }
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let started = Instant::now();
    let route = apigw::route_key(&req).to_string();
    let result = async {
        let caller = apigw::session(&req, &deps.table).await?;
        match route.as_str() {
            "POST /uploads" => {
                let body = json_body(&req, DEFAULT_BODY_LIMIT)?;
                apigw::idempotent(
                    &req,
                    &deps.table,
                    &caller,
                    create_upload(deps, &caller, body),
                )
                .await
            }
            "GET /media" => list(deps, &caller, &req).await,
            "GET /media/{mediaId}" => {
                get(deps, &caller, apigw::path_parameter(&req, "mediaId")?).await
            }
            "DELETE /media/{mediaId}" => {
                delete(deps, &caller, apigw::path_parameter(&req, "mediaId")?).await
            }
            _ => Err(Error::not_found("route")),
        }
    }
    .await;
    apigw::respond(&route, started, result)
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

async fn create_upload(deps: &Deps, caller: &Caller, body: UploadRequest) -> Result<Reply, Error> {
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

async fn get(deps: &Deps, caller: &Caller, raw_id: &str) -> Result<Reply, Error> {
    let media = deps
        .table
        .media(&caller.user_id, media_id(raw_id)?)
        .await?
        .ok_or_else(|| Error::not_found("media"))?;
    Reply::ok(view(deps, media).await?)
}

async fn list(deps: &Deps, caller: &Caller, req: &Request) -> Result<Reply, Error> {
    let query = req.query_string_parameters();
    let limit = match query.first("limit") {
        Some(raw) => raw
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Error::invalid(format!("limit must be 1 to {MAX_PAGE}")))?,
        None => DEFAULT_PAGE,
    };
    let after = match query.first("cursor").filter(|c| !c.is_empty()) {
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
async fn delete(deps: &Deps, caller: &Caller, raw_id: &str) -> Result<Reply, Error> {
    let id = media_id(raw_id)?;
    if deps.table.media(&caller.user_id, id).await?.is_none() {
        return Err(Error::not_found("media"));
    }
    deps.objects
        .delete(
            &[media::upload_key(&caller.user_id, id)],
            &[media::variants_prefix(&caller.user_id, id)],
        )
        .await?;
    deps.table.delete_media(&caller.user_id, id).await?;
    Ok(Reply::empty(204))
}
