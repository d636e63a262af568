//! One error type for everything a caller can see, mapped to RFC 9457
//! `application/problem+json` with a stable `code` in exactly one place.

use serde::Serialize;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Stable, documented error codes. Clients branch on these, so a code, once
/// published, never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    WeakPassword,
    CodeMismatch,
    CodeExpired,
    Unauthorized,
    BadCredentials,
    InvalidRefreshToken,
    TokenRevoked,
    NotConfirmed,
    NotFound,
    InsufficientRole,
    QuotaExceeded,
    MethodNotAllowed,
    UserExists,
    SpaceIdTaken,
    OwnerMustTransfer,
    MutationGap,
    ClockSkew,
    CursorExpired,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    TooManyRequests,
    ServiceUnavailable,
    Internal,
}

impl Code {
    pub const ALL: [Code; 27] = [
        Code::InvalidRequest,
        Code::MalformedJson,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::WeakPassword,
        Code::CodeMismatch,
        Code::CodeExpired,
        Code::Unauthorized,
        Code::BadCredentials,
        Code::InvalidRefreshToken,
        Code::TokenRevoked,
        Code::NotConfirmed,
        Code::NotFound,
        Code::InsufficientRole,
        Code::QuotaExceeded,
        Code::MethodNotAllowed,
        Code::UserExists,
        Code::SpaceIdTaken,
        Code::OwnerMustTransfer,
        Code::MutationGap,
        Code::ClockSkew,
        Code::CursorExpired,
        Code::IdempotencyKeyReused,
        Code::IdempotencyKeyInUse,
        Code::TooManyRequests,
        Code::ServiceUnavailable,
        Code::Internal,
    ];

    pub fn status(self) -> u16 {
        match self {
            Code::InvalidRequest
            | Code::MalformedJson
            | Code::WeakPassword
            | Code::CodeMismatch
            | Code::CodeExpired
            | Code::ClockSkew => 400,
            Code::Unauthorized
            | Code::BadCredentials
            | Code::InvalidRefreshToken
            | Code::TokenRevoked => 401,
            Code::NotConfirmed | Code::InsufficientRole | Code::QuotaExceeded => 403,
            Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::UserExists
            | Code::SpaceIdTaken
            | Code::OwnerMustTransfer
            | Code::MutationGap
            | Code::IdempotencyKeyInUse => 409,
            Code::CursorExpired => 410,
            Code::IdempotencyKeyReused => 422,
            Code::PayloadTooLarge => 413,
            Code::UnsupportedMediaType => 415,
            Code::TooManyRequests => 429,
            Code::Internal => 500,
            Code::ServiceUnavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::MalformedJson => "malformed_json",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::PayloadTooLarge => "payload_too_large",
            Code::WeakPassword => "weak_password",
            Code::CodeMismatch => "code_mismatch",
            Code::CodeExpired => "code_expired",
            Code::Unauthorized => "unauthorized",
            Code::BadCredentials => "bad_credentials",
            Code::InvalidRefreshToken => "invalid_refresh_token",
            Code::TokenRevoked => "token_revoked",
            Code::NotConfirmed => "not_confirmed",
            Code::NotFound => "not_found",
            Code::InsufficientRole => "insufficient_role",
            Code::QuotaExceeded => "quota_exceeded",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::UserExists => "user_exists",
            Code::SpaceIdTaken => "space_id_taken",
            Code::OwnerMustTransfer => "owner_must_transfer",
            Code::MutationGap => "mutation_gap",
            Code::ClockSkew => "clock_skew",
            Code::CursorExpired => "cursor_expired",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::IdempotencyKeyInUse => "idempotency_key_in_use",
            Code::TooManyRequests => "too_many_requests",
            Code::ServiceUnavailable => "service_unavailable",
            Code::Internal => "internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Code::InvalidRequest => "The request is not valid",
            Code::MalformedJson => "The request body is not valid JSON",
            Code::UnsupportedMediaType => "The media type is not supported",
            Code::PayloadTooLarge => "The request body is too large",
            Code::WeakPassword => "The password does not meet the password policy",
            Code::CodeMismatch => "The confirmation code is wrong",
            Code::CodeExpired => "The confirmation code has expired",
            Code::Unauthorized => "Authentication is required",
            Code::BadCredentials => "Wrong email or password",
            Code::InvalidRefreshToken => "The refresh token is not valid",
            Code::TokenRevoked => "The token was revoked",
            Code::NotConfirmed => "The account is not confirmed",
            Code::NotFound => "Not found",
            Code::InsufficientRole => "Your role in this space does not allow this",
            Code::QuotaExceeded => "A quota is used up",
            Code::MethodNotAllowed => "Method not allowed",
            Code::UserExists => "An account with this email already exists",
            Code::SpaceIdTaken => "Another space has this id",
            Code::OwnerMustTransfer => "The owner must transfer ownership before leaving",
            Code::MutationGap => "Mutations are missing before this batch",
            Code::ClockSkew => "The client clock is too far ahead",
            Code::CursorExpired => {
                "The cursor is older than what the server keeps; pull from the start"
            }
            Code::IdempotencyKeyReused => "The idempotency key was used for another request",
            Code::IdempotencyKeyInUse => "A request with this idempotency key is in progress",
            Code::TooManyRequests => "Too many requests",
            Code::ServiceUnavailable => "The service is temporarily unavailable",
            Code::Internal => "Internal error",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a caller sees: a code, a human-readable detail that never holds
/// internal information, and (for 5xx) the source kept for the logs only.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Error {
    pub code: Code,
    pub detail: String,
    /// Extra members of the problem document (RFC 9457 extensions).
    pub extensions: serde_json::Map<String, serde_json::Value>,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            extensions: serde_json::Map::new(),
            source: None,
        }
    }

    /// Adds a member to the problem document, e.g. the watermark of a gap.
    pub fn with_extension(mut self, name: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.extensions.insert(name.to_string(), value);
        }
        self
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found"))
    }

    /// Our fault: the detail stays generic, the source goes to the logs.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self {
            code: Code::Internal,
            detail: "an internal error occurred; it has been logged".into(),
            extensions: serde_json::Map::new(),
            source: Some(source.into()),
        }
    }

    /// A dependency is down, slow or throttling us: worth retrying later.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self {
            code: Code::ServiceUnavailable,
            detail: "a backing service did not answer in time; retry later".into(),
            extensions: serde_json::Map::new(),
            source: Some(source.into()),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("https://errors.mobile-backend.dev/{}", self.code),
            title: self.code.title(),
            status: self.code.status(),
            code: self.code.as_str(),
            detail: self.detail.clone(),
            extensions: self.extensions.clone(),
        }
    }
}

/// The RFC 9457 body.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub const CONTENT_TYPE: &'static str = "application/problem+json";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code} is not snake_case"
            );
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_source() {
        let err = Error::internal(std::io::Error::other("table secret-table is gone"));
        let body = serde_json::to_string(&err.problem()).unwrap();
        assert!(!body.contains("secret-table"), "{body}");
        assert_eq!(err.status(), 500);
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn problem_has_the_rfc_9457_members() {
        let err = Error::new(Code::UserExists, "try signing in");
        let value = serde_json::to_value(err.problem()).unwrap();
        assert_eq!(value["status"], 409);
        assert_eq!(value["code"], "user_exists");
        assert_eq!(value["detail"], "try signing in");
        assert!(value["type"].as_str().unwrap().ends_with("/user_exists"));
        assert!(value["title"].is_string());
    }
}
