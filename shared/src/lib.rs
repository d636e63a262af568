//! The domain crate. Its folders are its layers:
//!
//! - `model/`: the plain domain (ids and partitions, who may touch what,
//!   profiles, devices, media items, connections, emails, idempotency);
//! - `sync/`: the sync engine (validation, merge, clock, plan, the store's
//!   contract and its conformance suite, the in-memory store);
//! - `media/`: photos from upload to phone (the image pipeline, the upload
//!   policy, CloudFront signed URLs);
//! - `adapters/`: the only code that talks to an AWS service (Cognito, S3,
//!   SNS, SSM, the WebSocket management API), each behind a feature;
//! - `store/`: the DynamoDB table, one file per entity family;
//! - beside them, what every layer shares: errors, keys, configuration,
//!   token verification, and (server only) logs, metrics, push payloads.
//!
//! Nothing here knows about Lambda; function crates turn events into calls
//! to this crate. Without features it is plain Rust (what the app library
//! links).

pub mod config;
pub mod error;
pub mod keys;
pub mod limits;
pub mod media;
pub mod model;
pub mod sync;

#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod notification;
#[cfg(feature = "server")]
pub mod telemetry;

#[cfg(feature = "dynamodb")]
pub mod adapters;
#[cfg(feature = "jwt")]
pub mod jwt;
#[cfg(feature = "dynamodb")]
pub mod store;

#[cfg(feature = "dynamodb")]
pub use aws_config;
pub use error::{Code, Error, Problem};
