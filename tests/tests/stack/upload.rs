//! Uploads end to end: a presigned POST the phone sends straight to S3, then
//! media status, listing, deletion and isolation between users.

use e2e::TestStack;
use e2e::upload;
use serde_json::{Value, json};

#[tokio::test]
async fn an_upload_lands_in_s3_under_the_pinned_key() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let created = api
        .post(
            "/uploads",
            json!({"contentType": "image/jpeg", "bytes": 1234}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let fields = &created.body["upload"]["fields"];
    let media_id = created.body["mediaId"].as_str().unwrap();
    assert_eq!(
        fields["key"],
        format!("uploads/{}/{media_id}", user.user_id)
    );
    assert_eq!(fields["Content-Type"], "image/jpeg");
    for name in [
        "policy",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-signature",
    ] {
        assert!(fields[name].is_string(), "{name} missing");
    }
    assert!(created.body["upload"]["expiresAt"].is_string());

    let id = upload(&api, &user, "image/png", b"not really a png").await;
    let sdk = api.sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let object = s3
        .get_object()
        .bucket(&api.stack.resources.bucket)
        .key(format!("uploads/{}/{id}", user.user_id))
        .send()
        .await
        .expect("the original is in the bucket");
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().as_ref(),
        b"not really a png"
    );

    let media = api
        .get(&format!("/media/{id}"), Some(&user.access_token))
        .await;
    assert_eq!(media.status, 200, "{media:?}");
    assert_eq!(media.body["mediaId"], id);
    assert_eq!(media.body["contentType"], "image/png");
    assert!(["pending", "ready", "failed"].contains(&media.body["status"].as_str().unwrap()));
    api.stop().await;
}

#[tokio::test]
async fn bad_upload_requests_are_problems() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let token = Some(user.access_token.as_str());
    api.post(
        "/uploads",
        json!({"contentType": "application/pdf", "bytes": 10}),
        token,
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    api.post(
        "/uploads",
        json!({"contentType": "image/jpeg", "bytes": 26 * 1024 * 1024}),
        token,
    )
    .await
    .assert_problem(413, "payload_too_large");
    api.post(
        "/uploads",
        json!({"contentType": "image/jpeg", "bytes": 0}),
        token,
    )
    .await
    .assert_problem(400, "invalid_request");
    api.post(
        "/uploads",
        json!({"contentType": "image/jpeg", "bytes": -5}),
        token,
    )
    .await
    .assert_problem(400, "invalid_request");
    api.post("/uploads", json!({"contentType": "image/jpeg"}), token)
        .await
        .assert_problem(400, "invalid_request");
    api.post(
        "/uploads",
        json!({"contentType": "image/jpeg", "bytes": 10}),
        None,
    )
    .await
    .assert_problem(401, "unauthorized");
    for bad in [
        "/media/not-a-uuid",
        "/media/00000000-0000-0000-0000-000000000000",
    ] {
        api.get(bad, token).await.assert_problem(404, "not_found");
        api.delete(bad, token)
            .await
            .assert_problem(404, "not_found");
    }
    for query in [
        "?limit=0",
        "?limit=101",
        "?cursor=%%%",
        "?cursor=bm90LWEtdXVpZA",
    ] {
        api.get(&format!("/media{query}"), token)
            .await
            .assert_problem(400, "invalid_request");
    }
    let listed = api.get("/media", token).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was created");
    api.stop().await;
}

#[tokio::test]
async fn media_lists_newest_first_in_pages_and_deletes() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let token = Some(user.access_token.as_str());
    let mut ids = Vec::new();
    for _ in 0..5 {
        let created = api
            .post(
                "/uploads",
                json!({"contentType": "image/webp", "bytes": 100}),
                token,
            )
            .await;
        ids.push(created.body["mediaId"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/media?limit=2&cursor={c}"),
            None => "/media?limit=2".to_string(),
        };
        let page = api.get(&path, token).await;
        assert_eq!(page.status, 200, "{page:?}");
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|m| m["mediaId"].as_str().unwrap().to_string()),
        );
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let deleted = api.delete(&format!("/media/{}", ids[0]), token).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    api.get(&format!("/media/{}", ids[0]), token)
        .await
        .assert_problem(404, "not_found");
    api.delete(&format!("/media/{}", ids[0]), token)
        .await
        .assert_problem(404, "not_found");
    let listed: Value = api.get("/media?limit=100", token).await.body;
    assert_eq!(listed["items"].as_array().unwrap().len(), 4);
    api.stop().await;
}

#[tokio::test]
async fn another_users_media_is_not_found() {
    let api = TestStack::start().await;
    let ann = api.user().await;
    let bob = api.user().await;
    let created = api
        .post(
            "/uploads",
            json!({"contentType": "image/jpeg", "bytes": 10}),
            Some(&ann.access_token),
        )
        .await;
    let id = created.body["mediaId"].as_str().unwrap();
    api.get(&format!("/media/{id}"), Some(&bob.access_token))
        .await
        .assert_problem(404, "not_found");
    api.delete(&format!("/media/{id}"), Some(&bob.access_token))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        api.get(&format!("/media/{id}"), Some(&ann.access_token))
            .await
            .status,
        200
    );
    api.stop().await;
}
