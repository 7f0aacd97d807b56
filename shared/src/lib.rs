//! The crate every trusted-device function shares.
//!
//! A request flows top to bottom through these modules:
//!
//! | module | what it is |
//! |---|---|
//! | [`http`] | auth extractors (secret Basic, tenant Basic, Bearer), the JSON body and path extractors, logging, path normalisation; [`routes!`] declares a function's routes once; [`http::error`] maps every failure to HTTP, once |
//! | [`usecase`] | one method on [`App`] per operation: `track`, `add_credential`, `start_challenge`, `verify_challenge`, `validate`, ...; free of HTTP |
//! | [`app`] | [`App`] and its [`Ports`]: the store, the clock and the notifier, built by the composition roots (`lambda`, the local server and CLI in `infra`, tests) and handed in |
//! | [`tenant`] | a tenant resolved for requests, and the cache the app keeps them in |
//! | [`domain`] | validated identifiers, records, states, the track policy (rules configs, precedence) and the data points rules read |
//! | [`error`] | the domain error: every failed check a use case can report (no HTTP in it) |
//! | [`rules`] | a small JSON-Logic validator and evaluator (with our `ip_in_cidr`) for rule conditions |
//! | [`token`] | JWT issue and verify (HS256 pinned, per-tenant keys with `kid`) |
//! | [`session_token`] | session access tokens (ES256 pinned, per-tenant keys with `kid`, published as a JWKS) and refresh-token hashes |
//! | [`signature`] | P-256 ECDSA verification and strict SPKI parsing |
//! | [`encoding`] | base64, strict by default and lenient where the spec says clients differ |
//! | [`store`] | the storage port and both adapters: DynamoDB, and embedded SQLite (feature `embedded`, not in the Lambda functions) |
//! | [`clock`] | the time port: the system clock, and a manual one for tests |
//! | [`notify`] | the notification port the use cases call (`push.created`, and vetting a destination) |
//! | [`webhook`] | its adapter: the `push.created` envelope, `X-Signature-V2`, delivery, the URL policy (spec 2.11) |
//! | [`config`], [`telemetry`] | settings read once; one JSON or text log line per request |
//! | [`metric`] | every metric's name, and the one function per signal the HTTP layer, the use cases and the store adapters record through (the `metrics` facade; DESIGN 11) |
//! | `lambda` (feature `lambda`) | the Lambda entry point the functions share, and their composition root |
//! | [`aws_tls`] | the HTTPS client of the functions' AWS SDK clients, trusting only Amazon Trust Services' roots (a cheaper cold start) |
//! | `sockets_aws` (feature `sockets-aws`) | the socket port's adapter on AWS: QR-code states pushed to API Gateway WebSocket connections (`PostToConnection`) |
//! | [`websocket`] | the QR-code WebSocket protocol (spec 3.8): handshake, messages, limits; the socket port that pushes to an open socket, and its in-process adapter |
//!
//! Dependencies point down the table's layers: `http` and the composition roots use
//! `usecase`, whose methods are on [`App`]; `app` knows the ports and never a use case module
//! or an adapter.
//!
//! The wire contract is `docs/wire-protocol.md` ("spec N.N" in comments); the architecture is
//! `docs/design.md` ("DESIGN N"). `infra/scripts/check-spec-citations.sh` checks that every
//! section cited exists.

pub mod app;
pub mod aws_tls;
pub mod clock;
pub mod config;
pub mod domain;
pub mod encoding;
pub mod error;
pub mod events;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metric;
pub mod notify;
pub mod openapi;
#[cfg(test)]
mod parser_properties;
pub mod passkey;
pub mod rules;
pub mod session_token;
pub mod signature;
#[cfg(feature = "sockets-aws")]
pub mod sockets_aws;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod token;
pub mod usecase;
pub mod webhook;
pub mod websocket;

pub use app::{App, Ports};
pub use error::{Error, Result};
