//! Bad input on every public route gets a clear problem document: never a
//! 5xx, never a hang.

use e2e::TestStack;
use serde_json::json;

const PUBLIC_BODY_ROUTES: [&str; 6] = [
    "/auth/sign-up",
    "/auth/confirm",
    "/auth/sign-in",
    "/auth/refresh",
    "/auth/forgot-password",
    "/auth/reset-password",
];

#[tokio::test]
async fn every_auth_route_refuses_bad_bodies_with_a_problem() {
    let api = TestStack::start().await;
    for route in PUBLIC_BODY_ROUTES {
        let raw = |body: &'static str, content_type: &'static str| {
            api.request("POST", route, None)
                .header("content-type", content_type)
                .body(body)
        };
        api.send(raw("{\"email\": ", "application/json"))
            .await
            .assert_problem(400, "malformed_json");
        api.send(raw("", "application/json"))
            .await
            .assert_problem(400, "invalid_request");
        api.send(raw("{}", "application/json"))
            .await
            .assert_problem(400, "invalid_request");
        api.send(raw("[1, 2]", "application/json"))
            .await
            .assert_problem(400, "invalid_request");
        api.send(raw(
            r#"{"email": 42, "password": 42, "code": 42, "refreshToken": 42}"#,
            "application/json",
        ))
        .await
        .assert_problem(400, "invalid_request");
        api.send(raw("email=a", "application/x-www-form-urlencoded"))
            .await
            .assert_problem(415, "unsupported_media_type");
        let huge = json!({"email": "a@example.com", "password": "x".repeat(20_000)});
        api.post(route, huge, None)
            .await
            .assert_problem(413, "payload_too_large");
    }
    api.stop().await;
}

#[tokio::test]
async fn bad_values_get_specific_codes() {
    let api = TestStack::start().await;
    api.post(
        "/auth/sign-up",
        json!({"email": "not-an-email", "password": "Val1d-Pass"}),
        None,
    )
    .await
    .assert_problem(400, "invalid_request");
    api.post(
        "/auth/sign-up",
        json!({"email": "weak@example.com", "password": "weak"}),
        None,
    )
    .await
    .assert_problem(400, "weak_password");
    api.post(
        "/auth/sign-up",
        json!({"email": "empty@example.com", "password": ""}),
        None,
    )
    .await
    .assert_problem(400, "weak_password");
    api.post(
        "/auth/confirm",
        json!({"email": "nobody@example.com", "code": "123456"}),
        None,
    )
    .await
    .assert_problem(400, "code_mismatch");
    // Found by schemathesis: an unknown email on reset was a 500.
    api.post(
        "/auth/reset-password",
        json!({"email": "nobody@example.com", "code": "123456", "password": "Corr3ct-Horse"}),
        None,
    )
    .await
    .assert_problem(400, "code_mismatch");
    api.post(
        "/auth/confirm",
        json!({"email": "nobody@example.com", "code": ""}),
        None,
    )
    .await
    .assert_problem(400, "invalid_request");
    api.post(
        "/auth/refresh",
        json!({"refreshToken": "not-a-token"}),
        None,
    )
    .await
    .assert_problem(401, "invalid_refresh_token");
    api.post("/auth/refresh", json!({"refreshToken": ""}), None)
        .await
        .assert_problem(401, "invalid_refresh_token");
    api.post("/auth/forgot-password", json!({"email": "@"}), None)
        .await
        .assert_problem(400, "invalid_request");
    api.stop().await;
}

#[tokio::test]
async fn the_authorizer_refuses_before_any_handler_runs() {
    let api = TestStack::start().await;
    let user = api.user().await;
    for (method, path) in [
        ("GET", "/me"),
        ("DELETE", "/me"),
        ("POST", "/auth/sign-out"),
    ] {
        api.send(api.request(method, path, None))
            .await
            .assert_problem(401, "unauthorized");
        api.send(api.request(method, path, Some("not.a.jwt")))
            .await
            .assert_problem(401, "unauthorized");
        // Same header and claims, signature of another token: tampered.
        let mut parts: Vec<&str> = user.access_token.split('.').collect();
        let reversed: String = parts[2].chars().rev().collect();
        parts[2] = &reversed;
        api.send(api.request(method, path, Some(&parts.join("."))))
            .await
            .assert_problem(401, "unauthorized");
        // Claims edited to another user, signature kept.
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value = serde_json::from_slice(
            &engine
                .decode(user.access_token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        claims["sub"] = json!("someone-else");
        let forged = format!(
            "{}.{}.{}",
            user.access_token.split('.').next().unwrap(),
            engine.encode(claims.to_string()),
            user.access_token.split('.').nth(2).unwrap()
        );
        api.send(api.request(method, path, Some(&forged)))
            .await
            .assert_problem(401, "unauthorized");
    }
    // The user is untouched by all of that.
    assert_eq!(api.get("/me", Some(&user.access_token)).await.status, 200);
    api.stop().await;
}

#[tokio::test]
async fn a_token_of_another_user_pool_is_refused() {
    let api = TestStack::start().await;
    let elsewhere = TestStack::start().await;
    let stranger = elsewhere.user().await;
    api.get("/me", Some(&stranger.access_token))
        .await
        .assert_problem(401, "unauthorized");
    api.stop().await;
    elsewhere.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let api = TestStack::start().await;
    api.get("/nope", None)
        .await
        .assert_problem(404, "not_found");
    let wrong_method = api.send(api.request("PUT", "/health", None)).await;
    wrong_method.assert_problem(405, "method_not_allowed");
    assert_eq!(wrong_method.headers["allow"], "GET");
    let two = api.send(api.request("PATCH", "/me", None)).await;
    two.assert_problem(405, "method_not_allowed");
    assert_eq!(two.headers["allow"], "GET, DELETE");
    api.stop().await;
}
