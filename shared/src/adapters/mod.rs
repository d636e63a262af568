//! The only code that talks to an AWS service, each adapter behind the
//! feature a function names for it (`shared/Cargo.toml`). The table has a
//! folder of its own (`store/`).

pub mod aws;
#[cfg(feature = "cognito")]
pub mod identity;
#[cfg(feature = "s3")]
pub mod objects;
#[cfg(feature = "ssm")]
pub mod parameters;
#[cfg(feature = "sns")]
pub mod push;
#[cfg(feature = "sqs")]
pub mod queue;
#[cfg(feature = "websocket")]
pub mod sockets;
