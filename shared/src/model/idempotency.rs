//! `Idempotency-Key`: a client that retries a request (lost connection, app
//! killed mid-request) gets the first response back instead of a second
//! upload slot or a second push. Keys live in the caller's partition for
//! 24 hours (TTL), so one user's keys never meet another's.
//!
//! A first request claims its key with a conditional put; the claim is a
//! lease, so an invocation that died mid-way frees its key after
//! [`LEASE`]. Only successes are stored: a failed request releases its key
//! and the retry runs again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Code, Error};

/// How long a first response is replayed.
pub const TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longer than the HTTP functions' timeout (10 s in the template): a claim
/// older than this was abandoned, by a crash or an answer that never came.
pub const LEASE: Duration = Duration::from_secs(15);

/// A stored response: what the first request answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Option<String>,
}

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Nobody has it: run the request (the key is now claimed).
    Run,
    /// The first request succeeded: answer what it answered.
    Replay(StoredResponse),
}

/// A key's claim: which request took it, until when, and what it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub fingerprint: String,
    /// Unix seconds: an unfinished claim after this is abandoned.
    pub lease_until: i64,
    /// Unix seconds: DynamoDB's TTL attribute.
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<StoredResponse>,
}

impl Claim {
    /// A new claim by the request with `fingerprint` at `now` (Unix seconds).
    pub fn new(fingerprint: &str, now: i64) -> Self {
        Self {
            fingerprint: fingerprint.to_string(),
            lease_until: now + LEASE.as_secs() as i64,
            expires_at: now + TTL.as_secs() as i64,
            response: None,
        }
    }
}

/// Keys are client-generated (a UUID, typically): 1-255 visible ASCII chars.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The request a key was first used for. A key reused for a different body
/// is a client bug, refused rather than answered with the wrong response.
pub fn fingerprint(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What an existing record means for a request with `fingerprint` at `now`
/// (Unix seconds); `None` if the record is dead and may be claimed again.
pub fn judge(record: &Claim, fingerprint: &str, now: i64) -> Option<Result<Decision, Error>> {
    if record.expires_at <= now || (record.response.is_none() && record.lease_until <= now) {
        return None;
    }
    if record.fingerprint != fingerprint {
        return Some(Err(Error::new(
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request body; use a new key",
        )));
    }
    Some(match &record.response {
        Some(response) => Ok(Decision::Replay(response.clone())),
        None => Err(Error::new(
            Code::IdempotencyKeyInUse,
            "a request with this Idempotency-Key is still running; retry in a moment",
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(response: Option<StoredResponse>) -> Claim {
        Claim {
            fingerprint: fingerprint(b"{}"),
            lease_until: 115,
            expires_at: 100 + TTL.as_secs() as i64,
            response,
        }
    }

    fn stored() -> StoredResponse {
        StoredResponse {
            status: 201,
            body: Some(r#"{"mediaId":"m"}"#.into()),
        }
    }

    #[test]
    fn a_finished_request_is_replayed_for_the_same_body_only() {
        let done = record(Some(stored()));
        let same = fingerprint(b"{}");
        assert_eq!(
            judge(&done, &same, 1000).unwrap().unwrap(),
            Decision::Replay(stored())
        );
        let other = judge(&done, &fingerprint(b"{\"a\":1}"), 1000)
            .unwrap()
            .unwrap_err();
        assert_eq!(other.code, Code::IdempotencyKeyReused);
        assert_eq!(other.status(), 422);
    }

    #[test]
    fn a_running_claim_blocks_until_its_lease_ends() {
        let running = record(None);
        let same = fingerprint(b"{}");
        let err = judge(&running, &same, 114).unwrap().unwrap_err();
        assert_eq!(err.code, Code::IdempotencyKeyInUse);
        assert_eq!(err.status(), 409);
        assert!(judge(&running, &same, 115).is_none(), "abandoned claim");
    }

    #[test]
    fn expired_records_are_dead_even_when_finished() {
        let done = record(Some(stored()));
        assert!(judge(&done, &fingerprint(b"{}"), done.expires_at).is_none());
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert!(valid_key("8e0f6a52-6a3c-4c1e-9e8b-0c1f6f9b7c11"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("ключ"));
    }

    #[test]
    fn fingerprints_are_sha256_hex() {
        assert_eq!(
            fingerprint(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
