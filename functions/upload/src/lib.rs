//! The `upload` function: `POST /uploads`, `GET /media`, `GET /media/{id}`,
//! `DELETE /media/{id}`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apigw::{Call, DEFAULT_BODY_LIMIT, Reply, Route, Service};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::adapters::objects::Objects;
use shared::adapters::parameters;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable};
use shared::media::cdn::UrlSigner;
use shared::metrics::Metrics;
use shared::model::access::{Role, Session};
use shared::model::ids::{MediaId, Partition, SpaceId};
use shared::model::media::{ALLOWED_TYPES, Media, Status};
use shared::model::quota::Quotas;
use shared::store::{SpaceAccess, Table};
use shared::{Code, Error, keys};
use tokio::sync::OnceCell;

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

/// What `upload` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// What a user or partition may hold (`MAX_*`, template `Globals`).
    pub quotas: Quotas,
    pub media_bucket: String,
    /// `MAX_UPLOAD_BYTES`: the largest upload a client may declare
    /// (default 25 MB).
    pub max_upload_bytes: u64,
    /// `UPLOAD_URL_TTL_SECONDS`: how long a presigned upload stays valid
    /// (default 600).
    pub upload_url_ttl_seconds: u64,
    pub media_urls: MediaUrlConfig,
    /// The caller's rate limits (`USER_WRITES_PER_MINUTE`, `USER_READS_PER_MINUTE`).
    pub limits: apigw::Limits,
}

/// How variant URLs are signed: CloudFront signed URLs from the
/// distribution's key group.
#[derive(Debug, Clone)]
pub struct MediaUrlConfig {
    /// `MEDIA_CDN_URL`: the distribution, `https://d111.cloudfront.net`.
    pub cdn_url: String,
    /// `MEDIA_SIGNING_KEY_ID`: the CloudFront public key's id.
    pub key_id: String,
    /// `MEDIA_SIGNING_KEY_PARAMETER`: the SSM SecureString holding the
    /// matching private key (PKCS#8 PEM, ECDSA P-256).
    pub key_parameter: String,
    /// `MEDIA_URL_WINDOW_SECONDS`: a variant's URL repeats for this long
    /// and lives one to two windows (default one day).
    pub window_seconds: u64,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            limits: apigw::Limits::read(env)?,
            table_name: config::table_name(env)?,
            quotas: Quotas::read(env),
            media_bucket: config::media_bucket(env)?,
            max_upload_bytes: env.number("MAX_UPLOAD_BYTES", 25 * 1024 * 1024),
            upload_url_ttl_seconds: env.number("UPLOAD_URL_TTL_SECONDS", 600),
            media_urls: MediaUrlConfig {
                cdn_url: env.required("MEDIA_CDN_URL")?,
                key_id: env.required("MEDIA_SIGNING_KEY_ID")?,
                key_parameter: env.required("MEDIA_SIGNING_KEY_PARAMETER")?,
                window_seconds: env.number("MEDIA_URL_WINDOW_SECONDS", 86_400),
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub objects: Objects,
    pub max_upload_bytes: u64,
    pub upload_url_ttl: Duration,
    pub media_urls: MediaUrls,
    /// The clock variant URLs are signed by (tests move it across windows).
    pub now: fn() -> SystemTime,
    pub limiter: std::sync::Arc<apigw::Limiter>,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            limiter: std::sync::Arc::new(apigw::Limiter::new(config.limits)),
            table: Table::new(sdk, &config.table_name).with_quotas(config.quotas),
            objects: Objects::new(sdk, &config.media_bucket),
            max_upload_bytes: config.max_upload_bytes,
            upload_url_ttl: Duration::from_secs(config.upload_url_ttl_seconds),
            media_urls: MediaUrls::new(sdk, &config.media_urls),
            now: SystemTime::now,
        }
    }
}

/// The URL signer, its private key read from SSM once per container: by
/// `main` during init, or by the first request that needs it.
#[derive(Debug, Clone)]
pub struct MediaUrls {
    sdk: SdkConfig,
    config: MediaUrlConfig,
    signer: Arc<OnceCell<UrlSigner>>,
}

impl MediaUrls {
    pub fn new(sdk: &SdkConfig, config: &MediaUrlConfig) -> Self {
        Self {
            sdk: sdk.clone(),
            config: config.clone(),
            signer: Arc::new(OnceCell::new()),
        }
    }

    /// With a signer already loaded (tests that run no emulator).
    pub fn with_signer(sdk: &SdkConfig, config: &MediaUrlConfig, signer: UrlSigner) -> Self {
        Self {
            sdk: sdk.clone(),
            config: config.clone(),
            signer: Arc::new(OnceCell::new_with(Some(signer))),
        }
    }

    pub async fn signer(&self) -> Result<&UrlSigner, Error> {
        self.signer
            .get_or_try_init(|| async {
                let pem = parameters::secure_string(&self.sdk, &self.config.key_parameter).await?;
                UrlSigner::new(
                    &self.config.cdn_url,
                    &self.config.key_id,
                    &pem,
                    Duration::from_secs(self.config.window_seconds),
                )
                .map_err(Error::internal)
            })
            .await
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

    fn limiter(&self) -> &apigw::Limiter {
        &self.limiter
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
    /// A space to upload into (its owner or an editor).
    #[serde(default)]
    space_id: Option<SpaceId>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadReply {
    media_id: MediaId,
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
    media_id: MediaId,
    /// The space it belongs to; absent for the caller's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    space_id: Option<SpaceId>,
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
    let caller = call.session()?;
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
    let space_id = match body.space_id {
        Some(space) => {
            let access = deps.table.space_access(caller, &space).await?;
            access.require(&[Role::Owner, Role::Editor])?;
            Some(space)
        }
        None => None,
    };
    let media = Media {
        space_id,
        ..Media::pending(
            new_media_id(),
            caller.user().clone(),
            &content_type,
            body.bytes,
        )
    };
    deps.table.require_photo_room(&media.partition()).await?;
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

/// A new media id: a UUIDv7, so ids sort in upload order.
fn new_media_id() -> MediaId {
    MediaId::parse(&uuid::Uuid::now_v7().to_string()).expect("a UUID is a valid media id")
}

/// Media ids are UUIDs; anything else cannot exist (and must not reach a key).
fn media_id(raw: &str) -> Result<MediaId, Error> {
    uuid::Uuid::parse_str(raw)
        .ok()
        .and_then(|_| MediaId::parse(raw).ok())
        .ok_or_else(|| Error::not_found("media"))
}

/// Every variant of an item shares one grant (one signature for the item).
async fn view(deps: &Deps, media: Media) -> Result<MediaView, Error> {
    let mut variants = Vec::with_capacity(media.variants.len());
    if !media.variants.is_empty() {
        let signer = deps.media_urls.signer().await?;
        let grant = signer.grant(&media.variants_prefix(), (deps.now)());
        for variant in media.variants {
            variants.push(VariantView {
                url: signer.url(&variant.key, &grant),
                name: variant.name,
                width: variant.width,
                height: variant.height,
                content_type: variant.content_type,
            });
        }
    }
    Ok(MediaView {
        media_id: media.media_id,
        space_id: media.space_id,
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

/// The caller's photo, or one of a space they are in (with their access
/// to it); 404 for any other.
async fn locate(
    deps: &Deps,
    session: &Session,
    id: &MediaId,
) -> Result<(Media, Option<SpaceAccess>), Error> {
    let own = Partition::User(session.user().clone());
    if let Some(media) = deps.table.media(&own, id).await? {
        return Ok((media, None));
    }
    let space = deps
        .table
        .media_space(id)
        .await?
        .ok_or_else(|| Error::not_found("media"))?;
    let access = deps
        .table
        .space_access(session, &space)
        .await
        .map_err(|_| Error::not_found("media"))?;
    let media = deps
        .table
        .media(&Partition::Space(space), id)
        .await?
        .ok_or_else(|| Error::not_found("media"))?;
    Ok((media, Some(access)))
}

async fn get(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.session()?;
    let (media, _) = locate(deps, caller, &media_id(call.path("mediaId")?)?).await?;
    Reply::ok(view(deps, media).await?)
}

async fn list(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.session()?;
    let limit = call.limit(DEFAULT_PAGE, MAX_PAGE)? as i32;
    let after = call.page_after(|id| media_id(id).ok())?;
    // `?spaceId=`: a space's photos, for its members.
    let partition = match call.query("spaceId").filter(|s| !s.is_empty()) {
        Some(space) => {
            let space = SpaceId::parse(space).map_err(|_| Error::not_found("space"))?;
            deps.table.space_access(caller, &space).await?;
            Partition::Space(space)
        }
        None => Partition::User(caller.user().clone()),
    };
    let page = deps
        .table
        .list_media(&partition, limit, after.as_ref())
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for media in page.items {
        items.push(view(deps, media).await?);
    }
    Reply::ok(ListReply {
        items,
        next_cursor: page.next.map(|id| apigw::page_cursor(id.as_str())),
    })
}

/// A space's photo may be deleted by its uploader or the space's owner.
async fn delete(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.session()?;
    let id = media_id(call.path("mediaId")?)?;
    let (media, access) = locate(deps, caller, &id).await?;
    if let Some(access) = &access
        && &media.user_id != caller.user()
    {
        access.require(&[Role::Owner])?;
    }
    let partition = media.partition();
    deps.objects
        .delete(
            &[keys::upload_object(&partition, &id)],
            &[keys::variants_prefix(&partition, &id)],
        )
        .await?;
    deps.table.delete_media(&partition, &id).await?;
    Ok(Reply::empty(204))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn the_route_table_is_the_template_and_the_contract() {
        apigw::testing::assert_routes_are_the_contract::<Deps>("UploadFunction");
    }

    const DAY: u64 = 86_400;
    const MONDAY: u64 = 20_000 * DAY;

    fn deps(now: fn() -> SystemTime) -> Deps {
        let sdk = SdkConfig::builder()
            .behavior_version(shared::aws_config::BehaviorVersion::latest())
            .build();
        let config = MediaUrlConfig {
            cdn_url: "https://d111.cloudfront.net".into(),
            key_id: "K1".into(),
            key_parameter: "/test/key".into(),
            window_seconds: DAY,
        };
        let (private, _) = shared::media::cdn::generate_key_pair();
        let signer =
            UrlSigner::new(&config.cdn_url, "K1", &private, Duration::from_secs(DAY)).unwrap();
        Deps {
            table: Table::new(&sdk, "table"),
            objects: Objects::new(&sdk, "bucket"),
            max_upload_bytes: 1,
            upload_url_ttl: Duration::from_secs(1),
            media_urls: MediaUrls::with_signer(&sdk, &config, signer),
            now,
            limiter: std::sync::Arc::new(apigw::Limiter::new(apigw::Limits {
                writes: shared::limits::Policy::new("writes", 1, 60),
                reads: shared::limits::Policy::new("reads", 1, 60),
            })),
        }
    }

    fn ready_media() -> Media {
        let mut media = Media::pending(
            MediaId::parse("0190a0b0-0000-7000-8000-000000000001").unwrap(),
            shared::model::ids::UserId::parse("user-1").unwrap(),
            "image/jpeg",
            10,
        );
        media.status = Status::Ready;
        media.variants = ["800.jpg", "800.webp"]
            .into_iter()
            .map(|name| shared::model::media::Variant {
                name: name.into(),
                width: 800,
                height: 600,
                content_type: "image/jpeg".into(),
                bytes: 1,
                key: format!("{}{name}", media.variants_prefix()),
            })
            .collect();
        media
    }

    fn urls(view: &MediaView) -> Vec<String> {
        view.variants.iter().map(|v| v.url.clone()).collect()
    }

    #[tokio::test]
    async fn variant_urls_repeat_within_a_window_and_change_across_windows() {
        let mut deps = deps(|| UNIX_EPOCH + Duration::from_secs(MONDAY + 60));
        let first = urls(&view(&deps, ready_media()).await.unwrap());
        deps.now = || UNIX_EPOCH + Duration::from_secs(MONDAY + DAY - 1);
        let later = urls(&view(&deps, ready_media()).await.unwrap());
        deps.now = || UNIX_EPOCH + Duration::from_secs(MONDAY + DAY);
        let tomorrow = urls(&view(&deps, ready_media()).await.unwrap());
        assert_eq!(first, later);
        assert_ne!(first, tomorrow);
        assert!(first[0].starts_with("https://d111.cloudfront.net/media/user-1/0190a0b0-0000-7000-8000-000000000001/800.jpg?Policy="));
        // One grant per item: the variants share their signature.
        let query = |url: &str| url.split_once('?').unwrap().1.to_string();
        assert_eq!(query(&first[0]), query(&first[1]));
    }
}
