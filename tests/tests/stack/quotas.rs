//! Quotas through the local stack, lowered in a copy of the template: past
//! each, 403 `quota_exceeded` naming it; what frees a quota (leaving,
//! revoking) goes through and makes room again.

use e2e::TestStack;
use serde_json::json;

#[tokio::test]
async fn spaces_members_and_invitations_stop_at_their_quotas() {
    let template = e2e::template_with(
        "MAX_SPACES_PER_USER: \"100\"\n          MAX_MEMBERS_PER_SPACE: \"1000\"\n          MAX_OPEN_INVITATIONS_PER_SPACE: \"50\"",
        "MAX_SPACES_PER_USER: \"2\"\n          MAX_MEMBERS_PER_SPACE: \"2\"\n          MAX_OPEN_INVITATIONS_PER_SPACE: \"2\"",
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
