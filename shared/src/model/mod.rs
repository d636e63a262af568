//! The plain domain: what the backend keeps and the rules it keeps them
//! by, with no AWS and no Lambda.

pub mod access;
pub mod connection;
pub mod device;
pub mod email;
pub mod idempotency;
pub mod ids;
pub mod media;
pub mod profile;
pub mod purge;
pub mod quota;
pub mod space;
