//! Test support for the trusted-device workspace, kept out of the production crates.
//!
//! Only `[dev-dependencies]` (and the test tools in `tests/`) depend on this crate, so nothing
//! here is ever linked into a Lambda function or the local server.
//!
//! | module | what it is |
//! |---|---|
//! | [`conformance`] | the store conformance suite: every store trait method and condition, run against each adapter (`tests/conformance.rs` runs it on the embedded store and on DynamoDB) |
//! | [`dynamodb`] | [`dynamodb::LocalDynamo`]: a DynamoDB-compatible server (dynoxide) embedded on a free loopback port |

pub mod conformance;
pub mod dynamodb;
