//! With the emulator down, failing or silent, routes answer 503 problems
//! within the SDK's bounded timeouts and retries, recover when it is back,
//! and leave nothing half-written.

use std::time::{Duration, Instant};

use e2e::faults::{Fault, FaultyProxy};
use e2e::{Reply, TestStack, User};
use serde_json::{Value, json};

/// Bounds "no hang", not speed: the SDK gives up after 5 s at most.
const NO_HANG: Duration = Duration::from_secs(20);

async fn timed(what: &str, reply: impl Future<Output = Reply>) -> Reply {
    let started = Instant::now();
    let reply = reply.await;
    let took = started.elapsed();
    println!("{what}: {} in {took:?}", reply.status);
    assert!(took < NO_HANG, "{what} took {took:?}");
    reply
}

fn push_body(id: u64, title: &str) -> Value {
    json!({"clientId": "phone", "mutations": [{
        "id": id, "collection": "notes", "recordId": "n1", "op": "put",
        "fields": {"title": title},
        "hlc": e2e::hlc_now("phone"),
    }]})
}

async fn changes(api: &TestStack, user: &User) -> Vec<Value> {
    let pulled = api
        .get("/sync/pull?clientId=tablet", Some(&user.access_token))
        .await;
    assert_eq!(pulled.status, 200, "{pulled:?}");
    pulled.body["changes"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_unreachable_emulator_is_a_quick_503_and_service_recovers() {
    let proxy = FaultyProxy::start(&e2e::emulator_url()).await;
    let api = TestStack::start_against(proxy.url.clone()).await;
    let user = api.user().await;

    for fault in [Fault::Down, Fault::Errors, Fault::BlackHole] {
        proxy.set(fault.clone());
        for (method, path, body) in [
            ("GET", "/me", None),
            ("GET", "/media", None),
            ("POST", "/sync/push", Some(push_body(1, "lost"))),
            (
                "POST",
                "/auth/sign-in",
                Some(json!({"email": user.email, "password": user.password})),
            ),
        ] {
            let mut request = api.request(method, path, Some(&user.access_token));
            if let Some(body) = body {
                request = request.json(&body);
            }
            timed(&format!("{fault:?} {method} {path}"), api.send(request))
                .await
                .assert_problem(503, "service_unavailable");
        }
    }

    proxy.set(Fault::None);
    assert_eq!(api.get("/me", Some(&user.access_token)).await.status, 200);
    // None of the failed pushes left a trace.
    assert!(changes(&api, &user).await.is_empty());
    let pushed = api
        .post("/sync/push", push_body(1, "kept"), Some(&user.access_token))
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body["lastMutationId"], 1);
    api.stop().await;
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_half_done() {
    let proxy = FaultyProxy::start(&e2e::emulator_url()).await;
    let api = TestStack::start_against(proxy.url.clone()).await;
    let user = api.user().await;

    // The push reads, then its one transaction fails: nothing is applied,
    // the watermark stays, and the retry applies exactly once.
    proxy.set(Fault::FailOnly("TransactWriteItems"));
    api.post(
        "/sync/push",
        push_body(1, "draft"),
        Some(&user.access_token),
    )
    .await
    .assert_problem(503, "service_unavailable");
    proxy.set(Fault::None);
    assert!(changes(&api, &user).await.is_empty());
    let retried = api
        .post(
            "/sync/push",
            push_body(1, "draft"),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(retried.body["lastMutationId"], 1, "{retried:?}");
    let applied = changes(&api, &user).await;
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0]["fields"]["title"], "draft");

    // An upload slot whose item could not be written is not handed out,
    // and its Idempotency-Key is not spent.
    proxy.set(Fault::FailOnly("PutItem"));
    let key = uuid::Uuid::new_v4().to_string();
    let upload = || {
        api.request("POST", "/uploads", Some(&user.access_token))
            .header("Idempotency-Key", &key)
            .json(&json!({"contentType": "image/png", "bytes": 10}))
    };
    api.send(upload())
        .await
        .assert_problem(503, "service_unavailable");
    proxy.set(Fault::None);
    let listed = api.get("/media", Some(&user.access_token)).await;
    assert_eq!(listed.body["items"], json!([]), "{listed:?}");
    let created = api.send(upload()).await;
    assert_eq!(created.status, 201, "{created:?}");

    // Account deletion that fails at its last step (the Cognito user) is
    // finished by the retry with the same token.
    proxy.set(Fault::FailOnly("AdminDeleteUser"));
    api.delete("/me", Some(&user.access_token))
        .await
        .assert_problem(503, "service_unavailable");
    proxy.set(Fault::None);
    assert_eq!(
        api.delete("/me", Some(&user.access_token)).await.status,
        204
    );
    api.sign_in(&user.email, &user.password)
        .await
        .assert_problem(401, "bad_credentials");
    api.stop().await;
}
