//! Everything that runs through the local stack and the emulator, in one
//! test binary: each file here used to link the AWS SDKs into a binary of
//! its own (18 × 114 MB in a debug build, and a link step each).
//! `logs.rs` stays apart because it owns the process's log subscriber.

mod auth;
mod bad_input;
mod client_sync;
mod conformance;
mod console;
mod delivery;
mod emulator;
mod faults;
mod holes;
mod iam;
mod idempotency;
mod janitor;
mod limits;
mod media;
mod media_urls;
mod meter;
mod migration;
mod notify;
mod presign_botocore;
mod purge;
mod quotas;
mod realtime;
mod restart;
mod security;
mod spaces;
mod stream_batches;
mod sync;
mod upload;
