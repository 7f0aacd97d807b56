//! The crate every trusted-device function shares.
//!
//! A request flows top to bottom through these modules:
//!
//! | module | what it is |
//! |---|---|
//! | [`http`] | auth extractors (secret Basic, tenant Basic, Bearer), the JSON body and path extractors, error responses, logging, path normalisation |
//! | [`usecase`] | one method on [`App`] per operation: `track`, `add_credential`, `start_challenge`, `verify_challenge`, `validate`, ... |
//! | [`domain`] | validated identifiers, records, states, the track policy (rules configs, precedence) and the data points rules read |
//! | [`rules`] | a small JSON-Logic validator and evaluator (with our `ip_in_cidr`) for rule conditions |
//! | [`token`] | JWT issue and verify (HS256 pinned, per-tenant keys with `kid`) |
//! | [`signature`] | P-256 ECDSA verification and strict SPKI parsing |
//! | [`encoding`] | base64, strict by default and lenient where the spec says clients differ |
//! | [`store`] | the storage traits and both adapters: DynamoDB, and embedded SQLite (feature `embedded`, not in the Lambda functions) |
//! | [`clock`] | injected time |
//! | [`config`], [`telemetry`] | settings read once; one JSON or text log line per request |
//! | `lambda` (feature `lambda`) | the Lambda entry point the four functions share |
//! | [`error`] | every failure a caller can see, mapped to HTTP in one place |
//! | [`webhook`] | the `push.created` webhook: envelope, `X-Signature-V2`, delivery |
//!
//! The wire contract is `../shared/spec/wire-protocol.md` ("spec" in comments); the
//! architecture is `../shared/DESIGN.md`.

pub mod app;
pub mod clock;
pub mod config;
pub mod domain;
pub mod encoding;
pub mod error;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(test)]
mod parser_properties;
pub mod rules;
pub mod signature;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod usecase;
pub mod webhook;

pub use app::App;
pub use error::{Error, Result};
