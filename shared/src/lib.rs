//! The domain crate: model, errors, configuration, and the adapters to the AWS
//! services. Nothing here knows about Lambda; function crates turn events into
//! calls to this crate.

pub mod aws;
pub mod config;
pub mod email;
pub mod error;
pub mod keys;
pub mod profile;
pub mod sync;
pub mod telemetry;

#[cfg(feature = "cognito")]
pub mod identity;

pub use aws_config;
pub use config::Config;
pub use error::{Code, Error, Problem};
