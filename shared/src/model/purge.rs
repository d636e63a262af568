//! Deletions too large for one request. `DELETE /me` and
//! `DELETE /spaces/{id}` mark their target deleted at once (every read
//! and token check honours the mark) and queue a [`PurgeJob`]; the purge
//! function then removes everything else in bounded steps, each message
//! one step, and queues the next step or the rest of this one.
//!
//! Every step only deletes, and asks the stores what is left rather than
//! remembering it, so a message delivered twice, or a function stopped
//! mid-step, redoes a little work and loses nothing that should stay.

use serde::{Deserialize, Serialize};

use super::ids::{Partition, SpaceId, UserId};

/// What is being deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Target {
    /// A deleted account: its devices and endpoints, photos, memberships,
    /// every item of its partition but the deletion marker, and its
    /// Cognito user last (until then it is disabled).
    Account { user_id: UserId },
    /// A deleted space: its photos, and every item of its partition but
    /// the space's own (kept, marked deleted, so its members' devices
    /// learn it went and its id is never taken again).
    Space { space_id: SpaceId },
}

impl Target {
    /// The partition its items live in.
    pub fn partition(&self) -> Partition {
        match self {
            Target::Account { user_id } => Partition::User(user_id.clone()),
            Target::Space { space_id } => Partition::Space(space_id.clone()),
        }
    }

    /// `account` or `space`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Account { .. } => "account",
            Target::Space { .. } => "space",
        }
    }
}

/// One kind of thing to delete, in the order a target's steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// SNS endpoints and push-token owners (an account's).
    Devices,
    /// Originals and variants in the bucket.
    Objects,
    /// The spaces the account is in: left, or handed to an heir, or
    /// deleted with their last member.
    Memberships,
    /// The partition's items.
    Items,
    /// The Cognito user (an account's, last: until then a retry can still
    /// find what to delete by the user's id).
    Identity,
}

impl Target {
    pub fn steps(&self) -> &'static [Step] {
        match self {
            Self::Account { .. } => &[
                Step::Devices,
                Step::Objects,
                Step::Memberships,
                Step::Items,
                Step::Identity,
            ],
            Self::Space { .. } => &[Step::Objects, Step::Items],
        }
    }
}

/// One message of the purge queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurgeJob {
    pub target: Target,
    pub step: Step,
}

impl PurgeJob {
    /// The job's first message.
    pub fn start(target: Target) -> Self {
        let step = target.steps()[0];
        Self { target, step }
    }

    /// The message after this step finished; None when the target is gone.
    pub fn next(&self) -> Option<Self> {
        let steps = self.target.steps();
        let at = steps.iter().position(|s| *s == self.step)?;
        steps.get(at + 1).map(|&step| Self {
            target: self.target.clone(),
            step,
        })
    }
}

/// How far one bounded step got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// How many things this call deleted.
    pub deleted: usize,
    /// Whether more is left (the step runs again).
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("3f2c9a4e-1b7d-4c2e-9f00-5d6e7a8b9c0d").unwrap()
    }

    #[test]
    fn an_account_runs_every_step_once_in_order_with_cognito_last() {
        let mut job = PurgeJob::start(Target::Account { user_id: user() });
        let mut seen = vec![job.step];
        while let Some(next) = job.next() {
            seen.push(next.step);
            job = next;
        }
        assert_eq!(
            seen,
            [
                Step::Devices,
                Step::Objects,
                Step::Memberships,
                Step::Items,
                Step::Identity
            ]
        );
    }

    #[test]
    fn a_space_has_no_devices_memberships_or_identity_to_delete() {
        let space = SpaceId::parse("a1b2c3d4e5f60718293a4b5c6d7e8f90").unwrap();
        let job = PurgeJob::start(Target::Space { space_id: space });
        assert_eq!(job.step, Step::Objects);
        assert_eq!(job.next().map(|j| j.step), Some(Step::Items));
        assert_eq!(job.next().and_then(|j| j.next()), None);
    }

    #[test]
    fn a_job_reads_back_from_its_message_and_refuses_anything_else() {
        let job = PurgeJob::start(Target::Account { user_id: user() });
        let body = serde_json::to_string(&job).unwrap();
        assert_eq!(
            body,
            r#"{"target":{"account":{"userId":"3f2c9a4e-1b7d-4c2e-9f00-5d6e7a8b9c0d"}},"step":"devices"}"#
        );
        assert_eq!(serde_json::from_str::<PurgeJob>(&body).unwrap(), job);
        for poison in [
            "",
            "{}",
            r#"{"target":{"account":{"userId":"not a sub"}},"step":"devices"}"#,
            r#"{"target":{"planet":{}},"step":"devices"}"#,
            r#"{"target":{"account":{"userId":"3f2c9a4e-1b7d-4c2e-9f00-5d6e7a8b9c0d"}},"step":"everything"}"#,
        ] {
            assert!(
                serde_json::from_str::<PurgeJob>(poison).is_err(),
                "{poison}"
            );
        }
    }
}
