//! The `spaces` function: shared spaces and who is in them. Records,
//! photos and pokes of a space go through `sync`, `upload` and the live
//! channel; this function manages the membership they are checked
//! against.
//!
//! A caller who is not a member of a space gets 404 on every route of it,
//! never 403, so no one learns that a space exists; a member whose role is
//! too low gets 403 `insufficient_role`.

use apigw::{Call, DEFAULT_BODY_LIMIT, Reply, Route, Service};
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::Error;
use shared::adapters::queue::Queue;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable};
use shared::model::access::Role;
use shared::model::ids::{InvitationId, SpaceId, UserId};
use shared::model::purge::{PurgeJob, Target};
use shared::model::quota::Quotas;
use shared::model::space::{
    self, DEFAULT_INVITATION_SECONDS, MAX_INVITATION_SECONDS, MAX_INVITATION_USES, Space,
};
use shared::store::{SpaceAccess, Table};

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

/// What `spaces` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// `PURGE_QUEUE_URL`: where a deleted space's contents go.
    pub purge_queue_url: String,
    /// The caller's rate limits (`USER_WRITES_PER_MINUTE`, `USER_READS_PER_MINUTE`).
    pub limits: apigw::Limits,
    /// `MAX_SPACES_PER_USER`, `MAX_MEMBERS_PER_SPACE`,
    /// `MAX_OPEN_INVITATIONS_PER_SPACE` (template `Globals`).
    pub quotas: Quotas,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            quotas: Quotas::read(env),
            limits: apigw::Limits::read(env)?,
            table_name: config::table_name(env)?,
            purge_queue_url: env.required("PURGE_QUEUE_URL")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub purge: Queue,
    pub limiter: std::sync::Arc<apigw::Limiter>,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            limiter: std::sync::Arc::new(apigw::Limiter::new(config.limits)),
            table: Table::new(sdk, &config.table_name).with_quotas(config.quotas),
            purge: Queue::new(sdk, &config.purge_queue_url),
        }
    }
}

impl Service for Deps {
    const ROUTES: &'static [Route<Self>] = &[
        Route::session("POST", "/spaces", |d, c| Box::pin(create(d, c))).idempotent(),
        Route::session("GET", "/spaces", |d, c| Box::pin(list(d, c))),
        Route::session("GET", "/spaces/{spaceId}", |d, c| Box::pin(show(d, c))),
        Route::session("PATCH", "/spaces/{spaceId}", |d, c| Box::pin(rename(d, c))),
        Route::session("DELETE", "/spaces/{spaceId}", |d, c| Box::pin(delete(d, c))),
        Route::session("POST", "/spaces/{spaceId}/invitations", |d, c| {
            Box::pin(invite(d, c))
        })
        .idempotent(),
        Route::session("GET", "/spaces/{spaceId}/invitations", |d, c| {
            Box::pin(invitations(d, c))
        }),
        Route::session(
            "DELETE",
            "/spaces/{spaceId}/invitations/{invitationId}",
            |d, c| Box::pin(revoke(d, c)),
        ),
        Route::session("POST", "/invitations/accept", |d, c| Box::pin(accept(d, c))).idempotent(),
        Route::session("PUT", "/spaces/{spaceId}/members/{userId}", |d, c| {
            Box::pin(set_role(d, c))
        }),
        Route::session("DELETE", "/spaces/{spaceId}/members/{userId}", |d, c| {
            Box::pin(remove(d, c))
        }),
    ];

    fn table(&self) -> &Table {
        &self.table
    }

    fn limiter(&self) -> &apigw::Limiter {
        &self.limiter
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    apigw::handle(deps, req).await
}

/// The caller's access to the `{spaceId}` of the path: 404 for an id that
/// names no space they are in.
async fn access(deps: &Deps, call: &Call<'_>) -> Result<SpaceAccess, Error> {
    let space_id = SpaceId::parse(call.path("spaceId")?).map_err(|_| Error::not_found("space"))?;
    deps.table.space_access(call.session()?, &space_id).await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpaceView {
    space_id: SpaceId,
    name: String,
    role: Role,
    created_at: DateTime<Utc>,
}

impl SpaceView {
    fn new(space: &Space, role: Role) -> Self {
        Self {
            space_id: space.space_id.clone(),
            name: space.name.clone(),
            role,
            created_at: space.created_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: String,
    #[serde(default)]
    space_id: Option<String>,
}

async fn create(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let session = call.session()?;
    let body: CreateBody = call.json(DEFAULT_BODY_LIMIT)?;
    let name = space::space_name(&body.name)?;
    let space_id = match body.space_id.as_deref() {
        Some(raw) => space::client_space_id(raw)?,
        None => space::new_space_id(),
    };
    let (space, created) = deps.table.create_space(session, space_id, name).await?;
    let role = if created {
        Role::Owner
    } else {
        deps.table
            .space_access(session, &space.space_id)
            .await?
            .role()
    };
    tracing::info!(space = %space.space_id, created, "space created");
    Reply::json(
        if created { 201 } else { 200 },
        SpaceView::new(&space, role),
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpaceItem {
    space_id: SpaceId,
    name: String,
    role: Role,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListReply {
    items: Vec<SpaceItem>,
    next_cursor: Option<String>,
}

async fn list(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let session = call.session()?;
    let limit = call.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let after = call.page_after(|id| SpaceId::parse(id).ok())?;
    let page = deps
        .table
        .list_spaces(session.user(), limit, after.as_ref())
        .await?;
    Reply::ok(ListReply {
        items: page
            .items
            .into_iter()
            .map(|(space, role)| SpaceItem {
                space_id: space.space_id,
                name: space.name,
                role,
            })
            .collect(),
        next_cursor: page.next.map(|id| apigw::page_cursor(id.as_str())),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberView {
    user_id: UserId,
    email: String,
    role: Role,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpaceDetail {
    #[serde(flatten)]
    space: SpaceView,
    members: Vec<MemberView>,
}

async fn detail(deps: &Deps, space: &Space, role: Role) -> Result<SpaceDetail, Error> {
    let members = deps.table.members(&space.space_id).await?;
    Ok(SpaceDetail {
        space: SpaceView::new(space, role),
        members: members
            .into_iter()
            .map(|m| MemberView {
                user_id: m.user_id,
                email: m.email,
                role: m.role,
            })
            .collect(),
    })
}

async fn show(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let access = access(deps, &call).await?;
    Reply::ok(detail(deps, &access.space, access.role()).await?)
}

#[derive(Deserialize)]
struct RenameBody {
    name: String,
}

async fn rename(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let access = access(deps, &call).await?;
    access.require(&[Role::Owner, Role::Editor])?;
    let body: RenameBody = call.json(DEFAULT_BODY_LIMIT)?;
    let name = space::space_name(&body.name)?;
    let space = deps.table.rename_space(&access, name).await?;
    Reply::ok(detail(deps, &space, access.role()).await?)
}

async fn delete(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let space_id = SpaceId::parse(call.path("spaceId")?).map_err(|_| Error::not_found("space"))?;
    let session = call.session()?;
    match deps.table.space_access(session, &space_id).await {
        // The mark first: from it on the space is gone for every member
        // and nothing more is written into it; its contents are the purge's.
        Ok(access) => {
            access.require(&[Role::Owner])?;
            deps.table.delete_space(&access).await?;
        }
        // A retry (the first answer lost, or its purge not queued): the
        // mark is there, so only the purge is queued again.
        Err(err)
            if err.code == shared::Code::NotFound
                && deps.table.deleted_by(&space_id, session.user()).await? => {}
        Err(err) => return Err(err),
    }
    deps.purge
        .send(&PurgeJob::start(Target::Space {
            space_id: space_id.clone(),
        }))
        .await?;
    tracing::info!(space = %space_id, "space deleted; its purge is queued");
    Ok(Reply::empty(202))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InviteBody {
    role: Role,
    #[serde(default)]
    max_uses: Option<u32>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InvitationCreated {
    invitation_id: InvitationId,
    /// Shown once: only its hash is kept.
    code: String,
    role: Role,
    expires_at: DateTime<Utc>,
}

async fn invite(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let access = access(deps, &call).await?;
    access.require(&[Role::Owner])?;
    let body: InviteBody = call.json(DEFAULT_BODY_LIMIT)?;
    let role = space::invitable(body.role)?;
    let uses = body.max_uses.unwrap_or(1);
    if !(1..=MAX_INVITATION_USES).contains(&uses) {
        return Err(Error::invalid(format!(
            "maxUses must be 1 to {MAX_INVITATION_USES}"
        )));
    }
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_INVITATION_SECONDS);
    if !(60..=MAX_INVITATION_SECONDS).contains(&ttl) {
        return Err(Error::invalid(format!(
            "ttlSeconds must be 60 to {MAX_INVITATION_SECONDS}"
        )));
    }
    let created = deps
        .table
        .create_invitation(&access, role, uses, ttl)
        .await?;
    // The code is a bearer secret: never logged.
    tracing::info!(space = %access.space.space_id, invitation = %created.invitation.invitation_id, "invitation created");
    Reply::json(
        201,
        InvitationCreated {
            invitation_id: created.invitation.invitation_id,
            code: created.code,
            role,
            expires_at: created.invitation.expires_at,
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InvitationView {
    invitation_id: InvitationId,
    role: Role,
    uses_left: u32,
    expires_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct InvitationList {
    items: Vec<InvitationView>,
}

async fn invitations(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let access = access(deps, &call).await?;
    access.require(&[Role::Owner])?;
    let items = deps.table.invitations(&access.space.space_id).await?;
    Reply::ok(InvitationList {
        items: items
            .into_iter()
            .map(|i| InvitationView {
                invitation_id: i.invitation_id,
                role: i.role,
                uses_left: i.uses_left,
                expires_at: i.expires_at,
            })
            .collect(),
    })
}

async fn revoke(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let access = access(deps, &call).await?;
    access.require(&[Role::Owner])?;
    let invitation = InvitationId::parse(call.path("invitationId")?)
        .map_err(|_| Error::not_found("invitation"))?;
    deps.table
        .revoke_invitation(&access.space.space_id, &invitation)
        .await?;
    Ok(Reply::empty(204))
}

#[derive(Deserialize)]
struct AcceptBody {
    code: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AcceptReply {
    space_id: SpaceId,
    name: String,
    role: Role,
}

async fn accept(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let session = call.session()?;
    let body: AcceptBody = call.json(DEFAULT_BODY_LIMIT)?;
    if !space::plausible_code(&body.code) {
        return Err(Error::not_found("invitation"));
    }
    let accepted = deps.table.accept_invitation(session, &body.code).await?;
    tracing::info!(space = %accepted.space.space_id, role = accepted.role.as_str(), "invitation accepted");
    Reply::ok(AcceptReply {
        space_id: accepted.space.space_id,
        name: accepted.space.name,
        role: accepted.role,
    })
}

/// The `{userId}` of the path; an id no user could have names no member.
fn member_id(call: &Call<'_>) -> Result<UserId, Error> {
    UserId::parse(call.path("userId")?).map_err(|_| Error::not_found("member"))
}

#[derive(Deserialize)]
struct RoleBody {
    role: Role,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleReply {
    user_id: UserId,
    role: Role,
}

async fn set_role(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let access = access(deps, &call).await?;
    access.require(&[Role::Owner])?;
    let user = member_id(&call)?;
    let body: RoleBody = call.json(DEFAULT_BODY_LIMIT)?;
    deps.table.change_role(&access, &user, body.role).await?;
    tracing::info!(space = %access.space.space_id, role = body.role.as_str(), "member role changed");
    Reply::ok(RoleReply {
        user_id: user,
        role: body.role,
    })
}

async fn remove(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let access = access(deps, &call).await?;
    let user = member_id(&call)?;
    deps.table.remove_member(&access, &user).await?;
    tracing::info!(space = %access.space.space_id, leaving = (&user == access.grant.holder()), "member removed");
    Ok(Reply::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_the_template_and_the_contract() {
        apigw::testing::assert_routes_are_the_contract::<Deps>("SpacesFunction");
    }
}
