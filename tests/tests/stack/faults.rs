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

    // A purge step that fails (the Cognito user, its last) is redelivered
    // and finishes once the fault is gone; nothing lands in the dead-letter
    // queue and nothing is left.
    proxy.switch(Fault::FailOnly("AdminDeleteUser"));
    assert_eq!(
        api.delete("/me", Some(&user.access_token)).await.status,
        202
    );
    let partition = shared::model::ids::Partition::User(user.user_id.clone());
    for _ in 0..100 {
        if api.partition_keys(&partition).await.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Past the items, so the step that fails is the last one.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    proxy.switch(Fault::None);
    api.wait_until_purged().await;
    assert_eq!(api.queue_depth("PurgeDeadLetterQueue").await, 0);
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&api.sdk().await);
    let gone = cognito
        .admin_get_user()
        .user_pool_id(&api.stack.resources.user_pool_id)
        .username(user.user_id.as_str())
        .send()
        .await;
    assert!(gone.is_err(), "the Cognito user is deleted: {gone:?}");
    api.stop().await;
}
