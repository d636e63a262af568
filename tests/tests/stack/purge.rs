//! The purge queue: deleted accounts and spaces removed in bounded steps
//! by `PurgeFunction`, a poison message parked in the dead-letter queue,
//! and the function `Timeout` the local stack enforces.

use std::time::Duration;

use e2e::TestStack;
use e2e::faults::{Fault, FaultyProxy};
use serde_json::json;
use shared::media::pipeline::testing::jpeg_with_exif;
use shared::model::ids::{Partition, SpaceId, UserId};

fn notes(from: u64, count: u64) -> Vec<serde_json::Value> {
    (from..from + count)
        .map(|i| {
            json!({"id": i, "collection": "notes", "recordId": format!("n{i}"), "op": "put",
                   "fields": {"text": format!("note {i}")}, "hlc": e2e::hlc_now("phone")})
        })
        .collect()
}

#[tokio::test]
async fn a_deleted_account_is_purged_in_bounded_steps_while_its_tokens_are_refused_at_once() {
    // 25 items a step: the account's 300-odd items take a dozen steps.
    let template = e2e::template_with(r#"PURGE_STEP_SIZE: "1000""#, r#"PURGE_STEP_SIZE: "25""#);
    let api = TestStack::start_with_template(template).await;
    let user = api.user().await;
    let other = api.user().await;
    for batch in 0..3 {
        let pushed = api.push(&user, "phone", notes(batch * 100 + 1, 100)).await;
        assert_eq!(pushed.status, 200, "{pushed:?}");
    }
    let photo = jpeg_with_exif(320, 240, 1);
    let id = e2e::upload(&api, &user, "image/jpeg", &photo).await;
    assert_eq!(
        api.wait_until_processed(&user, &id).await["status"],
        "ready"
    );
    let own = Partition::User(user.user_id.clone());
    assert!(api.partition_keys(&own).await.len() > 300);

    let deleted = api.delete("/me", Some(&user.access_token)).await;
    assert_eq!(deleted.status, 202, "{deleted:?}");
    api.get("/me", Some(&user.access_token))
        .await
        .assert_problem(401, "token_revoked");
    api.sign_in(&user.email, e2e::PASSWORD)
        .await
        .assert_problem(401, "bad_credentials");
    // A retry of the deletion (its answer lost) is accepted again.
    assert_eq!(
        api.delete("/me", Some(&user.access_token)).await.status,
        202
    );

    api.wait_until_purged().await;
    assert_eq!(api.queue_depth("PurgeDeadLetterQueue").await, 0);
    assert_eq!(api.partition_keys(&own).await, ["PROFILE"]);
    for prefix in shared::keys::user_object_prefixes(&user.user_id) {
        assert_eq!(api.objects_under(&prefix).await, 0, "{prefix}");
    }
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&api.sdk().await);
    assert!(
        cognito
            .admin_get_user()
            .user_pool_id(&api.stack.resources.user_pool_id)
            .username(user.user_id.as_str())
            .send()
            .await
            .is_err(),
        "the Cognito user goes last"
    );
    assert_eq!(api.get("/me", Some(&other.access_token)).await.status, 200);
    api.stop().await;
}

#[tokio::test]
async fn a_deleted_space_is_purged_but_its_item_stays_so_members_learn_it_went() {
    let api = TestStack::start().await;
    let owner = api.user().await;
    let member = api.user().await;
    let space = api
        .shared_space(&owner, "album", &[(&member, "editor")])
        .await;
    let open_code = api.invite(&owner, &space, "viewer").await;
    let mutations: Vec<_> = (1..=40)
        .map(|i| {
            json!({"id": i, "spaceId": space, "collection": "items", "recordId": format!("r{i}"),
                   "op": "put", "fields": {"n": i}, "hlc": e2e::hlc_now("phone")})
        })
        .collect();
    let pushed = api.push(&member, "phone", mutations).await;
    assert_eq!(pushed.body["rejected"], json!([]), "{pushed:?}");
    let photo = jpeg_with_exif(320, 240, 1);
    let id = e2e::upload_to(&api, &member, Some(&space), "image/jpeg", &photo).await;
    assert_eq!(
        api.wait_until_processed(&member, &id).await["status"],
        "ready"
    );

    let before = api
        .get("/sync/pull?clientId=tablet", Some(&member.access_token))
        .await;
    let cursor = before.body["cursor"].as_str().unwrap().to_string();
    let deleted = api
        .delete(&format!("/spaces/{space}"), Some(&owner.access_token))
        .await;
    assert_eq!(deleted.status, 202, "{deleted:?}");
    // The owner's retry queues the purge again; to anyone else it is gone.
    let path = format!("/spaces/{space}");
    assert_eq!(
        api.delete(&path, Some(&owner.access_token)).await.status,
        202
    );
    api.delete(&path, Some(&member.access_token))
        .await
        .assert_problem(404, "not_found");
    api.wait_until_purged().await;
    assert_eq!(api.queue_depth("PurgeDeadLetterQueue").await, 0);

    let partition = Partition::Space(SpaceId::parse(&space).unwrap());
    assert_eq!(api.partition_keys(&partition).await, ["SPACE"]);
    // The photo's objects, its location and the open invitation's code
    // went with the space.
    for prefix in shared::keys::object_prefixes(&partition) {
        assert_eq!(api.objects_under(&prefix).await, 0, "{prefix}");
    }
    api.get(&format!("/media/{id}"), Some(&member.access_token))
        .await
        .assert_problem(404, "not_found");
    let stranger = api.user().await;
    assert_eq!(api.join(&stranger, &open_code).await.status, 404);
    // The member's next pull says the space went.
    let pulled = api
        .get(
            &format!("/sync/pull?clientId=tablet&cursor={cursor}"),
            Some(&member.access_token),
        )
        .await;
    assert_eq!(pulled.status, 200, "{pulled:?}");
    let left = pulled.body["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["spaceId"] == space.as_str() && s["removed"] == true);
    assert!(left, "{:?}", pulled.body["spaces"]);
    // The members' own partitions are untouched.
    assert!(
        !api.partition_keys(&Partition::User(owner.user_id.clone()))
            .await
            .is_empty()
    );
    api.stop().await;
}

#[tokio::test]
async fn a_message_that_is_no_job_ends_in_the_dead_letter_queue_after_five_tries() {
    let api = TestStack::start().await;
    let sqs = aws_sdk_sqs::Client::new(&api.sdk().await);
    let queue = &api.stack.resources.queues["PurgeQueue"].0;
    sqs.send_message()
        .queue_url(queue)
        .message_body(r#"{"target":{"planet":"earth"},"step":"everything"}"#)
        .send()
        .await
        .unwrap();
    // And a real job beside it, for a user that does not exist: every
    // step finds nothing and the job ends, untouched by the poison.
    let ghost = UserId::parse("00000000-0000-4000-8000-000000000000").unwrap();
    let job = shared::model::purge::PurgeJob::start(shared::model::purge::Target::Account {
        user_id: ghost,
    });
    sqs.send_message()
        .queue_url(queue)
        .message_body(serde_json::to_string(&job).unwrap())
        .send()
        .await
        .unwrap();
    let mut parked = 0;
    for _ in 0..300 {
        parked = api.queue_depth("PurgeDeadLetterQueue").await;
        if parked > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(parked, 1, "the poison message is parked");
    api.wait_until_purged().await;
    let dead = sqs
        .receive_message()
        .queue_url(&api.stack.resources.queues["PurgeDeadLetterQueue"].0)
        .send()
        .await
        .unwrap();
    assert!(dead.messages()[0].body().unwrap().contains("planet"));
    api.stop().await;
}

#[tokio::test]
async fn a_handler_past_its_timeout_is_stopped_and_the_api_answers_as_api_gateway_does() {
    // Every function gets 1 s; the profile read is held for 3.
    let template = e2e::template_with("    Timeout: 10\n", "    Timeout: 1\n");
    let proxy = FaultyProxy::start(&e2e::emulator_url()).await;
    let api = TestStack::start_against_with_template(proxy.url.clone(), template).await;
    let user = api.user().await;
    proxy.set(Fault::HoldFirst(
        "DynamoDB_20120810.GetItem",
        Duration::from_secs(3),
    ));
    let started = std::time::Instant::now();
    let answer = api.get("/me", Some(&user.access_token)).await;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(answer.body, json!({"message": "Internal Server Error"}));
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "cut off at 1 s"
    );
    proxy.set(Fault::None);
    assert_eq!(api.get("/me", Some(&user.access_token)).await.status, 200);
    api.stop().await;
}
