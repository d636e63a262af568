//! Profile items: created on first sign-in, and the session check every
//! authorized route runs.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Stored, Table, number};
use crate::keys::ItemKey;
use crate::model::access::Session;
use crate::model::ids::UserId;
use crate::model::profile::Profile;
use crate::{Code, Error, adapters::aws};

impl Table {
    /// Writes the profile unless one exists: the first sign-in creates it,
    /// later ones leave `createdAt` alone.
    pub async fn create_profile_if_absent(&self, profile: &Profile) -> Result<(), Error> {
        let key = ItemKey::Profile {
            user: profile.user_id.clone(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(Stored::item(&key, profile, None)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        // Already there: later sign-ins leave it alone.
        aws::conditional(result).map(|_| ())
    }

    pub async fn profile(&self, user_id: &UserId) -> Result<Option<Profile>, Error> {
        let key = ItemKey::Profile {
            user: user_id.clone(),
        };
        let item: Option<Stored<Profile>> = self.get(&key).await?;
        Ok(item.map(|stored| stored.value))
    }

    /// The session of a verified token (with the caller's profile, None
    /// before their first sign-in), refusing an access token that a
    /// sign-out, password reset or deletion revoked (Cognito keeps access
    /// tokens valid until they expire). One read per request.
    pub async fn check_session(
        &self,
        user_id: &UserId,
        issued_at: i64,
        token_id: Option<&str>,
    ) -> Result<Session, Error> {
        let profile = self.profile(user_id).await?;
        session(user_id, profile, issued_at, token_id, false)
    }

    /// The session check of the deletion itself: a token that was valid
    /// when the account's deletion began may finish it (every step is
    /// idempotent and only deletes); it may do nothing else.
    pub async fn check_deletion_session(
        &self,
        user_id: &UserId,
        issued_at: i64,
        token_id: Option<&str>,
    ) -> Result<Session, Error> {
        let profile = self.profile(user_id).await?;
        session(user_id, profile, issued_at, token_id, true)
    }

    /// Marks the account deleted at `at` (Unix seconds): from now on every
    /// token of it is refused. The marker is the profile itself, kept by
    /// the deletion and expiring (TTL) after `DELETION_MARKER_SECONDS`.
    pub async fn mark_deleted(&self, profile: &Profile, at: i64) -> Result<(), Error> {
        let key = ItemKey::Profile {
            user: profile.user_id.clone(),
        };
        let marker = Profile {
            tokens_valid_after: Some(at),
            deleted_at: Some(at),
            ..profile.clone()
        };
        let expires = at + crate::model::profile::DELETION_MARKER_SECONDS;
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(Stored::item(&key, &marker, Some(expires))?))
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Refuses every access token issued before `at` (Unix seconds), and the
    /// token `token_id` whatever its time.
    pub async fn revoke_tokens(
        &self,
        user_id: &UserId,
        at: i64,
        token_id: Option<&str>,
    ) -> Result<(), Error> {
        let key = ItemKey::Profile {
            user: user_id.clone(),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(super::item_key(&key)))
            .update_expression("SET tokensValidAfter = :at, revokedTokenId = :jti")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":at", number(at))
            .expression_attribute_values(
                ":jti",
                token_id.map_or(AttributeValue::Null(true), |id| {
                    AttributeValue::S(id.into())
                }),
            )
            .send()
            .await;
        match aws::conditional(result)? {
            true => Ok(()),
            false => Err(Error::not_found("profile")),
        }
    }
}

/// The session a profile allows for a token issued at `issued_at`.
fn session(
    user_id: &UserId,
    profile: Option<Profile>,
    issued_at: i64,
    token_id: Option<&str>,
    finishing_deletion: bool,
) -> Result<Session, Error> {
    match profile {
        Some(profile) if profile.deleted_at.is_some() => {
            let began_before = profile.deleted_at.is_some_and(|at| issued_at <= at);
            if finishing_deletion && began_before {
                Ok(Session::new(user_id.clone(), Some(profile)))
            } else {
                Err(deleted())
            }
        }
        Some(profile) if profile.revokes(issued_at, token_id) => Err(revoked()),
        profile => Ok(Session::new(user_id.clone(), profile)),
    }
}

fn deleted() -> Error {
    Error::new(
        Code::TokenRevoked,
        "this account was deleted; its tokens are no longer accepted",
    )
}

fn revoked() -> Error {
    Error::new(
        Code::TokenRevoked,
        "this token was revoked by a sign-out or a password reset; sign in again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn profile_items_round_trip() {
        let profile = Profile {
            user_id: UserId::parse("u").unwrap(),
            email: "u@example.com".into(),
            created_at: Utc::now(),
            tokens_valid_after: Some(5),
            revoked_token_id: None,
            deleted_at: None,
        };
        let key = ItemKey::Profile {
            user: UserId::parse("u").unwrap(),
        };
        let item = Stored::item(&key, &profile, None).unwrap();
        assert_eq!(item["PK"], AttributeValue::S(key.pk()));
        let back: Stored<Profile> = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.value, profile);
    }
}
