//! `Idempotency-Key` on `POST /uploads` and `POST /sync/push`: a retried
//! request gets the first response back and does nothing twice.

use e2e::{Reply, TestStack, User};
use serde_json::{Value, json};

async fn post_with_key(api: &TestStack, user: &User, path: &str, key: &str, body: Value) -> Reply {
    api.send(
        api.request("POST", path, Some(&user.access_token))
            .header("Idempotency-Key", key)
            .json(&body),
    )
    .await
}

fn replayed(reply: &Reply) -> bool {
    reply
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_repeated_upload_request_gets_the_same_slot() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let other = api.user().await;
    let body = json!({"contentType": "image/jpeg", "bytes": 1000});
    let key = uuid::Uuid::new_v4().to_string();

    let first = post_with_key(&api, &user, "/uploads", &key, body.clone()).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert!(!replayed(&first));
    let again = post_with_key(&api, &user, "/uploads", &key, body.clone()).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert!(replayed(&again));
    assert_eq!(again.body["mediaId"], first.body["mediaId"]);
    assert_eq!(again.body["upload"], first.body["upload"]);

    // One media item, not two.
    let listed = api.get("/media", Some(&user.access_token)).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        1,
        "{listed:?}"
    );

    // The same key for another body is a client bug, said plainly.
    post_with_key(
        &api,
        &user,
        "/uploads",
        &key,
        json!({"contentType": "image/png", "bytes": 1000}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");

    // Keys belong to their user: another user's identical key is theirs.
    let theirs = post_with_key(&api, &other, "/uploads", &key, body.clone()).await;
    assert_eq!(theirs.status, 201, "{theirs:?}");
    assert!(!replayed(&theirs));
    assert_ne!(theirs.body["mediaId"], first.body["mediaId"]);

    // Without a key, every request is new.
    let fresh = api.post("/uploads", body, Some(&user.access_token)).await;
    assert_ne!(fresh.body["mediaId"], first.body["mediaId"]);
    api.stop().await;
}

#[tokio::test]
async fn a_failed_request_frees_its_key_and_bad_keys_are_refused() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let key = uuid::Uuid::new_v4().to_string();
    post_with_key(
        &api,
        &user,
        "/uploads",
        &key,
        json!({"contentType": "text/html", "bytes": 10}),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    // The corrected retry under the same key runs.
    let retried = post_with_key(
        &api,
        &user,
        "/uploads",
        &key,
        json!({"contentType": "image/webp", "bytes": 10}),
    )
    .await;
    assert_eq!(retried.status, 201, "{retried:?}");
    assert!(!replayed(&retried));

    for bad in ["has space", &"k".repeat(256)] {
        post_with_key(
            &api,
            &user,
            "/uploads",
            bad,
            json!({"contentType": "image/webp", "bytes": 10}),
        )
        .await
        .assert_problem(400, "invalid_request");
    }
    api.stop().await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_item() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({"contentType": "image/jpeg", "bytes": 1000});
    let replies = three_at_once(&api, &user, &key, &body).await;
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty(), "{replies:?}");
    for reply in &replies {
        match reply.status.as_u16() {
            201 => assert_eq!(reply.body["mediaId"], created[0].body["mediaId"]),
            409 => reply.assert_problem(409, "idempotency_key_in_use"),
            _ => panic!("unexpected {reply:?}"),
        }
    }
    let listed = api.get("/media", Some(&user.access_token)).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        1,
        "{listed:?}"
    );
    api.stop().await;
}

async fn three_at_once(api: &TestStack, user: &User, key: &str, body: &Value) -> Vec<Reply> {
    let (a, b, c) = tokio::join!(
        post_with_key(api, user, "/uploads", key, body.clone()),
        post_with_key(api, user, "/uploads", key, body.clone()),
        post_with_key(api, user, "/uploads", key, body.clone()),
    );
    vec![a, b, c]
}

#[tokio::test]
async fn a_repeated_push_replays_its_first_answer() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let push = json!({
        "clientId": "phone-1",
        "mutations": [{
            "id": 1, "collection": "notes", "recordId": "n1", "op": "put",
            "fields": {"title": "first"},
            "hlc": e2e::hlc_now("phone-1"),
        }],
    });
    let key = uuid::Uuid::new_v4().to_string();
    let first = post_with_key(&api, &user, "/sync/push", &key, push.clone()).await;
    assert_eq!(first.status, 200, "{first:?}");
    let again = post_with_key(&api, &user, "/sync/push", &key, push).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(replayed(&again));
    assert_eq!(again.body, first.body);
    let pulled = api
        .get("/sync/pull?clientId=phone-2", Some(&user.access_token))
        .await;
    assert_eq!(
        pulled.body["changes"].as_array().unwrap().len(),
        1,
        "{pulled:?}"
    );
    api.stop().await;
}
