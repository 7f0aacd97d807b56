//! [`App`]: the store, the clock and the settings that every use case needs, built once.

use crate::clock::{Clock, Timestamp};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::usecase::tenants::TenantCache;
use crate::webhook::{HttpWebhookSender, WebhookSender};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;

/// The service: one per process, shared by every request. Use cases are its methods, in
/// [`crate::usecase`].
pub struct App {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) rng: SystemRandom,
    pub(crate) tenants: TenantCache,
    pub(crate) webhooks: Arc<dyn WebhookSender>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        App {
            store,
            clock,
            settings,
            rng: SystemRandom::new(),
            tenants: TenantCache::default(),
            webhooks: Arc::new(HttpWebhookSender::default()),
        }
    }

    /// Replaces how webhooks are sent (tests of failure paths).
    pub fn with_webhook_sender(mut self, sender: Arc<dyn WebhookSender>) -> Self {
        self.webhooks = sender;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn random_bytes<const N: usize>(&self) -> Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.rng.fill(&mut bytes).map_err(|_| Error::Internal)?;
        Ok(bytes)
    }

    /// A random version-4 UUID, the format of generated ids (spec 2.3 examples), hyphenated
    /// and lowercase. The bytes come from ring; the `uuid` crate sets the version and variant
    /// bits and formats it.
    pub(crate) fn random_uuid(&self) -> Result<String> {
        let bytes: [u8; 16] = self.random_bytes()?;
        Ok(uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string())
    }
}
