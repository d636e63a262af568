//! The `auth` function: the public account routes, `/me` and `/health`.

mod addresses;

use addresses::AddressKey;
use apigw::{Call, DEFAULT_BODY_LIMIT, Reply, Route, Service};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::adapters::identity::{Identity, Tokens};
use shared::adapters::queue::Queue;
use shared::adapters::sockets::Sockets;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable, UserPool};
use shared::keys::RateSubject;
use shared::metrics::Metrics;
use shared::model::email::Email;
use shared::model::ids::{Partition, UserId};
use shared::model::profile::Profile;
use shared::model::purge::{PurgeJob, Target};
use shared::model::quota::{Holdings, Quotas};
use shared::store::Table;
use shared::{Code, Error};

/// What `auth` reads from its environment. Ending a session closes its
/// live-channel sockets, hence the management API; an account's deletion
/// is queued for the purge function.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// What a user or partition may hold (`MAX_*`, template `Globals`).
    pub quotas: Quotas,
    pub user_pool: UserPool,
    /// `WEBSOCKET_MANAGEMENT_URL`: the WebSocket API stage's HTTPS URL.
    pub websocket_management_url: String,
    /// `PURGE_QUEUE_URL`: where deletions go.
    pub purge_queue_url: String,
    /// The caller's rate limits (`USER_WRITES_PER_MINUTE`, `USER_READS_PER_MINUTE`).
    pub limits: apigw::Limits,
    /// `ADDRESS_KEY_PARAMETER`: the SecureString keying source addresses.
    pub address_key_parameter: String,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            limits: apigw::Limits::read(env)?,
            table_name: config::table_name(env)?,
            quotas: Quotas::read(env),
            user_pool: UserPool::read(env)?,
            websocket_management_url: env.required("WEBSOCKET_MANAGEMENT_URL")?,
            purge_queue_url: env.required("PURGE_QUEUE_URL")?,
            address_key_parameter: env.required("ADDRESS_KEY_PARAMETER")?,
        })
    }
}

/// What the handler needs, built once per process.
#[derive(Debug, Clone)]
pub struct Deps {
    pub identity: Identity,
    pub table: Table,
    pub sockets: Sockets,
    pub purge: Queue,
    pub limiter: std::sync::Arc<apigw::Limiter>,
    pub address_key: AddressKey,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            limiter: std::sync::Arc::new(apigw::Limiter::new(config.limits)),
            address_key: AddressKey::new(sdk, &config.address_key_parameter),
            identity: Identity::new(
                shared::adapters::identity::client(sdk),
                &config.user_pool.id,
                &config.user_pool.client_id,
            ),
            table: Table::new(sdk, &config.table_name).with_quotas(config.quotas),
            sockets: Sockets::new(sdk, &config.websocket_management_url),
            purge: Queue::new(sdk, &config.purge_queue_url),
        }
    }
}

impl Service for Deps {
    const ROUTES: &'static [Route<Self>] = &[
        Route::public("GET", "/health", |_, _| Box::pin(health())),
        Route::public("POST", "/auth/sign-up", |d, c| {
            Box::pin(counted("SignUps", "SignUpFailures", sign_up(d, c)))
        }),
        Route::public("POST", "/auth/confirm", |d, c| Box::pin(confirm(d, c))),
        Route::public("POST", "/auth/sign-in", |d, c| {
            Box::pin(counted("SignIns", "SignInFailures", sign_in(d, c)))
        }),
        Route::public("POST", "/auth/refresh", |d, c| Box::pin(refresh(d, c))),
        Route::public("POST", "/auth/forgot-password", |d, c| {
            Box::pin(forgot_password(d, c))
        }),
        Route::public("POST", "/auth/reset-password", |d, c| {
            Box::pin(reset_password(d, c))
        }),
        Route::session("POST", "/auth/sign-out", |d, c| Box::pin(sign_out(d, c))),
        Route::session("GET", "/me", |d, c| Box::pin(me(d, c))),
        Route::deletion("DELETE", "/me", |d, c| Box::pin(delete_me(d, c))),
    ];

    fn table(&self) -> &Table {
        &self.table
    }

    fn limiter(&self) -> &apigw::Limiter {
        &self.limiter
    }
}

/// Handles one API Gateway request. Never fails: errors are problem documents.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    apigw::handle(deps, req).await
}

async fn health() -> Result<Reply, Error> {
    Reply::ok(Health { status: "ok" })
}

/// Counts a success or a refusal; an operator watches failed sign-ins for
/// credential stuffing and failed sign-ups for a broken form.
async fn counted(
    ok: &'static str,
    refused: &'static str,
    reply: impl Future<Output = Result<Reply, Error>>,
) -> Result<Reply, Error> {
    let result = reply.await;
    let name = if result.is_ok() { ok } else { refused };
    Metrics::new("auth").count(name, 1).emit();
    result
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
    /// What the account holds now, beside `quotas`.
    usage: Usage,
    quotas: Quotas,
}

/// What an account holds, named as its quotas are.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    /// The account's own records, photos and photo bytes (a space's
    /// count against the space).
    #[serde(flatten)]
    own: Holdings,
    spaces_owned: u64,
    connections: u64,
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

/// The public routes' limits, per e-mail address (or refresh token): tight
/// where a person is behind them, generous enough that no real user meets
/// them. Per source address they would have to be loose (carrier-grade NAT
/// puts many phones behind one), so the account is what is counted.
mod public {
    use shared::limits::Policy;

    /// Cognito locks an account after 5 wrong passwords for a while and
    /// longer each time; this keeps guessing slow everywhere, the emulator
    /// included, and locks the owner out for at most 5 minutes.
    pub const SIGN_IN: Policy = Policy::new("sign-in", 10, 300);
    pub const SIGN_UP: Policy = Policy::new("sign-up", 5, 3600);
    pub const CONFIRM: Policy = Policy::new("confirm", 10, 600);
    /// A victim's inbox gets at most this many reset e-mails an hour,
    /// whoever asks.
    pub const FORGOT_PASSWORD: Policy = Policy::new("forgot-password", 3, 3600);
    pub const RESET_PASSWORD: Policy = Policy::new("reset-password", 10, 3600);
    /// An app refreshes once an access token's hour is over: 30 in 5
    /// minutes is a loop.
    pub const REFRESH: Policy = Policy::new("refresh", 30, 300);

    /// Per source address: floods, not users. Many phones share one
    /// address behind carrier-grade NAT, so these are far above what one
    /// address's real users do.
    pub const SIGN_IN_ADDRESS: Policy = Policy::new("sign-in-address", 300, 300);
    pub const SIGN_UP_ADDRESS: Policy = Policy::new("sign-up-address", 100, 3600);
    pub const CONFIRM_ADDRESS: Policy = Policy::new("confirm-address", 300, 600);
    pub const FORGOT_PASSWORD_ADDRESS: Policy = Policy::new("forgot-password-address", 100, 3600);
    pub const RESET_PASSWORD_ADDRESS: Policy = Policy::new("reset-password-address", 300, 3600);
    pub const REFRESH_ADDRESS: Policy = Policy::new("refresh-address", 3000, 300);
}

/// A subject of the public limits: the hash of what identifies it, never
/// the address or token itself.
fn hashed(kind: &str, value: &str) -> RateSubject {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{kind}:{value}"));
    RateSubject::Hashed(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Counts a public request against its source address's limit, then
/// against its e-mail address's (or token's): a flood from one address is
/// refused before it reaches any account's count.
async fn limit_public(
    deps: &Deps,
    call: &Call<'_>,
    by_address: &shared::limits::Policy,
    subject: RateSubject,
    by_subject: &shared::limits::Policy,
) -> Result<(), Error> {
    if let Some(address) = addresses::source_ip(call.req) {
        let address = deps.address_key.subject(&address).await?;
        call.count_against(&deps.table, &address, by_address)
            .await?;
    }
    call.count_against(&deps.table, &subject, by_subject).await
}

async fn limit_email(
    deps: &Deps,
    call: &Call<'_>,
    email: &Email,
    (by_address, by_email): (&shared::limits::Policy, &shared::limits::Policy),
) -> Result<(), Error> {
    let subject = hashed("email", email.as_str());
    limit_public(deps, call, by_address, subject, by_email).await
}

async fn sign_up(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let body: Credentials = call.json(DEFAULT_BODY_LIMIT)?;
    let email = Email::parse(&body.email)?;
    limit_email(
        deps,
        &call,
        &email,
        (&public::SIGN_UP_ADDRESS, &public::SIGN_UP),
    )
    .await?;
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

async fn confirm(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let body: Confirmation = call.json(DEFAULT_BODY_LIMIT)?;
    let email = Email::parse(&body.email)?;
    limit_email(
        deps,
        &call,
        &email,
        (&public::CONFIRM_ADDRESS, &public::CONFIRM),
    )
    .await?;
    deps.identity.confirm(&email, code(&body.code)?).await?;
    Ok(Reply::empty(204))
}

async fn sign_in(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let body: Credentials = call.json(DEFAULT_BODY_LIMIT)?;
    let email = Email::parse(&body.email)?;
    let password = password(&body.password)?;
    limit_email(
        deps,
        &call,
        &email,
        (&public::SIGN_IN_ADDRESS, &public::SIGN_IN),
    )
    .await?;
    let tokens = live_tokens(deps, || deps.identity.sign_in(&email, password)).await?;
    let claims = tokens.id_claims()?;
    deps.table
        .create_profile_if_absent(&Profile {
            user_id: claims.sub,
            email: claims.email,
            created_at: chrono::Utc::now(),
            tokens_valid_after: None,
            revoked_token_id: None,
            deleted_at: None,
        })
        .await?;
    Reply::ok(TokensBody::from(tokens))
}

/// Tokens from `issue` that no revocation already refuses. A revocation
/// refuses every token of its own second (token times have one-second
/// precision), so tokens issued in that second are dead on arrival: wait
/// for the next second and issue again, rather than hand them out.
async fn live_tokens<F, Fut>(deps: &Deps, issue: F) -> Result<Tokens, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Tokens, Error>>,
{
    let mut tokens = issue().await?;
    for _ in 0..3 {
        let claims = tokens.id_claims()?;
        let profile = deps.table.profile(&claims.sub).await?;
        let Some(after) = profile
            .filter(|p| p.issued_too_early(claims.iat))
            .and_then(|p| p.tokens_valid_after)
        else {
            return Ok(tokens);
        };
        let next_second = (after + 1) * 1000 - chrono::Utc::now().timestamp_millis();
        tokio::time::sleep(std::time::Duration::from_millis(
            next_second.clamp(0, 1000) as u64
        ))
        .await;
        tokens = issue().await?;
    }
    Err(Error::unavailable(std::io::Error::other(
        "every token issued was already revoked; try again",
    )))
}

async fn refresh(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let body: RefreshRequest = call.json(DEFAULT_BODY_LIMIT)?;
    let token = body.refresh_token.trim();
    if token.is_empty() || token.len() > 8192 {
        return Err(Error::new(
            Code::InvalidRefreshToken,
            "the refresh token is not valid; sign in again",
        ));
    }
    let subject = hashed("refresh", token);
    limit_public(
        deps,
        &call,
        &public::REFRESH_ADDRESS,
        subject,
        &public::REFRESH,
    )
    .await?;
    let tokens = live_tokens(deps, || deps.identity.refresh(token)).await?;
    Reply::ok(TokensBody::from(tokens))
}

async fn forgot_password(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let body: ForgotPassword = call.json(DEFAULT_BODY_LIMIT)?;
    let email = Email::parse(&body.email)?;
    limit_email(
        deps,
        &call,
        &email,
        (&public::FORGOT_PASSWORD_ADDRESS, &public::FORGOT_PASSWORD),
    )
    .await?;
    deps.identity.forgot_password(&email).await?;
    Ok(Reply::empty(202))
}

async fn reset_password(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let body: ResetPassword = call.json(DEFAULT_BODY_LIMIT)?;
    let email = Email::parse(&body.email)?;
    let (code, password) = (code(&body.code)?, password(&body.password)?);
    limit_email(
        deps,
        &call,
        &email,
        (&public::RESET_PASSWORD_ADDRESS, &public::RESET_PASSWORD),
    )
    .await?;
    // Looked up first: an unknown email answers like a wrong code (no
    // account oracle) whichever error the user pool would give for it.
    let user_id = deps.identity.user_id(&email).await?;
    deps.identity.reset_password(&email, code, password).await?;
    // A new password ends every session that used the old one.
    deps.identity.admin_sign_out(&email).await?;
    revoke_access_tokens(deps, &user_id, None).await?;
    close_sockets(deps, &user_id).await?;
    Ok(Reply::empty(204))
}

async fn sign_out(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let caller = call.caller()?;
    deps.identity.global_sign_out(call.bearer_token()?).await?;
    revoke_access_tokens(deps, &caller.user_id, caller.token_id.as_deref()).await?;
    close_sockets(deps, &caller.user_id).await?;
    Ok(Reply::empty(204))
}

/// Closes the user's live-channel sockets (a global sign-out ends every
/// session) and forgets them; they cannot reconnect with revoked tokens.
async fn close_sockets(deps: &Deps, user_id: &UserId) -> Result<(), Error> {
    for connection in deps.table.connections(user_id).await? {
        deps.sockets.close(&connection.connection_id).await?;
    }
    deps.table.forget_connections(user_id).await?;
    Ok(())
}

/// Cognito revokes refresh tokens only; access tokens issued until now are
/// refused through the profile's `tokensValidAfter`.
async fn revoke_access_tokens(
    deps: &Deps,
    user_id: &UserId,
    token_id: Option<&str>,
) -> Result<(), Error> {
    let now = chrono::Utc::now().timestamp();
    match deps.table.revoke_tokens(user_id, now, token_id).await {
        Err(err) if err.code == Code::NotFound => Ok(()),
        other => other,
    }
}

async fn me(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let profile = call
        .session()?
        .profile()
        .ok_or_else(|| Error::not_found("profile"))?;
    let user = Partition::User(profile.user_id.clone());
    let (own, spaces_owned, connections) = tokio::try_join!(
        deps.table.holdings(&user),
        deps.table.spaces_owned(&profile.user_id),
        deps.table.connections(&profile.user_id),
    )?;
    Reply::ok(MeBody {
        usage: Usage {
            own,
            spaces_owned,
            connections: connections.len() as u64,
        },
        quotas: *deps.table.quotas(),
        user_id: profile.user_id.to_string(),
        email: profile.email.clone(),
        created_at: profile
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Begins the caller's deletion and answers 202 at once. What has to hold
/// from this instant happens here: the deletion marker (every token of the
/// account is refused from now on, so nothing more can be written into its
/// partition), the Cognito user disabled with its refresh tokens revoked
/// (no new sign-in or token), and the live channel closed. Everything else
/// (endpoints, photos, memberships, items, then the Cognito user) is the
/// purge queue's work, in bounded steps. Each part is idempotent, so a
/// retry after a lost answer (with a token issued before the marker) is
/// safe.
async fn delete_me(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let session = call.session()?;
    let user_id = session.user();
    let profile = session.profile().cloned().unwrap_or_else(|| Profile {
        user_id: user_id.clone(),
        email: String::new(),
        created_at: chrono::Utc::now(),
        tokens_valid_after: None,
        revoked_token_id: None,
        deleted_at: None,
    });
    deps.table
        .mark_deleted(&profile, chrono::Utc::now().timestamp())
        .await?;
    deps.identity.disable_user(user_id).await?;
    close_sockets(deps, user_id).await?;
    deps.purge
        .send(&PurgeJob::start(Target::Account {
            user_id: user_id.clone(),
        }))
        .await?;
    tracing::info!("account deletion queued");
    Ok(Reply::empty(202))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_the_template_and_the_contract() {
        apigw::testing::assert_routes_are_the_contract::<Deps>("AuthFunction");
    }

    /// Clients that are never called: the requests below stop before any.
    fn offline_deps() -> Deps {
        let sdk = SdkConfig::builder()
            .behavior_version(shared::aws_config::BehaviorVersion::latest())
            .region(shared::aws_config::Region::new("us-east-1"))
            .build();
        let config = Config::from_lookup(|name| Some(format!("{name}-value"))).unwrap();
        Deps::new(&sdk, &config)
    }

    /// A function URL event, as `cargo lambda watch` sends it: route key
    /// `$default`, the function's name in front of the path, no authorizer.
    fn function_url(method: &str, path: &str) -> Request {
        let mut event = apigw::testing::event(&format!("{method} {path}"), None, None);
        event["routeKey"] = "$default".into();
        event["requestContext"]["routeKey"] = "$default".into();
        event["rawPath"] = format!("/lambda-url/auth{path}").into();
        event["requestContext"]["http"]["path"] = event["rawPath"].clone();
        apigw::testing::request(event)
    }

    fn text(response: &Response<Body>) -> &str {
        match response.body() {
            Body::Text(text) => text,
            _ => "",
        }
    }

    #[tokio::test]
    async fn function_urls_reach_public_routes_and_name_what_authorized_ones_lack() {
        let deps = offline_deps();
        let health = handle(&deps, function_url("GET", "/health")).await;
        assert_eq!(health.status(), 200);
        assert_eq!(text(&health), r#"{"status":"ok"}"#);

        let me = handle(&deps, function_url("GET", "/me")).await;
        assert_eq!(me.status(), 401);
        assert!(
            text(&me).contains("requestContext.authorizer.jwt.claims"),
            "{}",
            text(&me)
        );

        let nowhere = handle(&deps, function_url("GET", "/nowhere")).await;
        assert_eq!(nowhere.status(), 404);
        let wrong = handle(&deps, function_url("PUT", "/me")).await;
        assert_eq!(wrong.status(), 405);
        assert_eq!(wrong.headers()["allow"], "GET, DELETE");
    }
}
