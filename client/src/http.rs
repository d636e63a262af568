//! The sync API over HTTPS (rustls), with compressed answers (pulls shrink
//! about 20x) and the app's current access token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{Client, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::sync::WireMutation;

use crate::SyncError;
use crate::engine::Transport;
use crate::store::{PullPage, PushAnswer};

pub struct HttpTransport {
    client: Client,
    api_url: String,
    token: Arc<Mutex<Option<String>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PushBody<'a> {
    client_id: &'a str,
    mutations: &'a [WireMutation],
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Problem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: String,
    last_mutation_id: Option<u64>,
}

impl HttpTransport {
    pub fn new(api_url: &str) -> Result<Self, SyncError> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|err| SyncError::Transport {
                reason: err.to_string(),
            })?;
        Ok(Self {
            client,
            api_url: api_url.trim_end_matches('/').to_string(),
            token: Arc::new(Mutex::new(None)),
        })
    }

    pub fn set_access_token(&self, token: Option<String>) {
        *self
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = token;
    }

    pub fn access_token(&self) -> Option<String> {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn bearer(&self) -> Result<String, SyncError> {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .map(|token| format!("Bearer {token}"))
            .ok_or(SyncError::Unauthorized)
    }
}

impl HttpTransport {
    /// A call of the REST API: `body` as JSON, under `idempotency_key` if
    /// the route takes one; the answer's JSON, or None when it has none.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Option<T>, SyncError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.api_url))
            .header("authorization", self.bearer()?);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().map_err(transport)?;
        if !response.status().is_success() {
            return Err(refused(response));
        }
        let bytes = response.bytes().map_err(transport)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| SyncError::protocol(format!("{path}: {err}")))
    }
}

/// `Retry-After` in seconds. API Gateway's stage throttle answers 429
/// without one (and without a problem document): a second, then.
fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1)
}

fn transport(err: reqwest::Error) -> SyncError {
    SyncError::Transport {
        reason: err.to_string(),
    }
}

/// A non-2xx answer as a typed error.
fn refused(response: Response) -> SyncError {
    let status = response.status().as_u16();
    if status == 401 {
        return SyncError::Unauthorized;
    }
    if status == 429 {
        return SyncError::RateLimited {
            retry_after_seconds: retry_after(response.headers()),
        };
    }
    let problem: Problem = response.json().unwrap_or_default();
    match (problem.code.as_str(), problem.last_mutation_id) {
        ("mutation_gap", Some(last_mutation_id)) => SyncError::MutationGap { last_mutation_id },
        _ => SyncError::Server {
            status,
            code: problem.code,
            detail: problem.detail,
        },
    }
}

impl Transport for HttpTransport {
    fn push(
        &self,
        client_id: &str,
        mutations: &[WireMutation],
        idempotency_key: &str,
    ) -> Result<PushAnswer, SyncError> {
        let response = self
            .client
            .post(format!("{}/sync/push", self.api_url))
            .header("authorization", self.bearer()?)
            .header("idempotency-key", idempotency_key)
            .json(&PushBody {
                client_id,
                mutations,
            })
            .send()
            .map_err(transport)?;
        if !response.status().is_success() {
            return Err(refused(response));
        }
        response
            .json()
            .map_err(|err| SyncError::protocol(format!("push answer: {err}")))
    }

    fn pull(
        &self,
        client_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<PullPage, SyncError> {
        let limit = limit.to_string();
        let mut query = vec![("clientId", client_id), ("limit", limit.as_str())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let response = self
            .client
            .get(format!("{}/sync/pull", self.api_url))
            .header("authorization", self.bearer()?)
            .query(&query)
            .send()
            .map_err(transport)?;
        if !response.status().is_success() {
            return Err(refused(response));
        }
        response
            .json()
            .map_err(|err| SyncError::protocol(format!("pull answer: {err}")))
    }
}
