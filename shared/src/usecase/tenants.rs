//! Tenants: who is calling (spec 2.1, 3.1), and how tenants are made (DESIGN 5).

pub use crate::tenant::{TENANT_CACHE_TTL, Tenant};

use crate::App;
use crate::domain::{AllowedOrigin, TenantId, TenantRecord, WebhookEndpoint};
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
        if let Some(tenant) = self.tenants.tenant(id) {
            return Ok(tenant);
        }
        let record = self
            .store
            .get_tenant(id)
            .await?
            .ok_or(Error::Unauthorized)?;
        let tenant = Arc::new(Tenant::from_record(&record)?);
        self.tenants.remember_tenant(tenant.clone());
        Ok(tenant)
    }

    /// The tenant whose API secret this is (spec 2.1); `Unauthorized` otherwise. The secret's
    /// hash finds the tenant; its accepted hashes are then compared in constant time.
    pub async fn tenant_by_secret(&self, secret: &str) -> Result<Arc<Tenant>> {
        let hash = hash_secret(secret);
        let id = match self.tenants.secret(&hash) {
            Some(id) => id,
            None => {
                let id = self
                    .store
                    .find_tenant_by_secret_hash(&hash)
                    .await?
                    .ok_or(Error::Unauthorized)?;
                self.tenants.remember_secret(hash.clone(), id.clone());
                id
            }
        };
        let tenant = self.tenant_by_id(&id).await?;
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
        self.put_tenant_with_secret(&id, &secret).await?;
        Ok((id, secret))
    }

    /// Creates the tenant, or replaces its accepted secret with `secret`, keeping its token
    /// keys so that tokens already issued stay valid. Returns whether it was created.
    pub async fn ensure_tenant(&self, id: &TenantId, secret: &ApiSecret) -> Result<bool> {
        let existed = self.store.get_tenant(id).await?.is_some();
        self.put_tenant_with_secret(id, secret).await?;
        Ok(!existed)
    }

    /// Sets a tenant's approval settings (the CLI's `tenant configure`). A webhook URL must
    /// pass the notifier's check (https, or http to localhost) and its secret must have at
    /// least 16 characters.
    pub async fn configure_tenant(
        &self,
        id: &TenantId,
        change: TenantSettingsChange,
    ) -> Result<()> {
        let mut record = self
            .store
            .get_tenant(id)
            .await?
            .ok_or_else(|| Error::invalid_request(format!("Tenant {id} does not exist.")))?;
        if let Some(webhook) = change.push_webhook {
            if let Some(endpoint) = &webhook {
                // Which destinations are acceptable is the notifier's policy (spec 2.11).
                self.notifier
                    .check_destination(endpoint)
                    .map_err(|problem| {
                        Error::invalid_request(format!("Invalid push webhook URL: {problem}."))
                    })?;
                ApiSecret::parse(&endpoint.secret).map_err(|_| {
                    Error::invalid_request(
                        "A webhook secret needs at least 16 characters and no whitespace or ':'.",
                    )
                })?;
            }
            record.push_webhook = webhook;
        }
        if let Some(required) = change.require_decision_signature {
            record.require_decision_signature = required;
        }
        if let Some(origins) = change.allowed_origins {
            let mut unique: Vec<AllowedOrigin> = Vec::with_capacity(origins.len());
            for origin in origins {
                if !unique.contains(&origin) {
                    unique.push(origin);
                }
            }
            if unique.len() > MAX_ALLOWED_ORIGINS {
                return Err(Error::invalid_request(format!(
                    "A tenant may allow at most {MAX_ALLOWED_ORIGINS} origins."
                )));
            }
            record.allowed_origins = unique;
        }
        if let Some(passkey) = change.passkey {
            if let Some(config) = &passkey {
                // Refused here, with the reason, rather than when a request loads the tenant.
                crate::passkey::RelyingParty::new(config)?;
            }
            record.passkey = passkey;
        }
        if let Some(ui) = change.ui {
            // Checked here, where the operator sees the reason (DESIGN 9).
            record.ui = ui.map(crate::domain::UiBranding::validated).transpose()?;
        }
        self.store.put_tenant(&record).await?;
        self.tenants.clear();
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

    async fn put_tenant_with_secret(&self, id: &TenantId, secret: &ApiSecret) -> Result<()> {
        let record = match self.store.get_tenant(id).await? {
            Some(mut existing) => {
                existing.secret_key_hashes = vec![secret.hash()];
                existing
            }
            None => TenantRecord {
                id: id.clone(),
                secret_key_hashes: vec![secret.hash()],
                signing_keys: vec![new_signing_key(&self.rng)?],
                created_at: self.now(),
                push_webhook: None,
                require_decision_signature: false,
                allowed_origins: Vec::new(),
                passkey: None,
                ui: None,
            },
        };
        self.store.put_tenant(&record).await?;
        self.tenants.clear();
        Ok(())
    }
}
