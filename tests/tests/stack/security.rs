//! Every authorized route, attacked: no token, an expired token, a token
//! for another app client, a tampered signature, a token of another user
//! pool (all 401 before any handler runs), and another user's ids (404).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use e2e::tokens::{claims_of, mint};
use e2e::{PASSWORD, TestStack, User};
use serde_json::json;

/// A path for `route` with its parameters filled in.
fn path_of(route: &str, id: &str) -> String {
    route.replace("{mediaId}", id).replace("{deviceId}", id)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token for the same user from a second app client of the same pool.
async fn token_of_another_client(api: &TestStack, user: &User) -> String {
    let sdk = api.sdk().await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let client = cognito
        .create_user_pool_client()
        .user_pool_id(&api.stack.resources.user_pool_id)
        .client_name("another-app")
        .explicit_auth_flows(
            aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowUserPasswordAuth,
        )
        .send()
        .await
        .unwrap();
    let client_id = client.user_pool_client.unwrap().client_id.unwrap();
    let auth = cognito
        .initiate_auth()
        .client_id(&client_id)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", &user.email)
        .auth_parameters("PASSWORD", PASSWORD)
        .send()
        .await
        .unwrap();
    let token = auth.authentication_result.unwrap().access_token.unwrap();
    assert_eq!(claims_of(&token)["client_id"], client_id.as_str());
    token
}

#[tokio::test]
async fn every_authorized_route_refuses_bad_tokens() {
    let api = TestStack::start().await;
    let elsewhere = TestStack::start().await;
    let user = api.user().await;
    let stranger = elsewhere.user().await;

    // The minting is faithful: a re-signed copy of a good token works...
    let resigned = mint(&user.access_token, |_| {});
    assert_eq!(api.get("/me", Some(&resigned)).await.status, 200);
    // ...so each of these fails for exactly the claim it changes.
    let expired = mint(&user.access_token, |claims| {
        claims["iat"] = json!(now() - 7200);
        claims["exp"] = json!(now() - 3600);
    });
    let other_issuer = mint(&user.access_token, |claims| {
        claims["iss"] = json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_attacker");
    });
    let other_client = token_of_another_client(&api, &user).await;
    let mut tampered: Vec<String> = user.access_token.split('.').map(String::from).collect();
    tampered[1] = URL_SAFE_NO_PAD.encode(
        claims_of(&user.access_token)
            .to_string()
            .replace(user.user_id.as_str(), stranger.user_id.as_str()),
    );
    let tampered = tampered.join(".");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        user.access_token.split('.').nth(1).unwrap()
    );

    let protected: Vec<_> = api.stack.routes.iter().filter(|r| !r.public).collect();
    assert!(protected.len() >= 10, "{protected:?}");
    let id = uuid::Uuid::new_v4().to_string();
    for route in protected {
        let path = path_of(&route.path, &id);
        let attempts: [(&str, Option<&str>); 8] = [
            ("no token", None),
            ("garbage", Some("not-a-jwt")),
            ("expired", Some(&expired)),
            ("another issuer", Some(&other_issuer)),
            ("another client", Some(&other_client)),
            ("tampered", Some(&tampered)),
            ("alg none", Some(&unsigned)),
            ("another user pool", Some(&stranger.access_token)),
        ];
        for (what, token) in attempts {
            let reply = api
                .send(
                    api.request(&route.method, &path, token)
                        .header("content-type", "application/json")
                        .body("{}"),
                )
                .await;
            assert_eq!(reply.status, 401, "{} with {what}: {reply:?}", route.key());
            reply.assert_problem(401, "unauthorized");
        }
    }
    // Nothing above touched the account.
    assert_eq!(api.get("/me", Some(&user.access_token)).await.status, 200);
    api.stop().await;
    elsewhere.stop().await;
}

#[tokio::test]
async fn another_users_ids_are_not_found_on_every_route_that_takes_one() {
    let api = TestStack::start().await;
    let owner = api.user().await;
    let intruder = api.user().await;
    let photo = shared::media::pipeline::testing::jpeg_with_exif(64, 48, 1);
    let media_id = e2e::upload(&api, &owner, "image/jpeg", &photo).await;
    let registered = api
        .send(
            api.request("PUT", "/devices/owner-phone", Some(&owner.access_token))
                .json(&json!({"platform": "android", "token": "owner-token"})),
        )
        .await;
    assert_eq!(registered.status, 200, "{registered:?}");

    let with_ids: Vec<_> = api
        .stack
        .routes
        .iter()
        .filter(|r| r.path.contains('{'))
        .collect();
    for route in &with_ids {
        let id = if route.path.contains("{mediaId}") {
            media_id.as_str()
        } else {
            "owner-phone"
        };
        if route.method == "PUT" {
            // Registering "their" device id creates the intruder's own
            // device; the owner's is untouched (checked below).
            continue;
        }
        api.send(api.request(
            &route.method,
            &path_of(&route.path, id),
            Some(&intruder.access_token),
        ))
        .await
        .assert_problem(404, "not_found");
    }
    let owners = api
        .get(&format!("/media/{media_id}"), Some(&owner.access_token))
        .await;
    assert_eq!(owners.status, 200, "{owners:?}");
    let table = api.table().await;
    assert!(
        table
            .device(
                &owner.user_id,
                &shared::model::ids::DeviceId::parse("owner-phone").unwrap(),
            )
            .await
            .unwrap()
            .is_some()
    );
    api.stop().await;
}
