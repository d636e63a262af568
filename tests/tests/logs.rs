//! Logs never hold a secret: the whole product is exercised with logging
//! captured at the production level (`LOG_LEVEL` as in the template,
//! `info`), then the capture is searched for every secret that passed by,
//! and for the metrics an operator needs.

use std::sync::{Arc, Mutex};

use e2e::TestStack;
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_token_or_password_is_logged() {
    let capture = Capture::default();
    shared::telemetry::init_with_writer(capture.clone());
    let api = TestStack::start().await;

    let user = api.user().await;
    let mut secrets = vec![
        user.password.clone(),
        user.access_token.clone(),
        user.refresh_token.clone(),
    ];
    let signed_in = api.sign_in(&user.email, &user.password).await;
    secrets.push(signed_in.body["idToken"].as_str().unwrap().into());
    let refreshed = api
        .post(
            "/auth/refresh",
            json!({"refreshToken": user.refresh_token}),
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    secrets.push(refreshed.body["accessToken"].as_str().unwrap().into());

    let wrong = "Wr0ng-Guess!";
    secrets.push(wrong.into());
    api.sign_in(&user.email, wrong)
        .await
        .assert_problem(401, "bad_credentials");
    let weak = "weakpass";
    secrets.push(weak.into());
    api.post(
        "/auth/sign-up",
        json!({"email": "weak@example.com", "password": weak}),
        None,
    )
    .await
    .assert_problem(400, "weak_password");

    let created = api
        .post(
            "/uploads",
            json!({"contentType": "image/jpeg", "bytes": 100}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let fields = &created.body["upload"]["fields"];
    for name in ["x-amz-signature", "policy"] {
        secrets.push(fields[name].as_str().unwrap().into());
    }
    let photo = shared::media::pipeline::testing::jpeg_with_exif(64, 48, 1);
    let media_id = e2e::upload(&api, &user, "image/jpeg", &photo).await;
    // Wait for the resize, so that its logs and metrics are captured too.
    let media = api.wait_until_processed(&user, &media_id).await;
    assert_eq!(media["status"], "ready", "{media}");

    let device_token = format!("device-token-{}", uuid::Uuid::new_v4().simple());
    secrets.push(device_token.clone());
    let registered = api
        .send(
            api.request("PUT", "/devices/phone", Some(&user.access_token))
                .json(&json!({"platform": "ios", "token": device_token})),
        )
        .await;
    assert_eq!(registered.status, 200, "{registered:?}");

    let private_note = format!("private-note-{}", uuid::Uuid::new_v4().simple());
    secrets.push(private_note.clone());
    let pushed = api
        .post(
            "/sync/push",
            json!({"clientId": "phone", "mutations": [{
                "id": 1, "collection": "notes", "recordId": "n1", "op": "put",
                "fields": {"body": private_note},
                "hlc": e2e::hlc_now("phone"),
            }]}),
            Some(&user.access_token),
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");

    let new_password = "N3w-Passw0rd!";
    secrets.push(new_password.into());
    api.post("/auth/forgot-password", json!({"email": user.email}), None)
        .await;
    let reset = api
        .post(
            "/auth/reset-password",
            json!({"email": user.email, "code": "123456", "password": new_password}),
            None,
        )
        .await;
    assert_eq!(reset.status, 204, "{reset:?}");
    let again = api.sign_in(&user.email, new_password).await;
    let token = again.body["accessToken"].as_str().unwrap().to_string();
    secrets.push(token.clone());
    assert_eq!(
        api.post("/auth/sign-out", json!({}), Some(&token))
            .await
            .status,
        204
    );
    api.stop().await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture holds the real thing: one JSON line per request.
    assert!(logs.contains(r#""route":"POST /auth/sign-in""#), "{logs}");
    assert!(logs.contains(r#""route":"POST /sync/push""#), "{logs}");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
        .collect();
    // Metrics ride along as embedded-metric-format lines.
    let metric = |service: &str, name: &str| {
        lines.iter().any(|line| {
            line["Service"] == service
                && line[name].as_f64().is_some_and(|v| v >= 1.0)
                && line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|d| d["Name"] == name))
        })
    };
    for (service, name) in [
        ("auth", "SignIns"),
        ("auth", "SignInFailures"),
        ("upload", "UploadsRequested"),
        ("resize", "MediaReady"),
        ("sync", "MutationsApplied"),
    ] {
        assert!(
            metric(service, name),
            "no {service} {name} metric in {logs}"
        );
    }
    for secret in &secrets {
        // A token's signature alone is as good as the token.
        let needle = secret.rsplit('.').next().unwrap_or(secret);
        assert!(
            !logs.contains(needle),
            "a secret ({}...) is in the logs",
            &needle[..needle.len().min(6)]
        );
    }
}
