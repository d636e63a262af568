//! Cognito access tokens, verified as API Gateway's JWT authorizer does:
//! RS256 against the user pool's JWKS, expiry, issuer, and the app client
//! (`aud` or `client_id`). The live channel's Lambda authorizer and the
//! local stack's HTTP authorizer both use it; fetching the JWKS is theirs.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Why a token was refused (safe to show: it names no part of the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub &'static str);

/// The verified claims of a token.
pub type Claims = Map<String, Value>;

#[derive(Debug, Clone)]
pub struct TokenVerifier {
    issuer: String,
    client_id: String,
}

/// The issuer of a user pool's tokens.
pub fn issuer(region: &str, user_pool_id: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}")
}

impl TokenVerifier {
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
        }
    }

    /// The key id a token names (to refetch the JWKS when it is unknown).
    pub fn key_id(token: &str) -> Result<String, Refused> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| Refused("the token is malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(Refused("the token is not RS256"));
        }
        header.kid.ok_or(Refused("the token has no key id"))
    }

    /// Verifies `token` against the keys in `jwks`.
    pub fn verify(&self, token: &str, jwks: &JwkSet) -> Result<Claims, Refused> {
        let kid = Self::key_id(token)?;
        let key = jwks
            .find(&kid)
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
            .ok_or(Refused("the token's key is unknown"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Refused("the token has expired")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    Refused("the token is for another issuer")
                }
                _ => Refused("the token is not valid"),
            })?
            .claims;
        let for_this_client = ["client_id", "aud"]
            .iter()
            .any(|name| claims.get(*name).and_then(Value::as_str) == Some(self.client_id.as_str()));
        if !for_this_client {
            return Err(Refused("the token is for another client"));
        }
        Ok(claims)
    }
}
