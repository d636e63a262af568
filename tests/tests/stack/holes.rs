//! Regression tests for the holes an afternoon of probing found (issue 21):
//! each fails on the code before its fix.

use std::time::Duration;

use e2e::{TestStack, hlc_now};
use serde_json::{Value, json};

use crate::realtime::{next_message, open, wait_for_connections};

fn nested(levels: usize) -> Value {
    let mut value = json!("leaf");
    for _ in 0..levels {
        value = json!({ "k": value });
    }
    value
}

fn put(id: u64, record: &str, fields: Value, client: &str) -> Value {
    json!({"id": id, "collection": "notes", "recordId": record, "op": "put",
           "fields": fields, "hlc": hlc_now(client)})
}

/// 64 fields of 4 KB: two of these outgrow one DynamoDB item.
fn wide(prefix: &str) -> Value {
    let fields: serde_json::Map<String, Value> = (0..64)
        .map(|f| (format!("{prefix}{f}"), json!("x".repeat(4000))))
        .collect();
    Value::Object(fields)
}

#[tokio::test]
async fn a_value_nested_too_deep_is_rejected_and_nothing_else_stalls() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let mut tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;

    let batch = vec![
        put(1, "deep", json!({ "v": nested(61) }), "phone"),
        put(2, "ceiling", json!({ "v": nested(29) }), "phone"),
        put(3, "deep", json!({ "v": nested(30) }), "phone"),
        put(4, "plain", json!({ "title": "after" }), "phone"),
    ];
    let pushed = api.push(&user, "phone", batch.clone()).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body["lastMutationId"], 4);
    assert_eq!(
        pushed.body["rejected"],
        json!([{"id": 1, "code": "value_too_deep"}, {"id": 3, "code": "value_too_deep"}])
    );
    // The resend of an acknowledged batch gets the same answer.
    let again = api.push(&user, "phone", batch).await;
    assert_eq!(again.body, pushed.body);

    // Pulls work, and the value at the ceiling comes back whole.
    let pulled = api
        .get("/sync/pull?clientId=tablet", Some(&user.access_token))
        .await;
    assert_eq!(pulled.status, 200, "{pulled:?}");
    let changes = pulled.body["changes"].as_array().unwrap();
    let ids: Vec<&str> = changes
        .iter()
        .map(|c| c["recordId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ceiling", "plain"]);
    assert_eq!(changes[0]["fields"]["v"], nested(29));

    // The stream still flows: the other device is poked.
    let poke = next_message(&mut tablet, Duration::from_secs(10)).await;
    assert_eq!(poke.expect("a poke")["type"], "poke");

    // The next batch pushes past the rejections: they are forgotten.
    let next = api
        .push(
            &user,
            "phone",
            vec![put(5, "plain", json!({"n": 5}), "phone")],
        )
        .await;
    assert_eq!(next.body, json!({"lastMutationId": 5, "rejected": []}));
    api.stop().await;
}

#[tokio::test]
async fn the_emulator_refuses_what_dynamodb_refuses_one_level_past_the_ceiling() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let api = TestStack::start().await;
    let client = aws_sdk_dynamodb::Client::new(&api.sdk().await);
    let table = api.stack.resources.table_name.clone();
    let wrapped = |wraps: usize| {
        let mut value = AttributeValue::S("leaf".into());
        for _ in 0..wraps {
            value = AttributeValue::M([("k".to_string(), value)].into());
        }
        value
    };
    for (wraps, accepted) in [(31, true), (32, false)] {
        let result = client
            .put_item()
            .table_name(&table)
            .item("PK", AttributeValue::S("PROBE".into()))
            .item("SK", AttributeValue::S(format!("DEPTH#{wraps}")))
            .item("v", wrapped(wraps))
            .send()
            .await;
        assert_eq!(result.is_ok(), accepted, "{wraps} wraps: {result:?}");
    }
    api.stop().await;
}

#[tokio::test]
async fn a_record_that_would_outgrow_an_item_is_rejected_and_the_device_goes_on() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let first = api
        .push(&user, "phone", vec![put(1, "big", wide("a"), "phone")])
        .await;
    assert_eq!(first.body["rejected"], json!([]), "{first:?}");
    let second = api
        .push(&user, "phone", vec![put(2, "big", wide("b"), "phone")])
        .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        second.body,
        json!({"lastMutationId": 2, "rejected": [{"id": 2, "code": "record_too_large"}]})
    );
    // Its later edits, deletes included, still apply.
    let delete = json!({"id": 3, "collection": "notes", "recordId": "big", "op": "delete",
                        "hlc": hlc_now("phone")});
    let third = api.push(&user, "phone", vec![delete]).await;
    assert_eq!(third.body["lastMutationId"], 3, "{third:?}");
    let pulled = api
        .get("/sync/pull?clientId=phone", Some(&user.access_token))
        .await;
    assert_eq!(pulled.body["changes"][0]["deleted"], true, "{pulled:?}");

    // 21 records of 260 KB, then one small edit of each: one push whose
    // records take 5.5 MB, more than a transaction carries.
    let mut id = 4;
    for batch in 0..7 {
        let wide_ones: Vec<Value> = (0..3)
            .map(|i| {
                id += 1;
                put(id - 1, &format!("r{batch}-{i}"), wide("c"), "phone")
            })
            .collect();
        let pushed = api.push(&user, "phone", wide_ones).await;
        assert_eq!(pushed.body["rejected"], json!([]), "{pushed:?}");
    }
    let touches: Vec<Value> = (0..21)
        .map(|n| {
            put(
                id + n,
                &format!("r{}-{}", n / 3, n % 3),
                json!({"seen": true}),
                "phone",
            )
        })
        .collect();
    let heavy = api.push(&user, "phone", touches).await;
    assert_eq!(heavy.status, 200, "{heavy:?}");
    assert_eq!(
        heavy.body,
        json!({"lastMutationId": id + 20, "rejected": []})
    );
    api.stop().await;
}

#[tokio::test]
async fn only_a_malformed_envelope_is_refused_whole() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let gap = vec![
        put(1, "a", json!({"v": 1}), "phone"),
        put(3, "a", json!({"v": 1}), "phone"),
    ];
    api.push(&user, "phone", gap)
        .await
        .assert_problem(400, "invalid_request");
    let missing = json!({"id": 1, "collection": "notes", "op": "put", "hlc": hlc_now("phone")});
    api.push(&user, "phone", vec![missing])
        .await
        .assert_problem(400, "invalid_request");
    api.stop().await;
}

/// Whether the server closes `socket` within `wait` (a ping unanswered
/// until then counts as open).
async fn closed_within(socket: &mut crate::realtime::Socket, wait: Duration) -> bool {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let _ = socket
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test]
async fn a_deleted_accounts_tokens_are_refused_everywhere() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let token = Some(user.access_token.as_str());
    let mut socket = open(&api, token, "tablet").await.unwrap();
    wait_for_connections(&api, &user, 1).await;
    let deleted = api.delete("/me", token).await;
    assert!(deleted.status.is_success(), "{deleted:?}");
    assert!(
        closed_within(&mut socket, Duration::from_secs(5)).await,
        "the socket is closed"
    );

    api.get("/me", token)
        .await
        .assert_problem(401, "token_revoked");
    api.push(&user, "phone", vec![put(1, "n", json!({"a": 1}), "phone")])
        .await
        .assert_problem(401, "token_revoked");
    api.get("/sync/pull?clientId=phone", token)
        .await
        .assert_problem(401, "token_revoked");
    api.post(
        "/uploads",
        json!({"contentType": "image/jpeg", "bytes": 1000}),
        token,
    )
    .await
    .assert_problem(401, "token_revoked");
    let device = api
        .send(
            api.request("PUT", "/devices/phone-1", token)
                .json(&json!({"platform": "ios", "token": "a".repeat(64)})),
        )
        .await;
    device.assert_problem(401, "token_revoked");
    assert_eq!(open(&api, token, "tablet").await.err(), Some(403));
    // Nothing was recreated in the partition: only the marker is left.
    let table = api.table().await;
    let profile = table.profile(&user.user_id).await.unwrap().unwrap();
    assert!(profile.deleted_at.is_some());
    assert!(table.devices(&user.user_id).await.unwrap().is_empty());
    api.stop().await;
}

#[tokio::test]
async fn a_password_reset_and_a_sign_out_close_the_sockets_opened_before() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let mut before_reset = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;
    api.post("/auth/forgot-password", json!({"email": user.email}), None)
        .await;
    let reset = api
        .post(
            "/auth/reset-password",
            json!({"email": user.email, "code": "123456", "password": "N3w-Passw0rd!"}),
            None,
        )
        .await;
    assert_eq!(reset.status, 204, "{reset:?}");
    assert!(closed_within(&mut before_reset, Duration::from_secs(5)).await);

    // A second after the reset (tokens of its second are refused).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let signed_in = api.sign_in(&user.email, "N3w-Passw0rd!").await;
    let token = signed_in.body["accessToken"].as_str().unwrap().to_string();
    let mut before_sign_out = open(&api, Some(&token), "tablet").await.unwrap();
    wait_for_connections(&api, &user, 1).await;
    let out = api.post("/auth/sign-out", json!({}), Some(&token)).await;
    assert_eq!(out.status, 204, "{out:?}");
    assert!(closed_within(&mut before_sign_out, Duration::from_secs(5)).await);
    api.stop().await;
}

#[tokio::test]
async fn a_session_of_the_same_second_as_a_sign_out_ends_with_it() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let first = api.sign_in(&user.email, &user.password).await;
    let second = api.sign_in(&user.email, &user.password).await;
    let token = |reply: &e2e::Reply, name: &str| reply.body[name].as_str().unwrap().to_string();
    let out = api
        .post(
            "/auth/sign-out",
            json!({}),
            Some(&token(&first, "accessToken")),
        )
        .await;
    assert_eq!(out.status, 204, "{out:?}");
    // A global sign-out ends every session, whatever second it began in.
    for bearer in [
        token(&second, "accessToken"),
        token(&first, "idToken"),
        token(&second, "idToken"),
    ] {
        let me = api.get("/me", Some(&bearer)).await;
        assert_eq!(me.status, 401, "{me:?}");
    }
    assert!(
        open(&api, Some(&token(&second, "accessToken")), "tablet")
            .await
            .is_err()
    );
    // A sign-in right after, maybe in the same second, is alive on arrival.
    let again = api.sign_in(&user.email, &user.password).await;
    assert_eq!(
        api.get("/me", Some(&token(&again, "accessToken")))
            .await
            .status,
        200
    );
    api.stop().await;
}

#[tokio::test]
async fn an_id_token_is_not_a_bearer_token() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let signed_in = api.sign_in(&user.email, &user.password).await;
    let id_token = signed_in.body["idToken"].as_str().unwrap();
    api.get("/me", Some(id_token))
        .await
        .assert_problem(401, "unauthorized");
    api.stop().await;
}

/// Posts a form upload: `fields`, then `bytes` as the file. Status and body.
async fn post_form(
    url: &str,
    fields: &serde_json::Map<String, Value>,
    bytes: &[u8],
) -> (u16, String) {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.clone(), value.as_str().unwrap().to_string());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("f"),
    );
    let posted = reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (posted.status().as_u16(), posted.text().await.unwrap())
}

#[tokio::test]
async fn the_local_s3_refuses_every_form_s3_would_refuse() {
    let api = TestStack::start().await;
    let (ann, bob) = (api.user().await, api.user().await);
    let ask = |user: &e2e::User, bytes: usize| {
        let token = user.access_token.clone();
        let api = &api;
        async move {
            let created = api
                .post(
                    "/uploads",
                    json!({"contentType": "image/jpeg", "bytes": bytes}),
                    Some(&token),
                )
                .await;
            assert_eq!(created.status, 201, "{created:?}");
            created.body
        }
    };
    let bobs = ask(&bob, 100).await;
    let anns = ask(&ann, 100).await;
    let url = anns["upload"]["url"].as_str().unwrap();
    let genuine = anns["upload"]["fields"].as_object().unwrap().clone();
    let with = |name: &str, value: &str| {
        let mut fields = genuine.clone();
        fields.insert(name.into(), json!(value));
        fields
    };
    let bobs_key = bobs["upload"]["fields"]["key"].as_str().unwrap();
    let variant = format!(
        "media/{}/{}/800.jpg",
        bob.user_id,
        bobs["mediaId"].as_str().unwrap()
    );
    let mut unsigned = serde_json::Map::new();
    unsigned.insert("key".into(), json!(bobs_key));
    let cases = [
        (
            "another user's key",
            with("key", bobs_key),
            100,
            403,
            "AccessDenied",
        ),
        (
            "a variant key",
            with("key", &variant),
            100,
            403,
            "AccessDenied",
        ),
        (
            "another type",
            with("Content-Type", "text/html"),
            100,
            403,
            "AccessDenied",
        ),
        (
            "a zeroed signature",
            with("x-amz-signature", &"0".repeat(64)),
            100,
            403,
            "SignatureDoesNotMatch",
        ),
        ("no policy at all", unsigned, 100, 403, "AccessDenied"),
        (
            "a field the policy lacks",
            with("acl", "public-read"),
            100,
            403,
            "AccessDenied",
        ),
        (
            "a body over the declared size",
            genuine.clone(),
            101,
            400,
            "EntityTooLarge",
        ),
    ];
    for (what, fields, size, status, code) in cases {
        let (got, body) = post_form(url, &fields, &vec![0xFF; size]).await;
        assert_eq!(got, status, "{what}: {body}");
        assert!(body.contains(code), "{what}: {body}");
    }

    // An expired policy, genuinely signed.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let stale = shared::media::presign::presigned_post(
        &shared::media::presign::PostUpload {
            bucket: &api.stack.resources.bucket,
            key: anns["upload"]["fields"]["key"].as_str().unwrap(),
            content_type: "image/jpeg",
            max_bytes: 100,
            expires_in: Duration::from_secs(60),
            region: "us-east-1",
        },
        &shared::media::presign::SigningCredentials {
            access_key_id: "testing",
            secret_access_key: "testing",
            session_token: None,
        },
        an_hour_ago,
    );
    let stale: serde_json::Map<String, Value> = stale
        .fields
        .into_iter()
        .map(|(name, value)| (name, json!(value)))
        .collect();
    let (got, body) = post_form(url, &stale, &[0xFF; 10]).await;
    assert_eq!(got, 403, "{body}");
    assert!(body.contains("Policy expired"), "{body}");

    // Bob's pending upload was never touched; Ann's genuine form works.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&api.sdk().await)
            .force_path_style(true)
            .build(),
    );
    for key in [bobs_key, variant.as_str()] {
        let head = s3
            .head_object()
            .bucket(&api.stack.resources.bucket)
            .key(key)
            .send()
            .await;
        assert!(head.is_err(), "{key} was written");
    }
    let (got, body) = post_form(url, &genuine, &[0xFF; 100]).await;
    assert!((200..300).contains(&got), "{got}: {body}");
    api.stop().await;
}

#[tokio::test]
async fn the_local_gateway_keeps_api_gateways_size_limits_and_drops_silent_connections() {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::Message;
    let api = TestStack::start_with_websocket_limits(local_stack::websocket::Limits {
        handshake: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let user = api.user().await;
    let token = Some(user.access_token.as_str());
    // Within the frame limit: answered (an unknown type, but answered).
    let mut socket = open(&api, token, "phone").await.unwrap();
    let small = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(20 * 1024));
    socket.send(Message::Text(small.into())).await.unwrap();
    assert!(
        next_message(&mut socket, Duration::from_secs(5))
            .await
            .is_some()
    );
    // 40 KB in one frame, and a 200 KB message: closed with 1009.
    for size in [40 * 1024, 200 * 1024] {
        let mut socket = open(&api, token, "phone").await.unwrap();
        let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(size));
        let _ = socket.send(Message::Text(big.into())).await;
        let closed = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
        match closed {
            Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 1009),
            other => panic!("{size} bytes: expected a 1009 close, got {other:?}"),
        }
    }
    // A TCP connection that never sends a handshake is closed.
    let address = api
        .stack
        .websocket_url
        .trim_start_matches("ws://")
        .to_string();
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "still open after 5 s"
    );
    api.stop().await;
}
