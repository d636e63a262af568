//! The `devices` function: phones register as SNS platform endpoints
//! (`PUT /devices/{deviceId}`) and unregister (`DELETE`).

use apigw::{Call, DEFAULT_BODY_LIMIT, Reply, Route, Service};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::Error;
use shared::adapters::push::Push;
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable, PushApplications};
use shared::model::device::{Device, Platform};
use shared::model::ids::DeviceId;
use shared::store::Table;

/// What `devices` reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub push: PushApplications,
    /// The caller's rate limits (`USER_WRITES_PER_MINUTE`, `USER_READS_PER_MINUTE`).
    pub limits: apigw::Limits,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            limits: apigw::Limits::read(env)?,
            table_name: config::table_name(env)?,
            push: PushApplications::read(env)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Deps {
    pub table: Table,
    pub push: Push,
    pub limiter: std::sync::Arc<apigw::Limiter>,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        Self {
            limiter: std::sync::Arc::new(apigw::Limiter::new(config.limits)),
            table: Table::new(sdk, &config.table_name),
            push: Push::new(sdk, &config.push.apns, &config.push.fcm),
        }
    }
}

impl Service for Deps {
    const ROUTES: &'static [Route<Self>] = &[
        Route::session("PUT", "/devices/{deviceId}", |d, c| {
            Box::pin(register(d, c))
        }),
        Route::session("DELETE", "/devices/{deviceId}", |d, c| {
            Box::pin(unregister(d, c))
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

/// The `{deviceId}` of the path: an id another client could not have is
/// not found, whatever the user.
fn device_id(call: &Call<'_>) -> Result<DeviceId, Error> {
    DeviceId::parse(call.path("deviceId")?).map_err(|_| Error::not_found("device"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registration {
    platform: Platform,
    token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    device_id: DeviceId,
    platform: Platform,
}

async fn register(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let user_id = call.session()?.user();
    let device_id = device_id(&call)?;
    let body: Registration = call.json(DEFAULT_BODY_LIMIT)?;
    let token = body.token.trim();
    if token.is_empty() || token.len() > 4096 || token.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            "token must be 1-4096 characters without spaces",
        ));
    }
    let existing = deps.table.device(user_id, &device_id).await?;
    // Unchanged: nothing to call (apps re-register on every launch).
    if let Some(device) = &existing
        && device.token == token
        && device.platform == body.platform
    {
        let arn = deps
            .push
            .register(body.platform, token, user_id, Some(&device.endpoint_arn))
            .await?;
        if arn == device.endpoint_arn {
            // Devices registered before tokens had owners get one now.
            take_token(deps, device).await?;
            return Reply::ok(Registered {
                device_id,
                platform: body.platform,
            });
        }
    }
    let reusable = match &existing {
        // Another platform means another platform application.
        Some(device) if device.platform != body.platform => {
            deps.push.delete_endpoint(&device.endpoint_arn).await?;
            None
        }
        Some(device) => Some(device.endpoint_arn.as_str()),
        None => None,
    };
    let endpoint_arn = deps
        .push
        .register(body.platform, token, user_id, reusable)
        .await?;
    let device = Device {
        device_id: device_id.clone(),
        user_id: user_id.clone(),
        platform: body.platform,
        token: token.into(),
        endpoint_arn,
        updated_at: chrono::Utc::now(),
    };
    take_token(deps, &device).await?;
    deps.table.put_device(&device).await?;
    Reply::ok(Registered {
        device_id,
        platform: body.platform,
    })
}

async fn unregister(deps: &Deps, call: Call<'_>) -> Result<Reply, Error> {
    let user_id = call.session()?.user();
    let device_id = device_id(&call)?;
    let device = deps
        .table
        .device(user_id, &device_id)
        .await?
        .ok_or_else(|| Error::not_found("device"))?;
    deps.push.delete_endpoint(&device.endpoint_arn).await?;
    deps.table.delete_device(user_id, &device_id).await?;
    deps.table.release_token(&device).await?;
    Ok(Reply::empty(204))
}

/// A push token reaches one phone, and SNS gives every registration of it
/// the same endpoint: it is one user's at a time. Registering it moves it
/// here, off the device that held it (another user's, say, who signed out
/// on this phone), whose pushes would otherwise reach this user. The
/// endpoint stays: it is this device's now.
async fn take_token(deps: &Deps, device: &Device) -> Result<(), Error> {
    if let Some(previous) = deps.table.token_owner(device).await?
        && (previous.user_id != device.user_id || previous.device_id != device.device_id)
    {
        deps.table
            .delete_device_with_token(&previous, &device.token)
            .await?;
        tracing::info!("a push token moved to another device");
    }
    deps.table.claim_token(device).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_is_the_template_and_the_contract() {
        apigw::testing::assert_routes_are_the_contract::<Deps>("DevicesFunction");
    }
}
