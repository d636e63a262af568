//! `$connect`'s Lambda REQUEST authorizer. It verifies the Cognito access
//! token from `?token=` exactly as the HTTP API's JWT authorizer does
//! (RS256 against the pool's JWKS, fetched once per container; expiry,
//! issuer, app client), checks `token_use`, and refuses tokens revoked by a
//! sign-out. The user id and the app's `clientId` go to the socket routes
//! in the authorizer context.

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use shared::aws_config::SdkConfig;
use shared::config::{self, Env, FromEnv, MissingVariable, UserPool};
use shared::jwt::{self, TokenVerifier};
use shared::model::ids::{ClientId, UserId};
use shared::store::Table;
use shared::{Code, Error};
use tokio::sync::RwLock;

/// An unknown key id refetches the JWKS (keys rotate), at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub user_pool: UserPool,
}

impl FromEnv for Config {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            table_name: config::table_name(env)?,
            user_pool: UserPool::read(env)?,
        })
    }
}

pub struct Deps {
    pub table: Table,
    verifier: TokenVerifier,
    jwks_url: String,
    jwks: RwLock<Option<(JwkSet, Instant)>>,
    http: reqwest::Client,
}

impl Deps {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Self {
        let region = sdk
            .region()
            .map_or("us-east-1".to_string(), ToString::to_string);
        let issuer = jwt::issuer(&region, &config.user_pool.id);
        // Against the emulator only the endpoint differs: it serves the
        // pool's JWKS under its own address.
        let jwks_url = match sdk.endpoint_url() {
            Some(endpoint) => format!(
                "{}/{}/.well-known/jwks.json",
                endpoint.trim_end_matches('/'),
                config.user_pool.id
            ),
            None => format!("{issuer}/.well-known/jwks.json"),
        };
        Self {
            table: Table::new(sdk, &config.table_name),
            verifier: TokenVerifier::new(issuer, &config.user_pool.client_id),
            jwks_url,
            jwks: RwLock::new(None),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Fetches the JWKS now (main calls it during init, so the first
    /// handshake does not wait for it).
    pub async fn load_keys(&self) -> Result<(), Error> {
        let jwks: JwkSet = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(Error::unavailable)?
            .json()
            .await
            .map_err(Error::unavailable)?;
        *self.jwks.write().await = Some((jwks, Instant::now()));
        Ok(())
    }

    async fn verify(&self, token: &str) -> Result<jwt::Claims, Decision> {
        let kid = TokenVerifier::key_id(token).map_err(|refused| {
            tracing::info!(%refused, "live channel: token refused");
            Decision::Unauthorized
        })?;
        let stale = match &*self.jwks.read().await {
            None => true,
            Some((keys, fetched)) => keys.find(&kid).is_none() && fetched.elapsed() > REFETCH_AFTER,
        };
        if stale {
            self.load_keys().await.map_err(Decision::Failed)?;
        }
        let jwks = self.jwks.read().await;
        let (keys, _) = jwks.as_ref().ok_or(Decision::Unauthorized)?;
        self.verifier.verify(token, keys).map_err(|refused| {
            tracing::info!(%refused, "live channel: token refused");
            Decision::Unauthorized
        })
    }
}

/// What the authorizer decides.
#[derive(Debug)]
pub enum Decision {
    Allow {
        user_id: UserId,
        client_id: ClientId,
    },
    /// No token, or one that does not verify: HTTP 401.
    Unauthorized,
    /// A genuine token that may not connect (revoked, or no valid
    /// `clientId`): HTTP 403.
    Deny,
    /// The check itself failed (the table or the JWKS did not answer).
    Failed(Error),
}

pub async fn authorize(
    deps: &Deps,
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Decision {
    let query = &request.query_string_parameters;
    let Some(token) = query.first("token").filter(|t| !t.is_empty()) else {
        return Decision::Unauthorized;
    };
    let claims = match deps.verify(token).await {
        Ok(claims) => claims,
        Err(decision) => return decision,
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("token_use") != Some("access") {
        return Decision::Unauthorized;
    }
    let Some(user_id) = text("sub").and_then(|sub| UserId::parse(sub).ok()) else {
        return Decision::Unauthorized;
    };
    let Some(client_id) = query
        .first("clientId")
        .and_then(|id| ClientId::parse(id).ok())
    else {
        return Decision::Deny;
    };
    let issued_at = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    match deps
        .table
        .check_session(&user_id, issued_at, text("jti"))
        .await
    {
        Ok(_) => Decision::Allow { user_id, client_id },
        Err(err) if err.code == Code::TokenRevoked || err.code == Code::Unauthorized => {
            Decision::Deny
        }
        Err(err) => Decision::Failed(err),
    }
}

/// The Lambda handler: the decision, as API Gateway takes it.
pub async fn handle(
    deps: &Deps,
    request: ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    let method_arn = request.method_arn.clone().unwrap_or_default();
    response(authorize(deps, &request).await, &method_arn)
}

/// The error the Lambda runtime reports: API Gateway answers 401 only to
/// the message "Unauthorized", exactly; anything else is a 500.
pub fn lambda_error(err: Error) -> lambda_runtime::Error {
    if err.code == Code::Unauthorized {
        "Unauthorized".into()
    } else {
        err.into()
    }
}

/// The decision as API Gateway takes it: an IAM policy with the context
/// for the routes, or the error message "Unauthorized" (its 401).
pub fn response(
    decision: Decision,
    method_arn: &str,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    let (effect, principal, context) = match decision {
        Decision::Allow { user_id, client_id } => (
            IamPolicyEffect::Allow,
            user_id.to_string(),
            json!({"userId": user_id, "clientId": client_id}),
        ),
        Decision::Deny => (IamPolicyEffect::Deny, "anonymous".to_string(), json!({})),
        Decision::Unauthorized => return Err(Error::new(Code::Unauthorized, "Unauthorized")),
        Decision::Failed(err) => return Err(err),
    };
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_string()];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal);
    response.policy_document = policy;
    response.context = context;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/live/$connect";

    #[test]
    fn an_allowed_connection_carries_the_user_and_client_to_the_routes() {
        let allowed = response(
            Decision::Allow {
                user_id: UserId::parse("u-1").unwrap(),
                client_id: ClientId::parse("phone").unwrap(),
            },
            ARN,
        )
        .unwrap();
        let json = serde_json::to_value(&allowed).unwrap();
        assert_eq!(json["principalId"], "u-1");
        assert_eq!(
            json["context"],
            json!({"userId": "u-1", "clientId": "phone"})
        );
        assert_eq!(json["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(json["policyDocument"]["Statement"][0]["Resource"][0], ARN);
        assert_eq!(
            json["policyDocument"]["Statement"][0]["Action"][0],
            "execute-api:Invoke"
        );
    }

    #[test]
    fn refusals_are_a_deny_policy_or_exactly_unauthorized() {
        let denied = serde_json::to_value(response(Decision::Deny, ARN).unwrap()).unwrap();
        assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(denied["context"], json!({}));
        let unauthorized = response(Decision::Unauthorized, ARN).unwrap_err();
        assert_eq!(lambda_error(unauthorized).to_string(), "Unauthorized");
        let failed = response(Decision::Failed(Error::unavailable("down")), ARN).unwrap_err();
        assert_ne!(lambda_error(failed).to_string(), "Unauthorized");
    }
}
