//! Real parts for tests (feature `test-support`): a local Lambda Runtime API.
//!
//! The DynamoDB-compatible server for tests is `testkit::dynamodb::LocalDynamo`.

pub mod runtime_api;
