//! The live channel (an API Gateway WebSocket API): while the app is open,
//! a change pushed from one device pokes the user's other devices, which
//! pull within a second; photos announce when they are ready.
//!
//! - [`authorizer`]: the `$connect` Lambda REQUEST authorizer (the token
//!   comes in the query string: WebSocket APIs take no JWT authorizer);
//! - [`socket`]: `$connect`, `$disconnect`, `$default` (ping/pong);
//! - [`poke`]: the table stream's second consumer, posting to connections.

pub mod authorizer;
pub mod poke;
pub mod socket;
