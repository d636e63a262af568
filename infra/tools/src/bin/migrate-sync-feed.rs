//! `migrate-sync-feed --from OLD_TABLE --to NEW_TABLE`: the one-off upgrade
//! to the table with the change-feed index (see `operator_tools::migrate`).
//! Credentials, region and endpoint come from the environment, as for the
//! AWS CLI. Safe to run again.

use anyhow::{Context, Result, bail};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .with_context(|| format!("{flag} TABLE is required"))
    };
    let (from, to) = (value("--from")?, value("--to")?);
    if from == to {
        bail!("--from and --to name the same table");
    }
    let sdk = shared::adapters::aws::sdk_config().await;
    let migrated = operator_tools::migrate::run(&sdk, &from, &to).await?;
    println!(
        "read {} items from {from}; {} sync records merged into {to}; {} other items written",
        migrated.read, migrated.records_changed, migrated.items_written
    );
    Ok(())
}
