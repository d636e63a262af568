//! Quotas through the local stack, lowered in a copy of the template: past
//! each, 403 `quota_exceeded` naming it (a sync mutation: a rejected entry;
//! a connection: 429); what frees a quota (leaving, revoking, deleting)
//! goes through and makes room again, and `GET /me` reports the usage.

use std::time::Duration;

use e2e::{TestStack, hlc_now, post_form, upload};
use serde_json::{Value, json};
use shared::media::pipeline::testing::jpeg_with_exif;
use shared::model::connection::Connection;

use crate::realtime::open;

#[tokio::test]
async fn spaces_members_and_invitations_stop_at_their_quotas() {
    let template = e2e::template_with(
        "MAX_SPACES_PER_USER: \"100\"\n        MAX_MEMBERS_PER_SPACE: \"1000\"\n        MAX_OPEN_INVITATIONS_PER_SPACE: \"50\"",
        "MAX_SPACES_PER_USER: \"2\"\n        MAX_MEMBERS_PER_SPACE: \"2\"\n        MAX_OPEN_INVITATIONS_PER_SPACE: \"2\"",
    );
    let api = TestStack::start_with_template(template).await;
    let (owner, ann, bob) = (api.user().await, api.user().await, api.user().await);

    // Spaces a user owns.
    let first_id = uuid::Uuid::new_v4().to_string();
    let first = api
        .post(
            "/spaces",
            json!({"name": "One", "spaceId": first_id}),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    api.create_space(&owner, "Two").await;
    let third = api
        .post(
            "/spaces",
            json!({"name": "Three"}),
            Some(&owner.access_token),
        )
        .await;
    third.assert_problem(403, "quota_exceeded");
    assert_eq!(third.body["quota"], "spacesPerUser");
    assert_eq!(third.body["limit"], 2);
    // The same id again is the space made before, not a new one.
    let again = api
        .post(
            "/spaces",
            json!({"name": "One", "spaceId": first_id}),
            Some(&owner.access_token),
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");

    // Open invitations of a space.
    let space = first_id.as_str();
    let code = api.invite(&owner, space, "editor").await;
    api.invite(&owner, space, "viewer").await;
    let one_more = api
        .post(
            &format!("/spaces/{space}/invitations"),
            json!({"role": "editor"}),
            Some(&owner.access_token),
        )
        .await;
    one_more.assert_problem(403, "quota_exceeded");
    assert_eq!(one_more.body["quota"], "openInvitationsPerSpace");

    // Members of a space: the owner and one more.
    assert_eq!(api.join(&ann, &code).await.status, 200);
    let listed = api
        .get(
            &format!("/spaces/{space}/invitations"),
            Some(&owner.access_token),
        )
        .await;
    let open: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["invitationId"].as_str().unwrap())
        .collect();
    assert_eq!(open.len(), 1, "the used one is spent: {listed:?}");
    let viewer_code = api.invite(&owner, space, "viewer").await;
    let full = api.join(&bob, &viewer_code).await;
    full.assert_problem(403, "quota_exceeded");
    assert_eq!(full.body["quota"], "membersPerSpace");
    // Ann leaves: there is room for Bob.
    let left = api
        .delete(
            &format!("/spaces/{space}/members/{}", ann.user_id),
            Some(&ann.access_token),
        )
        .await;
    assert!(left.status.is_success(), "{left:?}");
    assert_eq!(api.join(&bob, &viewer_code).await.status, 200);
}

fn note(id: u64, record: &str, op: &str) -> Value {
    let mut mutation = json!({
        "id": id, "collection": "notes", "recordId": record, "op": op, "hlc": hlc_now("phone"),
    });
    if op == "put" {
        mutation["fields"] = json!({"title": record});
    }
    mutation
}

async fn usage(api: &TestStack, user: &e2e::User) -> Value {
    let me = api.get("/me", Some(&user.access_token)).await;
    assert_eq!(me.status, 200, "{me:?}");
    me.body["usage"].clone()
}

#[tokio::test]
async fn records_photos_and_connections_stop_at_their_quotas() {
    let template = e2e::template_with(
        "MAX_RECORDS_PER_PARTITION: \"100000\"
        MAX_PHOTOS_PER_PARTITION: \"10000\"
        MAX_PHOTO_BYTES_PER_PARTITION: \"5368709120\"
        MAX_CONNECTIONS_PER_USER: \"10\"",
        "MAX_RECORDS_PER_PARTITION: \"2\"
        MAX_PHOTOS_PER_PARTITION: \"1\"
        MAX_PHOTO_BYTES_PER_PARTITION: \"5368709120\"
        MAX_CONNECTIONS_PER_USER: \"2\"",
    );
    let api = TestStack::start_with_template(template).await;
    let (user, other) = (api.user().await, api.user().await);

    // Records: the third new one is rejected, the rest of the push applies,
    // and a delete makes room for it again.
    let pushed = api
        .push(
            &user,
            "phone",
            vec![
                note(1, "a", "put"),
                note(2, "b", "put"),
                note(3, "c", "put"),
                note(4, "a", "put"),
            ],
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body["lastMutationId"], 4);
    assert_eq!(
        pushed.body["rejected"],
        json!([{"id": 3, "code": "quota_exceeded"}])
    );
    let me = api.get("/me", Some(&user.access_token)).await;
    assert_eq!(me.body["usage"]["records"], 2, "{me:?}");
    assert_eq!(me.body["quotas"]["recordsPerPartition"], 2);
    assert_eq!(me.body["quotas"]["connectionsPerUser"], 2);
    let freed = api
        .push(
            &user,
            "phone",
            vec![note(5, "a", "delete"), note(6, "c", "put")],
        )
        .await;
    assert_eq!(freed.body["rejected"], json!([]), "{freed:?}");
    assert_eq!(usage(&api, &user).await["records"], 2);
    let other_pushed = api
        .push(
            &other,
            "phone",
            vec![note(1, "a", "put"), note(2, "b", "put")],
        )
        .await;
    assert_eq!(
        other_pushed.body["rejected"],
        json!([]),
        "another user's quota is theirs"
    );

    // Photos: one ready photo fills the quota; deleting it frees it.
    let id = upload(&api, &user, "image/jpeg", &jpeg_with_exif(64, 48, 1)).await;
    assert_eq!(
        api.wait_until_processed(&user, &id).await["status"],
        "ready"
    );
    let held = usage(&api, &user).await;
    assert_eq!(held["photos"], 1, "{held}");
    assert!(held["photoBytes"].as_u64().unwrap() > 0, "{held}");
    let refused = api
        .post(
            "/uploads",
            json!({"contentType": "image/jpeg", "bytes": 1000}),
            Some(&user.access_token),
        )
        .await;
    refused.assert_problem(403, "quota_exceeded");
    assert_eq!(refused.body["quota"], "photos");
    let deleted = api
        .delete(&format!("/media/{id}"), Some(&user.access_token))
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(usage(&api, &user).await["photos"], 0);
    assert_eq!(usage(&api, &user).await["photoBytes"], 0);
    // Two uploads asked for before either is processed both get a form;
    // the one processed second is marked failed, naming the quota.
    let photo = jpeg_with_exif(64, 48, 1);
    let mut forms = Vec::new();
    for _ in 0..2 {
        let created = api
            .post(
                "/uploads",
                json!({"contentType": "image/jpeg", "bytes": photo.len()}),
                Some(&user.access_token),
            )
            .await;
        assert_eq!(created.status, 201, "{created:?}");
        forms.push(created.body);
    }
    for form in &forms {
        post_form(&form["upload"], &photo).await;
    }
    let mut statuses = Vec::new();
    for form in &forms {
        let media = api
            .wait_until_processed(&user, form["mediaId"].as_str().unwrap())
            .await;
        if media["status"] == "failed" {
            assert!(
                media["failureReason"]
                    .as_str()
                    .unwrap()
                    .contains("photo quota"),
                "{media}"
            );
        }
        statuses.push(media["status"].as_str().unwrap().to_string());
    }
    statuses.sort();
    assert_eq!(statuses, ["failed", "ready"]);
    assert_eq!(usage(&api, &user).await["photos"], 1);

    // Connections: a third is refused with 429 (never 401 or 403) and a
    // Retry-After; a stale item, whose $disconnect never came, does not
    // count once the gateway says it is gone.
    let phone = open(&api, Some(&user.access_token), "phone").await.unwrap();
    let _tablet = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    assert_eq!(
        open(&api, Some(&user.access_token), "watch").await.err(),
        Some(429)
    );
    assert!(open(&api, Some(&other.access_token), "watch").await.is_ok());
    drop(phone);
    for _ in 0..100 {
        if usage(&api, &user).await["connections"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(usage(&api, &user).await["connections"], 1);
    api.table()
        .await
        .put_connection(&Connection {
            connection_id: "stale000000000=".into(),
            user_id: user.user_id.clone(),
            client_id: shared::model::ids::ClientId::parse("old-phone").unwrap(),
            connected_at: chrono::Utc::now() - chrono::Duration::hours(1),
            poked_version: 0,
            poked_spaces: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(usage(&api, &user).await["connections"], 2);
    let _watch = open(&api, Some(&user.access_token), "watch")
        .await
        .expect("the stale connection does not count");
    assert_eq!(usage(&api, &user).await["connections"], 2);
    api.stop().await;
}
