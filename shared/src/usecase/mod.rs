//! The use cases: one method on [`crate::App`] per operation, free of HTTP.
//!
//! They return the domain [`crate::Error`] (the http layer maps it to the wire, spec 1.3) and
//! reach the outside only through the app's ports: the store, the clock, and the
//! [`crate::notify::Notifier`] (never the webhook adapter itself).
//!
//! | module | operations (spec section) |
//! |---|---|
//! | [`tenants`] | resolve a tenant from a secret key or id (through the app's cache), create and configure tenants (2.1, 3.1, DESIGN 5) |
//! | [`keys`] | rotate and revoke API secrets, rotate token and session signing keys; the operator's view of tenants (issue #19, DESIGN 5) |
//! | [`track`] | track, get, update and query actions (2.3, 2.5); the rules decide the state (7) |
//! | [`action_configs`] | save, read, list and delete rules configs (7; our extension routes) |
//! | [`users`] | user attributes and the authenticators admin (2.6, 2.7) |
//! | [`credentials`] | add, get and remove device credentials (3.4.1 to 3.4.3) |
//! | [`challenges`] | start a challenge and verify a device signature (3.4.4) |
//! | [`approvals`] | push and QR-code approval, push credential update (3.4.5 to 3.4.7): `push`, `qr_code`, `answer`, `push_credential` |
//! | [`qr_socket`] | QR codes over the WebSocket: handshake, create, states pushed (3.8) |
//! | [`query_users`] | query users by email, phone number, username or token (2.6) |
//! | [`sessions`] | create, validate, refresh and revoke sessions; the JWKS; session settings (2.8) |
//! | [`passkeys`] | passkey registration and sign-in (3.5, issue #15) |
//! | [`ui`] | what the pre-built UI shows for a track token (issue #16) |
//! | [`validate`] | validate a token for the backend (2.4) |
//! | [`limits`] | rate limits on the writes that need no secret and no token, and the one rule for a device signature: verify, then count a failure (DESIGN 6) |

pub mod action_configs;
pub mod approvals;
pub mod challenges;
pub mod credentials;
pub mod keys;
pub mod limits;
pub mod passkeys;
pub mod qr_socket;
pub mod query_users;
pub mod sessions;
pub mod tenants;
pub mod track;
pub mod ui;
pub mod users;
pub mod validate;
