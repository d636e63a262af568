//! The media pipeline end to end: upload a real photo with the presigned
//! POST, wait for the S3 event to make it ready, download the variants.

use e2e::{TestStack, upload};
use serde_json::Value;
use shared::media::pipeline::testing::{has_app1, jpeg_with_exif};

#[tokio::test]
async fn a_rotated_photo_with_gps_becomes_upright_clean_variants() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let photo = jpeg_with_exif(1200, 900, 6);
    assert!(has_app1(&photo));
    let id = upload(&api, &user, "image/jpeg", &photo).await;

    let media = api.wait_until_processed(&user, &id).await;
    assert_eq!(media["status"], "ready", "{media}");
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(900), Some(1200))
    );
    assert!(
        media["placeholder"].as_str().is_some_and(|p| p.len() >= 6),
        "{media}"
    );
    let variants = media["variants"].as_array().unwrap();
    let names: Vec<&str> = variants
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for expected in [
        "1600.jpg",
        "1600.webp",
        "800.jpg",
        "800.webp",
        "320.jpg",
        "320.webp",
        "thumb.jpg",
        "thumb.webp",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let http = reqwest::Client::new();
    for variant in variants {
        let response = http
            .get(variant["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{variant}");
        let bytes = response.bytes().await.unwrap();
        let decoded = shared::media::pipeline::testing::decode_variant(&bytes);
        assert_eq!(
            (u64::from(decoded.width()), u64::from(decoded.height())),
            (
                variant["width"].as_u64().unwrap(),
                variant["height"].as_u64().unwrap()
            )
        );
        if variant["name"] != "thumb.jpg" && variant["name"] != "thumb.webp" {
            assert!(decoded.height() > decoded.width(), "{variant} is portrait");
        }
        assert!(
            !bytes.windows(4).any(|w| w == b"Exif"),
            "{variant} carries EXIF"
        );
        if variant["contentType"] == "image/jpeg" {
            assert!(!has_app1(&bytes));
        }
    }
    // Only the variants remain: the original (with its GPS) is gone.
    let sdk = api.sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let original = s3
        .head_object()
        .bucket(&api.stack.resources.bucket)
        .key(format!("uploads/{}/{id}", user.user_id))
        .send()
        .await;
    assert!(original.is_err(), "the original was kept");
    let variant = s3
        .head_object()
        .bucket(&api.stack.resources.bucket)
        .key(format!("media/{}/{id}/800.jpg", user.user_id))
        .send()
        .await
        .unwrap();
    assert_eq!(
        variant.cache_control(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(variant.content_type(), Some("image/jpeg"));

    // Deleting the media removes the variants too.
    assert_eq!(
        api.delete(&format!("/media/{id}"), Some(&user.access_token))
            .await
            .status,
        204
    );
    let listed = s3
        .list_objects_v2()
        .bucket(&api.stack.resources.bucket)
        .prefix(format!("media/{}/{id}/", user.user_id))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
    api.stop().await;
}

#[tokio::test]
async fn garbage_and_truncated_uploads_end_failed() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let text = upload(&api, &user, "image/png", b"%PDF-1.4 definitely not a png").await;
    let photo = jpeg_with_exif(300, 200, 1);
    let truncated = upload(&api, &user, "image/jpeg", &photo[..photo.len() / 3]).await;
    for id in [text, truncated] {
        let media = api.wait_until_processed(&user, &id).await;
        assert_eq!(media["status"], "failed", "{media}");
        assert!(
            media["failureReason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{media}"
        );
        assert_eq!(media["variants"], serde_json::json!([]));
    }
    api.stop().await;
}

/// The real S3 event for `key`, as S3 would deliver it again.
fn s3_event(bucket: &str, key: &str) -> aws_lambda_events::s3::S3Event {
    serde_json::from_value(e2e::events::s3_object_created(bucket, key)).unwrap()
}

async fn resize_deps(api: &TestStack) -> resize::Deps {
    let sdk = api.sdk().await;
    resize::Deps {
        table: api.table().await,
        objects: shared::adapters::objects::Objects::new(&sdk, &api.stack.resources.bucket),
        options: shared::media::pipeline::Options::default(),
    }
}

#[tokio::test]
async fn redelivered_s3_events_change_nothing() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let deps = resize_deps(&api).await;
    let photo = jpeg_with_exif(800, 600, 1);
    let id = upload(&api, &user, "image/jpeg", &photo).await;
    let event = s3_event(
        &api.stack.resources.bucket,
        &format!("uploads/{}/{id}", user.user_id),
    );
    // Two more deliveries race the local stack's own one.
    let (a, b) = tokio::join!(
        resize::handle(&deps, event.clone()),
        resize::handle(&deps, event.clone())
    );
    a.unwrap();
    b.unwrap();
    let first = api.wait_until_processed(&user, &id).await;
    assert_eq!(first["status"], "ready", "{first}");

    // And once more, long after: skipped, nothing changes.
    let outcome = resize::handle_record(&deps, &event.records[0])
        .await
        .unwrap();
    assert!(
        matches!(outcome, resize::Outcome::Skipped(_)),
        "{outcome:?}"
    );
    let again = api
        .get(&format!("/media/{id}"), Some(&user.access_token))
        .await;
    for field in ["status", "width", "height", "placeholder", "createdAt"] {
        assert_eq!(again.body[field], first[field], "{field}");
    }
    let names = |media: &Value| -> Vec<Value> {
        media["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].clone())
            .collect()
    };
    assert_eq!(names(&again.body), names(&first));
    for variant in again.body["variants"].as_array().unwrap() {
        let bytes = reqwest::get(variant["url"].as_str().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        shared::media::pipeline::testing::decode_variant(&bytes);
    }
    api.stop().await;
}
