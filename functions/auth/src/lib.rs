//! The `auth` function: the public account routes, `/me` and `/health`.

use std::time::Instant;

use apigw::{Caller, DEFAULT_BODY_LIMIT, Reply, json_body};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::aws_config::SdkConfig;
use shared::email::Email;
use shared::identity::{Identity, Tokens};
use shared::metrics::Metrics;
use shared::objects::Objects;
use shared::profile::{Profile, Table};
use shared::push::Push;
use shared::{Code, Config, Error};

/// What the handler needs, built once per process.
#[derive(Debug, Clone)]
pub struct Deps {
    pub identity: Identity,
    pub table: Table,
    pub objects: Objects,
    pub push: Push,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            identity: Identity::new(
                shared::identity::client(sdk),
                &config.user_pool_id,
                &config.user_pool_client_id,
            ),
            table: Table::new(shared::profile::client(sdk), &config.table_name),
            objects: Objects::new(sdk, &config.media_bucket),
            push: Push::new(
                sdk,
                &config.apns_application_arn,
                &config.fcm_application_arn,
            ),
        }
    }
}

/// Handles one API Gateway request. Never fails: errors are problem documents.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let started = Instant::now();
    let route = apigw::route_key(&req).to_string();
    let result = route_request(deps, &route, &req).await;
    apigw::respond(&route, started, result)
}

async fn route_request(deps: &Deps, route: &str, req: &Request) -> Result<Reply, Error> {
    match route {
        "GET /health" => Reply::ok(Health { status: "ok" }),
        "POST /auth/sign-up" => {
            let result = sign_up(deps, json_body(req, DEFAULT_BODY_LIMIT)?).await;
            outcome_metric(&result, "SignUps", "SignUpFailures");
            result
        }
        "POST /auth/confirm" => confirm(deps, json_body(req, DEFAULT_BODY_LIMIT)?).await,
        "POST /auth/sign-in" => {
            let result = sign_in(deps, json_body(req, DEFAULT_BODY_LIMIT)?).await;
            outcome_metric(&result, "SignIns", "SignInFailures");
            result
        }
        "POST /auth/refresh" => refresh(deps, json_body(req, DEFAULT_BODY_LIMIT)?).await,
        "POST /auth/forgot-password" => {
            forgot_password(deps, json_body(req, DEFAULT_BODY_LIMIT)?).await
        }
        "POST /auth/reset-password" => {
            reset_password(deps, json_body(req, DEFAULT_BODY_LIMIT)?).await
        }
        "POST /auth/sign-out" => {
            let token = apigw::bearer_token(req)
                .ok_or_else(|| Error::new(Code::Unauthorized, "a bearer token is required"))?;
            sign_out(deps, &apigw::caller(req)?, token).await
        }
        "GET /me" => me(deps, &apigw::caller(req)?).await,
        "DELETE /me" => delete_me(deps, &apigw::caller(req)?).await,
        _ => Err(Error::not_found("route")),
    }
}

/// Counts a success or a refusal; an operator watches failed sign-ins for
/// credential stuffing and failed sign-ups for a broken form.
fn outcome_metric(result: &Result<Reply, Error>, ok: &'static str, refused: &'static str) {
    let name = if result.is_ok() { ok } else { refused };
    Metrics::new("auth").count(name, 1).emit();
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Confirmation {
    email: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForgotPassword {
    email: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetPassword {
    email: String,
    code: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedUpBody {
    user_id: String,
    confirmed: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokensBody {
    access_token: String,
    id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    expires_in: i32,
    token_type: &'static str,
}

impl From<Tokens> for TokensBody {
    fn from(tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            id_token: tokens.id_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
            token_type: "Bearer",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeBody {
    user_id: String,
    email: String,
    created_at: String,
}

/// Cognito allows up to 256 characters; its pool policy judges the rest.
fn password(raw: &str) -> Result<&str, Error> {
    if raw.is_empty() || raw.chars().count() > 256 {
        return Err(Error::new(
            Code::WeakPassword,
            "the password must be 1 to 256 characters",
        ));
    }
    Ok(raw)
}

/// Confirmation codes are short digit strings; anything else cannot match.
fn code(raw: &str) -> Result<&str, Error> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return Err(Error::invalid("code must be 1 to 64 characters"));
    }
    Ok(raw)
}

async fn sign_up(deps: &Deps, body: Credentials) -> Result<Reply, Error> {
    let email = Email::parse(&body.email)?;
    let signed_up = deps
        .identity
        .sign_up(&email, password(&body.password)?)
        .await?;
    Reply::json(
        201,
        SignedUpBody {
            user_id: signed_up.user_id,
            confirmed: signed_up.confirmed,
        },
    )
}

async fn confirm(deps: &Deps, body: Confirmation) -> Result<Reply, Error> {
    let email = Email::parse(&body.email)?;
    deps.identity.confirm(&email, code(&body.code)?).await?;
    Ok(Reply::empty(204))
}

async fn sign_in(deps: &Deps, body: Credentials) -> Result<Reply, Error> {
    let email = Email::parse(&body.email)?;
    let tokens = deps
        .identity
        .sign_in(&email, password(&body.password)?)
        .await?;
    let claims = tokens.id_claims()?;
    deps.table
        .create_profile_if_absent(&Profile {
            user_id: claims.sub,
            email: claims.email,
            created_at: chrono::Utc::now(),
            tokens_valid_after: None,
            revoked_token_id: None,
        })
        .await?;
    Reply::ok(TokensBody::from(tokens))
}

async fn refresh(deps: &Deps, body: RefreshRequest) -> Result<Reply, Error> {
    let token = body.refresh_token.trim();
    if token.is_empty() || token.len() > 8192 {
        return Err(Error::new(
            Code::InvalidRefreshToken,
            "the refresh token is not valid; sign in again",
        ));
    }
    Reply::ok(TokensBody::from(deps.identity.refresh(token).await?))
}

async fn forgot_password(deps: &Deps, body: ForgotPassword) -> Result<Reply, Error> {
    deps.identity
        .forgot_password(&Email::parse(&body.email)?)
        .await?;
    Ok(Reply::empty(202))
}

async fn reset_password(deps: &Deps, body: ResetPassword) -> Result<Reply, Error> {
    let email = Email::parse(&body.email)?;
    let (code, password) = (code(&body.code)?, password(&body.password)?);
    // Looked up first: an unknown email answers like a wrong code (no
    // account oracle) whichever error the user pool would give for it.
    let user_id = deps.identity.user_id(&email).await?;
    deps.identity.reset_password(&email, code, password).await?;
    // A new password ends every session that used the old one.
    deps.identity.admin_sign_out(&email).await?;
    revoke_access_tokens(deps, &user_id, None).await?;
    Ok(Reply::empty(204))
}

async fn sign_out(deps: &Deps, caller: &Caller, access_token: &str) -> Result<Reply, Error> {
    deps.identity.global_sign_out(access_token).await?;
    revoke_access_tokens(deps, &caller.user_id, caller.token_id.as_deref()).await?;
    Ok(Reply::empty(204))
}

/// Cognito revokes refresh tokens only; access tokens issued until now are
/// refused through the profile's `tokensValidAfter`.
async fn revoke_access_tokens(
    deps: &Deps,
    user_id: &str,
    token_id: Option<&str>,
) -> Result<(), Error> {
    let now = chrono::Utc::now().timestamp();
    match deps.table.revoke_tokens(user_id, now, token_id).await {
        Err(err) if err.code == Code::NotFound => Ok(()),
        other => other,
    }
}

/// The caller's profile, if any, refusing tokens issued before a sign-out.
async fn current_profile(deps: &Deps, caller: &Caller) -> Result<Option<Profile>, Error> {
    let profile = deps.table.profile(&caller.user_id).await?;
    let revoked = profile
        .as_ref()
        .is_some_and(|profile| profile.revokes(caller.issued_at, caller.token_id.as_deref()));
    if revoked {
        return Err(Error::new(
            Code::TokenRevoked,
            "this token was revoked by a sign-out; sign in again",
        ));
    }
    Ok(profile)
}

async fn me(deps: &Deps, caller: &Caller) -> Result<Reply, Error> {
    let profile = current_profile(deps, caller)
        .await?
        .ok_or_else(|| Error::not_found("profile"))?;
    Reply::ok(MeBody {
        user_id: profile.user_id,
        email: profile.email,
        created_at: profile
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Deletes every trace of the caller. Each step is idempotent, so a failed
/// deletion is finished by calling again with the same token.
async fn delete_me(deps: &Deps, caller: &Caller) -> Result<Reply, Error> {
    current_profile(deps, caller).await?;
    let devices = deps.table.devices(&caller.user_id).await?;
    for device in &devices {
        deps.push.delete_endpoint(&device.endpoint_arn).await?;
    }
    let objects = deps
        .objects
        .delete(&[], &shared::media::user_prefixes(&caller.user_id))
        .await?;
    let items = deps.table.delete_user_items(&caller.user_id).await?;
    deps.identity.delete_user(&caller.user_id).await?;
    tracing::info!(items, objects, devices = devices.len(), "account deleted");
    Ok(Reply::empty(204))
}
