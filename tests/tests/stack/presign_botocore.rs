//! Our presigned POST against botocore's `generate_presigned_post` for the
//! same inputs and the same instant (botocore from the project's .venv).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use shared::media::presign::{PostUpload, SigningCredentials, presigned_post, sign_policy};

const BOTOCORE: &str = r#"
import datetime, json
from unittest import mock
import boto3
from botocore.config import Config
fixed = datetime.datetime(2026, 1, 2, 3, 4, 5)
with mock.patch("botocore.auth.get_current_datetime", return_value=fixed), \
     mock.patch("botocore.signers.get_current_datetime", return_value=fixed):
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE",
                      aws_secret_access_key="wJalr/SECRET+KEY", aws_session_token="session/token+=",
                      config=Config(signature_version="s3v4"))
    post = s3.generate_presigned_post(
        Bucket="media-bucket", Key="uploads/user-1/0193a1b2",
        Fields={"Content-Type": "image/jpeg"},
        Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 1234]],
        ExpiresIn=600)
print(json.dumps(post["fields"]))
"#;

fn policy_of(encoded: &str) -> Value {
    serde_json::from_slice(&STANDARD.decode(encoded).unwrap()).unwrap()
}

fn condition_set(policy: &Value) -> BTreeSet<String> {
    policy["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect()
}

#[test]
fn matches_botocore_for_the_same_inputs_and_time() {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let output = std::process::Command::new(&python)
        .args(["-c", BOTOCORE])
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "{} (run scripts/test, which creates .venv): {err}",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Value = serde_json::from_slice(&output.stdout).unwrap();

    let now: SystemTime = "2026-01-02T03:04:05Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .into();
    let ours = presigned_post(
        &PostUpload {
            bucket: "media-bucket",
            key: "uploads/user-1/0193a1b2",
            content_type: "image/jpeg",
            max_bytes: 1234,
            expires_in: Duration::from_secs(600),
            region: "eu-west-1",
        },
        &SigningCredentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalr/SECRET+KEY",
            session_token: Some("session/token+="),
        },
        now,
    );

    for field in [
        "key",
        "Content-Type",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-security-token",
    ] {
        assert_eq!(
            ours.fields[field],
            theirs[field].as_str().unwrap(),
            "{field}"
        );
    }
    // The same policy, condition for condition (botocore orders them its
    // own way and spaces its JSON differently).
    let (our_policy, their_policy) = (
        policy_of(&ours.fields["policy"]),
        policy_of(theirs["policy"].as_str().unwrap()),
    );
    assert_eq!(our_policy["expiration"], their_policy["expiration"]);
    assert_eq!(condition_set(&our_policy), condition_set(&their_policy));
    // And the same signature over the same policy bytes.
    assert_eq!(
        sign_policy(
            theirs["policy"].as_str().unwrap(),
            "wJalr/SECRET+KEY",
            now,
            "eu-west-1"
        ),
        theirs["x-amz-signature"].as_str().unwrap()
    );
}
