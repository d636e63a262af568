//! The user's profile: who they are and which access tokens are revoked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::ids::UserId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: UserId,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// Access tokens issued before this instant (Unix seconds) are refused:
    /// Cognito's global sign-out revokes refresh tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_valid_after: Option<i64>,
    /// The `jti` of the token that signed out: it was issued in the same
    /// second as `tokensValidAfter` (token times have one-second precision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_token_id: Option<String>,
    /// When the account was deleted (Unix seconds): the profile stays as
    /// the deletion marker, refusing every token, for longer than any
    /// token lives (`DELETION_MARKER_SECONDS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

/// How long a deleted account's marker outlives the deletion: longer than
/// the longest access or ID token Cognito issues (24 h; the template's are
/// 60 min), so no token issued before it can pass again.
pub const DELETION_MARKER_SECONDS: i64 = 2 * 24 * 3600;

impl Profile {
    /// Whether an access token issued at `issued_at` with id `token_id` was
    /// revoked by a sign-out, a password reset or a deletion. Token times
    /// have one-second precision, so a token of the revoking second itself
    /// is refused too: sign-in and refresh wait that second out
    /// (`issued_too_early`) rather than hand out a token dead on arrival.
    pub fn revokes(&self, issued_at: i64, token_id: Option<&str>) -> bool {
        self.deleted_at.is_some()
            || self.issued_too_early(issued_at)
            || (token_id.is_some() && token_id == self.revoked_token_id.as_deref())
    }

    /// Whether a token issued at `issued_at` falls at or before the last
    /// revocation.
    pub fn issued_too_early(&self, issued_at: i64) -> bool {
        self.tokens_valid_after
            .is_some_and(|after| issued_at <= after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(after: Option<i64>, jti: Option<&str>) -> Profile {
        Profile {
            user_id: UserId::parse("u").unwrap(),
            email: "u@example.com".into(),
            created_at: Utc::now(),
            tokens_valid_after: after,
            revoked_token_id: jti.map(str::to_string),
            deleted_at: None,
        }
    }

    #[test]
    fn revokes_older_tokens_and_the_signed_out_one() {
        let p = profile(Some(100), Some("signed-out"));
        assert!(p.revokes(99, Some("other")));
        assert!(p.revokes(100, Some("signed-out")));
        // Issued in the same second as the sign-out: refused as well.
        assert!(p.revokes(100, Some("new-session")));
        assert!(!p.revokes(101, None));
        assert!(!profile(None, None).revokes(0, None));
        let deleted = Profile {
            deleted_at: Some(100),
            ..profile(Some(100), None)
        };
        assert!(
            deleted.revokes(i64::MAX, None),
            "every token of a deleted account"
        );
    }
}
