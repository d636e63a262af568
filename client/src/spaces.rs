//! The spaces API (`/spaces`, `/invitations/accept`): sharing is managed
//! online, and what it changes reaches every device's replica through the
//! pull's membership changes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use shared::model::access::Role;
use shared::model::ids::{SpaceId, UserId};

use crate::SyncError;
use crate::http::HttpTransport;
use crate::store::{Space, SpaceRole};

/// An invitation just made: `code` is shown once (the server keeps only
/// its hash); hand it to the invitee, who passes it to `accept_invitation`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Invitation {
    pub invitation_id: String,
    pub code: String,
    pub role: SpaceRole,
    /// RFC 3339.
    pub expires_at: String,
}

/// A member of a space, as the other members see them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SpaceMember {
    pub user_id: String,
    pub email: String,
    pub role: SpaceRole,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpaceReply {
    space_id: SpaceId,
    name: String,
    role: Role,
    #[serde(default)]
    members: Vec<MemberReply>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberReply {
    user_id: String,
    email: String,
    role: Role,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvitationReply {
    invitation_id: String,
    code: String,
    role: Role,
    expires_at: String,
}

impl SpaceReply {
    fn space(&self) -> Space {
        Space {
            space_id: self.space_id.to_string(),
            name: self.name.clone(),
            role: self.role.into(),
        }
    }
}

pub fn space_id(raw: &str) -> Result<SpaceId, SyncError> {
    SpaceId::parse(raw).map_err(|_| SyncError::invalid(format!("{raw:?} is not a space id")))
}

fn user_id(raw: &str) -> Result<UserId, SyncError> {
    UserId::parse(raw).map_err(|_| SyncError::invalid(format!("{raw:?} is not a user id")))
}

fn answered<T>(answer: Option<T>, what: &str) -> Result<T, SyncError> {
    answer.ok_or_else(|| SyncError::protocol(format!("{what}: an empty answer")))
}

/// The id a new space gets: the app's own (a UUID: the same id again
/// answers with the same space, so a create whose answer was lost can be
/// repeated), or a fresh one.
pub fn new_space_id(requested: Option<&str>) -> Result<SpaceId, SyncError> {
    match requested {
        Some(raw) => {
            shared::model::space::client_space_id(raw).map_err(|err| SyncError::invalid(err.detail))
        }
        None => Ok(shared::model::space::new_space_id()),
    }
}

impl HttpTransport {
    pub fn create_space(&self, space: &SpaceId, name: &str) -> Result<Space, SyncError> {
        let reply: Option<SpaceReply> = self.call(
            Method::POST,
            "/spaces",
            Some(&json!({"spaceId": space, "name": name})),
            Some(&format!("create-space-{space}")),
        )?;
        Ok(answered(reply, "POST /spaces")?.space())
    }

    pub fn rename_space(&self, space: &SpaceId, name: &str) -> Result<Space, SyncError> {
        let reply: Option<SpaceReply> = self.call(
            Method::PATCH,
            &format!("/spaces/{space}"),
            Some(&json!({"name": name})),
            None,
        )?;
        Ok(answered(reply, "PATCH /spaces/{spaceId}")?.space())
    }

    pub fn members(&self, space: &SpaceId) -> Result<Vec<SpaceMember>, SyncError> {
        let reply: Option<SpaceReply> =
            self.call(Method::GET, &format!("/spaces/{space}"), None, None)?;
        Ok(answered(reply, "GET /spaces/{spaceId}")?
            .members
            .into_iter()
            .map(|m| SpaceMember {
                user_id: m.user_id,
                email: m.email,
                role: m.role.into(),
            })
            .collect())
    }

    pub fn invite(
        &self,
        space: &SpaceId,
        role: SpaceRole,
        max_uses: Option<u32>,
    ) -> Result<Invitation, SyncError> {
        let mut body = json!({"role": role.as_str()});
        if let Some(max_uses) = max_uses {
            body["maxUses"] = max_uses.into();
        }
        let reply: Option<InvitationReply> = self.call(
            Method::POST,
            &format!("/spaces/{space}/invitations"),
            Some(&body),
            Some(&uuid::Uuid::new_v4().to_string()),
        )?;
        let reply = answered(reply, "POST /spaces/{spaceId}/invitations")?;
        Ok(Invitation {
            invitation_id: reply.invitation_id,
            code: reply.code,
            role: reply.role.into(),
            expires_at: reply.expires_at,
        })
    }

    pub fn accept(&self, code: &str) -> Result<Space, SyncError> {
        let reply: Option<SpaceReply> = self.call(
            Method::POST,
            "/invitations/accept",
            Some(&json!({"code": code})),
            Some(&uuid::Uuid::new_v4().to_string()),
        )?;
        Ok(answered(reply, "POST /invitations/accept")?.space())
    }

    pub fn set_role(&self, space: &SpaceId, user: &str, role: SpaceRole) -> Result<(), SyncError> {
        let user = user_id(user)?;
        self.call::<serde_json::Value>(
            Method::PUT,
            &format!("/spaces/{space}/members/{user}"),
            Some(&json!({"role": role.as_str()})),
            None,
        )?;
        Ok(())
    }

    pub fn remove_member(&self, space: &SpaceId, user: &str) -> Result<(), SyncError> {
        let user = user_id(user)?;
        self.call::<serde_json::Value>(
            Method::DELETE,
            &format!("/spaces/{space}/members/{user}"),
            None,
            None,
        )?;
        Ok(())
    }

    pub fn delete_space(&self, space: &SpaceId) -> Result<(), SyncError> {
        self.call::<serde_json::Value>(Method::DELETE, &format!("/spaces/{space}"), None, None)?;
        Ok(())
    }

    /// The signed-in user's id: the access token's `sub`. Read, not
    /// verified: the server verifies every request.
    pub fn user_id(&self) -> Result<String, SyncError> {
        let token = self.access_token().ok_or(SyncError::Unauthorized)?;
        subject(&token).ok_or_else(|| SyncError::invalid("the access token carries no subject"))
    }
}

fn subject(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    claims.get("sub")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_is_read_from_the_tokens_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"u-1","token_use":"access"}"#);
        assert_eq!(subject(&format!("h.{payload}.s")).as_deref(), Some("u-1"));
        assert_eq!(subject("not a token"), None);
        assert_eq!(subject("h.%%%.s"), None);
    }
}
