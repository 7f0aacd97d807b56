//! Test support for the trusted-device workspace, kept out of the production crates.
//!
//! Only `[dev-dependencies]` (and the test tools in `tests/`) depend on this crate, so nothing
//! here is ever linked into a Lambda function or the local server.
//!
//! | module | what it is |
//! |---|---|
//! | [`usecase`] | [`usecase::Kit`]: an app on the in-memory store with a manual clock, a tenant; [`usecase::Device`]: a P-256 key that signs as the SDKs do |
//! | [`notify`] | [`notify::RecordingNotifier`]: the notifier port, recorded, and failing on demand |
//! | [`conformance`] | the store conformance suite: every store trait method and condition, run against each adapter (`tests/conformance.rs` runs it on the embedded store and on DynamoDB) |
//! | [`dynamodb`] | [`dynamodb::LocalDynamo`]: a DynamoDB-compatible server (dynoxide) embedded on a free loopback port |
//! | [`runtime_api`] | [`runtime_api::RuntimeApi`]: a Lambda Runtime API double that feeds events to a function binary and records its answers |
//! | [`tls`] | a test certificate authority (`openssl`) and a TLS front on a free loopback port |
//! | [`app`] | an [`shared::App`] on a given store and clock, with the real webhook notifier: the set-up of the tests, benches and tools |

pub mod conformance;
pub mod conformance_keys;
pub mod conformance_sessions;
pub mod dynamodb;
pub mod notify;
pub mod runtime_api;
pub mod soft_passkey;
pub mod tls;
pub mod usecase;

use shared::clock::Clock;
use shared::config::Settings;
use shared::store::Store;
use shared::webhook::WebhookNotifier;
use shared::{App, Ports};
use std::sync::Arc;

/// An app on `store` and `clock` with `settings`, and the webhook notifier those settings
/// configure: the app the tests, benches and load tool build. The composition roots
/// (`shared::lambda`, the local server in `infra`) build their own on purpose.
pub fn app(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: Settings) -> App {
    App::new(
        Ports {
            store,
            clock,
            notifier: Arc::new(WebhookNotifier::for_settings(&settings)),
        },
        settings,
    )
}
