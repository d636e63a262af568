//! The Cognito adapter: accounts, passwords and tokens. Cognito's errors map
//! to stable codes here, once, with no oracle for whether an email exists on
//! the routes that do not need one.

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::model::email::Email;
use crate::model::ids::UserId;
use crate::{Code, Error, adapters::aws};

pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    Client::new(sdk)
}

#[derive(Debug, Clone)]
pub struct Identity {
    client: Client,
    user_pool_id: String,
    client_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignedUp {
    pub user_id: String,
    pub confirmed: bool,
}

#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: String,
    /// Only sign-in issues one; refreshing keeps the one the client has.
    pub refresh_token: Option<String>,
    pub expires_in: i32,
}

// Tokens are secrets: never print them, even in debug logs.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Who the id token says signed in.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct IdClaims {
    pub sub: UserId,
    pub email: String,
    /// When the tokens were issued (Unix seconds).
    #[serde(default)]
    pub iat: i64,
}

impl Tokens {
    /// The id token's claims. It came from Cognito a moment ago over the
    /// SDK's connection, so it is read, not verified; requests are verified by
    /// the API's JWT authorizer.
    pub fn id_claims(&self) -> Result<IdClaims, Error> {
        let payload = self
            .id_token
            .split('.')
            .nth(1)
            .ok_or_else(|| Error::internal("id token has no payload"))?;
        let json = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(Error::internal)?;
        serde_json::from_slice(&json).map_err(Error::internal)
    }
}

/// What Cognito's `NotAuthorizedException` and `UserNotFoundException` mean
/// depends on the operation.
struct Meaning {
    not_authorized: (Code, &'static str),
    user_not_found: (Code, &'static str),
}

impl Meaning {
    /// Both answers mean the same: no oracle for whether the user exists.
    const fn same(meaning: (Code, &'static str)) -> Self {
        Self {
            not_authorized: meaning,
            user_not_found: meaning,
        }
    }
}

const BAD_CREDENTIALS: (Code, &str) = (Code::BadCredentials, "wrong email or password");
const BAD_CODE: (Code, &str) = (Code::CodeMismatch, "the code is wrong for this email");

fn map_error<E>(err: SdkError<E, HttpResponse>, meaning: Meaning) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // Cognito's own messages are read, never passed on: they are written for
    // its API's caller, not the app's user.
    let message = err.message().unwrap_or_default().to_string();
    let (code, detail) = match aws::error_code(&err) {
        Some("UsernameExistsException" | "AliasExistsException") => (
            Code::UserExists,
            "an account with this email already exists".to_string(),
        ),
        Some("UserNotConfirmedException") => (
            Code::NotConfirmed,
            "confirm the account with the code sent by email first".to_string(),
        ),
        Some("NotAuthorizedException") => {
            (meaning.not_authorized.0, meaning.not_authorized.1.into())
        }
        Some("UserNotFoundException") => {
            (meaning.user_not_found.0, meaning.user_not_found.1.into())
        }
        Some("InvalidPasswordException") => (Code::WeakPassword, password_advice(&message)),
        Some("CodeMismatchException") => (Code::CodeMismatch, "the code is wrong".into()),
        Some("ExpiredCodeException") => (
            Code::CodeExpired,
            "the code has expired; request a new one".into(),
        ),
        Some("InvalidParameterException") => invalid_parameter(&message),
        Some(
            "TooManyRequestsException"
            | "LimitExceededException"
            | "TooManyFailedAttemptsException"
            | "CodeDeliveryFailureException",
        ) => (
            Code::TooManyRequests,
            "too many attempts; wait a moment and retry".into(),
        ),
        _ => return aws::classify(err),
    };
    Error::new(code, detail)
}

/// What to do about a password the pool's policy refused, from what
/// Cognito's message says is missing.
fn password_advice(cognito: &str) -> String {
    let cognito = cognito.to_ascii_lowercase();
    let needs: Vec<&str> = [
        ("uppercase", "an uppercase letter"),
        ("lowercase", "a lowercase letter"),
        ("numeric", "a digit"),
        ("symbol", "a symbol"),
        ("long enough", "more characters"),
    ]
    .into_iter()
    .filter(|(said, _)| cognito.contains(said))
    .map(|(_, need)| need)
    .collect();
    if needs.is_empty() {
        "choose a stronger password: longer, with upper- and lowercase letters, digits and symbols"
            .into()
    } else {
        format!("choose another password: it needs {}", needs.join(", "))
    }
}

/// A parameter Cognito refused, in the words of what the caller can change.
fn invalid_parameter(cognito: &str) -> (Code, String) {
    let cognito = cognito.to_ascii_lowercase();
    if cognito.contains("password") {
        (Code::WeakPassword, password_advice(&cognito))
    } else if cognito.contains("username") || cognito.contains("email") {
        (
            Code::InvalidRequest,
            "use a valid email address as the account's name".into(),
        )
    } else {
        (
            Code::InvalidRequest,
            "the account service refused the request: check the email, password and code".into(),
        )
    }
}

impl Identity {
    pub fn new(
        client: Client,
        user_pool_id: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            client,
            user_pool_id: user_pool_id.into(),
            client_id: client_id.into(),
        }
    }

    pub async fn sign_up(&self, email: &Email, password: &str) -> Result<SignedUp, Error> {
        let email_attribute = AttributeType::builder()
            .name("email")
            .value(email.as_str())
            .build()
            .map_err(Error::internal)?;
        let output = self
            .client
            .sign_up()
            .client_id(&self.client_id)
            .username(email.as_str())
            .password(password)
            .user_attributes(email_attribute)
            .send()
            .await
            .map_err(|err| {
                map_error(
                    err,
                    Meaning::same((Code::InvalidRequest, "sign-up is not allowed")),
                )
            })?;
        Ok(SignedUp {
            user_id: output.user_sub,
            confirmed: output.user_confirmed,
        })
    }

    pub async fn confirm(&self, email: &Email, code: &str) -> Result<(), Error> {
        self.client
            .confirm_sign_up()
            .client_id(&self.client_id)
            .username(email.as_str())
            .confirmation_code(code)
            .send()
            .await
            .map_err(|err| {
                map_error(
                    err,
                    Meaning {
                        // Cognito says NotAuthorized for an already confirmed user.
                        not_authorized: (
                            Code::CodeMismatch,
                            "the account cannot be confirmed with this code",
                        ),
                        user_not_found: BAD_CODE,
                    },
                )
            })?;
        Ok(())
    }

    pub async fn sign_in(&self, email: &Email, password: &str) -> Result<Tokens, Error> {
        let output = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email.as_str())
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .map_err(|err| map_error(err, Meaning::same(BAD_CREDENTIALS)))?;
        tokens(output.authentication_result)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, Error> {
        const REFUSED: (Code, &str) = (
            Code::InvalidRefreshToken,
            "the refresh token is expired, revoked or not valid; sign in again",
        );
        let output = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token)
            .send()
            .await
            .map_err(|err| map_error(err, Meaning::same(REFUSED)))?;
        let mut tokens = tokens(output.authentication_result)?;
        tokens.refresh_token = None;
        Ok(tokens)
    }

    /// Revokes every refresh token of the user the access token belongs to.
    pub async fn global_sign_out(&self, access_token: &str) -> Result<(), Error> {
        const REFUSED: (Code, &str) = (Code::TokenRevoked, "the session has already ended");
        self.client
            .global_sign_out()
            .access_token(access_token)
            .send()
            .await
            .map_err(|err| map_error(err, Meaning::same(REFUSED)))?;
        Ok(())
    }

    /// Sends a reset code. Answers the same whether or not the account exists.
    pub async fn forgot_password(&self, email: &Email) -> Result<(), Error> {
        let result = self
            .client
            .forgot_password()
            .client_id(&self.client_id)
            .username(email.as_str())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if aws::error_code(&err) == Some("UserNotFoundException") => Ok(()),
            Err(err) => Err(map_error(
                err,
                Meaning {
                    not_authorized: (
                        Code::InvalidRequest,
                        "password reset is not allowed for this account",
                    ),
                    user_not_found: BAD_CODE,
                },
            )),
        }
    }

    pub async fn reset_password(
        &self,
        email: &Email,
        code: &str,
        password: &str,
    ) -> Result<(), Error> {
        self.client
            .confirm_forgot_password()
            .client_id(&self.client_id)
            .username(email.as_str())
            .confirmation_code(code)
            .password(password)
            .send()
            .await
            .map_err(|err| map_error(err, Meaning::same(BAD_CODE)))?;
        Ok(())
    }

    /// The `sub` of the account with this email.
    pub async fn user_id(&self, email: &Email) -> Result<UserId, Error> {
        let output = self
            .client
            .admin_get_user()
            .user_pool_id(&self.user_pool_id)
            .username(email.as_str())
            .send()
            .await
            .map_err(|err| map_error(err, Meaning::same(BAD_CODE)))?;
        output
            .user_attributes()
            .iter()
            .find(|attribute| attribute.name() == "sub")
            .and_then(|attribute| attribute.value())
            .and_then(|sub| UserId::parse(sub).ok())
            .ok_or_else(|| Error::internal("Cognito user has no usable sub"))
    }

    /// Revokes every refresh token of a user, as an administrator. The email
    /// is the username the sessions were opened with.
    pub async fn admin_sign_out(&self, email: &Email) -> Result<(), Error> {
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&self.user_pool_id)
            .username(email.as_str())
            .send()
            .await
            .map_err(aws::classify)?;
        Ok(())
    }

    /// Stops the user signing in or refreshing (a deleted account's, until
    /// its purge deletes the user): disabled, and every refresh token
    /// revoked. A user already gone is fine.
    pub async fn disable_user(&self, user_id: &UserId) -> Result<(), Error> {
        let disabled = self
            .client
            .admin_disable_user()
            .user_pool_id(&self.user_pool_id)
            .username(user_id.as_str())
            .send()
            .await;
        if !unless_gone(disabled)? {
            return Ok(());
        }
        let signed_out = self
            .client
            .admin_user_global_sign_out()
            .user_pool_id(&self.user_pool_id)
            .username(user_id.as_str())
            .send()
            .await;
        unless_gone(signed_out).map(|_| ())
    }

    /// Deletes the Cognito user. Deleting a user that is already gone is fine.
    pub async fn delete_user(&self, user_id: &UserId) -> Result<(), Error> {
        let deleted = self
            .client
            .admin_delete_user()
            .user_pool_id(&self.user_pool_id)
            .username(user_id.as_str())
            .send()
            .await;
        unless_gone(deleted).map(|_| ())
    }
}

/// An administrator's call on a user: `Ok(true)` if it happened,
/// `Ok(false)` if the user is already gone (a deletion got there first).
fn unless_gone<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> Result<bool, Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if aws::error_code(&err) == Some("UserNotFoundException") => Ok(false),
        Err(err) => Err(aws::classify(err)),
    }
}

fn tokens(
    result: Option<aws_sdk_cognitoidentityprovider::types::AuthenticationResultType>,
) -> Result<Tokens, Error> {
    // No result means Cognito wants a challenge (MFA, new password); this
    // pool is configured for none.
    let result = result.ok_or_else(|| Error::internal("Cognito answered a challenge"))?;
    match (result.access_token, result.id_token) {
        (Some(access_token), Some(id_token)) => Ok(Tokens {
            access_token,
            id_token,
            refresh_token: result.refresh_token,
            expires_in: result.expires_in,
        }),
        _ => Err(Error::internal("Cognito returned no tokens")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with_payload(payload: &str) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn cognitos_messages_become_advice_in_our_words() {
        let advice = password_advice(
            "Password did not conform with policy: Password must have uppercase characters",
        );
        assert_eq!(
            advice,
            "choose another password: it needs an uppercase letter"
        );
        let advice = password_advice("Password does not conform to the configured password policy");
        assert!(advice.starts_with("choose a stronger password"), "{advice}");
        let (code, detail) =
            invalid_parameter("Username should be either an email or a phone number.");
        assert_eq!(code, Code::InvalidRequest);
        assert!(!detail.contains("phone"), "{detail}");
    }

    #[test]
    fn reads_the_id_token_claims() {
        let tokens = Tokens {
            access_token: "a".into(),
            id_token: jwt_with_payload(
                r#"{"sub":"u-1","email":"ann@example.com","aud":"c","iat":1700000000}"#,
            ),
            refresh_token: None,
            expires_in: 3600,
        };
        assert_eq!(
            tokens.id_claims().unwrap(),
            IdClaims {
                sub: UserId::parse("u-1").unwrap(),
                email: "ann@example.com".into(),
                iat: 1_700_000_000,
            }
        );
    }

    #[test]
    fn tokens_do_not_print_secrets() {
        let tokens = Tokens {
            access_token: "secret-access".into(),
            id_token: "secret-id".into(),
            refresh_token: Some("secret-refresh".into()),
            expires_in: 3600,
        };
        let printed = format!("{tokens:?}");
        assert!(!printed.contains("secret"), "{printed}");
    }
}
