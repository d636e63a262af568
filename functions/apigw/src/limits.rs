//! Per-user rate limits of the session routes. Writes (every method but
//! GET and HEAD) are counted in the table, one conditional write each, so
//! the limit holds across every container; reads are counted in this
//! container's memory (free, and a read costs the service little), so a
//! user's limit is per container that serves them: within a few times the
//! quota under concurrency, which is what a flood needs.

use std::collections::HashMap;
use std::sync::Mutex;

use shared::Error;
use shared::config::{Env, FromEnv, MissingVariable};
use shared::keys::RateSubject;
use shared::limits::{Decision, Policy};
use shared::model::ids::UserId;
use shared::store::Table;

/// The session routes' policies, from the template's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub writes: Policy,
    pub reads: Policy,
}

impl FromEnv for Limits {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        let quota = |name: &str, default: u64| {
            u32::try_from(env.number(name, default).max(1)).unwrap_or(u32::MAX)
        };
        Ok(Self {
            writes: Policy::new("writes", quota("USER_WRITES_PER_MINUTE", 120), 60),
            reads: Policy::new("reads", quota("USER_READS_PER_MINUTE", 600), 60),
        })
    }
}

/// Counts each session request against its class.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    /// Reads of this container, by user and window start.
    reads: Mutex<HashMap<(UserId, i64), u32>>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// The decision for one request of `user` with `method` at `now`.
    pub async fn check(
        &self,
        table: &Table,
        user: &UserId,
        method: &str,
        now: i64,
    ) -> Result<Decision, Error> {
        if matches!(method, "GET" | "HEAD") {
            return Ok(self.count_read(user, now));
        }
        table
            .take(&RateSubject::User(user.clone()), &self.limits.writes, now)
            .await
    }

    fn count_read(&self, user: &UserId, now: i64) -> Decision {
        let policy = self.limits.reads;
        let (window, reset) = policy.window_at(now);
        let mut reads = self
            .reads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only the current window is kept: memory stays one entry per user.
        reads.retain(|(_, start), _| *start == window);
        let count = reads.entry((user.clone(), window)).or_insert(0);
        if *count < policy.quota {
            *count += 1;
            return policy.decide(*count, reset);
        }
        policy.decide(policy.quota + 1, reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_quota_are_refused_until_the_window_ends() {
        let limiter = Limiter::new(Limits {
            writes: Policy::new("writes", 1, 60),
            reads: Policy::new("reads", 2, 60),
        });
        let me = UserId::parse("me").unwrap();
        let other = UserId::parse("other").unwrap();
        assert!(limiter.count_read(&me, 120).allowed);
        assert!(limiter.count_read(&me, 130).allowed);
        let refused = limiter.count_read(&me, 140);
        assert!(!refused.allowed);
        assert_eq!(refused.reset, 40);
        assert!(
            limiter.count_read(&other, 140).allowed,
            "other users are unaffected"
        );
        assert!(limiter.count_read(&me, 180).allowed, "a new window");
    }
}
