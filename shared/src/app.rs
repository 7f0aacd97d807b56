//! [`App`]: the ports (store, clock, notifier), the settings and the tenant cache that every
//! use case needs, built once.
//!
//! The app builds no adapter itself: the composition roots (`shared::lambda::app_from_env`
//! for the Lambda functions, the local server and CLI in `infra`, and the tests) build them
//! and hand them in as [`Ports`].

use crate::clock::{Clock, Timestamp};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::store::Store;
use crate::tenant::TenantCache;
use crate::websocket::{NoSockets, SocketNotifier};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;

/// The adapters the use cases work through.
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// `push.created` and the destinations it may go to (spec 2.11).
    pub notifier: Arc<dyn Notifier>,
}

/// The service: one per process, shared by every request. Use cases are its methods, in
/// [`crate::usecase`].
pub struct App {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) settings: Settings,
    pub(crate) rng: SystemRandom,
    pub(crate) tenants: TenantCache,
    /// Where QR-code states are pushed (spec 3.8): in process on the local server, API
    /// Gateway's `PostToConnection` on AWS, nowhere by default. Not one of [`Ports`]: only the
    /// composition roots that serve QR codes over a WebSocket set it
    /// ([`App::with_socket_notifier`]).
    pub(crate) sockets: Arc<dyn SocketNotifier>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(ports: Ports, settings: Settings) -> Self {
        let Ports {
            store,
            clock,
            notifier,
        } = ports;
        App {
            store,
            clock,
            notifier,
            settings,
            rng: SystemRandom::new(),
            tenants: TenantCache::default(),
            sockets: Arc::new(NoSockets),
        }
    }

    /// Sets how QR-code states reach open WebSockets (spec 3.8).
    pub fn with_socket_notifier(mut self, sockets: Arc<dyn SocketNotifier>) -> Self {
        self.set_socket_notifier(sockets);
        self
    }

    /// [`App::with_socket_notifier`] in place.
    pub fn set_socket_notifier(&mut self, sockets: Arc<dyn SocketNotifier>) {
        self.sockets = sockets;
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
        Ok(crate::encoding::uuid_v4(bytes))
    }
}
