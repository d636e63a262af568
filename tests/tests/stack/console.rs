//! The local console in a real browser: headless Chromium (Debian's
//! `chromium`, which `scripts/test` installs) loads the pages after a user
//! did what an app does, runs their script, and must show what was done:
//! the record's text, the device, a photo that loads, no script error.
//! Screenshots land in `target/console/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{TestStack, hlc_now, upload};
use serde_json::json;
use shared::media::pipeline::testing::jpeg_with_exif;

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "no Chromium at {}: scripts/test installs Debian's chromium (or set CHROMIUM)",
        path.display()
    );
    path
}

/// The page's DOM after its script ran (and its images loaded), and what
/// Chromium logged; a screenshot of it saved as `shot`.
fn browse(url: &str, shot: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let base = |command: &mut Command| {
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            "--virtual-time-budget=8000",
        ]);
        command.arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut dump = Command::new(chromium());
    base(&mut dump);
    let dumped = dump
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(dumped.status.success(), "{dumped:?}");
    let mut screenshot = Command::new(chromium());
    base(&mut screenshot);
    let shot_taken = screenshot
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(shot_taken.status.success(), "{shot_taken:?}");
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    (
        String::from_utf8_lossy(&dumped.stdout).into_owned(),
        String::from_utf8_lossy(&dumped.stderr).into_owned(),
    )
}

fn assert_no_script_errors(dom: &str, log: &str) {
    assert!(
        !dom.contains("data-errors="),
        "the page counted script errors: {dom}"
    );
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("CONSOLE") && line.contains("Uncaught"))
        .collect();
    assert!(errors.is_empty(), "script errors: {errors:?}");
}

#[tokio::test]
async fn the_console_shows_what_a_user_did_in_a_real_browser() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let pushed = api
        .push(
            &user,
            "phone",
            vec![
                json!({"id": 1, "collection": "groceries", "recordId": "r1", "op": "put",
                        "fields": {"text": "oat milk, two cartons"}, "hlc": hlc_now("phone")}),
            ],
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    let space = api.create_space(&user, "Flat 3B shopping").await;
    let pushed = api
        .push(
            &user,
            "phone",
            vec![json!({"id": 2, "collection": "groceries", "recordId": "r2", "op": "put",
                        "spaceId": space, "fields": {"text": "washing-up liquid"}, "hlc": hlc_now("phone")})],
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body["rejected"], json!([]));
    let registered = api
        .send(
            api.request("PUT", "/devices/pixel-9-console", Some(&user.access_token))
                .json(&json!({"platform": "android", "token": "fcm-token-console"})),
        )
        .await;
    assert_eq!(registered.status, 200, "{registered:?}");
    let media_id = upload(&api, &user, "image/jpeg", &jpeg_with_exif(640, 480, 1)).await;
    assert_eq!(
        api.wait_until_processed(&user, &media_id).await["status"],
        "ready"
    );

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console");
    std::fs::create_dir_all(&shots).unwrap();
    let console = api.stack.console_url.clone();
    let user_id = user.user_id.as_str().to_string();
    let (home, log) = tokio::task::spawn_blocking({
        let shots = shots.clone();
        let console = console.clone();
        move || browse(&format!("{console}/"), &shots.join("home.png"))
    })
    .await
    .unwrap();
    assert_no_script_errors(&home, &log);
    assert!(
        home.contains(&user.email),
        "the landing page lists the user"
    );
    assert!(home.contains(&format!("/users/{user_id}")));
    assert!(
        home.contains("UploadFunction"),
        "recent invocations are listed"
    );
    assert!(home.contains("FailedEventsQueue"));

    let (page, log) = tokio::task::spawn_blocking(move || {
        browse(
            &format!("{console}/users/{user_id}"),
            &shots.join("user.png"),
        )
    })
    .await
    .unwrap();
    assert_no_script_errors(&page, &log);
    assert!(page.contains("oat milk, two cartons"), "the record's text");
    assert!(page.contains("groceries"), "its collection");
    assert!(page.contains("Flat 3B shopping"), "the user's space");
    assert!(page.contains("washing-up liquid"), "the space's record");
    assert!(page.contains("pixel-9-console"), "the device");
    assert!(page.contains("media_ready"), "what the device was pushed");
    assert!(page.contains(&media_id), "the photo");
    assert!(
        page.contains("data-loaded=\"yes\""),
        "the photo's <img> loaded through the CDN: {page}"
    );
    assert!(!page.contains("data-loaded=\"no\""));
}

#[tokio::test]
async fn deleting_a_user_from_the_console_runs_the_apps_own_deletion() {
    let api = TestStack::start().await;
    let user = api.user().await;
    let deleted = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!(
            "{}/users/{}/delete",
            api.stack.console_url,
            user.user_id.as_str()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    // DELETE /me answered 202: the user's tokens are refused at once.
    let me = api.get("/me", Some(&user.access_token)).await;
    assert_eq!(me.status, 401, "{me:?}");
}
