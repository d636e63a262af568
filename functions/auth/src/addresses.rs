//! Source addresses as the public routes' limits count them: a keyed HMAC
//! (SHA-256) of `requestContext.http.sourceIp`, never the address. A plain
//! hash of an IPv4 address is reversed by hashing all 2^32 of them; the
//! key, made once per deployment and kept as an SSM SecureString the
//! function creates itself, is what no one outside has.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use sha2::Sha256;
use shared::Error;
use shared::adapters::parameters;
use shared::aws_config::SdkConfig;
use shared::keys::RateSubject;
use tokio::sync::OnceCell;

#[derive(Debug, Clone)]
pub struct AddressKey {
    sdk: SdkConfig,
    /// `ADDRESS_KEY_PARAMETER`: the SecureString's name.
    parameter: String,
    key: Arc<OnceCell<Vec<u8>>>,
}

impl AddressKey {
    pub fn new(sdk: &SdkConfig, parameter: &str) -> Self {
        Self {
            sdk: sdk.clone(),
            parameter: parameter.to_string(),
            key: Arc::new(OnceCell::new()),
        }
    }

    /// The subject counting `address`'s requests.
    pub async fn subject(&self, address: &str) -> Result<RateSubject, Error> {
        let key = self
            .key
            .get_or_try_init(|| async {
                let secret = parameters::secure_string_or_make(&self.sdk, &self.parameter, || {
                    // 244 random bits from the OS's generator.
                    format!(
                        "{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    )
                })
                .await?;
                Ok::<_, Error>(secret.into_bytes())
            })
            .await?;
        Ok(RateSubject::Hashed(keyed_hash(key, address)))
    }
}

fn keyed_hash(key: &[u8], address: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"address:");
    mac.update(address.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The caller's address as API Gateway saw it.
pub fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_only_as_a_keyed_hash() {
        let hashed = keyed_hash(b"key-one", "203.0.113.7");
        assert_eq!(hashed.len(), 64);
        assert!(!hashed.contains("203"));
        assert_eq!(hashed, keyed_hash(b"key-one", "203.0.113.7"));
        assert_ne!(
            hashed,
            keyed_hash(b"key-two", "203.0.113.7"),
            "the key is what makes it"
        );
        assert_ne!(hashed, keyed_hash(b"key-one", "203.0.113.8"));
    }
}
