//! Reading an API Gateway v2 request: the caller the authorizer verified,
//! the bearer token, the JSON body.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;
use shared::model::ids::UserId;
use shared::{Code, Error};

/// The caller, as the API's JWT authorizer verified them.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The Cognito `sub`.
    pub user_id: UserId,
    /// When the access token was issued (Unix seconds).
    pub issued_at: i64,
    /// The token's `jti`.
    pub token_id: Option<String>,
}

/// The verified caller, from `requestContext.authorizer.jwt.claims`. A
/// request without them did not pass the JWT authorizer (a function URL,
/// `cargo lambda watch`, or a hand-made event): 401, naming what is missing.
pub fn caller(req: &Request) -> Result<Caller, Error> {
    let missing = |what: &str| {
        Error::new(
            Code::Unauthorized,
            format!(
                "a valid bearer token is required: this request carries no {what}. \
                 Call the route through the API (its JWT authorizer adds the claims), \
                 or invoke the function with an event that has \
                 requestContext.authorizer.jwt.claims.sub and .iat"
            ),
        )
    };
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|authorizer| authorizer.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    }
    .ok_or_else(|| missing("JWT authorizer claims"))?;
    // API Gateway's JWT authorizer also passes ID tokens (their `aud` is
    // the app client); only access tokens are bearer tokens here.
    if claims.get("token_use").map(String::as_str) != Some("access") {
        return Err(Error::new(
            Code::Unauthorized,
            "send the access token as the bearer token, not the ID token",
        ));
    }
    let sub = claims.get("sub").ok_or_else(|| missing("`sub` claim"))?;
    let user_id = UserId::parse(sub).map_err(|_| {
        Error::new(
            Code::Unauthorized,
            "the `sub` claim is not a user id (a Cognito sub)",
        )
    })?;
    let issued_at = claims
        .get("iat")
        .and_then(|iat| iat.parse().ok())
        .ok_or_else(|| missing("numeric `iat` claim"))?;
    Ok(Caller {
        user_id,
        issued_at,
        token_id: claims.get("jti").cloned(),
    })
}

/// The raw bearer token, for the one call that must hand it back to Cognito
/// (global sign-out). Never parsed here: the authorizer verified it.
pub fn bearer_token(req: &Request) -> Option<&str> {
    req.headers()
        .get(lambda_http::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
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
    if let Some(content_type) = req.headers().get(lambda_http::http::header::CONTENT_TYPE) {
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

/// The path API Gateway received, with the prefix that `cargo lambda
/// watch` puts in front of a function URL (`/lambda-url/<function>`) taken
/// off, so the same routes match there.
pub(crate) fn route_path(req: &Request) -> String {
    let raw = req.raw_http_path();
    let path = if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    };
    match path.strip_prefix("/lambda-url/") {
        Some(rest) => match rest.split_once('/') {
            Some((_function, tail)) => format!("/{tail}"),
            None => "/".to_string(),
        },
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, request};
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
    fn reads_the_caller_from_the_claims() {
        let req = request(event(
            "GET /me",
            None,
            Some(json!({"sub": "u-1", "iat": "1700000000", "token_use": "access"})),
        ));
        assert_eq!(
            caller(&req).unwrap(),
            Caller {
                user_id: UserId::parse("u-1").unwrap(),
                issued_at: 1_700_000_000,
                token_id: None,
            }
        );
    }

    #[test]
    fn the_readme_event_with_claims_reaches_a_session_route() {
        // The README's event, with its placeholder filled in as a reader would.
        let event = include_str!("../../../tests/fixtures/apigw-get-me.json").replace(
            "<the user's sub, as GET /me through the local stack answers it>",
            "6f0e9c1a-1b2c-4d5e-8f90-123456789abc",
        );
        let event = serde_json::from_str(&event).unwrap();
        let caller = caller(&request(event)).unwrap();
        assert_eq!(caller.issued_at, 1_795_000_000);
    }

    #[test]
    fn no_claims_is_unauthorized_and_says_which() {
        let err = caller(&request(event("GET /me", None, None))).unwrap_err();
        assert_eq!(err.code, Code::Unauthorized);
        assert!(err.detail.contains("requestContext.authorizer.jwt.claims"));
        let access = json!({"sub": "u", "token_use": "access"});
        let err = caller(&request(event("GET /me", None, Some(access)))).unwrap_err();
        assert!(err.detail.contains("`iat`"), "{}", err.detail);
        let id_token = json!({"sub": "u", "iat": "1700000000", "token_use": "id"});
        let err = caller(&request(event("GET /me", None, Some(id_token)))).unwrap_err();
        assert_eq!(err.code, Code::Unauthorized);
        assert!(err.detail.contains("access token"), "{}", err.detail);
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
    fn bearer_token_is_read_from_the_header() {
        let mut ev = event("POST /auth/sign-out", None, None);
        ev["headers"]["authorization"] = json!("Bearer abc.def.ghi");
        assert_eq!(bearer_token(&request(ev)), Some("abc.def.ghi"));
    }

    #[test]
    fn function_url_prefixes_are_taken_off() {
        let mut ev = event("GET /health", None, None);
        ev["rawPath"] = json!("/lambda-url/auth/health");
        assert_eq!(route_path(&request(ev)), "/health");
        assert_eq!(route_path(&request(event("GET /me", None, None))), "/me");
    }
}
