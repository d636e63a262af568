//! Tokens that differ from real ones in exactly one claim, signed with the
//! emulator's own key: for the authorizers' tests.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The claims of a token, unverified.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The emulator's token-signing key (moto ships one RSA key for every user
/// pool, as a JWK without its primes), as PKCS#1 DER via the emulator's own
/// Python, with its key id. Lets the test mint tokens that differ from
/// real ones in exactly one claim.
pub fn emulator_signing_key() -> (jsonwebtoken::EncodingKey, String) {
    const TO_PEM: &str = r#"
import gzip, json, importlib.resources as r
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization as s
path = r.files("moto.cognitoidp") / "resources/jwks-private.json.gz"
jwk = json.load(gzip.open(str(path)))
num = lambda k: int.from_bytes(__import__("base64").urlsafe_b64decode(jwk[k] + "=="), "big")
n, e, d = num("n"), num("e"), num("d")
p, q = rsa.rsa_recover_prime_factors(n, e, d)
key = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
    rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)).private_key()
print(jwk["kid"])
print(__import__("base64").b64encode(key.private_bytes(s.Encoding.DER, s.PrivateFormat.TraditionalOpenSSL, s.NoEncryption())).decode())
"#;
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let output = std::process::Command::new(python)
        .args(["-c", TO_PEM])
        .output()
        .expect("the project's .venv (scripts/test creates it)");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (kid, der) = text.trim().split_once('\n').unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    (
        jsonwebtoken::EncodingKey::from_rsa_der(&der),
        kid.to_string(),
    )
}

/// `token` re-signed by the emulator's key with some claims changed.
pub fn mint(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims_of(token);
    change(&mut claims);
    sign(&claims)
}

/// A token with these claims, signed by the emulator's key as Cognito's
/// tokens are.
pub fn sign(claims: &Value) -> String {
    let (key, kid) = emulator_signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}
