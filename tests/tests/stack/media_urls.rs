//! Variant URLs as a phone's image cache sees them: CloudFront signed URLs
//! that repeat across calls (so URLCache, Coil or Glide keep the picture),
//! served by the stack's distribution only with a valid signature, and a
//! signing key that can be rotated without breaking URLs already handed
//! out.

use std::time::SystemTime;

use e2e::{TestStack, upload};
use serde_json::Value;
use shared::keys;
use shared::media::cdn::{UrlSigner, generate_key_pair};
use shared::media::pipeline::testing::jpeg_with_exif;
use shared::model::ids::Partition;

fn urls(media: &Value) -> Vec<String> {
    media["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["url"].as_str().unwrap().to_string())
        .collect()
}

async fn status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn variant_urls_repeat_and_only_signed_requests_are_served() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let id = upload(&api, &user, "image/jpeg", &jpeg_with_exif(1000, 800, 1)).await;
    let media = api.wait_until_processed(&user, &id).await;
    assert_eq!(media["status"], "ready", "{media}");

    // The same URLs from every read: GET twice and the list.
    let first = api
        .get(&format!("/media/{id}"), Some(&user.access_token))
        .await;
    let second = api
        .get(&format!("/media/{id}"), Some(&user.access_token))
        .await;
    let listed = api.get("/media", Some(&user.access_token)).await;
    assert_eq!(urls(&first.body), urls(&second.body));
    assert_eq!(urls(&first.body), urls(&listed.body["items"][0]));
    assert!(urls(&first.body)[0].starts_with(&api.stack.cdn_url));
    // ...so the response is the same too, and revalidates with a 304.
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(second.headers["etag"], etag.as_str());
    let revalidated = reqwest::Client::new()
        .get(api.url(&format!("/media/{id}")))
        .bearer_auth(&user.access_token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    for url in urls(&first.body) {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let bytes = response.bytes().await.unwrap();
        shared::media::pipeline::testing::decode_variant(&bytes);
    }

    let url = urls(&first.body)[0].clone();
    let (path, query) = url.split_once('?').unwrap();
    // Unsigned, or the grant moved to the original or to another item.
    assert_eq!(status(path).await, 403);
    let original = format!(
        "{}/{}?{query}",
        api.stack.cdn_url,
        keys::upload_object(&Partition::User(user.user_id.clone()), &media_id(&id))
    );
    assert_eq!(status(&original).await, 403);
    let other_item = url.replace(&id, &uuid::Uuid::new_v4().to_string());
    assert_eq!(status(&other_item).await, 403);
    // A flipped signature byte.
    let signature = query
        .split('&')
        .find_map(|p| p.strip_prefix("Signature="))
        .unwrap();
    let mut flipped = signature.to_string().into_bytes();
    flipped[12] = if flipped[12] == b'A' { b'B' } else { b'A' };
    let forged = url.replace(signature, std::str::from_utf8(&flipped).unwrap());
    assert_eq!(status(&forged).await, 403);
    api.stop().await;
}

/// A rotation as the README describes it: the new key joins the key group
/// and replaces the private key in SSM; containers started afterwards sign
/// with it; URLs signed by the old key keep working until the old key
/// leaves the group.
#[tokio::test]
async fn rotating_the_signing_key_keeps_handed_out_urls_until_the_old_key_leaves() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let id = upload(&api, &user, "image/jpeg", &jpeg_with_exif(640, 480, 1)).await;
    let media = api.wait_until_processed(&user, &id).await;
    let old_url = urls(&media)[0].clone();
    assert_eq!(status(&old_url).await, 200);
    let old_key_id = old_url
        .split('&')
        .find_map(|p| p.strip_prefix("Key-Pair-Id="))
        .unwrap()
        .to_string();

    let (private, public) = generate_key_pair();
    api.stack
        .media_key_group
        .write()
        .unwrap()
        .insert("KNEWKEY", &public)
        .unwrap();
    let parameter = api.stack.resources.physical["MediaSigningKeyParameter"].clone();
    shared::adapters::parameters::put_secure_string(&api.sdk().await, &parameter, &private)
        .await
        .unwrap();
    // A container started now reads the new key from SSM at init.
    let new_container = ::upload::MediaUrls::new(
        &api.sdk().await,
        &::upload::MediaUrlConfig {
            cdn_url: api.stack.cdn_url.clone(),
            key_id: "KNEWKEY".into(),
            key_parameter: parameter,
            window_seconds: 86_400,
        },
    );
    let signer: &UrlSigner = new_container.signer().await.unwrap();
    let variant_key = old_url
        .split_once('?')
        .unwrap()
        .0
        .trim_start_matches(&format!("{}/", api.stack.cdn_url))
        .to_string();
    let new_url = signer.url(
        &variant_key,
        &signer.grant(
            &keys::variants_prefix(&Partition::User(user.user_id.clone()), &media_id(&id)),
            SystemTime::now(),
        ),
    );
    assert_ne!(new_url, old_url);
    assert_eq!(status(&new_url).await, 200);
    assert_eq!(
        status(&old_url).await,
        200,
        "old URLs live through the rotation"
    );

    api.stack
        .media_key_group
        .write()
        .unwrap()
        .remove(&old_key_id);
    assert_eq!(status(&old_url).await, 403, "the retired key signs nothing");
    assert_eq!(status(&new_url).await, 200);
    api.stop().await;
}

fn media_id(id: &str) -> shared::model::ids::MediaId {
    shared::model::ids::MediaId::parse(id).unwrap()
}
