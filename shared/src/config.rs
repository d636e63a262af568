//! Configuration, read once at start-up. Each function declares its own
//! typed config from the shared parts below, reading and requiring only the
//! variables it uses; their names match the `Environment` of the functions
//! in `template.yaml`, and a missing one stops the function at init with
//! its name.

#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is required but not set")]
pub struct MissingVariable(pub &'static str);

/// The variables a config is read from: the process environment in Lambda,
/// the template's `Environment` in the local stack.
pub struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    /// A variable that must be set and not blank.
    pub fn required(&self, name: &'static str) -> Result<String, MissingVariable> {
        self.optional(name).ok_or(MissingVariable(name))
    }

    /// A variable that may be absent or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    /// A number with a default for absent or unreadable values.
    pub fn number(&self, name: &str, default: u64) -> u64 {
        self.optional(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }
}

/// A function's typed configuration.
pub trait FromEnv: Sized {
    fn read(env: &Env) -> Result<Self, MissingVariable>;

    fn from_env() -> Result<Self, MissingVariable> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MissingVariable> {
        Self::read(&Env::new(&lookup))
    }
}

/// `TABLE_NAME`: the single table.
pub fn table_name(env: &Env) -> Result<String, MissingVariable> {
    env.required("TABLE_NAME")
}

/// `MEDIA_BUCKET`: originals and variants.
pub fn media_bucket(env: &Env) -> Result<String, MissingVariable> {
    env.required("MEDIA_BUCKET")
}

/// The Cognito user pool and the app client mobile apps sign in with.
#[derive(Debug, Clone)]
pub struct UserPool {
    /// `USER_POOL_ID`.
    pub id: String,
    /// `USER_POOL_CLIENT_ID`.
    pub client_id: String,
}

impl FromEnv for UserPool {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            id: env.required("USER_POOL_ID")?,
            client_id: env.required("USER_POOL_CLIENT_ID")?,
        })
    }
}

/// The SNS platform applications; empty when the app has no build for
/// that platform.
#[derive(Debug, Clone, Default)]
pub struct PushApplications {
    /// `APNS_PLATFORM_APPLICATION_ARN`: iOS devices.
    pub apns: String,
    /// `FCM_PLATFORM_APPLICATION_ARN`: Android devices.
    pub fcm: String,
}

impl FromEnv for PushApplications {
    fn read(env: &Env) -> Result<Self, MissingVariable> {
        Ok(Self {
            apns: env
                .optional("APNS_PLATFORM_APPLICATION_ARN")
                .unwrap_or_default(),
            fcm: env
                .optional("FCM_PLATFORM_APPLICATION_ARN")
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_is_named() {
        let err = UserPool::from_lookup(|name| (name == "USER_POOL_ID").then(|| "p".to_string()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable USER_POOL_CLIENT_ID is required but not set"
        );
    }

    #[test]
    fn blank_is_missing_and_numbers_have_defaults() {
        let lookup = |name: &str| match name {
            "TABLE_NAME" => Some("  ".to_string()),
            "N" => Some("12".to_string()),
            "BAD" => Some("x".to_string()),
            _ => None,
        };
        let env = Env::new(&lookup);
        assert!(table_name(&env).is_err());
        assert_eq!(env.number("N", 1), 12);
        assert_eq!(env.number("BAD", 1), 1);
        assert_eq!(env.number("ABSENT", 7), 7);
    }

    #[test]
    fn push_applications_are_optional() {
        let apps = PushApplications::from_lookup(|_| None).unwrap();
        assert!(apps.apns.is_empty() && apps.fcm.is_empty());
    }
}
