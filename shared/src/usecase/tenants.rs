//! Tenants: who is calling (spec 2.1, 3.1), and how tenants are made (DESIGN 5).

pub use crate::tenant::{TENANT_CACHE_TTL, Tenant};

use crate::App;
use crate::domain::{AllowedOrigin, SigningKeyRecord, TenantId, TenantRecord, WebhookEndpoint};
use crate::encoding;
use crate::error::{Error, Result};
use crate::token::new_signing_key;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// How many web origins a tenant may allow (each request from a browser is compared with them).
pub const MAX_ALLOWED_ORIGINS: usize = 50;

/// A change to a tenant's approval settings; `None` leaves a setting as it is.
#[derive(Debug, Default, Clone)]
pub struct TenantSettingsChange {
    /// `Some(None)` removes the webhook.
    pub push_webhook: Option<Option<WebhookEndpoint>>,
    pub require_decision_signature: Option<bool>,
    /// The web origins allowed to call the Client API from a browser, replacing the list
    /// (empty: none).
    pub allowed_origins: Option<Vec<AllowedOrigin>>,
    /// `Some(None)` turns passkeys off; `Some(Some(..))` sets the relying party (issue #15).
    pub passkey: Option<Option<crate::domain::PasskeyConfig>>,
    /// Where events go (issue #19, DESIGN 10); `Some(None)` stops them.
    pub events_webhook: Option<Option<WebhookEndpoint>>,
    /// The pre-built UI's branding (issue #16), replacing it; `Some(None)` resets the defaults.
    pub ui: Option<Option<crate::domain::UiBranding>>,
}

/// An API secret key. It is printed once when created and never logged: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiSecret(String);

impl ApiSecret {
    /// Accepts an operator-chosen secret of at least 16 characters without whitespace.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() >= 16 && !text.chars().any(|c| c.is_whitespace() || c == ':') {
            Ok(ApiSecret(text.to_owned()))
        } else {
            Err(Error::invalid_request(
                "A secret key needs at least 16 characters and no whitespace or ':'.",
            ))
        }
    }

    /// Reveals the secret: only for printing it once to the operator who created it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored: hex SHA-256. Secrets are 256 random bits, so a fast hash is enough;
    /// there is nothing to brute-force.
    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }
}

impl std::fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiSecret(<redacted>)")
    }
}

fn hash_secret(secret: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}

impl App {
    /// The tenant named by client auth (tenant Basic, or a token's `kid`); `Unauthorized` if
    /// there is none. Cached for [`TENANT_CACHE_TTL`].
    pub async fn tenant_by_id(&self, id: &TenantId) -> Result<Arc<Tenant>> {
        let cached = self.tenants.tenant(id);
        if let Some(tenant) = &cached
            && !self.store.cheap_tenant_reads()
        {
            return Ok(tenant.clone());
        }
        // A cheap read says whether another process changed the tenant: a revoked secret or
        // rotated keys apply at once (DESIGN 5).
        let record = self
            .store
            .get_tenant(id)
            .await?
            .ok_or(Error::Unauthorized)?;
        self.tenant_from_record(&record, cached)
    }

    /// The tenant of a record just read, remembered. The cached tenant's parsed keys are
    /// reused while the record's revision is the one they were parsed from.
    fn tenant_from_record(
        &self,
        record: &TenantRecord,
        cached: Option<Arc<Tenant>>,
    ) -> Result<Arc<Tenant>> {
        if let Some(tenant) = cached
            && tenant.revision == record.revision
        {
            return Ok(tenant);
        }
        let tenant = Arc::new(Tenant::from_record(record, self.now())?);
        self.tenants.remember_tenant(tenant.clone());
        Ok(tenant)
    }

    /// The tenant whose API secret this is (spec 2.1); `Unauthorized` otherwise. The secret's
    /// hash finds the tenant; its accepted hashes are then compared in constant time.
    pub async fn tenant_by_secret(&self, secret: &str) -> Result<Arc<Tenant>> {
        let hash = hash_secret(secret);
        let tenant = match self.tenants.secret(&hash) {
            Some(id) => self.tenant_by_id(&id).await?,
            None => {
                // The index entry comes with its tenant's record (one read on DynamoDB).
                let record = self
                    .store
                    .find_tenant_by_secret_hash(&hash)
                    .await?
                    .ok_or(Error::Unauthorized)?;
                let tenant = self.tenant_from_record(&record, self.tenants.tenant(&record.id))?;
                self.tenants
                    .remember_secret(hash.clone(), tenant.id.clone());
                tenant
            }
        };
        let matches = tenant
            .secret_key_hashes
            .iter()
            .fold(subtle::Choice::from(0), |found, stored| {
                found | stored.as_bytes().ct_eq(hash.as_bytes())
            });
        if !bool::from(matches) {
            return Err(Error::Unauthorized);
        }
        Ok(tenant)
    }

    /// Creates a tenant with a random id (unless given) and a random secret, returned once.
    pub async fn create_tenant(&self, id: Option<TenantId>) -> Result<(TenantId, ApiSecret)> {
        let id = match id {
            Some(id) => id,
            None => TenantId::parse(self.random_uuid()?)?,
        };
        if self.store.get_tenant(&id).await?.is_some() {
            return Err(Error::invalid_request(format!(
                "Tenant {id} already exists."
            )));
        }
        let secret = ApiSecret(format!(
            "sk_{}",
            encoding::encode_url_safe(&self.random_bytes::<32>()?)
        ));
        self.insert_tenant(&id, &secret).await?;
        Ok((id, secret))
    }

    /// Creates the tenant, or makes `secret` its accepted secret, keeping its token keys so that
    /// tokens already issued stay valid: a secret already accepted changes nothing (a rotation
    /// in progress goes on), a new one replaces the accepted ones, and a revoked one is refused.
    /// Returns whether it was created.
    pub async fn ensure_tenant(&self, id: &TenantId, secret: &ApiSecret) -> Result<bool> {
        match self.store.get_tenant(id).await? {
            Some(existing) => self.accept_secret(&existing, secret).await.map(|()| false),
            None => self.insert_tenant(id, secret).await.map(|()| true),
        }
    }

    /// Sets a tenant's approval settings (the CLI's `tenant configure`). A webhook URL must
    /// pass the notifier's check (https, or http to localhost) and its secret must have at
    /// least 16 characters.
    pub async fn configure_tenant(
        &self,
        id: &TenantId,
        change: TenantSettingsChange,
    ) -> Result<()> {
        // Which destinations are acceptable is the notifier's policy (spec 2.11), for both.
        for (endpoint, which) in [
            (&change.push_webhook, "push"),
            (&change.events_webhook, "events"),
        ] {
            if let Some(Some(endpoint)) = endpoint {
                self.check_webhook(endpoint, which)?;
            }
        }
        let mut origins = None;
        if let Some(given) = &change.allowed_origins {
            let mut unique: Vec<AllowedOrigin> = Vec::with_capacity(given.len());
            for origin in given {
                if !unique.contains(origin) {
                    unique.push(origin.clone());
                }
            }
            if unique.len() > MAX_ALLOWED_ORIGINS {
                return Err(Error::invalid_request(format!(
                    "A tenant may allow at most {MAX_ALLOWED_ORIGINS} origins."
                )));
            }
            origins = Some(unique);
        }
        if let Some(Some(config)) = &change.passkey {
            // Refused here, with the reason, rather than when a request loads the tenant.
            crate::passkey::RelyingParty::new(config)?;
        }
        // Checked here, where the operator sees the reason (DESIGN 9).
        let ui = change
            .ui
            .clone()
            .map(|ui| ui.map(crate::domain::UiBranding::validated).transpose())
            .transpose()?;
        // Written over the revision read, so a rotation at the same time keeps its key
        // (DESIGN 5).
        self.change_tenant(id, |record| {
            if let Some(webhook) = &change.push_webhook {
                record.push_webhook = webhook.clone();
            }
            if let Some(webhook) = &change.events_webhook {
                record.events_webhook = webhook.clone();
            }
            if let Some(required) = change.require_decision_signature {
                record.require_decision_signature = required;
            }
            if let Some(origins) = &origins {
                record.allowed_origins = origins.clone();
            }
            if let Some(passkey) = &change.passkey {
                record.passkey = passkey.clone();
            }
            if let Some(ui) = &ui {
                record.ui = ui.clone();
            }
            Ok(())
        })
        .await
    }

    /// A webhook endpoint's destination passes the notifier's check and its secret is one.
    fn check_webhook(&self, endpoint: &WebhookEndpoint, which: &str) -> Result<()> {
        self.notifier
            .check_destination(endpoint)
            .map_err(|problem| {
                Error::invalid_request(format!("Invalid {which} webhook URL: {problem}."))
            })?;
        ApiSecret::parse(&endpoint.secret).map_err(|_| {
            Error::invalid_request(
                "A webhook secret needs at least 16 characters and no whitespace or ':'.",
            )
        })?;
        Ok(())
    }

    /// A random webhook signing secret, for the operator to give to the webhook endpoint.
    pub fn new_webhook_secret(&self) -> Result<String> {
        Ok(format!(
            "whsec_{}",
            encoding::encode_url_safe(&self.random_bytes::<32>()?)
        ))
    }

    pub async fn tenant_exists(&self, id: &TenantId) -> Result<bool> {
        Ok(self.store.get_tenant(id).await?.is_some())
    }

    /// Makes `secret` the accepted secret of the tenant `existing` was read from (see
    /// [`Self::ensure_tenant`]).
    async fn accept_secret(&self, existing: &TenantRecord, secret: &ApiSecret) -> Result<()> {
        let id = &existing.id;
        let hash = secret.hash();
        // A revoked secret never comes back (DESIGN 5): a server restarted with the
        // environment it had before a rotation must not re-accept the leaked secret.
        if existing.revoked_secret_key_hashes.contains(&hash) {
            return Err(Error::invalid_request(format!(
                "That secret key was revoked for tenant {id} (`tenant revoke-secret`); give \
                 its current secret key, or none."
            )));
        }
        // Already accepted (a restart, perhaps during a rotation): nothing changes.
        if existing.secret_key_hashes.contains(&hash) {
            return Ok(());
        }
        // A new secret: it replaces every accepted one, and the token keys stay. The change
        // reads the tenant again, under its revision's condition (DESIGN 5).
        let now = self.now();
        self.change_tenant(id, |existing| {
            existing.secret_key_hashes = vec![hash.clone()];
            existing.secret_key_created_at = [(hash.clone(), now)].into();
            Ok(())
        })
        .await
    }

    /// A new tenant with `secret` and a new signing key; refused if a tenant with revisions
    /// is stored under `id` already.
    async fn insert_tenant(&self, id: &TenantId, secret: &ApiSecret) -> Result<()> {
        let now = self.now();
        let record = TenantRecord {
            id: id.clone(),
            secret_key_hashes: vec![secret.hash()],
            secret_key_created_at: [(secret.hash(), now)].into(),
            revoked_secret_key_hashes: Vec::new(),
            signing_keys: vec![SigningKeyRecord {
                created_at: Some(now),
                ..new_signing_key(&self.rng)?
            }],
            created_at: now,
            revision: 1,
            push_webhook: None,
            events_webhook: None,
            require_decision_signature: false,
            allowed_origins: Vec::new(),
            passkey: None,
            ui: None,
        };
        // Revision 0 is "none stored": two creations at once cannot both write (DESIGN 5).
        if !self.store.replace_tenant(&record, 0).await? {
            return Err(Error::invalid_request(format!(
                "Tenant {id} already exists."
            )));
        }
        self.tenants.clear();
        Ok(())
    }
}
