//! `media-signing-key --parameter NAME`: a new ECDSA P-256 key pair for
//! CloudFront signed URLs. The private half goes straight into the SSM
//! SecureString NAME (AWS managed key; never printed or written to disk);
//! the public half is printed, for the template's `MediaSigningPublicKey`.
//! Credentials, region and endpoint come from the environment, as for the
//! AWS CLI. Rotation: see the README ("Media URLs").

use anyhow::{Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parameter = args
        .iter()
        .position(|a| a == "--parameter")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .context("--parameter NAME is required (the stack's MediaSigningKeyParameter)")?;
    let (private_pem, public_pem) = shared::media::cdn::generate_key_pair();
    let sdk = shared::adapters::aws::sdk_config().await;
    shared::adapters::parameters::put_secure_string(&sdk, &parameter, &private_pem)
        .await
        .with_context(|| format!("storing the private key in {parameter}"))?;
    eprintln!("stored the private key in the SecureString {parameter}; its public key:");
    print!("{public_pem}");
    Ok(())
}
