//! A tenant resolved for requests, and the cache that keeps it between requests.
//!
//! Here rather than in [`crate::usecase::tenants`] because [`crate::App`] owns the cache: the
//! app sits below the use cases, which are its methods, so it must not import from them.

use crate::clock::Timestamp;
use crate::domain::{AllowedOrigin, TenantId, TenantRecord, WebhookEndpoint};
use crate::error::Result;
use crate::token::TenantKeys;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a tenant read from the store is reused. Every request needs its tenant; caching
/// it spares a warm request a store read. A secret revoked (or keys rotated) by another
/// process takes effect on a warm Lambda instance within this time; the process that made the
/// change, and a local server on the embedded store, honour it at once (DESIGN 5).
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(60);

/// A tenant resolved for one request, with its token keys parsed.
#[derive(Debug)]
pub struct Tenant {
    pub id: TenantId,
    /// The record's revision it was made from (DESIGN 5).
    pub revision: u64,
    pub keys: TenantKeys,
    /// Hex SHA-256 of each accepted API secret.
    pub(crate) secret_key_hashes: Vec<String>,
    /// Where `push.created` goes, if anywhere (spec 2.11).
    pub push_webhook: Option<WebhookEndpoint>,
    /// Where the tenant's events go, if anywhere (issue #19, DESIGN 10).
    pub events_webhook: Option<WebhookEndpoint>,
    /// Approvals need a `decisionSignature` (ours, DESIGN 6).
    pub require_decision_signature: bool,
    /// The web origins whose pages may call the Client API (CORS, DESIGN 9).
    pub allowed_origins: Vec<AllowedOrigin>,
    /// The tenant's WebAuthn relying party, built once (issue #15); none: no passkeys.
    pub passkeys: Option<crate::passkey::RelyingParty>,
    /// How the pre-built UI looks for this tenant (issue #16).
    pub ui: crate::domain::UiBranding,
}

impl Tenant {
    /// Whether a browser page on `origin` may act for this tenant (DESIGN 9): one of its
    /// allowed origins, matched exactly.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|allowed| allowed.matches(origin))
    }

    /// The relying party, or `PasskeysNotConfigured`.
    pub fn relying_party(&self) -> Result<&crate::passkey::RelyingParty> {
        self.passkeys
            .as_ref()
            .ok_or(crate::error::Error::PasskeysNotConfigured)
    }

    /// The tenant of a stored record at `now`, its token keys parsed. Keys retired by then
    /// are left out, so a challenge id they sealed no longer opens either (DESIGN 5); the
    /// signing key (the first) is never retired.
    pub fn from_record(record: &TenantRecord, now: Timestamp) -> Result<Tenant> {
        let live: Vec<_> = record
            .signing_keys
            .iter()
            .enumerate()
            .filter(|(i, k)| *i == 0 || k.live_at(now))
            .map(|(_, k)| k.clone())
            .collect();
        Ok(Tenant {
            id: record.id.clone(),
            revision: record.revision,
            keys: TenantKeys::new(&record.id, &live)?,
            secret_key_hashes: record.secret_key_hashes.clone(),
            push_webhook: record.push_webhook.clone(),
            events_webhook: record.events_webhook.clone(),
            require_decision_signature: record.require_decision_signature,
            allowed_origins: record.allowed_origins.clone(),
            passkeys: record
                .passkey
                .as_ref()
                .map(crate::passkey::RelyingParty::new)
                .transpose()?,
            ui: record.ui.clone().unwrap_or_default(),
        })
    }
}

/// Tenants (with parsed keys) and secret-hash lookups, kept for [`TENANT_CACHE_TTL`].
#[derive(Default)]
pub struct TenantCache {
    by_id: Mutex<HashMap<TenantId, (Arc<Tenant>, Instant)>>,
    by_secret_hash: Mutex<HashMap<String, (TenantId, Instant)>>,
}

/// Whether an entry remembered `at` is still fresh at `now`.
fn fresh(at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(at) < TENANT_CACHE_TTL
}

impl TenantCache {
    pub fn tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        self.tenant_at(id, Instant::now())
    }

    fn tenant_at(&self, id: &TenantId, now: Instant) -> Option<Arc<Tenant>> {
        let map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|(_, at)| fresh(*at, now))
            .map(|(t, _)| t.clone())
    }

    pub fn secret(&self, hash: &str) -> Option<TenantId> {
        self.secret_at(hash, Instant::now())
    }

    fn secret_at(&self, hash: &str, now: Instant) -> Option<TenantId> {
        let map = self
            .by_secret_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(hash)
            .filter(|(_, at)| fresh(*at, now))
            .map(|(id, _)| id.clone())
    }

    pub fn remember_tenant(&self, tenant: Arc<Tenant>) {
        self.remember_tenant_at(tenant, Instant::now());
    }

    fn remember_tenant_at(&self, tenant: Arc<Tenant>, now: Instant) {
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, at)| fresh(*at, now));
        map.insert(tenant.id.clone(), (tenant, now));
    }

    pub fn remember_secret(&self, hash: String, id: TenantId) {
        self.remember_secret_at(hash, id, Instant::now());
    }

    fn remember_secret_at(&self, hash: String, id: TenantId, now: Instant) {
        let mut map = self
            .by_secret_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, at)| fresh(*at, now));
        map.insert(hash, (id, now));
    }

    /// Forgets everything: after this process changed a tenant.
    pub fn clear(&self) {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.by_secret_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::new_signing_key;

    fn tenant(id: &str) -> Arc<Tenant> {
        let id = TenantId::parse(id).unwrap();
        let key = new_signing_key(&ring::rand::SystemRandom::new()).unwrap();
        Arc::new(Tenant {
            keys: TenantKeys::new(&id, &[key]).unwrap(),
            id,
            revision: 0,
            secret_key_hashes: Vec::new(),
            push_webhook: None,
            events_webhook: None,
            require_decision_signature: false,
            allowed_origins: Vec::new(),
            passkeys: None,
            ui: Default::default(),
        })
    }

    /// A cached tenant and secret lookup are reused for less than [`TENANT_CACHE_TTL`] and
    /// never after: a rotated secret stops working on a warm process within that time.
    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TenantCache::default();
        let t0 = Instant::now();
        let acme = tenant("acme");
        cache.remember_tenant_at(acme.clone(), t0);
        cache.remember_secret_at("hash".into(), acme.id.clone(), t0);

        let almost = t0 + TENANT_CACHE_TTL - Duration::from_millis(1);
        assert!(cache.tenant_at(&acme.id, almost).is_some());
        assert_eq!(cache.secret_at("hash", almost), Some(acme.id.clone()));

        let expired = t0 + TENANT_CACHE_TTL;
        assert!(cache.tenant_at(&acme.id, expired).is_none());
        assert_eq!(cache.secret_at("hash", expired), None);
    }

    /// Remembering a new entry drops the expired ones, so the cache does not grow with
    /// tenants that are no longer asked for.
    #[test]
    fn expired_entries_are_dropped_when_a_new_one_is_remembered() {
        let cache = TenantCache::default();
        let t0 = Instant::now();
        cache.remember_tenant_at(tenant("old"), t0);
        cache.remember_secret_at("old".into(), TenantId::parse("old").unwrap(), t0);
        let later = t0 + TENANT_CACHE_TTL;
        cache.remember_tenant_at(tenant("new"), later);
        cache.remember_secret_at("new".into(), TenantId::parse("new").unwrap(), later);
        assert_eq!(cache.by_id.lock().unwrap().len(), 1);
        assert_eq!(cache.by_secret_hash.lock().unwrap().len(), 1);
        assert!(
            cache
                .tenant_at(&TenantId::parse("new").unwrap(), later)
                .is_some()
        );
    }

    #[test]
    fn clear_forgets_everything() {
        let cache = TenantCache::default();
        let acme = tenant("acme");
        cache.remember_tenant(acme.clone());
        cache.remember_secret("hash".into(), acme.id.clone());
        cache.clear();
        assert!(cache.tenant(&acme.id).is_none());
        assert!(cache.secret("hash").is_none());
    }
}
