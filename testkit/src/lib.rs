//! Test support for the trusted-device workspace, kept out of the production crates.
//!
//! Only `[dev-dependencies]` (and the test tools in `tests/`) depend on this crate, so nothing
//! here is ever linked into a Lambda function or the local server.

pub mod runtime_api;
