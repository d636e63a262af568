//! The media distribution on loopback: checks each request's CloudFront
//! signature against the stack's key group, exactly as the template's
//! `TrustedKeyGroups` has CloudFront do, then serves the variant from the
//! bucket. Like the distribution's origin access, it reads `media/` only,
//! and a missing object is 403 (the distribution may not list the bucket).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use shared::keys;
use shared::media::cdn::KeyGroup;

pub struct Cdn {
    /// The URL the distribution is reached at (`http://127.0.0.1:PORT`).
    pub url: String,
    pub key_group: Arc<RwLock<KeyGroup>>,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// What it served, as CloudFront bills it.
    pub served: Arc<Served>,
}

/// Requests answered and bytes sent, as CloudFront bills a distribution.
#[derive(Debug, Default)]
pub struct Served {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

pub async fn serve(State(cdn): State<Arc<Cdn>>, req: Request<Body>) -> Response<Body> {
    cdn.served.requests.fetch_add(1, Ordering::Relaxed);
    if req.method() != "GET" && req.method() != "HEAD" {
        return denied(
            StatusCode::FORBIDDEN,
            "This distribution only serves GET and HEAD.",
        );
    }
    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("{}{path_and_query}", cdn.url);
    let verdict = cdn
        .key_group
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .verify(&url, SystemTime::now());
    if let Err(reason) = verdict {
        tracing::info!(path = %req.uri().path(), %reason, "cdn refused");
        return denied(StatusCode::FORBIDDEN, &reason.to_string());
    }
    let key = req.uri().path().trim_start_matches('/');
    if !key.starts_with(keys::variants_root()) {
        return denied(StatusCode::FORBIDDEN, "Access Denied");
    }
    let object = match cdn
        .s3
        .get_object()
        .bucket(&cdn.bucket)
        .key(key)
        .send()
        .await
    {
        Ok(object) => object,
        Err(err) => {
            tracing::info!(key, error = %err, "cdn origin refused");
            return denied(StatusCode::FORBIDDEN, "Access Denied");
        }
    };
    let mut response = Response::builder().status(StatusCode::OK);
    if let Some(content_type) = object.content_type() {
        response = response.header("content-type", content_type);
    }
    if let Some(cache_control) = object.cache_control() {
        response = response.header("cache-control", cache_control);
    }
    if let Some(etag) = object.e_tag() {
        response = response.header("etag", etag);
    }
    let bytes = match object.body.collect().await {
        Ok(data) => data.into_bytes(),
        Err(_) => return denied(StatusCode::BAD_GATEWAY, "The origin stopped mid-object."),
    };
    response = response.header("content-length", bytes.len());
    let body = if req.method() == "HEAD" {
        Body::empty()
    } else {
        cdn.served
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Body::from(bytes)
    };
    response.body(body).unwrap_or_default()
}

/// CloudFront's refusal: an XML error document.
fn denied(status: StatusCode, message: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{}</Message></Error>",
        message.replace('&', "&amp;").replace('<', "&lt;")
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Body::from(body))
        .unwrap_or_default()
}
