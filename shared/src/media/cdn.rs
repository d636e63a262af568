//! CloudFront signed URLs: what the `upload` function hands out for media
//! variants, and what the local stack checks before serving one.
//!
//! Phone image caches (URLCache, Coil, Glide, SDWebImage) key by URL, so a
//! variant's URL must repeat across calls and across Lambda containers. Two
//! choices make it repeat:
//! - the expiry is rounded to a window: every URL signed in one window
//!   expires at the same instant (between one and two windows later);
//! - ECDSA P-256 signatures are deterministic here (RFC 6979), so the same
//!   policy signed by any container gives the same bytes.
//!
//! One custom policy covers every variant of a media item
//! (`.../media/<sub>/<mediaId>/*`), so a list of items carries one signature
//! per item, not per variant, and compresses well.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the media signing key is not a PKCS#8 PEM ECDSA P-256 private key")]
    Private,
    #[error("the media signing public key is not a PEM ECDSA P-256 public key")]
    Public,
}

/// Why a signed URL is refused (CloudFront answers 403 to all of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the URL is not signed (Policy, Signature and Key-Pair-Id are required)")]
    Unsigned,
    #[error("the hash algorithm must be SHA256")]
    HashAlgorithm,
    #[error("the key {0} is not in the key group")]
    UnknownKey(String),
    #[error("the policy is malformed")]
    Policy,
    #[error("the signature does not match the policy")]
    Signature,
    #[error("the policy does not cover this URL")]
    Resource,
    #[error("the URL has expired")]
    Expired,
}

/// Signs variant URLs with one key of the distribution's key group.
#[derive(Clone)]
pub struct UrlSigner {
    base_url: String,
    key_pair_id: String,
    key: SigningKey,
    window: Duration,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base_url", &self.base_url)
            .field("key_pair_id", &self.key_pair_id)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The query string that grants every object under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    query: String,
    pub expires_at: u64,
}

impl UrlSigner {
    /// `base_url` is the distribution's (`https://d111.cloudfront.net`);
    /// `private_key_pem` a PKCS#8 P-256 key; `window` how long URLs repeat.
    pub fn new(
        base_url: &str,
        key_pair_id: &str,
        private_key_pem: &str,
        window: Duration,
    ) -> Result<Self, KeyError> {
        let key =
            SigningKey::from_pkcs8_pem(private_key_pem.trim()).map_err(|_| KeyError::Private)?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            key_pair_id: key_pair_id.to_string(),
            key,
            window: window.max(Duration::from_secs(1)),
        })
    }

    pub fn key_pair_id(&self) -> &str {
        &self.key_pair_id
    }

    /// A grant for every object whose key starts with `prefix`, valid at
    /// `now` and identical for every `now` in the same window.
    pub fn grant(&self, prefix: &str, now: SystemTime) -> Grant {
        let expires_at = expiry(now, self.window);
        let policy = policy_json(&format!("{}/{prefix}*", self.base_url), expires_at);
        let signature: DerSignature = self.key.sign(policy.as_bytes());
        let query = format!(
            "Policy={}&Signature={}&Key-Pair-Id={}&Hash-Algorithm=SHA256",
            url_safe(policy.as_bytes()),
            url_safe(signature.as_bytes()),
            self.key_pair_id
        );
        Grant { query, expires_at }
    }

    /// The URL of the object `key` under a grant made for its prefix.
    pub fn url(&self, key: &str, grant: &Grant) -> String {
        format!("{}/{key}?{}", self.base_url, grant.query)
    }
}

/// The end of the window after the one holding `now`: a URL signed at any
/// instant of a window lives at least one more whole window.
pub fn expiry(now: SystemTime, window: Duration) -> u64 {
    let window = window.as_secs().max(1);
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    (now / window + 2) * window
}

#[derive(Serialize, Deserialize)]
struct Policy {
    #[serde(rename = "Statement")]
    statement: Vec<Statement>,
}

#[derive(Serialize, Deserialize)]
struct Statement {
    #[serde(rename = "Resource")]
    resource: String,
    #[serde(rename = "Condition")]
    condition: Condition,
}

#[derive(Serialize, Deserialize)]
struct Condition {
    #[serde(rename = "DateLessThan")]
    date_less_than: Epoch,
}

#[derive(Serialize, Deserialize)]
struct Epoch {
    #[serde(rename = "AWS:EpochTime")]
    epoch_time: u64,
}

fn policy_json(resource: &str, expires_at: u64) -> String {
    serde_json::to_string(&Policy {
        statement: vec![Statement {
            resource: resource.to_string(),
            condition: Condition {
                date_less_than: Epoch {
                    epoch_time: expires_at,
                },
            },
        }],
    })
    .unwrap_or_default()
}

/// Base64 with CloudFront's URL-safe substitutions (`+=/` to `-_~`).
fn url_safe(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            other => other,
        })
        .collect()
}

fn from_url_safe(text: &str) -> Option<Vec<u8>> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            other => other,
        })
        .collect();
    STANDARD.decode(standard).ok()
}

/// The public keys a distribution trusts, by key pair id: what CloudFront
/// checks a signed URL against.
#[derive(Debug, Clone, Default)]
pub struct KeyGroup {
    keys: BTreeMap<String, VerifyingKey>,
}

impl KeyGroup {
    pub fn insert(&mut self, key_pair_id: &str, public_key_pem: &str) -> Result<(), KeyError> {
        let key = VerifyingKey::from_public_key_pem(public_key_pem.trim())
            .map_err(|_| KeyError::Public)?;
        self.keys.insert(key_pair_id.to_string(), key);
        Ok(())
    }

    pub fn remove(&mut self, key_pair_id: &str) {
        self.keys.remove(key_pair_id);
    }

    /// Checks `url` (scheme, host, path and query, as requested) at `now`.
    pub fn verify(&self, url: &str, now: SystemTime) -> Result<(), Refusal> {
        let (resource, query) = url.split_once('?').ok_or(Refusal::Unsigned)?;
        let mut policy = None;
        let mut signature = None;
        let mut key_pair_id = None;
        let mut hash = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("Policy", v)) => policy = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                Some(("Key-Pair-Id", v)) => key_pair_id = Some(v),
                Some(("Hash-Algorithm", v)) => hash = Some(v),
                _ => {}
            }
        }
        let (Some(policy), Some(signature), Some(key_pair_id)) = (policy, signature, key_pair_id)
        else {
            return Err(Refusal::Unsigned);
        };
        // This group holds ECDSA keys, which CloudFront pairs with SHA-256.
        if hash != Some("SHA256") {
            return Err(Refusal::HashAlgorithm);
        }
        let key = self
            .keys
            .get(key_pair_id)
            .ok_or_else(|| Refusal::UnknownKey(key_pair_id.to_string()))?;
        let policy = from_url_safe(policy).ok_or(Refusal::Policy)?;
        let signature = from_url_safe(signature)
            .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok())
            .ok_or(Refusal::Signature)?;
        key.verify(&policy, &signature)
            .map_err(|_| Refusal::Signature)?;
        let policy: Policy = serde_json::from_slice(&policy).map_err(|_| Refusal::Policy)?;
        let statement = policy.statement.first().ok_or(Refusal::Policy)?;
        if !matches_wildcard(&statement.resource, resource) {
            return Err(Refusal::Resource);
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now >= statement.condition.date_less_than.epoch_time {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

/// CloudFront's resource patterns: `*` matches any run of characters, `?`
/// exactly one.
fn matches_wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The SPKI public PEM of a PKCS#8 private PEM (a key kept in SSM).
pub fn public_key_of(private_key_pem: &str) -> Result<String, KeyError> {
    SigningKey::from_pkcs8_pem(private_key_pem.trim())
        .map_err(|_| KeyError::Private)?
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| KeyError::Public)
}

/// A new key pair as (PKCS#8 private PEM, SPKI public PEM): the private
/// half for SSM, the public half for the template's key group
/// (`scripts/deploy --media-key` makes one; so does the local stack).
pub fn generate_key_pair() -> (String, String) {
    let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .unwrap_or_default();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap_or_default();
    (private, public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_public_key_is_derived_from_the_private_one() {
        let (private, public) = generate_key_pair();
        assert_eq!(public_key_of(&private).unwrap(), public);
        assert!(matches!(public_key_of("not a key"), Err(KeyError::Private)));
    }

    fn signer(id: &str) -> (UrlSigner, KeyGroup) {
        let (private, public) = generate_key_pair();
        let signer = UrlSigner::new("https://d111.cloudfront.net/", id, &private, DAY).unwrap();
        let mut group = KeyGroup::default();
        group.insert(id, &public).unwrap();
        (signer, group)
    }

    const PREFIX: &str = "media/user-1/0190-abc/";
    const KEY: &str = "media/user-1/0190-abc/w800.webp";

    #[test]
    fn urls_repeat_within_a_window_and_change_across_windows() {
        let (signer, _) = signer("K1");
        let start = 20_000 * 86_400;
        let first = signer.url(KEY, &signer.grant(PREFIX, at(start + 5)));
        let later = signer.url(KEY, &signer.grant(PREFIX, at(start + 86_399)));
        let next = signer.url(KEY, &signer.grant(PREFIX, at(start + 86_400)));
        assert_eq!(first, later);
        assert_ne!(first, next);
        assert!(
            first
                .starts_with("https://d111.cloudfront.net/media/user-1/0190-abc/w800.webp?Policy=")
        );
    }

    #[test]
    fn two_containers_with_the_same_key_sign_the_same_url() {
        let (private, _) = generate_key_pair();
        let one = UrlSigner::new("https://cdn", "K1", &private, DAY).unwrap();
        let two = UrlSigner::new("https://cdn", "K1", &private, DAY).unwrap();
        let now = SystemTime::now();
        assert_eq!(
            one.url(KEY, &one.grant(PREFIX, now)),
            two.url(KEY, &two.grant(PREFIX, now))
        );
    }

    #[test]
    fn the_group_accepts_its_urls_until_they_expire() {
        let (signer, group) = signer("K1");
        let now = at(1_800_000_000);
        let grant = signer.grant(PREFIX, now);
        let url = signer.url(KEY, &grant);
        assert_eq!(group.verify(&url, now), Ok(()));
        assert_eq!(group.verify(&url, at(grant.expires_at - 1)), Ok(()));
        assert_eq!(
            group.verify(&url, at(grant.expires_at)),
            Err(Refusal::Expired)
        );
        // At least one whole window, at most two.
        let left = grant.expires_at - 1_800_000_000;
        assert!((86_400..=2 * 86_400).contains(&left), "{left}");
    }

    #[test]
    fn a_grant_covers_its_prefix_only() {
        let (signer, group) = signer("K1");
        let now = SystemTime::now();
        let grant = signer.grant(PREFIX, now);
        let other_item = signer.url("media/user-1/0190-abd/w800.webp", &grant);
        let original = signer.url("uploads/user-1/0190-abc", &grant);
        assert_eq!(group.verify(&other_item, now), Err(Refusal::Resource));
        assert_eq!(group.verify(&original, now), Err(Refusal::Resource));
    }

    #[test]
    fn tampering_and_unknown_keys_are_refused() {
        let (signer, group) = signer("K1");
        let now = SystemTime::now();
        let url = signer.url(KEY, &signer.grant(PREFIX, now));
        assert_eq!(group.verify(KEY, now), Err(Refusal::Unsigned));
        // A policy stretched to the whole bucket, keeping the old signature.
        let wider = url.replace(
            &url_safe(
                policy_json(
                    "https://d111.cloudfront.net/media/user-1/0190-abc/*",
                    expiry(now, DAY),
                )
                .as_bytes(),
            ),
            &url_safe(policy_json("https://d111.cloudfront.net/*", expiry(now, DAY)).as_bytes()),
        );
        assert_ne!(wider, url);
        assert_eq!(group.verify(&wider, now), Err(Refusal::Signature));
        assert_eq!(
            group.verify(&url.replace("Key-Pair-Id=K1", "Key-Pair-Id=K9"), now),
            Err(Refusal::UnknownKey("K9".into()))
        );
        assert_eq!(
            group.verify(&url.replace("&Hash-Algorithm=SHA256", ""), now),
            Err(Refusal::HashAlgorithm)
        );
    }

    #[test]
    fn rotation_keeps_old_urls_working_until_the_old_key_leaves_the_group() {
        let (old, mut group) = signer("K-OLD");
        let (private, public) = generate_key_pair();
        let new = UrlSigner::new("https://d111.cloudfront.net", "K-NEW", &private, DAY).unwrap();
        let now = SystemTime::now();
        let old_url = old.url(KEY, &old.grant(PREFIX, now));
        group.insert("K-NEW", &public).unwrap();
        let new_url = new.url(KEY, &new.grant(PREFIX, now));
        assert_ne!(old_url, new_url);
        assert_eq!(group.verify(&old_url, now), Ok(()));
        assert_eq!(group.verify(&new_url, now), Ok(()));
        group.remove("K-OLD");
        assert_eq!(
            group.verify(&old_url, now),
            Err(Refusal::UnknownKey("K-OLD".into()))
        );
        assert_eq!(group.verify(&new_url, now), Ok(()));
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(matches!(
            UrlSigner::new("https://cdn", "K1", "not a key", DAY),
            Err(KeyError::Private)
        ));
        assert!(matches!(
            KeyGroup::default()
                .insert("K1", "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----"),
            Err(KeyError::Public)
        ));
    }

    proptest! {
        #[test]
        fn wildcards_match_like_cloudfront(prefix in "[a-z/]{0,12}", rest in "[a-z./]{0,12}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{rest}");
            prop_assert!(matches_wildcard(&pattern, &text));
            prop_assert!(matches_wildcard(&text, &text));
            let (narrow, other) = (format!("{prefix}x"), format!("{prefix}y{rest}"));
            prop_assert!(!matches_wildcard(&narrow, &other));
        }

        #[test]
        fn the_expiry_is_the_same_across_a_window(secs in 0u64..4_000_000_000, window in 1u64..1_000_000) {
            let w = Duration::from_secs(window);
            let start = secs / window * window;
            prop_assert_eq!(expiry(at(start), w), expiry(at(start + window - 1), w));
            prop_assert!(expiry(at(secs), w) >= secs + window);
            prop_assert!(expiry(at(secs), w) <= secs + 2 * window);
        }
    }
}
