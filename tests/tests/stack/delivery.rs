//! Sized for phones on cellular: compressed answers when the client accepts
//! them, validators that turn a repeat into a body-less 304, and cache
//! headers on every route, through the local stack.

use e2e::{TestStack, User, hlc_now};
use serde_json::json;

/// The raw answer: status, headers and the bytes on the wire.
async fn raw(
    api: &TestStack,
    user: &User,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = api.request("GET", path, Some(&user.access_token));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn lists_and_pulls_are_compressed_when_accepted() {
    let api = TestStack::start().await;
    let user = api.user().await;
    for _ in 0..50 {
        let created = api
            .post(
                "/uploads",
                json!({"contentType": "image/jpeg", "bytes": 100_000}),
                Some(&user.access_token),
            )
            .await;
        assert_eq!(created.status, 201, "{created:?}");
    }
    let mutations: Vec<_> = (1..=100u64)
        .map(|id| {
            json!({"id": id, "collection": "notes", "recordId": format!("n{id}"), "op": "put",
                   "fields": {"title": format!("note {id}"), "done": false}, "hlc": hlc_now("phone")})
        })
        .collect();
    let pushed = api.push(&user, "phone", mutations).await;
    assert_eq!(pushed.status, 200, "{pushed:?}");

    for (what, path) in [
        ("a 50-item media list", "/media?limit=50"),
        ("a 100-change pull", "/sync/pull?clientId=tablet&limit=100"),
    ] {
        let (status, headers, plain) = raw(&api, &user, path, &[]).await;
        assert_eq!(status, 200);
        assert!(headers.get("content-encoding").is_none());
        assert_eq!(headers["vary"], "accept-encoding");
        let (_, gzip_headers, gzip) = raw(&api, &user, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(gzip_headers["content-encoding"], "gzip");
        let (_, br_headers, br) = raw(&api, &user, path, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(br_headers["content-encoding"], "br");
        assert!(
            gzip.len() * 3 < plain.len(),
            "{what}: {} of {}",
            gzip.len(),
            plain.len()
        );
        assert!(
            br.len() <= gzip.len(),
            "{what}: br {} gzip {}",
            br.len(),
            gzip.len()
        );
        // Printed for the README (cargo test -- --nocapture).
        println!(
            "{what}: {} bytes plain, {} gzip ({:.0}% saved), {} br ({:.0}% saved)",
            plain.len(),
            gzip.len(),
            100.0 - 100.0 * gzip.len() as f64 / plain.len() as f64,
            br.len(),
            100.0 - 100.0 * br.len() as f64 / plain.len() as f64,
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn a_repeat_with_the_etag_is_a_304_and_every_route_says_how_to_cache() {
    let api = TestStack::start().await;
    let user = api.user().await;
    for path in ["/me", "/media"] {
        let (status, headers, body) = raw(&api, &user, path, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["cache-control"], "private, no-cache");
        let tag = headers["etag"].to_str().unwrap().to_string();
        assert!(!body.is_empty());
        let (status, again, body) = raw(&api, &user, path, &[("if-none-match", &tag)]).await;
        assert_eq!(status, 304, "{path}");
        assert!(body.is_empty(), "a 304 has no body");
        assert_eq!(again["etag"].to_str().unwrap(), tag);
        let (status, _, _) = raw(&api, &user, path, &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(status, 200);
    }
    // A change makes a new tag.
    let (_, before, _) = raw(&api, &user, "/media", &[]).await;
    let created = api
        .post(
            "/uploads",
            json!({"contentType": "image/png", "bytes": 10}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(created.status, 201);
    let (_, after, _) = raw(&api, &user, "/media", &[]).await;
    assert_ne!(before["etag"], after["etag"]);

    let signed_in = api.sign_in(&user.email, &user.password).await;
    assert_eq!(
        signed_in.headers["cache-control"], "no-store",
        "token responses"
    );
    let refreshed = api
        .post(
            "/auth/refresh",
            json!({"refreshToken": user.refresh_token}),
            None,
        )
        .await;
    assert_eq!(refreshed.headers["cache-control"], "no-store");
    let pushed = api.push(&user, "phone", vec![]).await;
    assert_eq!(
        pushed.headers["cache-control"], "private, no-cache",
        "{pushed:?}"
    );
    api.stop().await;
}
