//! Tools an operator runs against the deployed stack's own AWS account
//! (credentials, region and endpoint from the environment, as for the AWS
//! CLI), kept apart from the local stack, which never touches AWS:
//!
//! - `migrate-sync-feed --from OLD --to NEW`: the one-off upgrade to the
//!   table with the change-feed index ([`migrate`]);
//! - `media-signing-key --parameter NAME`: a CloudFront signing key pair.

pub mod migrate;
