//! The use cases' tests, one module per use case (`shared::usecase::*`), on the test kit of
//! the `testkit` crate: an app on the in-memory store with a manual clock and a recording
//! notifier, and devices that sign as the SDKs do. One binary, so the kit is built once.
//!
//! They see only the public API; the few tests that need a private step stay unit tests in
//! their module (e.g. `usecase::approvals`).

mod action_configs;
mod approvals;
mod challenges;
mod credentials;
mod passkeys;
mod qr_socket;
mod sessions;
mod tenants;
mod track;
mod users;
mod validate;

/// What most modules use.
mod prelude {
    pub use shared::domain::*;
    pub use shared::error::Error;
}
