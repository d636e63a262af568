//! The HTTP API's JWT authorizer, emulated: RS256 signature against the
//! user pool's JWKS (served by the emulator), expiry, issuer, and audience
//! (`aud` or `client_id`, as API Gateway checks). Verified claims are passed
//! on as strings, exactly like `requestContext.authorizer.jwt.claims`.

use std::collections::HashMap;

use anyhow::{Context, Result};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

pub struct Authorizer {
    jwks_url: String,
    issuer: String,
    audience: String,
    jwks: RwLock<JwkSet>,
    http: reqwest::Client,
}

/// Why a token was refused; shown to the caller as a 401 detail.
#[derive(Debug, PartialEq)]
pub struct Refused(pub &'static str);

impl Authorizer {
    pub async fn new(
        emulator: &str,
        region: &str,
        user_pool_id: &str,
        client_id: &str,
    ) -> Result<Self> {
        let http = reqwest::Client::new();
        let jwks_url = format!("{emulator}/{user_pool_id}/.well-known/jwks.json");
        let jwks = fetch(&http, &jwks_url).await?;
        Ok(Self {
            jwks_url,
            issuer: format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"),
            audience: client_id.to_string(),
            jwks: RwLock::new(jwks),
            http,
        })
    }

    /// Verifies `Authorization: Bearer <jwt>` and returns its claims.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
    ) -> Result<HashMap<String, String>, Refused> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refused("a bearer token is required"))?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| Refused("the token is malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(Refused("the token is not RS256"));
        }
        let kid = header.kid.ok_or(Refused("the token has no key id"))?;
        let key = match self.key(&kid).await {
            Some(key) => key,
            None => {
                // Keys rotate: refetch once before refusing.
                if let Ok(fresh) = fetch(&self.http, &self.jwks_url).await {
                    *self.jwks.write().await = fresh;
                }
                self.key(&kid)
                    .await
                    .ok_or(Refused("the token's key is unknown"))?
            }
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Refused("the token has expired")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    Refused("the token is for another issuer")
                }
                _ => Refused("the token is not valid"),
            })?;
        let claims = data.claims;
        let audience_matches = ["client_id", "aud"]
            .iter()
            .any(|name| claims.get(*name).and_then(Value::as_str) == Some(self.audience.as_str()));
        if !audience_matches {
            return Err(Refused("the token is for another client"));
        }
        Ok(claims
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (name, value)
            })
            .collect())
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let jwks = self.jwks.read().await;
        let jwk = jwks.find(kid)?;
        DecodingKey::from_jwk(jwk).ok()
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<JwkSet> {
    http.get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("fetching the JWKS at {url}"))?
        .json()
        .await
        .context("the JWKS is not JSON")
}
