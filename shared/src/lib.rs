//! The domain crate: model, errors, configuration, and the adapters to the AWS
//! services. Nothing here knows about Lambda; function crates turn events into
//! calls to this crate.

pub mod aws;
pub mod config;
pub mod email;
pub mod error;
pub mod idempotency;
pub mod keys;
pub mod media;
pub mod metrics;
pub mod presign;
pub mod profile;
pub mod sync;
pub mod telemetry;

#[cfg(feature = "sns")]
pub mod device;
#[cfg(feature = "cognito")]
pub mod identity;
#[cfg(feature = "s3")]
pub mod objects;
#[cfg(feature = "pipeline")]
pub mod pipeline;
#[cfg(feature = "sns")]
pub mod push;

pub use aws_config;
pub use config::Config;
pub use error::{Code, Error, Problem};
