//! Quotas: how much one user or one space may hold, whatever the rate.
//! Over one is 403 `quota_exceeded` naming the quota and its limit; what
//! frees it (leaving a space, revoking an invitation) always goes through.

use crate::{Code, Error};

/// The spaces' quotas (`SpacesFunction`'s environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceQuotas {
    /// Spaces a user owns (`MAX_SPACES_PER_USER`).
    pub spaces_per_user: u32,
    /// Members of one space, the owner included (`MAX_MEMBERS_PER_SPACE`):
    /// every change in a space pokes each member, so this bounds a fan-out
    /// (1,000 are poked within 5 s: docs/benchmarks.md).
    pub members_per_space: u32,
    /// Live invitations of one space (`MAX_OPEN_INVITATIONS_PER_SPACE`).
    pub open_invitations_per_space: u32,
}

impl Default for SpaceQuotas {
    fn default() -> Self {
        Self {
            spaces_per_user: 100,
            members_per_space: 1000,
            open_invitations_per_space: 50,
        }
    }
}

/// Refuses when `used` already fills `limit`.
pub fn check(quota: &'static str, used: usize, limit: u32) -> Result<(), Error> {
    if used < limit as usize {
        return Ok(());
    }
    Err(Error::new(
        Code::QuotaExceeded,
        format!("{quota} is at its limit of {limit}"),
    )
    .with_extension("quota", quota)
    .with_extension("limit", limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_quota_is_a_403_naming_it() {
        assert!(check("membersPerSpace", 999, 1000).is_ok());
        let full = check("membersPerSpace", 1000, 1000).unwrap_err();
        assert_eq!(full.status(), 403);
        let problem = full.problem();
        assert_eq!(problem.code, "quota_exceeded");
        assert_eq!(problem.extensions["quota"], "membersPerSpace");
        assert_eq!(problem.extensions["limit"], 1000);
    }
}
