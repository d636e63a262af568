//! The domain crate: the model, errors, keys, the sync engine and the image
//! pipeline as plain Rust, and (behind features) the adapters to the AWS
//! services. Nothing here knows about Lambda; function crates turn events
//! into calls to this crate.

pub mod access;
pub mod config;
pub mod connection;
pub mod device;
pub mod email;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod keys;
pub mod media;
pub mod profile;
pub mod sync;

#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod notification;
#[cfg(feature = "server")]
pub mod telemetry;

#[cfg(feature = "dynamodb")]
pub mod aws;
#[cfg(feature = "cdn")]
pub mod cdn;
#[cfg(feature = "cognito")]
pub mod identity;
#[cfg(feature = "jwt")]
pub mod jwt;
#[cfg(feature = "s3")]
pub mod objects;
#[cfg(feature = "ssm")]
pub mod parameters;
#[cfg(feature = "pipeline")]
pub mod pipeline;
#[cfg(feature = "s3")]
pub mod presign;
#[cfg(feature = "sns")]
pub mod push;
#[cfg(feature = "websocket")]
pub mod sockets;
#[cfg(feature = "dynamodb")]
pub mod store;

#[cfg(feature = "dynamodb")]
pub use aws_config;
pub use error::{Code, Error, Problem};
