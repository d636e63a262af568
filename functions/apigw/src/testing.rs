//! Test helpers: API Gateway v2 events as the HTTP API sends them, and (with
//! the `testing` feature) the check that a function's route table is the
//! template's and the OpenAPI document's.

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
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    event
}

/// Deserializes a v2 event exactly as `lambda_http` does in Lambda.
pub fn request(event: Value) -> Request {
    let lambda: LambdaRequest =
        serde_json::from_value(event).expect("a valid API Gateway v2 event");
    Request::from(lambda)
}

#[cfg(feature = "testing")]
pub use contract::assert_routes_are_the_contract;

#[cfg(feature = "testing")]
mod contract {
    use std::collections::BTreeSet;

    use serde_yaml::Value;

    use crate::{Access, Service};

    /// (method, path, public) of a route.
    type Declared = (String, String, bool);

    fn repository_file(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
        serde_yaml::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"))
    }

    /// The `HttpApi` events of one function of `template.yaml`.
    fn template_routes(function: &str) -> BTreeSet<Declared> {
        let template = repository_file("template.yaml");
        let events = template["Resources"][function]["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{function} has no Events in template.yaml"));
        events
            .values()
            .filter(|event| event["Type"].as_str() == Some("HttpApi"))
            .map(|event| {
                let p = &event["Properties"];
                (
                    p["Method"].as_str().unwrap().to_ascii_uppercase(),
                    p["Path"].as_str().unwrap().to_string(),
                    p["Auth"]["Authorizer"].as_str() == Some("NONE"),
                )
            })
            .collect()
    }

    /// Every operation of `infra/openapi.yaml`; public ones say `security: []`.
    fn openapi_operations() -> BTreeSet<Declared> {
        let document = repository_file("infra/openapi.yaml");
        let mut operations = BTreeSet::new();
        for (path, item) in document["paths"].as_mapping().expect("paths") {
            for (method, operation) in item.as_mapping().expect("a path item") {
                let public = operation["security"]
                    .as_sequence()
                    .is_some_and(Vec::is_empty);
                operations.insert((
                    method.as_str().unwrap().to_ascii_uppercase(),
                    path.as_str().unwrap().to_string(),
                    public,
                ));
            }
        }
        operations
    }

    /// Panics unless `S`'s route table is exactly `function`'s routes in
    /// the template, and each is an operation of the OpenAPI document with
    /// the same access.
    pub fn assert_routes_are_the_contract<S: Service>(function: &str) {
        let table: BTreeSet<Declared> = S::ROUTES
            .iter()
            .map(|route| {
                (
                    route.method.to_string(),
                    route.path.to_string(),
                    route.access == Access::Public,
                )
            })
            .collect();
        assert_eq!(table.len(), S::ROUTES.len(), "a route is declared twice");
        assert_eq!(
            table,
            template_routes(function),
            "the route table of {function} and its HttpApi events in template.yaml differ"
        );
        let documented = openapi_operations();
        let undocumented: Vec<_> = table.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes of {function} missing from infra/openapi.yaml (or with other access): {undocumented:?}"
        );
    }
}
