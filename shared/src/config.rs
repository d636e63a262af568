//! Typed configuration, read once at start-up. Variable names match the
//! `Environment` of the functions in `template.yaml`.

#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is required but not set")]
pub struct MissingVariable(pub &'static str);

#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: the single table.
    pub table_name: String,
    /// `USER_POOL_ID`: the Cognito user pool.
    pub user_pool_id: String,
    /// `USER_POOL_CLIENT_ID`: the app client mobile apps sign in with.
    pub user_pool_client_id: String,
    /// `MEDIA_BUCKET`: originals and variants.
    pub media_bucket: String,
    /// `MAX_UPLOAD_BYTES`: the largest upload a client may declare
    /// (default 25 MB).
    pub max_upload_bytes: u64,
    /// `UPLOAD_URL_TTL_SECONDS`: how long a presigned upload stays valid
    /// (default 600).
    pub upload_url_ttl_seconds: u64,
    /// `MEDIA_CDN_BASE_URL`: serve variants from a CDN instead of
    /// presigned GETs (optional).
    pub media_cdn_base_url: Option<String>,
    /// `APNS_PLATFORM_APPLICATION_ARN`: the SNS platform application for
    /// iOS devices (empty when the app has no iOS build).
    pub apns_application_arn: String,
    /// `FCM_PLATFORM_APPLICATION_ARN`: the one for Android devices.
    pub fcm_application_arn: String,
    /// `SYNC_MAX_CLOCK_SKEW_SECONDS`: how far ahead a client's hlc may be
    /// (default 300).
    pub max_clock_skew_seconds: u64,
}

impl Config {
    pub fn from_env() -> Result<Self, MissingVariable> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MissingVariable> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .ok_or(MissingVariable(name))
        };
        let number = |name: &str, default: u64| {
            lookup(name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            user_pool_id: required("USER_POOL_ID")?,
            user_pool_client_id: required("USER_POOL_CLIENT_ID")?,
            media_bucket: required("MEDIA_BUCKET")?,
            max_upload_bytes: number("MAX_UPLOAD_BYTES", 25 * 1024 * 1024),
            upload_url_ttl_seconds: number("UPLOAD_URL_TTL_SECONDS", 600),
            media_cdn_base_url: lookup("MEDIA_CDN_BASE_URL").filter(|v| !v.trim().is_empty()),
            apns_application_arn: lookup("APNS_PLATFORM_APPLICATION_ARN").unwrap_or_default(),
            fcm_application_arn: lookup("FCM_PLATFORM_APPLICATION_ARN").unwrap_or_default(),
            max_clock_skew_seconds: number("SYNC_MAX_CLOCK_SKEW_SECONDS", 300),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_is_named() {
        let err = Config::from_lookup(|name| (name == "TABLE_NAME").then(|| "t".to_string()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable USER_POOL_ID is required but not set"
        );
    }

    #[test]
    fn reads_every_variable() {
        let config = Config::from_lookup(|name| Some(format!("{name}-value"))).unwrap();
        assert_eq!(config.table_name, "TABLE_NAME-value");
        assert_eq!(config.user_pool_client_id, "USER_POOL_CLIENT_ID-value");
    }
}
