//! `scripts/dev` stopped and started again: what a developer made is still
//! there (issue: state that survives a restart). The stack runs as
//! `scripts/dev` runs it, on an emulator of its own that keeps its state in
//! a file, and is stopped both ways: SIGTERM (Ctrl-C) and SIGKILL.

use std::time::Duration;

use e2e::{OwnEmulator, TestStack, User, free_port, hlc_now, upload};
use serde_json::{Value, json};
use shared::media::pipeline::testing::jpeg_with_exif;

use crate::realtime::{open, wait_for_connections};

struct Dev {
    dir: tempfile::TempDir,
    emulator_port: u16,
    cdn_port: u16,
}

impl Dev {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            emulator_port: free_port(),
            cdn_port: free_port(),
        }
    }

    async fn start(&self) -> (OwnEmulator, TestStack) {
        let emulator =
            OwnEmulator::start(&self.dir.path().join("emulator.state"), self.emulator_port).await;
        let stack = TestStack::start_persistent(
            emulator.url.clone(),
            "dev",
            self.dir.path().join("stack"),
            self.cdn_port,
        )
        .await;
        (emulator, stack)
    }
}

async fn pushes_to(api: &TestStack, user: &User) -> Vec<Value> {
    let devices = api.table().await.devices(&user.user_id).await.unwrap();
    api.published_to_endpoint(&devices[0].endpoint_arn).await
}

fn note(id: u64, record: &str, text: &str) -> Value {
    json!({"id": id, "collection": "notes", "recordId": record, "op": "put",
           "fields": {"text": text}, "hlc": hlc_now("phone")})
}

async fn pulled_texts(api: &TestStack, user: &User) -> (Vec<String>, Value) {
    let pulled = api
        .get("/sync/pull?clientId=phone", Some(&user.access_token))
        .await;
    assert_eq!(pulled.status, 200, "{pulled:?}");
    let texts = pulled.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fields"]["text"].as_str().unwrap_or_default().to_string())
        .collect();
    (texts, pulled.body["lastMutationId"].clone())
}

#[tokio::test]
async fn what_a_developer_made_survives_a_restart_and_a_hard_kill() {
    let dev = Dev::new();
    let (emulator, api) = dev.start().await;
    let user = api.user().await;
    assert_eq!(
        api.push(&user, "phone", vec![note(1, "n1", "buy oat milk")])
            .await
            .status,
        200
    );
    let registered = api
        .send(
            api.request("PUT", "/devices/iphone", Some(&user.access_token))
                .json(&json!({"platform": "ios", "token": "a".repeat(64)})),
        )
        .await;
    assert_eq!(registered.status, 200, "{registered:?}");
    let media_id = upload(&api, &user, "image/jpeg", &jpeg_with_exif(800, 600, 1)).await;
    let media = api.wait_until_processed(&user, &media_id).await;
    assert_eq!(media["status"], "ready", "{media}");
    let old_url = media["variants"][0]["url"].as_str().unwrap().to_string();
    let _socket = open(&api, Some(&user.access_token), "tablet")
        .await
        .unwrap();
    wait_for_connections(&api, &user, 1).await;
    // The photo's pushes reached the phone before the stop, all of them: the
    // count holds still for a second.
    let mut pushes = Vec::new();
    for _ in 0..30 {
        let now = pushes_to(&api, &user).await;
        if !now.is_empty() && now.len() == pushes.len() {
            break;
        }
        pushes = now;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(!pushes.is_empty());

    // Ctrl-C: the stack stops without running $disconnect, the emulator
    // saves.
    api.stop().await;
    emulator.stop();
    let (emulator, api) = dev.start().await;

    let me = api.get("/me", Some(&user.access_token)).await;
    assert_eq!(me.status, 200, "a token from before the restart: {me:?}");
    assert_eq!(me.body["email"], user.email.as_str());
    let signed_in = api.sign_in(&user.email, &user.password).await;
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let (texts, watermark) = pulled_texts(&api, &user).await;
    assert_eq!(
        (texts, watermark),
        (vec!["buy oat milk".to_string()], json!(1))
    );
    let again = api
        .get(&format!("/media/{media_id}"), Some(&user.access_token))
        .await;
    assert_eq!(again.body["status"], "ready");
    let image = reqwest::get(&old_url).await.unwrap();
    assert_eq!(image.status(), 200, "a variant URL from before the restart");
    assert!(!image.bytes().await.unwrap().is_empty());
    assert_eq!(
        api.table()
            .await
            .devices(&user.user_id)
            .await
            .unwrap()
            .len(),
        1
    );
    // The tablet's socket went with the old process: forgotten as on a
    // real disconnect.
    wait_for_connections(&api, &user, 0).await;
    // The stream goes on after what was delivered: nothing pushed twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pushes_to(&api, &user).await.len(), pushes.len());

    // A hard kill a moment after a write: the emulator saves within a
    // second of a change, so it survives; the stack comes up.
    assert_eq!(
        api.push(&user, "phone", vec![note(2, "n2", "and bread")])
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    emulator.kill();
    drop(api);
    let (emulator, api) = dev.start().await;
    let (mut texts, watermark) = pulled_texts(&api, &user).await;
    texts.sort();
    assert_eq!(
        (texts, watermark),
        (
            vec!["and bread".to_string(), "buy oat milk".to_string()],
            json!(2)
        )
    );
    api.stop().await;
    emulator.stop();
}

#[tokio::test]
async fn a_damaged_state_file_starts_an_empty_emulator_rather_than_none() {
    let dev = Dev::new();
    std::fs::write(dev.dir.path().join("emulator.state"), b"not a snapshot").unwrap();
    let (emulator, api) = dev.start().await;
    let user = api.user().await;
    assert_eq!(api.get("/me", Some(&user.access_token)).await.status, 200);
    let aside = std::fs::read_dir(dev.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().contains("unreadable"));
    assert!(aside, "the damaged file is kept aside for a look");
    api.stop().await;
    emulator.stop();
}
