//! Auth end to end through the local stack, as a phone would use it.

use e2e::{PASSWORD, TestStack};
use serde_json::json;

#[tokio::test]
async fn an_account_lives_from_sign_up_to_sign_out() {
    let api = TestStack::start().await;
    let email = format!("Ann.{}@Example.COM ", uuid::Uuid::new_v4().simple());
    let normalised = email.trim().to_lowercase();

    let health = api.get("/health", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, json!({"status": "ok"}));

    let signed_up = api
        .post(
            "/auth/sign-up",
            json!({"email": email, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(signed_up.status, 201, "{signed_up:?}");
    assert_eq!(signed_up.body["confirmed"], false);
    let user_id = signed_up.body["userId"].as_str().unwrap().to_string();

    api.post(
        "/auth/sign-up",
        json!({"email": normalised, "password": PASSWORD}),
        None,
    )
    .await
    .assert_problem(409, "user_exists");
    api.sign_in(&normalised, PASSWORD)
        .await
        .assert_problem(403, "not_confirmed");

    let confirmed = api
        .post(
            "/auth/confirm",
            json!({"email": normalised, "code": "123456"}),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 204, "{confirmed:?}");

    let tokens = api.sign_in(&email, PASSWORD).await;
    assert_eq!(tokens.status, 200, "{tokens:?}");
    assert_eq!(tokens.body["tokenType"], "Bearer");
    assert!(tokens.body["expiresIn"].as_i64().unwrap() > 0);
    assert!(tokens.body["idToken"].is_string());
    let access = tokens.body["accessToken"].as_str().unwrap().to_string();
    let refresh = tokens.body["refreshToken"].as_str().unwrap().to_string();

    let me = api.get("/me", Some(&access)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["userId"], user_id);
    assert_eq!(me.body["email"], normalised);
    assert!(me.body["createdAt"].is_string());

    let refreshed = api
        .post("/auth/refresh", json!({"refreshToken": refresh}), None)
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    assert!(refreshed.body["accessToken"].is_string());
    assert!(refreshed.body.get("refreshToken").is_none());

    let signed_out = api.post("/auth/sign-out", json!({}), Some(&access)).await;
    assert_eq!(signed_out.status, 204, "{signed_out:?}");
    api.post("/auth/refresh", json!({"refreshToken": refresh}), None)
        .await
        .assert_problem(401, "invalid_refresh_token");
    api.get("/me", Some(&access))
        .await
        .assert_problem(401, "token_revoked");
    // Every authorized route refuses the revoked token, not only /me.
    for (method, path) in [
        ("GET", "/media"),
        ("GET", "/sync/pull?clientId=p"),
        ("DELETE", "/devices/d"),
        ("DELETE", "/me"),
    ] {
        api.send(api.request(method, path, Some(&access)))
            .await
            .assert_problem(401, "token_revoked");
    }

    // A new session right after the sign-out works.
    let again = api.sign_in(&normalised, PASSWORD).await;
    assert_eq!(again.status, 200);
    let me = api.get("/me", again.body["accessToken"].as_str()).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(
        me.body["createdAt"],
        api.get("/me", again.body["accessToken"].as_str())
            .await
            .body["createdAt"]
    );
    api.stop().await;
}

#[tokio::test]
async fn wrong_passwords_and_unknown_accounts_look_the_same() {
    let api = TestStack::start().await;
    let user = api.user().await;
    api.sign_in(&user.email, "Wr0ng-password")
        .await
        .assert_problem(401, "bad_credentials");
    api.sign_in("nobody@example.com", PASSWORD)
        .await
        .assert_problem(401, "bad_credentials");
    api.stop().await;
}

#[tokio::test]
async fn a_password_reset_ends_old_sessions() {
    let api = TestStack::start().await;
    let user = api.user().await;
    for email in [user.email.as_str(), "nobody@example.com"] {
        let forgot = api
            .post("/auth/forgot-password", json!({"email": email}), None)
            .await;
        assert_eq!(forgot.status, 202, "{forgot:?}");
    }
    let new_password = "N3w-Passw0rd!";
    let reset = api
        .post(
            "/auth/reset-password",
            json!({"email": user.email, "code": "123456", "password": new_password}),
            None,
        )
        .await;
    assert_eq!(reset.status, 204, "{reset:?}");
    api.sign_in(&user.email, PASSWORD)
        .await
        .assert_problem(401, "bad_credentials");
    assert_eq!(api.sign_in(&user.email, new_password).await.status, 200);
    api.post(
        "/auth/refresh",
        json!({"refreshToken": user.refresh_token}),
        None,
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
    api.stop().await;
}

#[tokio::test]
async fn deleting_the_account_removes_the_user_and_their_items() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let other = api.user().await;
    let synced = api
        .post(
            "/sync/push",
            json!({"clientId": "p", "mutations": [{"id": 1, "collection": "notes", "recordId": "n",
                   "op": "put", "fields": {"a": 1}, "hlc": "001700000000000-00000-p"}]}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(synced.status, 200, "{synced:?}");
    let device = api
        .send(
            api.request("PUT", "/devices/phone", Some(&user.access_token))
                .json(&json!({"platform": "android", "token": format!("t-{}", user.user_id)})),
        )
        .await;
    assert_eq!(device.status, 200, "{device:?}");
    let photo = e2e::upload(&api, &user, "image/png", b"bytes").await;
    let deleted = api.delete("/me", Some(&user.access_token)).await;
    assert_eq!(deleted.status, 202, "{deleted:?}");
    // From the 202 on: no sign-in, no token; the rest is the purge's.
    api.sign_in(&user.email, PASSWORD)
        .await
        .assert_problem(401, "bad_credentials");
    api.get("/me", Some(&user.access_token))
        .await
        .assert_problem(401, "token_revoked");
    api.wait_until_purged().await;
    assert_eq!(api.queue_depth("PurgeDeadLetterQueue").await, 0);

    let sdk = api.sdk().await;
    let items = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(&api.stack.resources.table_name)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let pk_of = |item: &std::collections::HashMap<
        String,
        aws_sdk_dynamodb::types::AttributeValue,
    >| { item["PK"].as_s().unwrap().clone() };
    // Only the deletion marker stays (the profile, refusing every token of
    // the account until its TTL), and no push token names the user.
    let left: Vec<_> = items
        .iter()
        .filter(|item| {
            pk_of(item).contains(user.user_id.as_str())
                || item.get("userId").and_then(|v| v.as_s().ok()) == Some(&user.user_id.to_string())
        })
        .collect();
    assert_eq!(left.len(), 1, "items left behind: {left:?}");
    assert_eq!(left[0]["SK"].as_s().unwrap(), "PROFILE");
    assert!(left[0].contains_key("deletedAt") && left[0].contains_key("expiresAt"));
    assert!(
        items
            .iter()
            .any(|item| pk_of(item).contains(other.user_id.as_str()))
    );
    // No endpoint, no object left behind either.
    let sns = aws_sdk_sns::Client::new(&sdk);
    let endpoints = sns
        .list_endpoints_by_platform_application()
        .platform_application_arn(&api.stack.resources.physical["FcmPlatformApplicationArn"])
        .send()
        .await
        .unwrap();
    let left: Vec<_> = endpoints
        .endpoints()
        .iter()
        .filter(|e| {
            e.attributes()
                .and_then(|a| a.get("Token"))
                .is_some_and(|t| t.contains(user.user_id.as_str()))
        })
        .collect();
    assert!(left.is_empty(), "endpoints left behind: {left:?}");
    for prefix in shared::keys::user_object_prefixes(&user.user_id) {
        assert_eq!(
            api.objects_under(&prefix).await,
            0,
            "objects left behind ({photo})"
        );
    }
    // Another user is untouched.
    assert_eq!(api.get("/me", Some(&other.access_token)).await.status, 200);
    api.stop().await;
}
