//! Real parts for tests (feature `test-support`): a local Lambda Runtime API.
//!
//! The DynamoDB-compatible server lives with the DynamoDB adapter
//! ([`crate::store::dynamodb::local`]).

pub mod runtime_api;
