//! The HTTP API on loopback: matches the template's routes, runs the JWT
//! authorizer, builds the API Gateway v2 event and calls the function's
//! handler in process.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request as HttpRequest, Response as HttpResponse, StatusCode};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::{Code, Error};

use crate::authorizer::Authorizer;
use crate::template::Route;

/// API Gateway's own payload limit.
pub const PAYLOAD_LIMIT: usize = 10 * 1024 * 1024;

pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

pub struct Api {
    pub routes: Vec<Route>,
    pub handlers: HashMap<String, Handler>,
    pub authorizer: Authorizer,
}

/// A route matched against a request path, with its path parameters.
fn matches(route: &Route, path: &str) -> Option<HashMap<String, String>> {
    let params = apigw::match_path(&route.path, path)?;
    Some(
        params
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
    )
}

fn problem(err: &Error) -> HttpResponse<AxumBody> {
    let body = serde_json::to_string(&err.problem()).unwrap_or_default();
    HttpResponse::builder()
        .status(err.status())
        .header("content-type", shared::Problem::CONTENT_TYPE)
        .body(AxumBody::from(body))
        .expect("static parts are valid")
}

pub async fn serve(
    State(api): State<Arc<Api>>,
    req: HttpRequest<AxumBody>,
) -> HttpResponse<AxumBody> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let response = dispatch(&api, req).await;
    tracing::info!(
        "{method} {path} -> {} ({} ms)",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

/// The API's contract, served beside it.
const OPENAPI: &str = include_str!("../../openapi.yaml");

async fn dispatch(api: &Api, req: HttpRequest<AxumBody>) -> HttpResponse<AxumBody> {
    let method = req.method().as_str().to_ascii_uppercase();
    let path = req.uri().path().to_string();
    if method == "GET" && path == "/openapi.yaml" {
        return HttpResponse::builder()
            .header("content-type", "application/yaml")
            .body(AxumBody::from(OPENAPI))
            .expect("static parts are valid");
    }
    let candidates: Vec<(&Route, HashMap<String, String>)> = api
        .routes
        .iter()
        .filter_map(|route| matches(route, &path).map(|params| (route, params)))
        .collect();
    let Some((route, params)) = candidates.iter().find(|(route, _)| route.method == method) else {
        return if candidates.is_empty() {
            problem(&Error::new(Code::NotFound, format!("no route for {path}")))
        } else {
            let allowed: Vec<&str> = candidates.iter().map(|(r, _)| r.method.as_str()).collect();
            let mut response = problem(&Error::new(
                Code::MethodNotAllowed,
                format!("{method} is not allowed on {path}"),
            ));
            if let Ok(allow) = allowed.join(", ").parse() {
                // RFC 9110: a 405 says what is allowed.
                response.headers_mut().insert("allow", allow);
            }
            response
        };
    };

    let claims = if route.public {
        None
    } else {
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok());
        match api.authorizer.verify(authorization).await {
            Ok(claims) => Some(claims),
            Err(refused) => return problem(&Error::new(Code::Unauthorized, refused.0)),
        }
    };

    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = match to_bytes(req.into_body(), PAYLOAD_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            return problem(&Error::new(
                Code::PayloadTooLarge,
                format!("the body exceeds {PAYLOAD_LIMIT} bytes"),
            ));
        }
    };
    let event = v2_event(
        route,
        &method,
        &path,
        &query,
        &headers,
        &body,
        params.clone(),
        claims,
    );
    invoke(api, route, event).await
}

/// Calls the route `method path` as the user whose token carried `claims`,
/// as if the authorizer had passed it: what the console's deliberate
/// buttons (delete a user) do, through the same handler as the app.
pub async fn call_as(
    api: &Api,
    method: &str,
    path: &str,
    claims: HashMap<String, String>,
) -> HttpResponse<AxumBody> {
    let Some((route, params)) = api
        .routes
        .iter()
        .filter(|route| route.method == method)
        .find_map(|route| matches(route, path).map(|params| (route, params)))
    else {
        return problem(&Error::new(Code::NotFound, format!("no route for {path}")));
    };
    let event = v2_event(
        route,
        method,
        path,
        "",
        &HeaderMap::new(),
        &[],
        params,
        Some(claims),
    );
    invoke(api, route, event).await
}

async fn invoke(api: &Api, route: &Route, event: Value) -> HttpResponse<AxumBody> {
    let Some(handler) = api.handlers.get(&route.function).cloned() else {
        return problem(&Error::internal(format!(
            "no handler for {}",
            route.function
        )));
    };
    let request = match serde_json::from_value::<LambdaRequest>(event) {
        Ok(lambda) => Request::from(lambda),
        Err(err) => return problem(&Error::internal(err)),
    };
    // A panic in a handler becomes a 500 problem, as the Lambda runtime
    // would report an error; it never takes the stack down.
    match tokio::spawn(handler(request)).await {
        Ok(response) => into_http(response),
        Err(err) => problem(&Error::internal(err)),
    }
}

/// The event API Gateway (HTTP API, payload format 2.0) sends.
#[allow(clippy::too_many_arguments)]
fn v2_event(
    route: &Route,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    params: HashMap<String, String>,
    claims: Option<HashMap<String, String>>,
) -> Value {
    let mut header_map: HashMap<String, String> = HashMap::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).to_string();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_string()));
            continue;
        }
        header_map
            .entry(name.as_str().to_string())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    let mut query_map: HashMap<String, String> = HashMap::new();
    for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default() {
        query_map
            .entry(k)
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&v);
            })
            .or_insert(v);
    }
    let now = chrono::Utc::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.key(),
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": header_map.get("host").cloned().unwrap_or_else(|| "localhost".into()),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": header_map.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route.key(),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query_map.is_empty() {
        event["queryStringParameters"] = json!(query_map);
    }
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event["body"] = json!(text),
            Err(_) => {
                use base64::Engine;
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}

fn into_http(response: Response<Body>) -> HttpResponse<AxumBody> {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    let mut out = HttpResponse::new(AxumBody::from(bytes));
    *out.status_mut() =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &parts.headers {
        out.headers_mut().append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route {
            method: "GET".into(),
            path: path.into(),
            function: "F".into(),
            public: true,
        }
    }

    #[test]
    fn matches_literal_and_parameter_segments() {
        assert!(matches(&route("/me"), "/me").unwrap().is_empty());
        assert!(matches(&route("/me"), "/me/x").is_none());
        let params = matches(&route("/media/{mediaId}"), "/media/a%20b").unwrap();
        assert_eq!(params["mediaId"], "a b");
        assert!(matches(&route("/media/{mediaId}"), "/media/").is_none());
    }
}
