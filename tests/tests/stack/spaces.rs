//! Shared spaces through the local stack: the routes, their refusals, and
//! sync into and out of a space as membership changes.

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{Reply, TestStack, User};
use serde_json::{Value, json};

async fn send(api: &TestStack, method: &str, path: &str, body: Value, user: &User) -> Reply {
    api.send(
        api.request(method, path, Some(&user.access_token))
            .json(&body),
    )
    .await
}

/// A mutation `id` of `client` putting `fields` into `space`'s `record`.
fn put_in(space: &str, id: u64, client: &str, record: &str, fields: Value) -> Value {
    json!({"id": id, "spaceId": space, "collection": "items", "recordId": record,
           "op": "put", "fields": fields, "hlc": e2e::hlc_now(client)})
}

async fn pull(api: &TestStack, user: &User, client: &str, cursor: Option<&str>) -> Reply {
    let path = match cursor {
        Some(cursor) => format!("/sync/pull?clientId={client}&cursor={cursor}"),
        None => format!("/sync/pull?clientId={client}"),
    };
    let pulled = api.get(&path, Some(&user.access_token)).await;
    assert_eq!(pulled.status, 200, "{pulled:?}");
    pulled
}

#[tokio::test]
async fn a_space_is_made_shared_renamed_and_left() {
    let api = TestStack::start().await;
    let (owner, friend, stranger) = (api.user().await, api.user().await, api.user().await);

    // Made offline with the app's own id: the same id again is the space.
    let id = uuid::Uuid::new_v4().to_string();
    let created = api
        .post(
            "/spaces",
            json!({"name": "Groceries", "spaceId": id}),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let again = api
        .post(
            "/spaces",
            json!({"name": "Groceries", "spaceId": id}),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["spaceId"], id.as_str());
    // Someone else cannot take the id.
    api.post(
        "/spaces",
        json!({"name": "Mine", "spaceId": id}),
        Some(&stranger.access_token),
    )
    .await
    .assert_problem(409, "space_id_taken");

    let code = api.invite(&owner, &id, "editor").await;
    let joined = api.join(&friend, &code).await;
    assert_eq!(joined.status, 200, "{joined:?}");
    assert_eq!(joined.body["role"], "editor");
    assert_eq!(joined.body["name"], "Groceries");
    // Accepting again changes nothing, even with the code used up.
    let twice = api.join(&friend, &code).await;
    assert_eq!(twice.status, 200, "{twice:?}");
    // A used-up code lets nobody else in.
    api.join(&stranger, &code)
        .await
        .assert_problem(404, "not_found");

    let detail = api
        .get(&format!("/spaces/{id}"), Some(&friend.access_token))
        .await;
    assert_eq!(detail.status, 200, "{detail:?}");
    let members = detail.body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["role"], "owner");
    assert_eq!(members[0]["email"], owner.email.as_str());
    assert_eq!(members[1]["email"], friend.email.as_str());

    let renamed = send(
        &api,
        "PATCH",
        &format!("/spaces/{id}"),
        json!({"name": "Food"}),
        &friend,
    )
    .await;
    assert_eq!(renamed.status, 200, "{renamed:?}");
    let listed = api.get("/spaces", Some(&friend.access_token)).await;
    assert_eq!(
        listed.body["items"],
        json!([{"spaceId": id, "name": "Food", "role": "editor"}])
    );

    // The owner cannot leave others behind; after a transfer they can.
    api.delete(
        &format!("/spaces/{id}/members/{}", owner.user_id),
        Some(&owner.access_token),
    )
    .await
    .assert_problem(409, "owner_must_transfer");
    let transferred = send(
        &api,
        "PUT",
        &format!("/spaces/{id}/members/{}", friend.user_id),
        json!({"role": "owner"}),
        &owner,
    )
    .await;
    assert_eq!(transferred.status, 200, "{transferred:?}");
    let left = api
        .delete(
            &format!("/spaces/{id}/members/{}", owner.user_id),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(left.status, 204, "{left:?}");
    api.get(&format!("/spaces/{id}"), Some(&owner.access_token))
        .await
        .assert_problem(404, "not_found");
    let now = api
        .get(&format!("/spaces/{id}"), Some(&friend.access_token))
        .await;
    assert_eq!(now.body["role"], "owner");
    assert_eq!(now.body["members"].as_array().unwrap().len(), 1);

    // A former member may rejoin with a live code.
    let code = api.invite(&friend, &id, "viewer").await;
    let back = api.join(&owner, &code).await;
    assert_eq!(back.body["role"], "viewer", "{back:?}");
    api.stop().await;
}

#[tokio::test]
async fn every_space_route_hides_a_space_from_non_members_and_checks_roles() {
    let api = TestStack::start().await;
    let (owner, viewer, editor, stranger) = (
        api.user().await,
        api.user().await,
        api.user().await,
        api.user().await,
    );
    let space = api.create_space(&owner, "Board").await;
    let code = api.invite(&owner, &space, "viewer").await;
    assert_eq!(api.join(&viewer, &code).await.status, 200);
    let code = api.invite(&owner, &space, "editor").await;
    assert_eq!(api.join(&editor, &code).await.status, 200);
    let invitation = api
        .get(
            &format!("/spaces/{space}/invitations"),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(invitation.status, 200, "{invitation:?}");

    let member = |user: &User| format!("/spaces/{space}/members/{}", user.user_id);
    let routes: Vec<(&str, String, Value)> = vec![
        ("GET", format!("/spaces/{space}"), Value::Null),
        ("PATCH", format!("/spaces/{space}"), json!({"name": "x"})),
        ("DELETE", format!("/spaces/{space}"), Value::Null),
        (
            "POST",
            format!("/spaces/{space}/invitations"),
            json!({"role": "viewer"}),
        ),
        ("GET", format!("/spaces/{space}/invitations"), Value::Null),
        (
            "DELETE",
            format!("/spaces/{space}/invitations/abc"),
            Value::Null,
        ),
        ("PUT", member(&viewer), json!({"role": "editor"})),
        ("DELETE", member(&viewer), Value::Null),
    ];
    // A stranger, and an id that names nothing, get 404: never 403.
    for (method, path, body) in &routes {
        send(&api, method, path, body.clone(), &stranger)
            .await
            .assert_problem(404, "not_found");
        let nowhere = path.replace(&space, &uuid::Uuid::new_v4().to_string());
        send(&api, method, &nowhere, body.clone(), &owner)
            .await
            .assert_problem(404, "not_found");
    }
    // A viewer may read, nothing more; an editor may also rename.
    for (method, path, body) in &routes[1..] {
        if *method == "DELETE" && path == &member(&viewer) {
            continue; // leaving is the viewer's own right, tried below
        }
        send(&api, method, path, body.clone(), &viewer)
            .await
            .assert_problem(403, "insufficient_role");
    }
    for (method, path, body) in &routes[2..] {
        send(&api, method, path, body.clone(), &editor)
            .await
            .assert_problem(403, "insufficient_role");
    }
    // An invitation never grants ownership, so a code cannot escalate.
    api.post(
        &format!("/spaces/{space}/invitations"),
        json!({"role": "owner"}),
        Some(&owner.access_token),
    )
    .await
    .assert_problem(400, "invalid_request");
    // Nor can a member raise their own role with a code meant for others:
    // a current member accepting changes nothing.
    let editor_code = api.invite(&owner, &space, "editor").await;
    let kept = api.join(&viewer, &editor_code).await;
    assert_eq!(kept.body["role"], "viewer", "{kept:?}");
    let detail = api
        .get(&format!("/spaces/{space}"), Some(&viewer.access_token))
        .await;
    assert_eq!(detail.body["role"], "viewer");
    // Codes that were never issued are simply unknown.
    for guess in ["", "short", &"A".repeat(24), &e2e_code_like()] {
        api.join(&stranger, guess)
            .await
            .assert_problem(404, "not_found");
    }
    // A revoked code stops working at once.
    let code = api.invite(&owner, &space, "viewer").await;
    let listed = api
        .get(
            &format!("/spaces/{space}/invitations"),
            Some(&owner.access_token),
        )
        .await;
    let items = listed.body["items"].as_array().unwrap().clone();
    assert!(items.iter().all(|i| i.get("code").is_none()), "{items:?}");
    for item in items {
        let revoked = api
            .delete(
                &format!(
                    "/spaces/{space}/invitations/{}",
                    item["invitationId"].as_str().unwrap()
                ),
                Some(&owner.access_token),
            )
            .await;
        assert_eq!(revoked.status, 204, "{revoked:?}");
    }
    api.join(&stranger, &code)
        .await
        .assert_problem(404, "not_found");
    // The viewer leaves; then the space is hidden from them too.
    let left = api
        .delete(&member(&viewer), Some(&viewer.access_token))
        .await;
    assert_eq!(left.status, 204, "{left:?}");
    api.get(&format!("/spaces/{space}"), Some(&viewer.access_token))
        .await
        .assert_problem(404, "not_found");
    api.stop().await;
}

/// A code of the right shape (18 random bytes) that was never issued.
fn e2e_code_like() -> String {
    use base64::Engine;
    let bytes = [
        uuid::Uuid::new_v4().as_bytes().as_slice(),
        &uuid::Uuid::new_v4().as_bytes()[..2],
    ]
    .concat();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn records_of_a_space_reach_its_members_and_stop_at_removal() {
    let api = TestStack::start().await;
    let (owner, member, viewer, stranger) = (
        api.user().await,
        api.user().await,
        api.user().await,
        api.user().await,
    );
    let space = api.create_space(&owner, "Groceries").await;
    let code = api.invite(&owner, &space, "editor").await;
    assert_eq!(api.join(&member, &code).await.status, 200);
    let code = api.invite(&owner, &space, "viewer").await;
    assert_eq!(api.join(&viewer, &code).await.status, 200);

    // The owner writes into the space and into their own records.
    let pushed = api
        .push(
            &owner,
            "owner-phone",
            vec![
                put_in(&space, 1, "owner-phone", "milk", json!({"qty": 1})),
                json!({"id": 2, "collection": "notes", "recordId": "private", "op": "put",
                       "fields": {"t": "mine"}, "hlc": e2e::hlc_now("owner-phone")}),
            ],
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body["rejected"], json!([]));

    // The member's first pull: the space announced, its record, nothing of
    // the owner's own.
    let first = pull(&api, &member, "member-phone", None).await;
    assert_eq!(
        first.body["spaces"],
        json!([{"spaceId": space, "name": "Groceries", "role": "editor"}])
    );
    let changes = first.body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["spaceId"], space.as_str());
    assert_eq!(changes[0]["recordId"], "milk");
    let cursor = first.body["cursor"].as_str().unwrap().to_string();

    // The answer was lost: the same cursor gets the same answer.
    let repeated = pull(&api, &member, "member-phone", None).await;
    assert_eq!(repeated.body["changes"], first.body["changes"]);

    // The member edits; a viewer and a stranger are refused, not failed.
    let edited = api
        .push(
            &member,
            "member-phone",
            vec![put_in(
                &space,
                1,
                "member-phone",
                "eggs",
                json!({"qty": 12}),
            )],
        )
        .await;
    assert_eq!(edited.body["rejected"], json!([]), "{edited:?}");
    let viewed = api
        .push(
            &viewer,
            "viewer-phone",
            vec![put_in(&space, 1, "viewer-phone", "cake", json!({"qty": 1}))],
        )
        .await;
    assert_eq!(viewed.status, 200, "{viewed:?}");
    assert_eq!(
        viewed.body["rejected"],
        json!([{"id": 1, "code": "read_only"}])
    );
    let strange = api
        .push(
            &stranger,
            "stranger-phone",
            vec![put_in(
                &space,
                1,
                "stranger-phone",
                "cake",
                json!({"qty": 1}),
            )],
        )
        .await;
    assert_eq!(
        strange.body["rejected"],
        json!([{"id": 1, "code": "not_a_member"}])
    );

    // From the cursor: only the new edit, nothing announced again.
    let next = pull(&api, &member, "member-phone", Some(&cursor)).await;
    assert_eq!(next.body["spaces"], json!([]));
    let records: Vec<&str> = next.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["recordId"].as_str().unwrap())
        .collect();
    assert_eq!(records, ["eggs"]);
    let cursor = next.body["cursor"].as_str().unwrap().to_string();

    // Removed: the next pull says so, and nothing more of the space comes.
    let removed = api
        .delete(
            &format!("/spaces/{space}/members/{}", member.user_id),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(removed.status, 204, "{removed:?}");
    api.push(
        &owner,
        "owner-phone",
        vec![put_in(&space, 3, "owner-phone", "bread", json!({"qty": 2}))],
    )
    .await;
    let gone = pull(&api, &member, "member-phone", Some(&cursor)).await;
    assert_eq!(
        gone.body["spaces"],
        json!([{"spaceId": space, "removed": true}])
    );
    assert_eq!(gone.body["changes"], json!([]));
    let cursor = gone.body["cursor"].as_str().unwrap().to_string();
    let late = api
        .push(
            &member,
            "member-phone",
            vec![put_in(&space, 2, "member-phone", "eggs", json!({"qty": 6}))],
        )
        .await;
    assert_eq!(
        late.body["rejected"],
        json!([{"id": 2, "code": "not_a_member"}])
    );

    // Removed and re-added between two pulls: removed, then joined, then
    // the whole current state.
    let code = api.invite(&owner, &space, "editor").await;
    assert_eq!(api.join(&member, &code).await.status, 200);
    let again = pull(&api, &member, "member-phone", Some(&cursor)).await;
    assert_eq!(
        again.body["spaces"],
        json!([{"spaceId": space, "name": "Groceries", "role": "editor"}]),
        "the removal was already told: only the new membership"
    );
    let mut records: Vec<&str> = again.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["recordId"].as_str().unwrap())
        .collect();
    records.sort();
    assert_eq!(records, ["bread", "eggs", "milk"]);

    // Another device of the member, which never pulled: only the
    // membership it is in now.
    let tablet = pull(&api, &member, "member-tablet", None).await;
    assert_eq!(tablet.body["spaces"].as_array().unwrap().len(), 1);

    // The owner deletes the space: gone for every member at once.
    let deleted = api
        .delete(&format!("/spaces/{space}"), Some(&owner.access_token))
        .await;
    assert_eq!(deleted.status, 202, "{deleted:?}");
    let cursor = again.body["cursor"].as_str().unwrap().to_string();
    let after = pull(&api, &member, "member-phone", Some(&cursor)).await;
    assert_eq!(
        after.body["spaces"],
        json!([{"spaceId": space, "removed": true}])
    );
    let listed = api.get("/spaces", Some(&viewer.access_token)).await;
    assert_eq!(listed.body["items"], json!([]));
    api.stop().await;
}

#[tokio::test]
async fn a_member_removed_and_re_added_between_pulls_is_told_both_in_order() {
    let api = TestStack::start().await;
    let (owner, member) = (api.user().await, api.user().await);
    let space = api.create_space(&owner, "Album").await;
    let code = api.invite(&owner, &space, "editor").await;
    assert_eq!(api.join(&member, &code).await.status, 200);
    let first = pull(&api, &member, "phone", None).await;
    let cursor = first.body["cursor"].as_str().unwrap().to_string();
    api.delete(
        &format!("/spaces/{space}/members/{}", member.user_id),
        Some(&owner.access_token),
    )
    .await;
    let code = api.invite(&owner, &space, "viewer").await;
    assert_eq!(api.join(&member, &code).await.status, 200);
    let next = pull(&api, &member, "phone", Some(&cursor)).await;
    assert_eq!(
        next.body["spaces"],
        json!([
            {"spaceId": space, "removed": true},
            {"spaceId": space, "name": "Album", "role": "viewer"}
        ])
    );
    api.stop().await;
}

/// The race the in-transaction check exists for: a push reads the
/// member's role, the owner removes them, and only then does the push
/// commit. The commit is cancelled and its retry rejects the mutation, so
/// no write gets in after the removal.
#[tokio::test]
async fn a_removal_racing_a_push_lets_no_write_in_after_it() {
    use e2e::faults::{Fault, FaultyProxy};

    let proxy = FaultyProxy::start(&e2e::emulator_url()).await;
    let api = TestStack::start_against(proxy.url.clone()).await;
    let (owner, member) = (api.user().await, api.user().await);
    let space = api.create_space(&owner, "Race").await;
    let code = api.invite(&owner, &space, "editor").await;
    assert_eq!(api.join(&member, &code).await.status, 200);

    // The push's commit (the first transaction from now on) waits 1.5 s
    // after its read; the removal, 300 ms in, commits at once.
    proxy.set(Fault::HoldFirst(
        "TransactWriteItems",
        std::time::Duration::from_millis(1500),
    ));
    let push = api.push(
        &member,
        "phone",
        vec![put_in(&space, 1, "phone", "late", json!({"v": 1}))],
    );
    let remove = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        api.delete(
            &format!("/spaces/{space}/members/{}", member.user_id),
            Some(&owner.access_token),
        )
        .await
    };
    let (pushed, removed) = tokio::join!(push, remove);
    assert_eq!(removed.status, 204, "{removed:?}");
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(
        pushed.body["rejected"],
        json!([{"id": 1, "code": "not_a_member"}]),
        "the write read a membership that was gone when it committed"
    );
    let seen = pull(&api, &owner, "owner-phone", None).await;
    assert_eq!(seen.body["changes"], json!([]), "{seen:?}");
    api.stop().await;
}

#[tokio::test]
async fn a_deleted_account_leaves_its_spaces_and_its_records_in_them_stay() {
    let api = TestStack::start().await;
    let (owner, first, second) = (api.user().await, api.user().await, api.user().await);
    let shared = api.create_space(&owner, "Family").await;
    let alone = api.create_space(&owner, "Mine alone").await;
    for user in [&first, &second] {
        let code = api.invite(&owner, &shared, "viewer").await;
        assert_eq!(api.join(user, &code).await.status, 200);
    }
    let pushed = api
        .push(
            &owner,
            "phone",
            vec![put_in(&shared, 1, "phone", "recipe", json!({"t": "soup"}))],
        )
        .await;
    assert_eq!(pushed.body["rejected"], json!([]), "{pushed:?}");

    let deleted = api.delete("/me", Some(&owner.access_token)).await;
    assert_eq!(deleted.status, 202, "{deleted:?}");
    api.wait_until_purged().await;

    // The longest-standing member owns the shared space now; the records
    // the owner wrote are the space's and stay.
    let detail = api
        .get(&format!("/spaces/{shared}"), Some(&first.access_token))
        .await;
    assert_eq!(detail.body["role"], "owner", "{detail:?}");
    let members: Vec<&str> = detail.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap())
        .collect();
    assert_eq!(members, [first.user_id.as_str(), second.user_id.as_str()]);
    let pulled = pull(&api, &second, "phone", None).await;
    assert_eq!(
        pulled.body["changes"][0]["recordId"], "recipe",
        "{pulled:?}"
    );
    // The space nobody else was in went with the account.
    let table = api.table().await;
    let memberships = table.memberships(&owner.user_id).await.unwrap();
    assert!(memberships.is_empty(), "{memberships:?}");
    let item = aws_sdk_dynamodb::Client::new(&api.sdk().await)
        .get_item()
        .table_name(&api.stack.resources.table_name)
        .key("PK", AttributeValue::S(format!("SPACE#{alone}")))
        .key("SK", AttributeValue::S("SPACE".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(item.contains_key("deletedAt"), "{item:?}");
    api.stop().await;
}

#[tokio::test]
async fn a_spaces_photos_are_its_members_and_stay_with_the_space() {
    use shared::media::pipeline::testing::jpeg_with_exif;

    let api = TestStack::start().await;
    let (owner, editor, viewer, stranger) = (
        api.user().await,
        api.user().await,
        api.user().await,
        api.user().await,
    );
    let space = api.create_space(&owner, "Album").await;
    for (user, role) in [(&editor, "editor"), (&viewer, "viewer")] {
        let code = api.invite(&owner, &space, role).await;
        assert_eq!(api.join(user, &code).await.status, 200);
    }
    let photo = jpeg_with_exif(640, 480, 6);
    let request = json!({"contentType": "image/jpeg", "bytes": photo.len(), "spaceId": space});
    api.post("/uploads", request.clone(), Some(&viewer.access_token))
        .await
        .assert_problem(403, "insufficient_role");
    api.post("/uploads", request, Some(&stranger.access_token))
        .await
        .assert_problem(404, "not_found");

    let id = e2e::upload_to(&api, &editor, Some(&space), "image/jpeg", &photo).await;
    // Members see it, with its space; its variants are signed for its
    // own folder, under the space.
    let ready = api.wait_until_processed(&viewer, &id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["spaceId"], space.as_str());
    let url = ready["variants"][0]["url"].as_str().unwrap();
    assert!(
        url.contains(&format!("/media/spaces/{space}/{id}/")),
        "{url}"
    );
    let listed = api
        .get(
            &format!("/media?spaceId={space}"),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(
        listed.body["items"][0]["mediaId"],
        id.as_str(),
        "{listed:?}"
    );
    let mine = api.get("/media", Some(&editor.access_token)).await;
    assert_eq!(
        mine.body["items"],
        json!([]),
        "not among the uploader's own"
    );
    for path in [format!("/media/{id}"), format!("/media?spaceId={space}")] {
        api.get(&path, Some(&stranger.access_token))
            .await
            .assert_problem(404, "not_found");
    }
    // Only the uploader or the owner deletes it; a viewer may not.
    api.delete(&format!("/media/{id}"), Some(&viewer.access_token))
        .await
        .assert_problem(403, "insufficient_role");

    // The uploader's account goes; the photo stays with the space.
    assert_eq!(
        api.delete("/me", Some(&editor.access_token)).await.status,
        202
    );
    api.wait_until_purged().await;
    let kept = api
        .get(&format!("/media/{id}"), Some(&viewer.access_token))
        .await;
    assert_eq!(kept.status, 200, "{kept:?}");
    let fetched = reqwest::get(kept.body["variants"][0]["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200, "the variant is still there");
    let deleted = api
        .delete(&format!("/media/{id}"), Some(&owner.access_token))
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    api.get(&format!("/media/{id}"), Some(&viewer.access_token))
        .await
        .assert_problem(404, "not_found");
    api.stop().await;
}
