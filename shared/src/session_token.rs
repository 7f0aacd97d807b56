//! Session access tokens (spec 2.8, issue #20): ES256 JWTs that other services verify offline
//! with the tenant's public keys (the JWKS route), and the opaque refresh tokens.
//!
//! The algorithm is pinned to ES256 and never read from the token. The header's `kid` is
//! `"<tenantId>.<keyId>"`. Claims: `iss` ([`issuer`]), `sub` (user id), `aud` (the client id),
//! `iat`, `exp`, `jti` (random), and ours: `sid` (the session), `act` (the action code of the
//! challenge the session came from) and `vm` (its verification method, when known). All of
//! `iss`, `sub`, `aud`, `iat`, `exp` are required; expiry is checked against the injected clock.

use crate::clock::Timestamp;
use crate::domain::{SessionConfig, SessionKeyRecord, TenantId, VerificationMethod};
use crate::encoding;
use crate::error::Error;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// How far in the future `iat` may be before a token is refused (clock skew between hosts).
const MAX_IAT_SKEW_SECONDS: i64 = 60;

/// The prefix of refresh tokens: `rt1.` then 32 random bytes, base64url.
pub const REFRESH_TOKEN_PREFIX: &str = "rt1.";

/// The `iss` of a tenant's access tokens.
pub fn issuer(tenant: &TenantId) -> String {
    format!("urn:trusted-device:tenant:{tenant}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sid: String,
    pub act: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VerificationMethod>,
}

/// A new P-256 key pair for a tenant's access tokens.
pub fn new_session_key(rng: &dyn ring::rand::SecureRandom) -> Result<SessionKeyRecord, Error> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| Error::Internal)?;
    let mut kid = [0u8; 6];
    rng.fill(&mut kid).map_err(|_| Error::Internal)?;
    Ok(SessionKeyRecord {
        kid: hex::encode(kid),
        pkcs8: encoding::encode_standard(pkcs8.as_ref()),
        created_at: None,
        longest_lifetime_seconds: None,
        retire_at: None,
    })
}

/// One tenant's session keys at one time, parsed: the newest signs, all that are not retired
/// then verify and are published (DESIGN 5).
pub struct SessionKeys {
    tenant_id: TenantId,
    signing: Option<(String, EncodingKey)>,
    verifying: Vec<(String, DecodingKey)>,
    jwks: Vec<serde_json::Value>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("tenant_id", &self.tenant_id)
            .field("keys", &self.verifying.len())
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    pub fn new(config: &SessionConfig, now: Timestamp) -> Result<Self, Error> {
        let rng = ring::rand::SystemRandom::new();
        let mut signing = None;
        let mut verifying = Vec::new();
        let mut jwks = Vec::new();
        // A retired key is left out: neither published nor trusted (DESIGN 5).
        for record in config.signing_keys.iter().filter(|k| k.live_at(now)) {
            let der = encoding::decode_standard(&record.pkcs8).ok_or(Error::Internal)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                .map_err(|_| Error::Internal)?;
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(Error::Internal);
            }
            let x = encoding::encode_url_safe(&point[1..33]);
            let y = encoding::encode_url_safe(&point[33..65]);
            let kid = format!("{}.{}", config.tenant_id, record.kid);
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| Error::Internal)?;
            if signing.is_none() {
                signing = Some((kid.clone(), EncodingKey::from_ec_der(&der)));
            }
            jwks.push(serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": x, "y": y,
                "kid": kid, "use": "sig", "alg": "ES256",
            }));
            verifying.push((kid, decoding));
        }
        Ok(SessionKeys {
            tenant_id: config.tenant_id.clone(),
            signing,
            verifying,
            jwks,
        })
    }

    /// The JSON Web Key Set of RFC 7517: `{keys: [...]}`, public parts only.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.jwks })
    }

    pub fn issue(&self, claims: &AccessClaims) -> Result<String, Error> {
        let (kid, key) = self.signing.as_ref().ok_or(Error::SessionsNotConfigured)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).map_err(|_| Error::Internal)
    }

    /// Verifies an access token: pinned ES256, a known `kid` of this tenant, `iss` of this
    /// tenant, the required claims, signature. Expiry is checked against `now` unless
    /// `allow_expired` (revoking an expired token is harmless and answered as done).
    pub fn verify(
        &self,
        token: &str,
        now: Timestamp,
        allow_expired: bool,
    ) -> Result<AccessClaims, Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken)?;
        if header.alg != Algorithm::ES256 {
            return Err(Error::InvalidToken);
        }
        let kid = header.kid.ok_or(Error::InvalidToken)?;
        let (_, key) = self
            .verifying
            .iter()
            .find(|(candidate, _)| *candidate == kid)
            .ok_or(Error::InvalidToken)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256];
        validation.set_issuer(&[issuer(&self.tenant_id)]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "sub", "iss"]);
        // The audience (client id) is checked by the caller against the tenant's client ids.
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map_err(|_| Error::InvalidToken)?
            .claims;
        let now_seconds = now.unix_seconds();
        if claims.iat > now_seconds + MAX_IAT_SKEW_SECONDS {
            return Err(Error::InvalidToken);
        }
        if !allow_expired && claims.exp <= now_seconds {
            return Err(Error::ExpiredToken);
        }
        Ok(claims)
    }
}

/// Hex SHA-256 of a refresh token: what the store keeps and looks it up by.
pub fn refresh_token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tenant: &str) -> SessionConfig {
        let rng = ring::rand::SystemRandom::new();
        SessionConfig {
            tenant_id: TenantId::parse(tenant).unwrap(),
            client_ids: vec!["web".into()],
            access_token_ttl_seconds: 60,
            refresh_token_ttl_seconds: 600,
            signing_keys: vec![new_session_key(&rng).unwrap()],
            revision: 0,
        }
    }

    fn claims(tenant: &str, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: issuer(&TenantId::parse(tenant).unwrap()),
            sub: "alice".into(),
            aud: "web".into(),
            iat: 1000,
            exp,
            jti: "j".into(),
            sid: "s".into(),
            act: "signIn".into(),
            vm: Some(VerificationMethod::Device),
        }
    }

    #[test]
    fn a_token_verifies_with_its_keys_and_the_jwks_has_the_kid() {
        let keys = SessionKeys::new(&config("acme"), Timestamp(1)).unwrap();
        let token = keys.issue(&claims("acme", 2000)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"][0]["kid"], header.kid.unwrap().as_str());
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
        assert!(jwks["keys"][0].get("d").is_none());
        let verified = keys
            .verify(&token, Timestamp::from_unix_seconds(1500), false)
            .unwrap();
        assert_eq!(verified, claims("acme", 2000));
    }

    #[test]
    fn expired_tampered_other_tenant_and_other_algorithms_are_refused() {
        let keys = SessionKeys::new(&config("acme"), Timestamp(1)).unwrap();
        let token = keys.issue(&claims("acme", 2000)).unwrap();
        assert_eq!(
            keys.verify(&token, Timestamp::from_unix_seconds(2000), false),
            Err(Error::ExpiredToken)
        );
        assert!(
            keys.verify(&token, Timestamp::from_unix_seconds(2000), true)
                .is_ok()
        );
        // Another tenant's keys (another kid, another issuer).
        let other = SessionKeys::new(&config("other"), Timestamp(1)).unwrap();
        let foreign = other.issue(&claims("other", 2000)).unwrap();
        assert_eq!(
            keys.verify(&foreign, Timestamp::from_unix_seconds(1500), false),
            Err(Error::InvalidToken)
        );
        // A changed payload.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = encoding::encode_url_safe(
            serde_json::to_string(&claims("acme", 9999))
                .unwrap()
                .as_bytes(),
        );
        assert_eq!(
            keys.verify(&parts.join("."), Timestamp::from_unix_seconds(1500), false),
            Err(Error::InvalidToken)
        );
        // HS256 with the same kid (algorithm confusion) and alg none.
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = header.kid.clone();
        let forged = jsonwebtoken::encode(
            &hs,
            &claims("acme", 2000),
            &EncodingKey::from_secret(b"secret").unwrap(),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&forged, Timestamp::from_unix_seconds(1500), false),
            Err(Error::InvalidToken)
        );
        let none = format!(
            "{}.{}.",
            encoding::encode_url_safe(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(
            keys.verify(&none, Timestamp::from_unix_seconds(1500), false),
            Err(Error::InvalidToken)
        );
    }
}
