//! HTTP glue shared by every HTTP function: API Gateway (HTTP API, payload
//! v2) request in, typed command out; domain result in, JSON or
//! `application/problem+json` out. The only place that knows both sides.

use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::idempotency::{self, Decision, StoredResponse};
use shared::{Code, Error, Problem};

/// Auth payloads are small; anything bigger is a mistake or an attack.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// The caller, as the API's JWT authorizer verified them.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The Cognito `sub`.
    pub user_id: String,
    /// When the access token was issued (Unix seconds).
    pub issued_at: i64,
    /// The token's `jti`.
    pub token_id: Option<String>,
}

/// A success: status plus an optional JSON body.
#[derive(Debug)]
pub struct Reply {
    status: u16,
    body: Option<serde_json::Value>,
    /// Set when this is the stored answer to an earlier request.
    replayed: bool,
}

impl Reply {
    pub fn json(status: u16, body: impl Serialize) -> Result<Self, Error> {
        Ok(Self {
            status,
            body: Some(serde_json::to_value(body).map_err(Error::internal)?),
            replayed: false,
        })
    }

    pub fn ok(body: impl Serialize) -> Result<Self, Error> {
        Self::json(200, body)
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            body: None,
            replayed: false,
        }
    }
}

/// The header a client sets to make a POST safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that replays the first one for its key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Runs `handler` once per `Idempotency-Key` (if the request has one): a
/// repeat within 24 hours gets the first response back, marked
/// `Idempotent-Replayed: true`. The key is scoped to the caller and route.
pub async fn idempotent(
    req: &Request,
    table: &shared::profile::Table,
    caller: &Caller,
    handler: impl Future<Output = Result<Reply, Error>>,
) -> Result<Reply, Error> {
    let Some(raw) = req.headers().get(IDEMPOTENCY_KEY) else {
        return handler.await;
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|key| idempotency::valid_key(key))
        .ok_or_else(|| Error::invalid("Idempotency-Key must be 1-255 visible ASCII characters"))?;
    let route = route_key(req);
    let user = caller.user_id.as_str();
    let fingerprint = idempotency::fingerprint(req.body().as_ref());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match table
        .claim_idempotency_key(user, route, key, &fingerprint, now)
        .await?
    {
        Decision::Replay(stored) => Ok(Reply {
            status: stored.status,
            body: stored
                .body
                .map(|body| serde_json::from_str(&body).map_err(Error::internal))
                .transpose()?,
            replayed: true,
        }),
        Decision::Run => {
            let result = handler.await;
            // The work is done either way: failing to remember it must not
            // turn a success into an error. Logged; the lease runs out.
            let remembered = match &result {
                Ok(reply) => {
                    let stored = StoredResponse {
                        status: reply.status,
                        body: reply.body.as_ref().map(|body| body.to_string()),
                    };
                    table
                        .complete_idempotency_key(user, route, key, &stored)
                        .await
                }
                Err(_) => table.release_idempotency_key(user, route, key).await,
            };
            if let Err(err) = remembered {
                tracing::warn!(route, error = %err, "idempotency record not updated");
            }
            result
        }
    }
}

/// The route API Gateway matched, e.g. `POST /auth/sign-up`.
pub fn route_key(req: &Request) -> &str {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.route_key.as_deref().unwrap_or(""),
        _ => "",
    }
}

/// The verified caller, from `requestContext.authorizer.jwt.claims`. A route
/// without an authorizer has no caller: 401.
pub fn caller(req: &Request) -> Result<Caller, Error> {
    let unauthorized = || Error::new(Code::Unauthorized, "a valid bearer token is required");
    let Some(RequestContext::ApiGatewayV2(context)) = req.request_context_ref() else {
        return Err(unauthorized());
    };
    let claims = context
        .authorizer
        .as_ref()
        .and_then(|authorizer| authorizer.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .ok_or_else(unauthorized)?;
    let user_id = claims
        .get("sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(unauthorized)?;
    let issued_at = claims
        .get("iat")
        .and_then(|iat| iat.parse().ok())
        .ok_or_else(unauthorized)?;
    Ok(Caller {
        user_id: user_id.clone(),
        issued_at,
        token_id: claims.get("jti").cloned(),
    })
}

/// The caller, refused if a sign-out revoked the token since it was issued.
pub async fn session(req: &Request, table: &shared::profile::Table) -> Result<Caller, Error> {
    let caller = caller(req)?;
    table
        .check_session(
            &caller.user_id,
            caller.issued_at,
            caller.token_id.as_deref(),
        )
        .await?;
    Ok(caller)
}

/// The raw bearer token, for the one call that must hand it back to Cognito
/// (global sign-out). Never parsed here: the authorizer verified it.
pub fn bearer_token(req: &Request) -> Option<&str> {
    req.headers()
        .get(http_header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

mod http_header {
    pub use lambda_http::http::header::{AUTHORIZATION, CONTENT_TYPE};
}

/// A path parameter such as `{mediaId}`.
pub fn path_parameter<'a>(req: &'a Request, name: &str) -> Result<&'a str, Error> {
    req.path_parameters_ref()
        .and_then(|params| params.first(name))
        .filter(|value| !value.is_empty())
        .ok_or_else(|| Error::invalid(format!("path parameter {name} is missing")))
}

/// The JSON body as `T`: 413 above `limit`, 415 for another content type,
/// 400 for an empty body, broken JSON, missing fields or wrong types.
pub fn json_body<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<T, Error> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > limit {
        return Err(Error::new(
            Code::PayloadTooLarge,
            format!("the body is {} bytes; the limit is {limit}", bytes.len()),
        ));
    }
    if let Some(content_type) = req.headers().get(http_header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(Error::new(
                Code::UnsupportedMediaType,
                "send the body as application/json",
            ));
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid("a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        let code = if err.is_data() {
            Code::InvalidRequest
        } else {
            Code::MalformedJson
        };
        Error::new(code, err.to_string())
    })
}

/// Turns a handler's result into the HTTP response and logs the request in
/// one line. 5xx log their source; nothing else about the body is logged.
pub fn respond(route: &str, started: Instant, result: Result<Reply, Error>) -> Response<Body> {
    let cold_start = shared::telemetry::take_cold_start();
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(reply) => {
            tracing::info!(
                route,
                status = reply.status,
                latency_ms,
                cold_start,
                "request"
            );
            let mut builder = Response::builder().status(reply.status);
            if reply.replayed {
                builder = builder.header(IDEMPOTENT_REPLAYED, "true");
            }
            match reply.body {
                Some(body) => builder
                    .header(http_header::CONTENT_TYPE, "application/json")
                    .body(Body::Text(body.to_string())),
                None => builder.body(Body::Empty),
            }
            .unwrap_or_else(|_| problem_response(&Error::internal("response build failed")))
        }
        Err(err) => {
            let status = err.status();
            if status >= 500 {
                tracing::error!(route, status, code = %err.code, latency_ms, cold_start, error = ?std::error::Error::source(&err), "request failed");
            } else {
                tracing::info!(route, status, code = %err.code, latency_ms, cold_start, "request refused");
            }
            problem_response(&err)
        }
    }
}

/// The problem document for an error.
pub fn problem_response(err: &Error) -> Response<Body> {
    let problem = err.problem();
    let body = serde_json::to_string(&problem).unwrap_or_default();
    Response::builder()
        .status(problem.status)
        .header(http_header::CONTENT_TYPE, Problem::CONTENT_TYPE)
        .body(Body::Text(body))
        .expect("a status from Code and a static header are always valid")
}

/// Test helpers: API Gateway v2 events as the HTTP API sends them.
pub mod testing {
    use lambda_http::Request;
    use lambda_http::request::LambdaRequest;
    use serde_json::{Value, json};

    /// A v2 event for `route_key` (e.g. `POST /auth/sign-in`) with an
    /// optional JSON body and, for authorized routes, the claims.
    pub fn event(route_key: &str, body: Option<&str>, claims: Option<Value>) -> Value {
        let (method, path) = route_key.split_once(' ').unwrap_or(("GET", route_key));
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": "application/json", "host": "api.example.com"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "requestId": "req-1",
                "routeKey": route_key,
                "stage": "$default",
                "time": "26/Nov/2026:00:00:00 +0000",
                "timeEpoch": 1_795_000_000_000u64
            },
            "isBase64Encoded": false
        });
        if let Some(body) = body {
            event["body"] = json!(body);
        }
        if let Some(claims) = claims {
            event["requestContext"]["authorizer"] =
                json!({"jwt": {"claims": claims, "scopes": null}});
        }
        event
    }

    /// Deserializes a v2 event exactly as `lambda_http` does in Lambda.
    pub fn request(event: Value) -> Request {
        let lambda: LambdaRequest =
            serde_json::from_value(event).expect("a valid API Gateway v2 event");
        Request::from(lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{event, request};
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    struct SignIn {
        #[allow(dead_code)]
        email: String,
    }

    fn body_of(route: &str, body: &str) -> Request {
        request(event(route, Some(body), None))
    }

    #[test]
    fn reads_route_and_caller() {
        let req = request(event(
            "GET /me",
            None,
            Some(json!({"sub": "u-1", "iat": "1700000000"})),
        ));
        assert_eq!(route_key(&req), "GET /me");
        assert_eq!(
            caller(&req).unwrap(),
            Caller {
                user_id: "u-1".into(),
                issued_at: 1_700_000_000,
                token_id: None,
            }
        );
    }

    #[test]
    fn no_claims_is_unauthorized() {
        let req = request(event("GET /me", None, None));
        assert_eq!(caller(&req).unwrap_err().code, Code::Unauthorized);
    }

    #[test]
    fn body_errors_have_codes() {
        let cases = [
            ("{", Code::MalformedJson),
            ("", Code::InvalidRequest),
            ("{}", Code::InvalidRequest),
            (r#"{"email": 5}"#, Code::InvalidRequest),
            ("[]", Code::InvalidRequest),
        ];
        for (body, code) in cases {
            let err = json_body::<SignIn>(&body_of("POST /auth/sign-in", body), 100).unwrap_err();
            assert_eq!(err.code, code, "{body:?}");
        }
        let big = format!(r#"{{"email": "{}"}}"#, "a".repeat(200));
        let err = json_body::<SignIn>(&body_of("POST /auth/sign-in", &big), 100).unwrap_err();
        assert_eq!(err.code, Code::PayloadTooLarge);
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn other_content_types_are_refused() {
        let mut ev = event("POST /auth/sign-in", Some(r#"{"email":"a"}"#), None);
        ev["headers"]["content-type"] = json!("text/plain");
        let err = json_body::<SignIn>(&request(ev), 100).unwrap_err();
        assert_eq!(err.status(), 415);
    }

    #[test]
    fn problems_are_problem_json() {
        let response = respond(
            "GET /me",
            Instant::now(),
            Err(Error::new(Code::NotFound, "nope")),
        );
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()[http_header::CONTENT_TYPE],
            "application/problem+json"
        );
        let Body::Text(text) = response.body() else {
            panic!("text body")
        };
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["code"], "not_found");
    }

    #[test]
    fn bearer_token_is_read_from_the_header() {
        let mut ev = event("POST /auth/sign-out", None, None);
        ev["headers"]["authorization"] = json!("Bearer abc.def.ghi");
        assert_eq!(bearer_token(&request(ev)), Some("abc.def.ghi"));
    }
}
