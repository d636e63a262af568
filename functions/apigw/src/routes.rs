//! One route table per HTTP function, and the one dispatcher they share:
//! match method and path, check the session where the route asks for one,
//! run the handler (once per `Idempotency-Key` where the route says so),
//! answer JSON or a problem document.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use shared::keys::RateSubject;
use shared::limits::{Decision, Policy};
use shared::model::access::Session;
use shared::store::Table;
use shared::{Code, Error};

use crate::delivery::Negotiation;
use crate::idempotency::idempotent;
use crate::request::{bearer_token, caller, route_path};
use crate::response::{problem_response, respond};
use crate::{Caller, Limiter, Reply, json_body};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `Authorizer: NONE` in the template.
    Public,
    /// A caller the JWT authorizer verified, whose token no sign-out revoked.
    Session,
    /// A session, or one whose account's deletion it began: only the
    /// deletion may run for a deleted account, to finish what failed.
    Deletion,
}

/// What a handler returns: its reply, boxed so that a table can hold it.
pub type BoxReply<'a> = Pin<Box<dyn Future<Output = Result<Reply, Error>> + Send + 'a>>;

/// One route: `METHOD /path/{param}`, who may call it, whether it honours
/// `Idempotency-Key`, and the handler.
pub struct Route<S: 'static> {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub idempotent: bool,
    pub handler: for<'a> fn(&'a S, Call<'a>) -> BoxReply<'a>,
}

impl<S> Route<S> {
    pub const fn public(
        method: &'static str,
        path: &'static str,
        handler: for<'a> fn(&'a S, Call<'a>) -> BoxReply<'a>,
    ) -> Self {
        Self {
            method,
            path,
            access: Access::Public,
            idempotent: false,
            handler,
        }
    }

    pub const fn session(
        method: &'static str,
        path: &'static str,
        handler: for<'a> fn(&'a S, Call<'a>) -> BoxReply<'a>,
    ) -> Self {
        Self {
            method,
            path,
            access: Access::Session,
            idempotent: false,
            handler,
        }
    }

    /// The account's deletion: see [`Access::Deletion`].
    pub const fn deletion(
        method: &'static str,
        path: &'static str,
        handler: for<'a> fn(&'a S, Call<'a>) -> BoxReply<'a>,
    ) -> Self {
        Self {
            method,
            path,
            access: Access::Deletion,
            idempotent: false,
            handler,
        }
    }

    /// A repeat with the same `Idempotency-Key` replays the first answer.
    pub const fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// API Gateway's route key, e.g. `GET /media/{mediaId}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters if `path` is this route's path.
    fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        match_path(self.path, path)
    }
}

/// `path` against a route's `pattern` (`/media/{mediaId}`): the decoded
/// path parameters if it matches. API Gateway's rule, for the functions and
/// the local stack alike.
pub fn match_path<'p>(pattern: &'p str, path: &str) -> Option<Vec<(&'p str, String)>> {
    let expected: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
    if expected.len() != actual.len() {
        return None;
    }
    let mut params = Vec::new();
    for (expected, segment) in expected.into_iter().zip(actual) {
        match expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => params.push((name, percent_decode(segment)?)),
            Some(_) => return None,
            None if expected == segment => {}
            None => return None,
        }
    }
    Some(params)
}

/// An HTTP function: its route table, and the table that holds sessions
/// and idempotency records.
pub trait Service: Sync + Sized + 'static {
    const ROUTES: &'static [Route<Self>];

    fn table(&self) -> &Table;

    /// Every session route is counted against the caller's limits.
    fn limiter(&self) -> &Limiter;
}

/// One request as a handler sees it.
pub struct Call<'a> {
    pub req: &'a Request,
    params: Vec<(&'static str, String)>,
    verified: Option<(Caller, Session)>,
    /// The limits this request was counted against, for its headers.
    decisions: Decisions,
}

/// Shared between the dispatcher and the handler's call.
type Decisions = Arc<Mutex<Vec<Decision>>>;

impl Call<'_> {
    /// The verified caller's token claims (a session route always has
    /// them): what sign-out hands back to Cognito.
    pub fn caller(&self) -> Result<&Caller, Error> {
        Ok(&self.verified()?.0)
    }

    /// The caller's session, as the session check found it: whose data
    /// this is, and the only way to a partition ([`Session::own`]).
    pub fn session(&self) -> Result<&Session, Error> {
        Ok(&self.verified()?.1)
    }

    fn verified(&self) -> Result<&(Caller, Session), Error> {
        self.verified
            .as_ref()
            .ok_or_else(|| Error::new(Code::Unauthorized, "a valid bearer token is required"))
    }

    /// A path parameter such as `{mediaId}`.
    pub fn path(&self, name: &str) -> Result<&str, Error> {
        self.params
            .iter()
            .find(|(param, _)| *param == name)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| Error::invalid(format!("path parameter {name} is missing")))
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.req.query_string_parameters_ref()?.first(name)
    }

    /// `?limit=`: 1 to `max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, Error> {
        match self.query("limit") {
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| Error::invalid(format!("limit must be 1 to {max}"))),
            None => Ok(default),
        }
    }

    /// `?cursor=` of a list that pages by id: the id it names (base64url,
    /// parsed by `parse`), None when absent or empty.
    pub fn page_after<T>(&self, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Error> {
        let Some(cursor) = self.query("cursor").filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|id: String| parse(id.as_str()))
            .map(Some)
            .ok_or_else(|| Error::invalid("cursor is not valid; list without one to start over"))
    }

    /// The JSON body as `T`; see [`json_body`].
    pub fn json<T: DeserializeOwned>(&self, limit: usize) -> Result<T, Error> {
        json_body(self.req, limit)
    }

    /// Counts this request against `policy` for `subject` (a public
    /// route's e-mail address, say); refused past the quota.
    pub async fn count_against(
        &self,
        table: &Table,
        subject: &RateSubject,
        policy: &Policy,
    ) -> Result<(), Error> {
        let decision = table.take(subject, policy, now()).await?;
        record(&self.decisions, decision)
    }

    /// The raw bearer token (only sign-out hands it back to Cognito).
    pub fn bearer_token(&self) -> Result<&str, Error> {
        bearer_token(self.req)
            .ok_or_else(|| Error::new(Code::Unauthorized, "a bearer token is required"))
    }
}

/// The `nextCursor` of a list that pages by id: the last id of the page.
pub fn page_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// Handles one API Gateway request with `service`'s route table. Never
/// fails: errors are problem documents.
pub async fn handle<S: Service>(service: &S, req: Request) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().as_str().to_ascii_uppercase();
    let path = route_path(&req);
    let matched: Vec<_> = S::ROUTES
        .iter()
        .filter_map(|route| Some((route, route.matches(&path)?)))
        .collect();
    let Some((route, params)) = matched
        .iter()
        .find(|(route, _)| route.method == method)
        .map(|(route, params)| (*route, params.clone()))
    else {
        let allowed: Vec<&str> = matched.iter().map(|(route, _)| route.method).collect();
        let delivery = Negotiation::of(req.method(), req.headers(), None);
        return delivery.deliver(not_routed(&method, &path, &allowed, started));
    };
    let key = route.key();
    let delivery = Negotiation::of(req.method(), req.headers(), Some(route.access));
    let decisions = Decisions::default();
    let result = run(service, route, &key, &req, params, decisions.clone()).await;
    let mut response = delivery.deliver(respond(&key, started, result));
    announce(
        &mut response,
        &decisions.lock().unwrap_or_else(|p| p.into_inner()),
    );
    response
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Keeps a decision for the headers; a refusal is the request's error.
fn record(decisions: &Decisions, decision: Decision) -> Result<(), Error> {
    decisions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(decision);
    if decision.allowed {
        Ok(())
    } else {
        Err(decision.refusal())
    }
}

/// The limits a request was counted against, as the RateLimit fields
/// (draft-ietf-httpapi-ratelimit-headers-09), and `Retry-After` on a
/// refusal.
fn announce(response: &mut Response<Body>, decisions: &[Decision]) {
    if decisions.is_empty() {
        return;
    }
    let join = |parts: Vec<String>| parts.join(", ");
    let headers = [
        (
            "ratelimit-policy",
            join(decisions.iter().map(|d| d.policy.header()).collect()),
        ),
        (
            "ratelimit",
            join(decisions.iter().map(Decision::header).collect()),
        ),
    ];
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    if let Some(retry) = decisions
        .iter()
        .filter(|d| !d.allowed)
        .map(|d| d.reset)
        .max()
        && let Ok(value) = retry.to_string().parse()
    {
        response.headers_mut().insert("retry-after", value);
    }
}

async fn run<S: Service>(
    service: &S,
    route: &Route<S>,
    key: &str,
    req: &Request,
    params: Vec<(&'static str, String)>,
    decisions: Decisions,
) -> Result<Reply, Error> {
    let verified = match route.access {
        Access::Public => None,
        Access::Session | Access::Deletion => {
            let caller = caller(req)?;
            let (table, token_id) = (service.table(), caller.token_id.as_deref());
            let session = if route.access == Access::Deletion {
                table
                    .check_deletion_session(&caller.user_id, caller.issued_at, token_id)
                    .await?
            } else {
                table
                    .check_session(&caller.user_id, caller.issued_at, token_id)
                    .await?
            };
            let decision = service
                .limiter()
                .check(table, &caller.user_id, req.method().as_str(), now())
                .await?;
            record(&decisions, decision)?;
            Some((caller, session))
        }
    };
    let call = Call {
        req,
        params,
        verified,
        decisions,
    };
    if !route.idempotent {
        return (route.handler)(service, call).await;
    }
    let caller = call.caller()?.clone();
    idempotent(
        req,
        key,
        service.table(),
        &caller,
        (route.handler)(service, call),
    )
    .await
}

/// 404 for a path no route has, 405 (with `Allow`) for a method it lacks.
fn not_routed(method: &str, path: &str, allowed: &[&str], started: Instant) -> Response<Body> {
    if allowed.is_empty() {
        let err = Error::new(Code::NotFound, format!("no route for {method} {path}"));
        return respond(path, started, Err(err));
    }
    let err = Error::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {path}"),
    );
    let mut response = problem_response(&err);
    if let Ok(allow) = allowed.join(", ").parse() {
        // RFC 9110: a 405 says what is allowed.
        response.headers_mut().insert("allow", allow);
    }
    response
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    async fn path_of(_: &Echo, call: Call<'_>) -> Result<Reply, Error> {
        Reply::ok(call.path("id")?)
    }

    fn route(path: &'static str) -> Route<Echo> {
        Route::public("GET", path, |s, c| Box::pin(path_of(s, c)))
    }

    #[test]
    fn matches_literal_and_parameter_segments() {
        assert!(route("/me").matches("/me").unwrap().is_empty());
        assert!(route("/me").matches("/me/x").is_none());
        let params = route("/media/{mediaId}").matches("/media/a%20b").unwrap();
        assert_eq!(params, vec![("mediaId", "a b".to_string())]);
        assert!(route("/media/{mediaId}").matches("/media/").is_none());
        assert!(route("/media/{mediaId}").matches("/media/%zz").is_none());
    }

    #[test]
    fn an_unknown_path_is_404_and_a_wrong_method_405_with_allow() {
        let response = not_routed("GET", "/nowhere", &[], Instant::now());
        assert_eq!(response.status(), 404);
        let response = not_routed("PATCH", "/me", &["GET", "DELETE"], Instant::now());
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET, DELETE");
    }
}
