//! Presigned S3 POST uploads. The Rust SDK presigns GET/PUT but not POST, so
//! the policy is built here and signed with SigV4 from `aws-sigv4`'s own
//! key derivation. S3 itself then enforces every condition: the exact key,
//! the content type, the size range and the expiry.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// What a client may upload with one form POST.
#[derive(Debug, Clone)]
pub struct PostUpload<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    /// The largest body S3 will accept (the declared size).
    pub max_bytes: u64,
    pub expires_in: Duration,
    pub region: &'a str,
}

/// The signing identity: the function's own credentials.
#[derive(Clone)]
pub struct SigningCredentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// The form a client posts: every field, then the file as `file`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresignedPost {
    pub fields: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The policy document, as JSON.
pub fn policy(
    upload: &PostUpload<'_>,
    credential: &str,
    amz_date: &str,
    expiration: &str,
    token: Option<&str>,
) -> Value {
    let mut conditions = vec![
        json!({"bucket": upload.bucket}),
        json!({"key": upload.key}),
        json!({"Content-Type": upload.content_type}),
        json!(["content-length-range", 1, upload.max_bytes]),
        json!({"x-amz-algorithm": ALGORITHM}),
        json!({"x-amz-credential": credential}),
        json!({"x-amz-date": amz_date}),
    ];
    if let Some(token) = token {
        conditions.push(json!({"x-amz-security-token": token}));
    }
    json!({"expiration": expiration, "conditions": conditions})
}

/// The SigV4 signature of a base64 policy: HMAC with the key derived for
/// (date, region, "s3").
pub fn sign_policy(
    base64_policy: &str,
    secret_access_key: &str,
    time: SystemTime,
    region: &str,
) -> String {
    let key = aws_sigv4::sign::v4::generate_signing_key(secret_access_key, time, region, "s3");
    aws_sigv4::sign::v4::calculate_signature(key, base64_policy.as_bytes())
}

/// Builds and signs the form fields of a POST upload at time `now`.
pub fn presigned_post(
    upload: &PostUpload<'_>,
    credentials: &SigningCredentials<'_>,
    now: SystemTime,
) -> PresignedPost {
    let now_utc: DateTime<Utc> = now.into();
    let amz_date = now_utc.format("%Y%m%dT%H%M%SZ").to_string();
    let credential = format!(
        "{}/{}/{}/s3/aws4_request",
        credentials.access_key_id,
        now_utc.format("%Y%m%d"),
        upload.region
    );
    let expires_at = now_utc + chrono::Duration::from_std(upload.expires_in).unwrap_or_default();
    let expiration = expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let document = policy(
        upload,
        &credential,
        &amz_date,
        &expiration,
        credentials.session_token,
    );
    let encoded = STANDARD.encode(document.to_string());
    let signature = sign_policy(&encoded, credentials.secret_access_key, now, upload.region);

    let mut fields = BTreeMap::from([
        ("key".to_string(), upload.key.to_string()),
        ("Content-Type".to_string(), upload.content_type.to_string()),
        ("policy".to_string(), encoded),
        ("x-amz-algorithm".to_string(), ALGORITHM.to_string()),
        ("x-amz-credential".to_string(), credential),
        ("x-amz-date".to_string(), amz_date),
        ("x-amz-signature".to_string(), signature),
    ]);
    if let Some(token) = credentials.session_token {
        fields.insert("x-amz-security-token".to_string(), token.to_string());
    }
    PresignedPost {
        fields,
        expires_at: DateTime::from_timestamp(expires_at.timestamp(), 0).unwrap_or(expires_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example ("Example: Browser-Based Upload using HTTP
    /// POST (Using AWS Signature Version 4)"): its base64 policy, example
    /// credentials and date give this signature.
    #[test]
    fn reproduces_the_published_sigv4_post_example() {
        let encoded = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let day: SystemTime = "2015-12-29T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .into();
        assert_eq!(
            sign_policy(
                encoded,
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                day,
                "us-east-1"
            ),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    fn upload() -> PostUpload<'static> {
        PostUpload {
            bucket: "media",
            key: "uploads/user-1/0193",
            content_type: "image/jpeg",
            max_bytes: 1234,
            expires_in: Duration::from_secs(600),
            region: "eu-west-1",
        }
    }

    fn decoded_policy(post: &PresignedPost) -> Value {
        serde_json::from_slice(&STANDARD.decode(&post.fields["policy"]).unwrap()).unwrap()
    }

    #[test]
    fn the_policy_pins_key_type_size_and_expiry() {
        let now: SystemTime = "2026-11-26T10:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .into();
        let creds = SigningCredentials {
            access_key_id: "AKID",
            secret_access_key: "secret",
            session_token: Some("session-token"),
        };
        let post = presigned_post(&upload(), &creds, now);
        let policy = decoded_policy(&post);
        assert_eq!(policy["expiration"], "2026-11-26T10:10:00Z");
        let conditions = policy["conditions"].as_array().unwrap();
        for expected in [
            json!({"bucket": "media"}),
            json!({"key": "uploads/user-1/0193"}),
            json!({"Content-Type": "image/jpeg"}),
            json!(["content-length-range", 1, 1234]),
            json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
            json!({"x-amz-credential": "AKID/20261126/eu-west-1/s3/aws4_request"}),
            json!({"x-amz-date": "20261126T100000Z"}),
            json!({"x-amz-security-token": "session-token"}),
        ] {
            assert!(conditions.contains(&expected), "missing {expected}");
        }
        assert_eq!(conditions.len(), 8, "no condition beyond these");
        // Every condition on a form field has that field in the form.
        assert_eq!(post.fields["key"], "uploads/user-1/0193");
        assert_eq!(post.fields["Content-Type"], "image/jpeg");
        assert_eq!(post.fields["x-amz-security-token"], "session-token");
        assert_eq!(
            post.fields["x-amz-signature"],
            sign_policy(&post.fields["policy"], "secret", now, "eu-west-1")
        );
        assert_eq!(post.expires_at.to_rfc3339(), "2026-11-26T10:10:00+00:00");
    }

    #[test]
    fn no_session_token_no_token_condition() {
        let creds = SigningCredentials {
            access_key_id: "AKID",
            secret_access_key: "secret",
            session_token: None,
        };
        let post = presigned_post(&upload(), &creds, SystemTime::now());
        assert!(!post.fields.contains_key("x-amz-security-token"));
        assert!(!decoded_policy(&post).to_string().contains("security-token"));
    }

    #[test]
    fn the_signature_changes_with_every_input() {
        let creds = SigningCredentials {
            access_key_id: "AKID",
            secret_access_key: "secret",
            session_token: None,
        };
        let now = SystemTime::now();
        let base = presigned_post(&upload(), &creds, now).fields["x-amz-signature"].clone();
        let mut other = upload();
        other.max_bytes += 1;
        assert_ne!(
            presigned_post(&other, &creds, now).fields["x-amz-signature"],
            base
        );
        let mut other = upload();
        other.key = "uploads/user-2/0193";
        assert_ne!(
            presigned_post(&other, &creds, now).fields["x-amz-signature"],
            base
        );
    }
}
