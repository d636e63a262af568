//! Rate limits through the local stack: concurrent requests past a user's
//! write limit are refused with when to retry, the limit holds across
//! concurrent requests, other users and other classes go on, and the
//! public routes count per e-mail address.

use e2e::{Reply, TestStack};
use serde_json::json;

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header: {reply:?}"))
}

/// Waits until a window of `window` seconds has at least 30 s left, so
/// that a test's requests all fall in one window (they are aligned to the
/// epoch, as the limiter's).
async fn in_one_window(window: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = window - now % window;
    if left < 30 {
        tokio::time::sleep(std::time::Duration::from_secs(left + 1)).await;
    }
}

#[tokio::test]
async fn writes_past_a_users_limit_are_refused_and_everyone_else_goes_on() {
    let template = e2e::template_with(
        "  UserWritesPerMinute:\n    Type: Number\n    Default: 120",
        "  UserWritesPerMinute:\n    Type: Number\n    Default: 5",
    );
    let api = TestStack::start_with_template(template).await;
    let (user, other) = (api.user().await, api.user().await);
    let push = |client: String| {
        let api = &api;
        let user = &user;
        async move {
            api.push(
                user,
                &client,
                vec![
                    json!({"id": 1, "collection": "notes", "recordId": client, "op": "put",
                            "fields": {"t": "x"}, "hlc": e2e::hlc_now(&client)}),
                ],
            )
            .await
        }
    };
    // Ten at once, each from its own app: the count holds across them.
    in_one_window(60).await;
    let replies = futures_util::future::join_all((0..10).map(|i| push(format!("app-{i}")))).await;
    let (accepted, refused): (Vec<&Reply>, Vec<&Reply>) =
        replies.iter().partition(|r| r.status == 200);
    assert_eq!(accepted.len(), 5, "{replies:?}");
    for reply in &refused {
        reply.assert_problem(429, "too_many_requests");
        let retry: u64 = header(reply, "retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(reply.body["retryAfter"], retry);
        assert_eq!(reply.body["policy"], "writes");
        assert_eq!(header(reply, "ratelimit-policy"), "\"writes\";q=5;w=60");
        assert_eq!(
            header(reply, "ratelimit"),
            format!("\"writes\";r=0;t={retry}")
        );
    }
    let mut remaining: Vec<&str> = accepted
        .iter()
        .map(|r| header(r, "ratelimit").split(';').nth(1).unwrap())
        .collect();
    remaining.sort();
    assert_eq!(
        remaining,
        ["r=0", "r=1", "r=2", "r=3", "r=4"],
        "the headers count truthfully"
    );

    // Reads are another class; another user has their own count.
    let me = api.get("/me", Some(&user.access_token)).await;
    assert_eq!(me.status, 200);
    assert!(header(&me, "ratelimit").starts_with("\"reads\";r="));
    let theirs = api
        .push(
            &other,
            "phone",
            vec![
                json!({"id": 1, "collection": "notes", "recordId": "n", "op": "put",
                        "fields": {"t": "x"}, "hlc": e2e::hlc_now("phone")}),
            ],
        )
        .await;
    assert_eq!(theirs.status, 200, "{theirs:?}");
}

#[tokio::test]
async fn public_routes_count_per_email_address() {
    let api = TestStack::start().await;
    let (victim, bystander) = (api.user().await, api.user().await);
    let forgot = |email: String| {
        let api = &api;
        async move {
            api.post("/auth/forgot-password", json!({"email": email}), None)
                .await
        }
    };
    // A victim's inbox gets three reset e-mails an hour, whoever asks.
    in_one_window(3600).await;
    for _ in 0..3 {
        assert_eq!(forgot(victim.email.clone()).await.status, 202);
    }
    let fourth = forgot(victim.email.clone()).await;
    fourth.assert_problem(429, "too_many_requests");
    assert_eq!(fourth.body["policy"], "forgot-password");
    assert!(header(&fourth, "retry-after").parse::<u64>().unwrap() <= 3600);
    assert_eq!(forgot(bystander.email.clone()).await.status, 202);

    // Guessing one account's password slows down: after ten tries in five
    // minutes (signing up signed in once) even the right password waits,
    // and says how long.
    in_one_window(300).await;
    let bystander = api.user().await;
    for _ in 0..8 {
        api.sign_in(&bystander.email, "Wr0ng-Password")
            .await
            .assert_problem(401, "bad_credentials");
    }
    let tenth = api.sign_in(&bystander.email, "Wr0ng-Password").await;
    tenth.assert_problem(401, "bad_credentials");
    // Both limits it counts against: its address's, and the account's.
    let counted = header(&tenth, "ratelimit");
    assert!(counted.starts_with("\"sign-in-address\";r="), "{counted}");
    assert!(counted.contains(", \"sign-in\";r=0;t="), "{counted}");
    let blocked = api.sign_in(&bystander.email, e2e::PASSWORD).await;
    blocked.assert_problem(429, "too_many_requests");
    assert!(header(&blocked, "retry-after").parse::<u64>().unwrap() <= 300);
    // Another account signs in as ever.
    assert_eq!(api.sign_in(&victim.email, e2e::PASSWORD).await.status, 200);
}

#[tokio::test]
async fn one_source_address_cycling_through_addresses_is_stopped_generously() {
    let api = TestStack::start().await;
    in_one_window(3600).await;
    // A hundred different inboxes from one address: a flood, not a user.
    for i in 0..100 {
        let asked = api
            .post(
                "/auth/forgot-password",
                json!({"email": format!("someone-{i}@example.com")}),
                None,
            )
            .await;
        assert_eq!(asked.status, 202, "{asked:?}");
    }
    let flood = api
        .post(
            "/auth/forgot-password",
            json!({"email": "one-more@example.com"}),
            None,
        )
        .await;
    flood.assert_problem(429, "too_many_requests");
    assert_eq!(flood.body["policy"], "forgot-password-address");
    // The key is the deployment's own, made by the function, and the
    // address is stored only as its keyed hash.
    let ssm = aws_sdk_ssm::Client::new(&api.sdk().await);
    let stack = &api.stack.resources.physical["AWS::StackName"];
    let key = ssm
        .get_parameter()
        .name(format!("/{stack}/address-key"))
        .with_decryption(true)
        .send()
        .await
        .expect("the function made its key");
    assert!(key.parameter.unwrap().value.unwrap().len() >= 64);
}
