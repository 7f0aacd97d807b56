//! Key rotation without downtime (issue #19, DESIGN 5), and what an operator may see of a
//! tenant (`tenant list`, `tenant show`): ids, settings, key ids and their times, never a
//! secret or a private key.
//!
//! Every change is read, changed, and written over the revision it was read at; when another
//! change came first it is redone on the newer record (at most [`CHANGE_ATTEMPTS`] times), so
//! two rotations at once both keep their keys.

use crate::App;
use crate::clock::Timestamp;
use crate::domain::{SessionConfig, SessionKeyRecord, SigningKeyRecord, TenantId, TenantRecord};
use crate::encoding;
use crate::error::{Error, Result};
use crate::usecase::approvals::PUSH_READ_NONCE_WINDOW_SECONDS;
use crate::usecase::tenants::ApiSecret;
use serde::Serialize;

/// How often a change is redone when other changes keep coming first.
pub const CHANGE_ATTEMPTS: usize = 5;

/// How many API secret keys a tenant may hold: the current one and, during a rotation, the
/// one it replaces (issue #19).
pub const MAX_SECRET_KEYS: usize = 2;

/// How many hex characters of a secret's SHA-256 name it (`tenant show`, `revoke-secret
/// --key-id`): 48 bits, plenty to tell a tenant's two keys apart, and nothing of the secret.
pub const SECRET_KEY_ID_LEN: usize = 12;

/// The id of the secret whose stored hash is `hash`.
pub fn secret_key_id(hash: &str) -> &str {
    hash.get(..SECRET_KEY_ID_LEN).unwrap_or(hash)
}

/// A secret key as the operator sees it: its id, never the secret or its whole hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyView {
    pub key_id: String,
    pub created_at: String,
}

/// A signing key as the operator sees it: its `kid` (as in a JWT header) and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyView {
    pub kid: String,
    /// Whether it signs new tokens (the newest); the others only verify until retired.
    pub signing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<String>,
}

/// A tenant's session settings as the operator sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsView {
    pub client_ids: Vec<String>,
    pub access_token_ttl_seconds: i64,
    pub refresh_token_ttl_seconds: i64,
    /// The ES256 keys of the JWKS.
    pub signing_keys: Vec<SigningKeyView>,
}

/// What `tenant show` prints (and `tenant list`, one per tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    pub tenant_id: String,
    pub created_at: String,
    pub revision: u64,
    pub secret_keys: Vec<SecretKeyView>,
    /// HS256 keys of the challenge tokens; each also seals challenge ids.
    pub token_signing_keys: Vec<SigningKeyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_webhook_url: Option<String>,
    pub require_decision_signature: bool,
    pub allowed_origins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passkey_rp_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passkey_origins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionsView>,
}

/// What `tenant rotate-keys` did: the new keys and when the ones they replace retire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedKeys {
    pub token_kid: String,
    /// When the replaced token key stops verifying.
    pub token_previous_retire_at: Timestamp,
    /// The new session key and the replaced one's retire time, when sessions are configured.
    pub session: Option<(String, Timestamp)>,
}

/// A secret made by `tenant rotate-secret`: shown once.
#[derive(Debug)]
pub struct RotatedSecret {
    pub key_id: String,
    pub secret: ApiSecret,
}

fn iso(at: Timestamp) -> String {
    at.to_iso8601()
}

fn signing_key_views(
    tenant: &TenantId,
    keys: impl Iterator<Item = (String, Option<Timestamp>, Option<Timestamp>)>,
) -> Vec<SigningKeyView> {
    keys.enumerate()
        .map(|(i, (kid, created_at, retire_at))| SigningKeyView {
            kid: format!("{tenant}.{kid}"),
            signing: i == 0,
            created_at: created_at.map(iso),
            retire_at: retire_at.map(iso),
        })
        .collect()
}

fn tenant_view(record: &TenantRecord, sessions: Option<&SessionConfig>) -> TenantView {
    TenantView {
        tenant_id: record.id.to_string(),
        created_at: iso(record.created_at),
        revision: record.revision,
        secret_keys: record
            .secret_key_hashes
            .iter()
            .map(|hash| SecretKeyView {
                key_id: secret_key_id(hash).to_owned(),
                created_at: iso(record
                    .secret_key_created_at
                    .get(hash)
                    .copied()
                    .unwrap_or(record.created_at)),
            })
            .collect(),
        token_signing_keys: signing_key_views(
            &record.id,
            record
                .signing_keys
                .iter()
                .map(|k| (k.kid.clone(), k.created_at, k.retire_at)),
        ),
        push_webhook_url: record.push_webhook.as_ref().map(|w| w.url.clone()),
        require_decision_signature: record.require_decision_signature,
        allowed_origins: record
            .allowed_origins
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect(),
        passkey_rp_id: record.passkey.as_ref().map(|p| p.rp_id.clone()),
        passkey_origins: record
            .passkey
            .as_ref()
            .map(|p| p.origins.clone())
            .unwrap_or_default(),
        sessions: sessions.map(|config| SessionsView {
            client_ids: config.client_ids.clone(),
            access_token_ttl_seconds: config.access_token_ttl_seconds,
            refresh_token_ttl_seconds: config.refresh_token_ttl_seconds,
            signing_keys: signing_key_views(
                &record.id,
                config
                    .signing_keys
                    .iter()
                    .map(|k| (k.kid.clone(), k.created_at, k.retire_at)),
            ),
        }),
    }
}

/// How the keys a rotation replaces retire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Once everything they signed has expired: no token stops working (the routine case).
    AfterUse,
    /// At once: a key that leaked. Everything it signed stops verifying now.
    Now,
}

/// Puts `new` first and gives every older key its retire time (`retire_at`, or its own
/// earlier one; `now` for all when revoking); drops the keys already retired at `now`
/// (DESIGN 5).
fn rotate_signing_keys(
    keys: &mut Vec<SigningKeyRecord>,
    mut new: SigningKeyRecord,
    now: Timestamp,
    retire_at: Timestamp,
) {
    keys.retain(|k| k.live_at(now));
    for key in keys.iter_mut() {
        key.retire_at = Some(key.retire_at.map_or(retire_at, |own| own.min(retire_at)));
    }
    new.created_at = Some(now);
    keys.insert(0, new);
}

impl App {
    /// The longest anything signed with a tenant's token keys stays valid: a token, a sealed
    /// challenge id, a push read nonce (two windows). A replaced key verifies this long
    /// after the rotation (DESIGN 5). The lifetimes are this process's settings: the CLI must
    /// see the same ones as the server (README, Configuration).
    pub fn longest_token_key_use_seconds(&self) -> i64 {
        self.settings
            .token_lifetime_seconds
            .max(self.settings.challenge_lifetime_seconds)
            .max(2 * PUSH_READ_NONCE_WINDOW_SECONDS)
    }

    /// Reads the tenant, applies `change`, and writes it over the revision it was read at,
    /// redoing it on the newer record when another change came first (DESIGN 5). Forgets the
    /// tenants this process cached, so that it honours the change at once.
    pub(crate) async fn change_tenant<T>(
        &self,
        id: &TenantId,
        mut change: impl FnMut(&mut TenantRecord) -> Result<T>,
    ) -> Result<T> {
        for _ in 0..CHANGE_ATTEMPTS {
            let mut record =
                self.store.get_tenant(id).await?.ok_or_else(|| {
                    Error::invalid_request(format!("Tenant {id} does not exist."))
                })?;
            let read_at = record.revision;
            let outcome = change(&mut record)?;
            record.revision = read_at + 1;
            if self.store.replace_tenant(&record, read_at).await? {
                self.tenants.clear();
                return Ok(outcome);
            }
        }
        Err(Error::StoreUnavailable)
    }

    /// As [`Self::change_tenant`], for the tenant's session settings (`None`: none yet).
    pub(crate) async fn change_session_config<T>(
        &self,
        id: &TenantId,
        mut change: impl FnMut(&mut Option<SessionConfig>) -> Result<T>,
    ) -> Result<T> {
        for _ in 0..CHANGE_ATTEMPTS {
            let mut config = self.store.get_session_config(id).await?;
            let read_at = config.as_ref().map_or(0, |c| c.revision);
            let outcome = change(&mut config)?;
            let Some(mut config) = config else {
                return Ok(outcome);
            };
            config.revision = read_at + 1;
            if self.store.replace_session_config(&config, read_at).await? {
                return Ok(outcome);
            }
        }
        Err(Error::StoreUnavailable)
    }

    /// `tenant show`: what the operator may see of a tenant.
    pub async fn show_tenant(&self, id: &TenantId) -> Result<TenantView> {
        let record = self
            .store
            .get_tenant(id)
            .await?
            .ok_or_else(|| Error::invalid_request(format!("Tenant {id} does not exist.")))?;
        let sessions = self.store.get_session_config(id).await?;
        Ok(tenant_view(&record, sessions.as_ref()))
    }

    /// `tenant list`: every tenant, by id.
    pub async fn list_tenants(&self) -> Result<Vec<TenantView>> {
        let mut views = Vec::new();
        for record in self.store.list_tenants().await? {
            let sessions = self.store.get_session_config(&record.id).await?;
            views.push(tenant_view(&record, sessions.as_ref()));
        }
        Ok(views)
    }

    /// `tenant rotate-secret`: a new API secret, accepted at once next to the current one,
    /// which stays valid until revoked. Refused when the tenant already holds
    /// [`MAX_SECRET_KEYS`]: the older one must be revoked first.
    pub async fn rotate_secret(&self, id: &TenantId) -> Result<RotatedSecret> {
        let now = self.now();
        self.change_tenant(id, |record| {
            if record.secret_key_hashes.len() >= MAX_SECRET_KEYS {
                let ids: Vec<&str> = record
                    .secret_key_hashes
                    .iter()
                    .map(|h| secret_key_id(h))
                    .collect();
                return Err(Error::invalid_request(format!(
                    "Tenant {id} already holds {MAX_SECRET_KEYS} secret keys ({}): revoke the old \
                     one with `tenant revoke-secret --key-id` first.",
                    ids.join(", ")
                )));
            }
            let secret = ApiSecret::parse(&format!(
                "sk_{}",
                encoding::encode_url_safe(&self.random_bytes::<32>()?)
            ))?;
            let hash = secret.hash();
            record.secret_key_hashes.insert(0, hash.clone());
            record.secret_key_created_at.insert(hash.clone(), now);
            Ok(RotatedSecret {
                key_id: secret_key_id(&hash).to_owned(),
                secret,
            })
        })
        .await
    }

    /// `tenant revoke-secret`: the secret named by its key id stops working (at once in this
    /// process, within [`crate::tenant::TENANT_CACHE_TTL`] on warm ones). The last one cannot
    /// be revoked: that would lock the tenant's backend out; rotate first.
    pub async fn revoke_secret(&self, id: &TenantId, key_id: &str) -> Result<()> {
        self.change_tenant(id, |record| {
            let position = record
                .secret_key_hashes
                .iter()
                .position(|h| secret_key_id(h) == key_id)
                .ok_or_else(|| {
                    Error::invalid_request(format!(
                        "Tenant {id} has no secret key with id {key_id:?} (`tenant show` lists them)."
                    ))
                })?;
            if record.secret_key_hashes.len() == 1 {
                return Err(Error::invalid_request(format!(
                    "Secret key {key_id} is tenant {id}'s only one: `tenant rotate-secret` first."
                )));
            }
            let hash = record.secret_key_hashes.remove(position);
            record.secret_key_created_at.remove(&hash);
            // Remembered, so that nothing re-accepts it (a restart with an old environment).
            record.revoked_secret_key_hashes.insert(0, hash);
            record
                .revoked_secret_key_hashes
                .truncate(crate::domain::MAX_REVOKED_SECRETS);
            Ok(())
        })
        .await
    }

    /// `tenant rotate-keys`: new token and session signing keys sign from now on; the ones
    /// they replace keep verifying until everything they signed has expired, then retire
    /// (DESIGN 5), or retire at once with [`Retirement::Now`]. The session keys rotate only
    /// when sessions are configured.
    pub async fn rotate_keys(&self, id: &TenantId, retirement: Retirement) -> Result<RotatedKeys> {
        let now = self.now();
        let token_retire_at = match retirement {
            Retirement::AfterUse => now.plus_seconds(self.longest_token_key_use_seconds()),
            Retirement::Now => now,
        };
        let token_kid = self
            .change_tenant(id, |record| {
                let new = crate::token::new_signing_key(&self.rng)?;
                let kid = format!("{id}.{}", new.kid);
                rotate_signing_keys(&mut record.signing_keys, new, now, token_retire_at);
                Ok(kid)
            })
            .await?;
        let session = self
            .change_session_config(id, |config| {
                let Some(config) = config.as_mut().filter(|c| !c.signing_keys.is_empty()) else {
                    return Ok(None);
                };
                let retire_at = rotate_session_keys(config, now, retirement, &self.rng)?;
                Ok(Some((
                    format!("{id}.{}", config.signing_keys[0].kid),
                    retire_at,
                )))
            })
            .await?;
        Ok(RotatedKeys {
            token_kid,
            token_previous_retire_at: token_retire_at,
            session,
        })
    }
}

/// Puts a new ES256 key first; the replaced one retires once the longest access token it
/// signed has expired; keys already retired are dropped (DESIGN 5). Returns that retire time.
pub(crate) fn rotate_session_keys(
    config: &mut SessionConfig,
    now: Timestamp,
    retirement: Retirement,
    rng: &dyn ring::rand::SecureRandom,
) -> Result<Timestamp> {
    let replaced_lifetime = config
        .signing_keys
        .first()
        .and_then(|k| k.longest_lifetime_seconds)
        .unwrap_or(0)
        .max(config.access_token_ttl_seconds);
    let retire_at = match retirement {
        Retirement::AfterUse => now.plus_seconds(replaced_lifetime),
        Retirement::Now => now,
    };
    config.signing_keys.retain(|k| k.live_at(now));
    for key in config.signing_keys.iter_mut() {
        key.retire_at = Some(key.retire_at.map_or(retire_at, |own| own.min(retire_at)));
    }
    let new = SessionKeyRecord {
        created_at: Some(now),
        longest_lifetime_seconds: Some(config.access_token_ttl_seconds),
        ..crate::session_token::new_session_key(rng)?
    };
    config.signing_keys.insert(0, new);
    Ok(retire_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn key(kid: &str, retire_at: Option<Timestamp>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            secret: "c2VjcmV0".into(),
            created_at: None,
            retire_at,
        }
    }

    /// A rotation retires the replaced key at the given time and drops keys already retired;
    /// a key retired earlier keeps its own time.
    #[test]
    fn rotation_retires_the_replaced_key_and_drops_retired_ones() {
        let mut keys = vec![
            key("b", None),
            key("a", Some(NOW.plus_seconds(30))),
            key("gone", Some(NOW)),
        ];
        rotate_signing_keys(&mut keys, key("c", None), NOW, NOW.plus_seconds(600));
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["c", "b", "a"]);
        assert_eq!(keys[0].created_at, Some(NOW));
        assert_eq!(keys[0].retire_at, None);
        assert_eq!(keys[1].retire_at, Some(NOW.plus_seconds(600)));
        assert_eq!(keys[2].retire_at, Some(NOW.plus_seconds(30)));
    }

    /// The session key replaced retires after the longest TTL it signed with, even when the
    /// TTL was lowered since.
    #[test]
    fn a_session_key_retires_after_the_longest_ttl_it_signed_with() {
        let rng = ring::rand::SystemRandom::new();
        let mut old = crate::session_token::new_session_key(&rng).unwrap();
        old.longest_lifetime_seconds = Some(3600);
        let mut config = SessionConfig {
            tenant_id: TenantId::parse("acme").unwrap(),
            client_ids: vec!["web".into()],
            access_token_ttl_seconds: 60,
            refresh_token_ttl_seconds: 600,
            signing_keys: vec![old.clone()],
            revision: 0,
        };
        let retire_at = rotate_session_keys(&mut config, NOW, Retirement::AfterUse, &rng).unwrap();
        assert_eq!(retire_at, NOW.plus_seconds(3600));
        assert_eq!(config.signing_keys.len(), 2);
        assert_eq!(config.signing_keys[1].kid, old.kid);
        assert_eq!(config.signing_keys[1].retire_at, Some(retire_at));
        assert_eq!(config.signing_keys[0].longest_lifetime_seconds, Some(60));
    }

    #[test]
    fn a_secret_key_id_is_a_prefix_of_the_hash_only() {
        let hash = "0123456789abcdef0123";
        assert_eq!(secret_key_id(hash), "0123456789ab");
        assert_eq!(secret_key_id("abc"), "abc");
    }
}
