//! The HTTP API's JWT authorizer, emulated: RS256 signature against the
//! user pool's JWKS (served by the emulator), expiry, issuer, and audience
//! (`aud` or `client_id`, as API Gateway checks). Verified claims are passed
//! on as strings, exactly like `requestContext.authorizer.jwt.claims`.

use std::collections::HashMap;

use anyhow::{Context, Result};
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;
use shared::jwt::{self, TokenVerifier};
use tokio::sync::RwLock;

pub struct Authorizer {
    jwks_url: String,
    verifier: TokenVerifier,
    jwks: RwLock<JwkSet>,
    http: reqwest::Client,
}

/// Why a token was refused; shown to the caller as a 401 detail.
pub use shared::jwt::Refused;

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
            verifier: TokenVerifier::new(jwt::issuer(region, user_pool_id), client_id),
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
        let kid = TokenVerifier::key_id(token)?;
        if self.jwks.read().await.find(&kid).is_none() {
            // Keys rotate: refetch once before refusing.
            if let Ok(fresh) = fetch(&self.http, &self.jwks_url).await {
                *self.jwks.write().await = fresh;
            }
        }
        let claims = self.verifier.verify(token, &*self.jwks.read().await)?;
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
