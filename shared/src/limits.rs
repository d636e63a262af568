//! Rate limits: how many requests of a kind one subject (a user, an
//! e-mail address, a refresh token) may make per window, and how a limit
//! announces itself (draft-ietf-httpapi-ratelimit-headers-09: the
//! `RateLimit-Policy` and `RateLimit` fields).
//!
//! Windows are fixed and aligned to the epoch (`now / window`): every
//! counter of a window is one item whose key names the window, so the
//! count is compared with the window's own start, never with whether
//! DynamoDB's TTL has run (it only tidies up).

use crate::{Code, Error};

/// A limit: at most `quota` requests per `window` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Its name in the headers and in the problem document.
    pub name: &'static str,
    pub quota: u32,
    pub window: u32,
}

/// What one request used of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub policy: Policy,
    /// Whether the request may go on.
    pub allowed: bool,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// Seconds until the window ends (at least 1).
    pub reset: u32,
}

impl Policy {
    pub const fn new(name: &'static str, quota: u32, window: u32) -> Self {
        Self {
            name,
            quota,
            window,
        }
    }

    /// The window `now` (Unix seconds) falls in: its start, and the
    /// seconds left in it.
    pub fn window_at(&self, now: i64) -> (i64, u32) {
        let window = i64::from(self.window.max(1));
        let start = now.div_euclid(window) * window;
        (
            start,
            u32::try_from(start + window - now).unwrap_or(1).max(1),
        )
    }

    /// The decision for the `count`-th request of the window (1 is the
    /// first), `reset` seconds before it ends.
    pub fn decide(&self, count: u32, reset: u32) -> Decision {
        Decision {
            policy: *self,
            allowed: count <= self.quota,
            remaining: self.quota.saturating_sub(count),
            reset,
        }
    }

    /// `RateLimit-Policy`: `"writes";q=120;w=60`.
    pub fn header(&self) -> String {
        format!("\"{}\";q={};w={}", self.name, self.quota, self.window)
    }
}

impl Decision {
    /// `RateLimit`: `"writes";r=57;t=30`.
    pub fn header(&self) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.policy.name, self.remaining, self.reset
        )
    }

    /// The error a refused request answers: 429 `too_many_requests`,
    /// naming the policy and when to retry (also sent as `Retry-After`).
    pub fn refusal(&self) -> Error {
        Error::new(
            Code::TooManyRequests,
            format!(
                "more than {} {} requests in {} s; retry in {} s",
                self.policy.quota, self.policy.name, self.policy.window, self.reset
            ),
        )
        .with_extension("policy", self.policy.name)
        .with_extension("retryAfter", self.reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITES: Policy = Policy::new("writes", 3, 60);

    #[test]
    fn windows_are_aligned_and_never_end_now() {
        assert_eq!(WRITES.window_at(120), (120, 60));
        assert_eq!(WRITES.window_at(179), (120, 1));
        assert_eq!(WRITES.window_at(-1), (-60, 1));
    }

    #[test]
    fn the_request_past_the_quota_is_refused_with_when_to_retry() {
        let third = WRITES.decide(3, 20);
        assert!(third.allowed);
        assert_eq!(third.remaining, 0);
        let fourth = WRITES.decide(4, 20);
        assert!(!fourth.allowed);
        let refusal = fourth.refusal();
        assert_eq!(refusal.status(), 429);
        assert_eq!(refusal.problem().extensions["retryAfter"], 20);
        assert_eq!(refusal.problem().extensions["policy"], "writes");
    }

    #[test]
    fn headers_follow_the_draft() {
        assert_eq!(WRITES.header(), "\"writes\";q=3;w=60");
        assert_eq!(WRITES.decide(1, 42).header(), "\"writes\";r=2;t=42");
    }
}
