//! Quotas: how much one user or one space may hold, whatever the rate.
//! Over one is 403 `quota_exceeded` naming the quota and its limit; what
//! frees it (leaving a space, revoking an invitation) always goes through.

use crate::config::Env;
use crate::{Code, Error};

/// Every quota, from the functions' shared environment (the template's
/// `Globals`), so that each function enforcing one and `GET /me` reporting
/// it read the same figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    /// Spaces a user owns (`MAX_SPACES_PER_USER`).
    pub spaces_per_user: u32,
    /// Members of one space, the owner included (`MAX_MEMBERS_PER_SPACE`):
    /// every change in a space pokes each member, so this bounds a fan-out
    /// (1,000 are poked within 5 s: docs/benchmarks.md).
    pub members_per_space: u32,
    /// Live invitations of one space (`MAX_OPEN_INVITATIONS_PER_SPACE`).
    pub open_invitations_per_space: u32,
    /// Live sync records of one partition, a user's own or a space's
    /// (`MAX_RECORDS_PER_PARTITION`); tombstones do not count.
    pub records_per_partition: u64,
    /// Ready photos of one partition (`MAX_PHOTOS_PER_PARTITION`).
    pub photos_per_partition: u64,
    /// Bytes of those photos' variants (`MAX_PHOTO_BYTES_PER_PARTITION`).
    pub photo_bytes_per_partition: u64,
    /// Open live-channel connections of one user (`MAX_CONNECTIONS_PER_USER`).
    pub connections_per_user: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            spaces_per_user: 100,
            members_per_space: 1000,
            open_invitations_per_space: 50,
            records_per_partition: 100_000,
            photos_per_partition: 10_000,
            photo_bytes_per_partition: 5 << 30,
            connections_per_user: 10,
        }
    }
}

impl Quotas {
    /// The quotas in `env`, each at least 1; a missing or unreadable one
    /// keeps its default.
    pub fn read(env: &Env) -> Self {
        let defaults = Self::default();
        let large = |name: &str, default: u64| env.number(name, default).max(1);
        let small = |name: &str, default: u32| {
            u32::try_from(large(name, u64::from(default))).unwrap_or(default)
        };
        Self {
            spaces_per_user: small("MAX_SPACES_PER_USER", defaults.spaces_per_user),
            members_per_space: small("MAX_MEMBERS_PER_SPACE", defaults.members_per_space),
            open_invitations_per_space: small(
                "MAX_OPEN_INVITATIONS_PER_SPACE",
                defaults.open_invitations_per_space,
            ),
            records_per_partition: large(
                "MAX_RECORDS_PER_PARTITION",
                defaults.records_per_partition,
            ),
            photos_per_partition: large("MAX_PHOTOS_PER_PARTITION", defaults.photos_per_partition),
            photo_bytes_per_partition: large(
                "MAX_PHOTO_BYTES_PER_PARTITION",
                defaults.photo_bytes_per_partition,
            ),
            connections_per_user: small("MAX_CONNECTIONS_PER_USER", defaults.connections_per_user),
        }
    }
}

/// What one partition holds, as its counter item counts it (0 for what it
/// does not say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Holdings {
    pub records: u64,
    pub photos: u64,
    pub photo_bytes: u64,
}

/// Refuses when `used` already fills `limit`.
pub fn check(quota: &'static str, used: u64, limit: impl Into<u64>) -> Result<(), Error> {
    let limit = limit.into();
    if used < limit {
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
    fn quotas_come_from_the_environment_and_are_never_zero() {
        let lookup = |name: &str| match name {
            "MAX_RECORDS_PER_PARTITION" => Some("25".to_string()),
            "MAX_CONNECTIONS_PER_USER" => Some("0".to_string()),
            "MAX_PHOTOS_PER_PARTITION" => Some("many".to_string()),
            _ => None,
        };
        let quotas = Quotas::read(&Env::new(&lookup));
        assert_eq!(quotas.records_per_partition, 25);
        assert_eq!(quotas.connections_per_user, 1);
        assert_eq!(quotas.photos_per_partition, 10_000);
        assert_eq!(quotas.spaces_per_user, 100);
    }

    #[test]
    fn a_full_quota_is_a_403_naming_it() {
        assert!(check("membersPerSpace", 999, 1000u32).is_ok());
        let full = check("membersPerSpace", 1000, 1000u32).unwrap_err();
        assert_eq!(full.status(), 403);
        let problem = full.problem();
        assert_eq!(problem.code, "quota_exceeded");
        assert_eq!(problem.extensions["quota"], "membersPerSpace");
        assert_eq!(problem.extensions["limit"], 1000);
    }
}
