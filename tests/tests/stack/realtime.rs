//! The live channel through the local stack: real WebSocket clients on
//! loopback, the real authorizer and handlers in process, the emulator
//! behind, and the management API the poke function's SDK client posts to.

use std::time::Duration;

use e2e::tokens::{claims_of, mint};
use e2e::{TestStack, User, hlc_now, upload};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shared::media::pipeline::testing::jpeg_with_exif;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the channel as an app would; the handshake's HTTP status if refused.
pub(crate) async fn open(
    api: &TestStack,
    token: Option<&str>,
    client_id: &str,
) -> Result<Socket, u16> {
    let mut url = format!("{}/?clientId={client_id}", api.stack.websocket_url);
    if let Some(token) = token {
        url.push_str(&format!("&token={token}"));
    }
    match connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(err) => panic!("the handshake failed without an HTTP answer: {err}"),
    }
}

/// The next JSON message within `wait`, or None.
pub(crate) async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(err))) => panic!("the socket failed: {err}"),
        }
    }
}

async fn push(api: &TestStack, user: &User, client_id: &str, record: &str) -> Value {
    let mutation = json!({
        "id": 1, "collection": "notes", "recordId": record, "op": "put",
        "fields": {"title": "from the phone"}, "hlc": hlc_now(client_id)});
    let pushed = api.push(user, client_id, vec![mutation]).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    pushed.body
}

/// Waits until the user's connection items number `count`.
pub(crate) async fn wait_for_connections(api: &TestStack, user: &User, count: usize) {
    let table = api.table().await;
    for _ in 0..100 {
        if table.connections(&user.user_id).await.unwrap().len() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the user never had {count} connections");
}

#[tokio::test]
async fn a_push_pokes_the_users_other_devices_and_no_one_else() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let stranger = api.user().await;
    let mut phone = open(&api, Some(&user.access_token), "phone").await.unwrap();
    let mut tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    let mut theirs = open(&api, Some(&stranger.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 2).await;

    push(&api, &user, "phone", "n1").await;
    let poke = next_message(&mut tablet, Duration::from_secs(10))
        .await
        .expect("the tablet is poked");
    assert_eq!(poke["type"], "poke", "{poke}");
    // The cursor is the one a pull would end at now.
    let pulled = api
        .get("/sync/pull?clientId=tablet", Some(&user.access_token))
        .await;
    assert_eq!(poke["cursor"], pulled.body["cursor"]);
    assert_eq!(pulled.body["changes"][0]["recordId"], "n1");
    // The pushing phone and the other user hear nothing.
    assert_eq!(
        next_message(&mut phone, Duration::from_millis(1500)).await,
        None
    );
    assert_eq!(
        next_message(&mut theirs, Duration::from_millis(200)).await,
        None
    );

    // A ping gets a pong (the $default route's answer).
    tablet
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut tablet, Duration::from_secs(5)).await,
        Some(json!({"type": "pong"}))
    );
    api.stop().await;
}

#[tokio::test]
async fn missing_garbage_expired_and_revoked_tokens_are_refused() {
    let api = TestStack::start().await;
    let user = api.user().await;
    assert_eq!(open(&api, None, "phone").await.err(), Some(401));
    assert_eq!(open(&api, Some("garbage"), "phone").await.err(), Some(401));
    let issued = claims_of(&user.access_token)["iat"].as_i64().unwrap();
    let expired = mint(&user.access_token, |claims| {
        claims["exp"] = json!(issued - 60);
    });
    assert_eq!(open(&api, Some(&expired), "phone").await.err(), Some(401));
    let id_token_use = mint(&user.access_token, |claims| {
        claims["token_use"] = json!("id");
    });
    assert_eq!(
        open(&api, Some(&id_token_use), "phone").await.err(),
        Some(401)
    );
    // A genuine token, but no usable clientId.
    assert_eq!(
        open(&api, Some(&user.access_token), "").await.err(),
        Some(403)
    );
    // The re-signed copy of a good token is accepted: each refusal above is
    // the one claim that changed.
    let resigned = mint(&user.access_token, |_| {});
    let _open = open(&api, Some(&resigned), "phone").await.unwrap();
    wait_for_connections(&api, &user, 1).await;

    let signed_out = api
        .post("/auth/sign-out", json!({}), Some(&user.access_token))
        .await;
    assert!(signed_out.status.is_success(), "{signed_out:?}");
    // Signing out forgets the open connection: nothing more is sent to it.
    wait_for_connections(&api, &user, 0).await;
    assert_eq!(
        open(&api, Some(&user.access_token), "phone").await.err(),
        Some(403)
    );
    api.stop().await;
}

#[tokio::test]
async fn a_finished_photo_is_announced() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let mut phone = open(&api, Some(&user.access_token), "phone").await.unwrap();
    wait_for_connections(&api, &user, 1).await;
    let id = upload(&api, &user, "image/jpeg", &jpeg_with_exif(640, 480, 1)).await;
    let message = loop {
        let message = next_message(&mut phone, Duration::from_secs(20))
            .await
            .expect("the media message arrives");
        if message["type"] == "media" {
            break message;
        }
    };
    assert_eq!(
        message,
        json!({"type": "media", "mediaId": id, "status": "ready"})
    );
    api.stop().await;
}

#[tokio::test]
async fn a_connection_that_answers_410_is_forgotten() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let mut tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;
    // A phone that dropped off without its $disconnect running.
    api.table()
        .await
        .put_connection(&shared::model::connection::Connection {
            connection_id: "droppedXYZ123=".into(),
            user_id: user.user_id.clone(),
            client_id: shared::model::ids::ClientId::parse("old-phone").unwrap(),
            connected_at: chrono::Utc::now(),
            poked_version: 0,
            poked_spaces: Default::default(),
        })
        .await
        .unwrap();
    wait_for_connections(&api, &user, 2).await;
    push(&api, &user, "laptop", "n1").await;
    assert_eq!(
        next_message(&mut tablet, Duration::from_secs(10))
            .await
            .unwrap()["type"],
        "poke"
    );
    wait_for_connections(&api, &user, 1).await;
    let left = api.table().await.connections(&user.user_id).await.unwrap();
    assert_eq!(left[0].client_id.as_str(), "tablet");

    // A closed socket's item goes with its $disconnect.
    tablet.close(None).await.unwrap();
    wait_for_connections(&api, &user, 0).await;
    api.stop().await;
}

#[tokio::test]
async fn a_redelivered_batch_pokes_once() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let mut tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;
    let deps = realtime::poke::Deps::new(
        &api.sdk().await,
        &realtime::poke::Config {
            table_name: api.stack.resources.table_name.clone(),
            management_url: api.stack.websocket_url.replace("ws://", "http://"),
        },
    );
    // Two changes of one push in one batch, delivered twice (the stream's
    // at-least-once): one poke.
    let record = |sequence: &str, id: &str, version: u64| {
        e2e::events::stream_record(
            sequence,
            "INSERT",
            json!({
                "PK": {"S": format!("USER#{}", user.user_id)},
                "SK": {"S": format!("REC#notes#{id}")},
                "feedVer": {"N": version.to_string()},
                "origin": {"S": "phone"},
            }),
            json!({}),
        )
    };
    let event: aws_lambda_events::dynamodb::Event = serde_json::from_value(json!({
        "Records": [record("100", "a", 41), record("101", "b", 42)]
    }))
    .unwrap();
    for _ in 0..2 {
        let response = realtime::poke::handle_stream(&deps, event.clone())
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let poke = next_message(&mut tablet, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(poke["type"], "poke");
    assert_eq!(
        poke["cursor"],
        shared::sync::feed::encode_cursor(shared::sync::feed::PullCursor {
            own: 42,
            generation: 0
        })
    );
    assert_eq!(
        next_message(&mut tablet, Duration::from_millis(1000)).await,
        None
    );
    api.stop().await;
}

/// Pokes are saved only when part of a batch is to be redelivered; then
/// another container taking the redelivery pokes nobody twice.
#[tokio::test]
async fn a_batch_redelivered_after_a_failure_to_another_container_pokes_once() {
    use e2e::faults::{Fault, FaultyProxy};

    let proxy = FaultyProxy::start(&e2e::emulator_url()).await;
    let api = TestStack::start_against(proxy.url.clone()).await;
    let user = api.user().await;
    let mut tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;
    let sdk = api.sdk().await;
    let container = || {
        realtime::poke::Deps::new(
            &sdk,
            &realtime::poke::Config {
                table_name: api.stack.resources.table_name.clone(),
                management_url: api.stack.websocket_url.replace("ws://", "http://"),
            },
        )
    };
    // A change in a space whose members cannot be read (its record fails
    // and is redelivered, with every record after it), then one of the
    // user's own, which is poked.
    let event: aws_lambda_events::dynamodb::Event = serde_json::from_value(json!({
        "Records": [
            e2e::events::stream_record("100", "INSERT", json!({
                "PK": {"S": "SPACE#s-unreadable"}, "SK": {"S": "REC#cards#c1"},
                "feedVer": {"N": "3"}, "origin": {"S": "laptop"},
                "originUser": {"S": "someone-else"},
            }), json!({})),
            e2e::events::stream_record("101", "INSERT", json!({
                "PK": {"S": format!("USER#{}", user.user_id)}, "SK": {"S": "REC#notes#a"},
                "feedVer": {"N": "42"}, "origin": {"S": "phone"},
            }), json!({})),
        ]
    }))
    .unwrap();
    proxy.set(Fault::FailOnly("DynamoDB_20120810.Query"));
    let first = realtime::poke::handle_stream(&container(), event.clone())
        .await
        .unwrap();
    proxy.set(Fault::None);
    let failed: Vec<_> = first
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failed, ["100"]);
    let poke = next_message(&mut tablet, Duration::from_secs(5)).await;
    assert_eq!(poke.unwrap()["type"], "poke");

    let again = realtime::poke::handle_stream(&container(), event)
        .await
        .unwrap();
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(
        next_message(&mut tablet, Duration::from_millis(1000)).await,
        None,
        "poked once"
    );
    api.stop().await;
}

#[tokio::test]
async fn idle_and_old_connections_are_closed_as_api_gateway_does() {
    let api = TestStack::start_with_websocket_limits(local_stack::websocket::Limits {
        idle: Duration::from_millis(800),
        max: Duration::from_millis(2500),
        handshake: Duration::from_millis(500),
    })
    .await;
    let user = api.user().await;
    // Silent: closed when idle, with 1001 Going Away.
    let mut quiet = open(&api, Some(&user.access_token), "quiet").await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), quiet.next())
        .await
        .unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Pinging keeps it open past the idle limit, until the maximum.
    let mut chatty = open(&api, Some(&user.access_token), "chatty")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        chatty
            .send(Message::Text(r#"{"type":"ping"}"#.into()))
            .await
            .unwrap();
        match next_message(&mut chatty, Duration::from_millis(500)).await {
            Some(pong) => assert_eq!(pong["type"], "pong"),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(2000),
        "closed after {lived:?}"
    );
    wait_for_connections(&api, &user, 0).await;
    api.stop().await;
}

/// Drains what arrives within `wait`.
async fn drain(socket: &mut Socket, wait: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Some(message) = next_message(socket, wait).await {
        seen.push(message);
    }
    seen
}

#[tokio::test]
async fn a_change_in_a_space_pokes_every_member_but_the_pusher_until_they_are_removed() {
    let api = TestStack::start().await;
    let (owner, member, stranger) = (api.user().await, api.user().await, api.user().await);
    let space = api.create_space(&owner, "Board").await;
    let mut owner_phone = open(&api, Some(&owner.access_token), "owner-phone")
        .await
        .unwrap();
    let mut owner_tablet = open(&api, Some(&owner.access_token), "owner-tablet")
        .await
        .unwrap();
    let mut member_phone = open(&api, Some(&member.access_token), "member-phone")
        .await
        .unwrap();
    let mut theirs = open(&api, Some(&stranger.access_token), "phone")
        .await
        .unwrap();
    wait_for_connections(&api, &owner, 2).await;
    wait_for_connections(&api, &member, 1).await;

    // Joining pokes the new member (their membership began).
    let code = api.invite(&owner, &space, "editor").await;
    let joined = api.join(&member, &code).await;
    assert_eq!(joined.status, 200, "{joined:?}");
    let poke = next_message(&mut member_phone, Duration::from_secs(10)).await;
    assert_eq!(poke, Some(json!({"type": "poke", "spaceId": space})));
    // The owner's sockets may still get the poke of the space's creation
    // (their membership began), whose stream record can trail the opening.
    drain(&mut owner_phone, Duration::from_millis(1000)).await;
    drain(&mut owner_tablet, Duration::from_millis(200)).await;

    let mutation = |id: u64, record: &str| {
        json!({"id": id, "spaceId": space, "collection": "cards", "recordId": record,
               "op": "put", "fields": {"t": record}, "hlc": hlc_now("owner-phone")})
    };
    let pushed = api
        .push(&owner, "owner-phone", vec![mutation(1, "c1")])
        .await;
    assert_eq!(pushed.body["rejected"], json!([]), "{pushed:?}");
    let expected = Some(json!({"type": "poke", "spaceId": space}));
    assert_eq!(
        next_message(&mut member_phone, Duration::from_secs(10)).await,
        expected
    );
    assert_eq!(
        next_message(&mut owner_tablet, Duration::from_secs(10)).await,
        expected
    );
    assert_eq!(
        next_message(&mut owner_phone, Duration::from_millis(1500)).await,
        None
    );
    assert_eq!(
        next_message(&mut theirs, Duration::from_millis(200)).await,
        None
    );

    // Removed: one poke for the removal, then nothing more of the space.
    let removed = api
        .delete(
            &format!("/spaces/{space}/members/{}", member.user_id),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(removed.status, 204, "{removed:?}");
    assert_eq!(
        next_message(&mut member_phone, Duration::from_secs(10)).await,
        expected
    );
    api.push(&owner, "owner-phone", vec![mutation(2, "c2")])
        .await;
    assert_eq!(
        next_message(&mut owner_tablet, Duration::from_secs(10)).await,
        expected
    );
    assert_eq!(
        drain(&mut member_phone, Duration::from_millis(1500)).await,
        Vec::<Value>::new()
    );
    api.stop().await;
}

#[tokio::test]
async fn a_photo_finished_in_a_space_is_announced_to_its_members() {
    let api = TestStack::start().await;
    let (owner, member) = (api.user().await, api.user().await);
    let space = api
        .shared_space(&owner, "Album", &[(&member, "viewer")])
        .await;
    let mut socket = open(&api, Some(&member.access_token), "member-phone")
        .await
        .unwrap();
    wait_for_connections(&api, &member, 1).await;
    let id = e2e::upload_to(
        &api,
        &owner,
        Some(&space),
        "image/jpeg",
        &jpeg_with_exif(320, 240, 1),
    )
    .await;
    for _ in 0..10 {
        let message = next_message(&mut socket, Duration::from_secs(20))
            .await
            .expect("a message");
        if message["type"] == "media" {
            assert_eq!(
                message,
                json!({"type": "media", "mediaId": id, "status": "ready"})
            );
            api.stop().await;
            return;
        }
    }
    panic!("the member was never told of the photo");
}

#[tokio::test]
async fn a_connection_that_expired_without_disconnect_leaves_the_presence() {
    use aws_sdk_dynamodb::types::AttributeValue;

    let api = TestStack::start().await;
    let user = api.user().await;
    let table = api.table().await;
    let mut tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;
    // A socket whose `$disconnect` never ran and whose item the TTL took:
    // its id stays in the presence item.
    let ghost = shared::model::connection::Connection {
        connection_id: "ghost=".into(),
        user_id: user.user_id.clone(),
        client_id: shared::model::ids::ClientId::parse("old-phone").unwrap(),
        connected_at: chrono::Utc::now(),
        poked_version: 0,
        poked_spaces: Default::default(),
    };
    table.put_connection(&ghost).await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&api.sdk().await);
    let name = &api.stack.resources.table_name;
    client
        .delete_item()
        .table_name(name)
        .key("PK", AttributeValue::S(format!("USER#{}", user.user_id)))
        .key("SK", AttributeValue::S("CONN#ghost=".into()))
        .send()
        .await
        .unwrap();

    push(&api, &user, "phone", "n1").await;
    let poke = next_message(&mut tablet, Duration::from_secs(10)).await;
    assert_eq!(poke.unwrap()["type"], "poke", "the live socket is poked");
    let presence = client
        .get_item()
        .table_name(name)
        .key("PK", AttributeValue::S(format!("USER#{}", user.user_id)))
        .key("SK", AttributeValue::S("PRESENCE".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ids = presence["ids"].as_ss().unwrap();
    assert_eq!(ids.len(), 1, "only the live socket is left: {ids:?}");
    assert_ne!(ids[0], "ghost=");
    api.stop().await;
}

/// A fan-out that runs while a `$connect` is being recorded must not take
/// the new connection for an expired one and drop it: the item is written
/// before its id joins the presence. (Written the other way round, the
/// fan-out found the id without its item, removed the id, and that socket
/// was never poked again: 2 of 200 members in the space benchmark.)
#[tokio::test]
async fn a_fan_out_while_a_connection_is_being_recorded_never_drops_it() {
    use e2e::faults::{Fault, FaultyProxy};

    let proxy = FaultyProxy::start(&e2e::emulator_url()).await;
    let api = TestStack::start_against(proxy.url.clone()).await;
    let user = api.user().await;
    let table = api.table().await;
    let connection = shared::model::connection::Connection {
        connection_id: "new=".into(),
        user_id: user.user_id.clone(),
        client_id: shared::model::ids::ClientId::parse("phone").unwrap(),
        connected_at: chrono::Utc::now(),
        poked_version: 0,
        poked_spaces: Default::default(),
    };
    proxy.set(Fault::HoldFirst(
        "DynamoDB_20120810.PutItem",
        Duration::from_millis(1000),
    ));
    let users = [user.user_id.clone()];
    let fan_out = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        table.connections_of(&users).await.unwrap()
    };
    let (recorded, _during) = tokio::join!(table.put_connection(&connection), fan_out);
    recorded.unwrap();
    proxy.set(Fault::None);
    let open = table.connections_of(&users).await.unwrap();
    assert_eq!(
        open.get(&user.user_id).map(Vec::len),
        Some(1),
        "the connection is still found: {open:?}"
    );
    api.stop().await;
}
