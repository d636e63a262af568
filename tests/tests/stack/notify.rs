//! Devices and pushes end to end: registration as SNS platform endpoints,
//! table changes turned into pushes the emulator records, dead endpoints
//! cleaned up, and partial batch failures reported precisely.

use std::time::Duration;

use e2e::{TestStack, User, upload};
use serde_json::{Value, json};

/// The emulator's state dump (retried: it can fail while other tests
/// change the state it is serialising).
async fn emulator_state(api: &TestStack) -> Value {
    for _ in 0..20 {
        let response = reqwest::get(format!("{}/moto-api/data.json", api.emulator_url)).await;
        if let Ok(response) = response
            && let Ok(state) = response.json::<Value>().await
        {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the emulator's state could not be read");
}

/// The emulator's live platform endpoint holding `token`, if any. The
/// emulator's state dump keeps deleted endpoints and their creation token,
/// so candidates are matched on the current `Token` attribute and checked
/// with `GetEndpointAttributes`.
async fn endpoint_for(api: &TestStack, token: &str) -> Option<Value> {
    let state = emulator_state(api).await;
    let sdk = api.sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let mut live = Vec::new();
    for endpoint in state["sns"]["PlatformEndpoint"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if endpoint["attributes"]["Token"] != token {
            continue;
        }
        let arn = endpoint["arn"].as_str().unwrap();
        if sns
            .get_endpoint_attributes()
            .endpoint_arn(arn)
            .send()
            .await
            .is_ok()
        {
            live.push(endpoint);
        }
    }
    assert!(live.len() <= 1, "one endpoint per token: {live:?}");
    live.pop()
}

/// Waits until the endpoint holding `token` has recorded `count` messages.
async fn messages_for(api: &TestStack, token: &str, count: usize) -> Vec<Value> {
    for _ in 0..150 {
        if let Some(endpoint) = endpoint_for(api, token).await {
            let messages: Vec<Value> = endpoint["messages"]
                .as_object()
                .map(|m| {
                    m.values()
                        .map(|v| serde_json::from_str(v.as_str().unwrap()).unwrap())
                        .collect()
                })
                .unwrap_or_default();
            if messages.len() >= count {
                return messages;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {count} messages for {token} after 15 s");
}

/// What the emulator recorded as published to the endpoint holding
/// `token`: each message with its attributes (the delivery headers).
async fn published_to(api: &TestStack, token: &str) -> Vec<Value> {
    let endpoint = endpoint_for(api, token).await.expect("an endpoint");
    api.published_to_endpoint(endpoint["arn"].as_str().unwrap())
        .await
}

/// The platform payload of a recorded publish.
fn payload(published: &Value, key: &str) -> Value {
    let message: Value = serde_json::from_str(published["message"].as_str().unwrap()).unwrap();
    serde_json::from_str(message[key].as_str().unwrap()).unwrap()
}

async fn register(
    api: &TestStack,
    user: &User,
    device: &str,
    platform: &str,
    token: &str,
) -> e2e::Reply {
    api.send(
        api.request(
            "PUT",
            &format!("/devices/{device}"),
            Some(&user.access_token),
        )
        .json(&json!({"platform": platform, "token": token})),
    )
    .await
}

fn token() -> String {
    format!("token-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn registration_is_idempotent_and_follows_token_changes() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let first = token();
    let registered = register(&api, &user, "phone-1", "ios", &first).await;
    assert_eq!(registered.status, 200, "{registered:?}");
    assert_eq!(
        registered.body,
        json!({"deviceId": "phone-1", "platform": "ios"})
    );
    let endpoint = endpoint_for(&api, &first).await.expect("an endpoint");
    assert!(endpoint["arn"].as_str().unwrap().contains("APNS"));

    // Every app launch re-registers: same endpoint, no error.
    assert_eq!(
        register(&api, &user, "phone-1", "ios", &first).await.status,
        200
    );
    assert_eq!(
        endpoint_for(&api, &first).await.unwrap()["arn"],
        endpoint["arn"]
    );

    // A new token updates the same endpoint.
    let second = token();
    assert_eq!(
        register(&api, &user, "phone-1", "ios", &second)
            .await
            .status,
        200
    );
    assert!(endpoint_for(&api, &first).await.is_none());
    assert_eq!(
        endpoint_for(&api, &second).await.unwrap()["arn"],
        endpoint["arn"]
    );

    // A disabled endpoint (APNs said the token was invalid) is re-enabled.
    let sdk = api.sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    sns.set_endpoint_attributes()
        .endpoint_arn(endpoint["arn"].as_str().unwrap())
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();
    assert_eq!(endpoint_for(&api, &second).await.unwrap()["enabled"], false);
    assert_eq!(
        register(&api, &user, "phone-1", "ios", &second)
            .await
            .status,
        200
    );
    assert_eq!(endpoint_for(&api, &second).await.unwrap()["enabled"], true);

    // Android goes to the FCM application.
    let android = token();
    assert_eq!(
        register(&api, &user, "tablet-1", "android", &android)
            .await
            .status,
        200
    );
    assert!(
        endpoint_for(&api, &android).await.unwrap()["arn"]
            .as_str()
            .unwrap()
            .contains("GCM")
    );

    let deleted = api
        .delete("/devices/phone-1", Some(&user.access_token))
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert!(
        endpoint_for(&api, &second).await.is_none(),
        "the endpoint is deleted"
    );
    api.delete("/devices/phone-1", Some(&user.access_token))
        .await
        .assert_problem(404, "not_found");
    api.stop().await;
}

#[tokio::test]
async fn bad_registrations_are_problems() {
    let api = TestStack::start().await;
    let user = api.user().await;
    register(&api, &user, "p", "windows", &token())
        .await
        .assert_problem(400, "invalid_request");
    register(&api, &user, "p", "ios", "")
        .await
        .assert_problem(400, "invalid_request");
    register(&api, &user, "p", "ios", "has space")
        .await
        .assert_problem(400, "invalid_request");
    register(&api, &user, "bad%20id", "ios", &token())
        .await
        .assert_problem(404, "not_found");
    api.send(
        api.request("PUT", "/devices/p", None)
            .json(&json!({"platform": "ios", "token": "t"})),
    )
    .await
    .assert_problem(401, "unauthorized");
    // Another user's device is not found.
    let other = api.user().await;
    assert_eq!(
        register(&api, &user, "mine", "ios", &token()).await.status,
        200
    );
    api.delete("/devices/mine", Some(&other.access_token))
        .await
        .assert_problem(404, "not_found");
    api.stop().await;
}

#[tokio::test]
async fn a_ready_photo_is_pushed_to_the_users_devices() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let android = token();
    let ios = token();
    register(&api, &user, "tablet", "android", &android).await;
    register(&api, &user, "phone", "ios", &ios).await;
    let photo = shared::media::pipeline::testing::jpeg_with_exif(640, 480, 1);
    let media_id = upload(&api, &user, "image/jpeg", &photo).await;

    messages_for(&api, &android, 1).await;
    let published = published_to(&api, &android).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let fcm = &payload(&published[0], "GCM")["fcmV1Message"]["message"];
    assert_eq!(fcm["data"]["type"], "media_ready");
    assert_eq!(fcm["data"]["mediaId"], media_id.as_str());
    assert!(fcm["notification"]["title"].is_string());
    assert_eq!(fcm["android"]["ttl"], "86400s");
    assert_eq!(
        published[0]["attributes"],
        json!({"AWS.SNS.MOBILE.FCM.TTL": "86400"})
    );

    messages_for(&api, &ios, 1).await;
    let published = published_to(&api, &ios).await;
    let apns = payload(&published[0], "APNS_SANDBOX");
    assert_eq!(apns["mediaId"], media_id.as_str());
    assert!(apns["aps"]["alert"]["title"].is_string());
    assert_eq!(
        published[0]["attributes"],
        json!({
            "AWS.SNS.MOBILE.APNS.PUSH_TYPE": "alert",
            "AWS.SNS.MOBILE.APNS.PRIORITY": "10",
            "AWS.SNS.MOBILE.APNS_SANDBOX.TTL": "86400",
        })
    );
    api.stop().await;
}

/// The OS rotates a device's push token; the app registers the new one.
/// The same endpoint now holds it, pushes reach it, and the old token is
/// held by no endpoint, so nothing is ever sent to it again.
#[tokio::test]
async fn a_rotated_token_gets_the_pushes_and_the_old_one_none() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let (old, new) = (token(), token());
    assert_eq!(
        register(&api, &user, "phone", "ios", &old).await.status,
        200
    );
    let arn = endpoint_for(&api, &old).await.unwrap()["arn"].clone();
    assert_eq!(
        register(&api, &user, "phone", "ios", &new).await.status,
        200
    );
    assert_eq!(endpoint_for(&api, &new).await.unwrap()["arn"], arn);
    assert!(endpoint_for(&api, &old).await.is_none());

    let photo = shared::media::pipeline::testing::jpeg_with_exif(320, 240, 1);
    let media_id = upload(&api, &user, "image/jpeg", &photo).await;
    messages_for(&api, &new, 1).await;
    let published = published_to(&api, &new).await;
    assert_eq!(published.len(), 1);
    assert_eq!(
        payload(&published[0], "APNS_SANDBOX")["mediaId"],
        media_id.as_str()
    );
    assert!(
        endpoint_for(&api, &old).await.is_none(),
        "no endpoint holds the old token"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_redelivered_ready_record_is_not_pushed_twice() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let android = token();
    register(&api, &user, "tablet", "android", &android).await;
    let photo = shared::media::pipeline::testing::jpeg_with_exif(320, 240, 1);
    let media_id = upload(&api, &user, "image/jpeg", &photo).await;
    assert_eq!(messages_for(&api, &android, 1).await.len(), 1);

    // The stream delivers the pending -> ready record again, twice.
    let sdk = api.sdk().await;
    let deps = notify::Deps {
        table: api.table().await,
        push: shared::adapters::push::Push::new(&sdk, "", ""),
    };
    let media = |status: &str| {
        json!({
            "PK": {"S": format!("USER#{}", user.user_id)},
            "SK": {"S": format!("MEDIA#{media_id}")},
            "mediaId": {"S": media_id}, "status": {"S": status}
        })
    };
    let record = e2e::events::stream_record("1", "MODIFY", media("ready"), media("pending"));
    let event: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(json!({"Records": [record]})).unwrap();
    for _ in 0..2 {
        let response = notify::handle_stream(&deps, event.clone()).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let endpoint = endpoint_for(&api, &android).await.unwrap();
    assert_eq!(
        endpoint["messages"].as_object().map_or(0, |m| m.len()),
        1,
        "{endpoint}"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_sync_change_pokes_the_other_devices_silently() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let (phone, tablet) = (token(), token());
    register(&api, &user, "phone", "ios", &phone).await;
    register(&api, &user, "tablet", "android", &tablet).await;
    let now = chrono::Utc::now().timestamp_millis();
    let mutations: Vec<Value> = (1..=30)
        .map(|id| {
            json!({"id": id, "collection": "notes", "recordId": format!("n{id}"), "op": "put",
                          "fields": {"t": id}, "hlc": format!("{now:015}-{id:05}-phone")})
        })
        .collect();
    let pushed = api.push(&user, "phone", mutations).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");

    messages_for(&api, &tablet, 1).await;
    let published = published_to(&api, &tablet).await;
    let fcm = &payload(&published[0], "GCM")["fcmV1Message"]["message"];
    assert_eq!(fcm["data"]["type"], "sync");
    assert!(fcm.get("notification").is_none(), "silent");
    let collapse = format!("sync-{}", user.user_id);
    assert_eq!(
        fcm["android"],
        json!({"priority": "high", "ttl": "3600s", "collapse_key": collapse})
    );
    assert_eq!(
        published[0]["attributes"],
        json!({"AWS.SNS.MOBILE.FCM.TTL": "3600"})
    );
    // Thirty changes, one poke (coalesced per batch), none to the origin.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let messages = messages_for(&api, &tablet, 1).await;
    // The emulator may hand the stream to the poller in a few slices, so a
    // few pokes are possible; one per change would be thirty.
    assert!(messages.len() <= 3, "{} pokes for one push", messages.len());
    let origin = endpoint_for(&api, &phone).await.unwrap();
    assert_eq!(
        origin["messages"],
        json!({}),
        "the origin device is not poked"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_disabled_endpoint_forgets_its_device() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let dead = token();
    register(&api, &user, "old-phone", "android", &dead).await;
    let arn = endpoint_for(&api, &dead).await.unwrap()["arn"]
        .as_str()
        .unwrap()
        .to_string();
    let sdk = api.sdk().await;
    aws_sdk_sns::Client::new(&sdk)
        .set_endpoint_attributes()
        .endpoint_arn(&arn)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();
    let photo = shared::media::pipeline::testing::jpeg_with_exif(64, 64, 1);
    upload(&api, &user, "image/jpeg", &photo).await;
    for _ in 0..150 {
        if endpoint_for(&api, &dead).await.is_none() {
            api.delete("/devices/old-phone", Some(&user.access_token))
                .await
                .assert_problem(404, "not_found");
            api.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the disabled endpoint was not cleaned up: {:?} (was {arn})",
        endpoint_for(&api, &dead).await
    );
}

/// One phone, two accounts: B signs in where A was. The token is B's now,
/// so A's photos reach A's devices only, and B deleting the device leaves
/// A nothing dangling; the same holds the other way round.
#[tokio::test]
async fn a_push_token_is_one_users_at_a_time() {
    let api = TestStack::start().await;
    let (ann, bob) = (api.user().await, api.user().await);
    let table = api.table().await;
    let phone = token();
    assert_eq!(
        register(&api, &ann, "phone", "android", &phone)
            .await
            .status,
        200
    );
    assert_eq!(
        register(&api, &bob, "bob-phone", "android", &phone)
            .await
            .status,
        200
    );
    assert!(
        table.devices(&ann.user_id).await.unwrap().is_empty(),
        "moved off Ann"
    );
    assert_eq!(table.devices(&bob.user_id).await.unwrap().len(), 1);

    // Ann's photo is announced to nobody: the phone is Bob's.
    let photo = shared::media::pipeline::testing::jpeg_with_exif(64, 48, 1);
    let ann_photo = upload(&api, &ann, "image/jpeg", &photo).await;
    api.wait_until_processed(&ann, &ann_photo).await;
    let bob_photo = upload(&api, &bob, "image/jpeg", &photo).await;
    let pushes = messages_for(&api, &phone, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let published = published_to(&api, &phone).await;
    assert_eq!(published.len(), 1, "{pushes:?}");
    let fcm = &payload(&published[0], "GCM")["fcmV1Message"]["message"];
    assert_eq!(fcm["data"]["mediaId"], bob_photo.as_str());

    // Back to Ann: Bob's device goes, Ann's comes back.
    assert_eq!(
        register(&api, &ann, "phone", "android", &phone)
            .await
            .status,
        200
    );
    assert!(
        table.devices(&bob.user_id).await.unwrap().is_empty(),
        "moved off Bob"
    );
    assert_eq!(table.devices(&ann.user_id).await.unwrap().len(), 1);
    let gone = api
        .delete("/devices/bob-phone", Some(&bob.access_token))
        .await;
    assert_eq!(gone.status, 404, "{gone:?}");
    assert!(
        endpoint_for(&api, &phone).await.is_some(),
        "Ann's endpoint stays"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_change_in_a_space_pokes_its_members_devices_silently() {
    let api = TestStack::start().await;
    let (owner, member, stranger) = (api.user().await, api.user().await, api.user().await);
    let (owner_phone, member_phone, theirs) = (token(), token(), token());
    register(&api, &owner, "owner-phone", "ios", &owner_phone).await;
    register(&api, &member, "member-phone", "android", &member_phone).await;
    register(&api, &stranger, "phone", "android", &theirs).await;
    let space = api
        .shared_space(&owner, "Family", &[(&member, "editor")])
        .await;

    let pushed = api
        .push(
            &owner,
            "owner-phone",
            vec![
                json!({"id": 1, "spaceId": space, "collection": "lists", "recordId": "l1",
                        "op": "put", "fields": {"t": "milk"}, "hlc": e2e::hlc_now("owner-phone")}),
            ],
        )
        .await;
    assert_eq!(pushed.body["rejected"], json!([]), "{pushed:?}");
    messages_for(&api, &member_phone, 1).await;
    let published = published_to(&api, &member_phone).await;
    let fcm = &payload(&published[0], "GCM")["fcmV1Message"]["message"];
    assert_eq!(fcm["data"]["type"], "sync");
    assert!(fcm.get("notification").is_none(), "silent");
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (token, who) in [
        (&owner_phone, "the pushing device"),
        (&theirs, "a stranger"),
    ] {
        let endpoint = endpoint_for(&api, token).await.unwrap();
        assert_eq!(endpoint["messages"], json!({}), "{who} is not poked");
    }
    api.stop().await;
}
