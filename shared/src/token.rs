//! Tokens: the JWT a track returns and a verify hands back for `/validate` (spec 5), and the
//! sealed challenge ids of the in-app flow.
//!
//! HS256 only, pinned: the algorithm is never taken from the token. Each tenant has its own
//! signing keys; the header's `kid` is `"<tenantId>.<keyId>"`, used only to pick the key to
//! verify with. `aud` is the tenant id and must match, and `sub`, `iat`, `exp` and `aud` are
//! required. Expiry is checked against the injected clock, not the system time, so tests can
//! move time.

use crate::clock::Timestamp;
use crate::domain::{
    ActionCode, ActionKey, Challenge, ChallengeId, ChallengeTarget, IdempotencyKey,
    SigningKeyRecord, TenantId, UserId,
};
use crate::encoding;
use crate::error::Error;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Tokens last 10 minutes (spec 5: "valid for 10 minutes").
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: i64 = 600;

/// How far in the future `iat` may be before a token is refused (clock skew between hosts).
const MAX_IAT_SKEW_SECONDS: i64 = 60;

/// The JWT payload as the SDKs type it (spec 5, react-native `TokenPayload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// A random id, so that no two tokens are alike even for the same action and second.
    #[serde(default)]
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub other: OtherClaims,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherClaims {
    pub tenant_id: String,
    pub user_id: String,
    pub action_code: String,
    pub idempotency_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Ours: where the pre-built UI returns to (track's `redirectUrl`, issue #16). Signed with
    /// the rest, so the page can only ever redirect where the backend said (docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// Ours: track's `redirectToSettings` (spec 2.3, issue #16): the pre-built UI shows the
    /// user's authenticators after the challenge, and only such a token may remove one there
    /// (docs/security.md). Signed, so the page cannot grant it to itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_to_settings: bool,
    /// Ours: the issue time in milliseconds, in a settings token only: a removal in settings
    /// needs a challenge completed after it, which `iat`'s whole seconds cannot tell within
    /// the second (docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<i64>,
}

/// A token that verified: its claims, parsed into domain types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub tenant_id: TenantId,
    pub action: ActionKey,
    pub scopes: Vec<String>,
    /// Track's `redirectUrl`, when the backend gave one (the pre-built UI's only target).
    pub redirect_url: Option<String>,
    /// Track's `redirectToSettings`: the pre-built UI's settings screen (issue #16).
    pub redirect_to_settings: bool,
    /// When the token was issued: to the millisecond for a settings token, else `iat`'s whole
    /// seconds.
    pub issued_at: Timestamp,
}

impl VerifiedToken {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// What to put in a new token.
pub struct TokenRequest<'a> {
    pub action: &'a ActionKey,
    pub scope: Option<&'a str>,
    pub username: Option<&'a str>,
    pub jti: &'a str,
    /// Track's `redirectUrl` (issue #16); `None` for every other token.
    pub redirect_url: Option<&'a str>,
    /// Track's `redirectToSettings` (issue #16); `false` for every other token.
    pub redirect_to_settings: bool,
}

/// One tenant's keys, parsed once: the newest signs, all verify.
pub struct TenantKeys {
    tenant_id: TenantId,
    signing_kid: String,
    signing_key: EncodingKey,
    /// Each key's `kid`, key, and the time from which it no longer verifies (DESIGN 5).
    verifying: Vec<(String, DecodingKey, Option<Timestamp>)>,
    validation: Validation,
    /// HMAC keys for challenge ids, derived from the signing keys (newest first).
    challenge_keys: Vec<ring::hmac::Key>,
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKeys")
            .field("tenant_id", &self.tenant_id)
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

impl TenantKeys {
    pub fn new(tenant_id: &TenantId, keys: &[SigningKeyRecord]) -> Result<Self, Error> {
        let mut verifying = Vec::with_capacity(keys.len());
        let mut challenge_keys = Vec::with_capacity(keys.len());
        let mut signing = None;
        for record in keys {
            let secret = encoding::decode_standard(&record.secret).ok_or(Error::Internal)?;
            challenge_keys.push(challenge_key(&secret));
            let kid = format!("{tenant_id}.{}", record.kid);
            if signing.is_none() {
                let key = EncodingKey::from_secret(&secret).map_err(|_| Error::Internal)?;
                signing = Some((kid.clone(), key));
            }
            let key = DecodingKey::from_secret(&secret).map_err(|_| Error::Internal)?;
            verifying.push((kid, key, record.retire_at));
        }
        let (signing_kid, signing_key) = signing.ok_or(Error::Internal)?;

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_audience(&[tenant_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "sub"]);
        // Expiry is checked against the injected clock in `verify`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;

        Ok(TenantKeys {
            tenant_id: tenant_id.clone(),
            signing_kid,
            signing_key,
            verifying,
            validation,
            challenge_keys,
        })
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }

    /// Issues a token bound to the tenant, user, action and idempotency key (DESIGN 6).
    pub fn issue(
        &self,
        request: TokenRequest<'_>,
        now: Timestamp,
        lifetime_seconds: i64,
    ) -> String {
        let iat = now.unix_seconds();
        let claims = TokenClaims {
            sub: request.action.user_id.to_string(),
            aud: self.tenant_id.to_string(),
            iat,
            exp: iat + lifetime_seconds,
            jti: request.jti.to_owned(),
            scope: request
                .scope
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned),
            other: OtherClaims {
                tenant_id: self.tenant_id.to_string(),
                user_id: request.action.user_id.to_string(),
                action_code: request.action.action_code.to_string(),
                idempotency_key: request.action.idempotency_key.to_string(),
                username: request.username.map(str::to_owned),
                redirect_url: request.redirect_url.map(str::to_owned),
                redirect_to_settings: request.redirect_to_settings,
                issued_at_ms: request.redirect_to_settings.then_some(now.0),
            },
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        // Serialising these claims with an HMAC key cannot fail.
        jsonwebtoken::encode(&header, &claims, &self.signing_key).unwrap_or_default()
    }

    /// Verifies a token: pinned HS256, a known `kid` of this tenant that is not retired at
    /// `now` (DESIGN 5), `aud` = this tenant, required claims present, `other` consistent
    /// with `sub`/`aud`, not expired at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedToken, Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken)?;
        if header.alg != Algorithm::HS256 {
            return Err(Error::InvalidToken);
        }
        let kid = header.kid.ok_or(Error::InvalidToken)?;
        let (_, key, _) = self
            .verifying
            .iter()
            .find(|(candidate, _, retire_at)| {
                *candidate == kid && retire_at.is_none_or(|retire| now < retire)
            })
            .ok_or(Error::InvalidToken)?;
        let data = jsonwebtoken::decode::<TokenClaims>(token, key, &self.validation)
            .map_err(|_| Error::InvalidToken)?;
        let claims = data.claims;

        if claims.other.tenant_id != self.tenant_id.as_str() || claims.other.user_id != claims.sub {
            return Err(Error::InvalidToken);
        }
        let now_seconds = now.unix_seconds();
        if claims.iat > now_seconds + MAX_IAT_SKEW_SECONDS {
            return Err(Error::InvalidToken);
        }
        if claims.exp <= now_seconds {
            return Err(Error::ExpiredToken);
        }
        let action = ActionKey {
            user_id: UserId::parse(claims.sub).map_err(|_| Error::InvalidToken)?,
            action_code: ActionCode::parse(claims.other.action_code)
                .map_err(|_| Error::InvalidToken)?,
            idempotency_key: IdempotencyKey::parse(claims.other.idempotency_key)
                .map_err(|_| Error::InvalidToken)?,
        };
        Ok(VerifiedToken {
            tenant_id: self.tenant_id.clone(),
            action,
            scopes: claims
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            redirect_url: claims.other.redirect_url,
            redirect_to_settings: claims.other.redirect_to_settings,
            issued_at: claims
                .other
                .issued_at_ms
                .map_or(Timestamp::from_unix_seconds(claims.iat), Timestamp),
        })
    }
}

/// What a sealed challenge id carries. Short keys: the id travels in every verify call.
#[derive(Serialize, Deserialize)]
struct ChallengePayload {
    /// Tenant.
    t: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// 128 random bits, hex: makes every id unique and unguessable.
    r: String,
    /// Issued at, Unix milliseconds, and this process's issue sequence number: where the
    /// challenge stands among its user's ([`ChallengeOrder`]). Absent (0) in challenges
    /// sealed before they were added.
    #[serde(default)]
    i: i64,
    #[serde(default)]
    s: u64,
    /// Tracked action (user, code, idempotency key), or the code alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// Attestation nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    /// Purpose, when not a verify: `pu` for a push credential update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    /// The fingerprint of the key a push credential update is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<String>,
}

const CHALLENGE_PREFIX: &str = "c1.";
/// The purpose mark of a push-credential-update challenge.
const PUSH_UPDATE: &str = "pu";

/// The challenge MAC key is derived, so it never equals a JWT key (no cross-use).
fn challenge_key(secret: &[u8]) -> ring::hmac::Key {
    let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let derived = ring::hmac::sign(&derive, b"trusted-device/challenge-id/v1");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
}

impl TenantKeys {
    /// Seals a challenge into its id: `c1.<payload>.<HMAC-SHA256>`, base64url.
    ///
    /// Nothing is stored when a challenge starts; the id itself proves, when it comes back,
    /// that this tenant issued it, for what, and until when. Single use is enforced by the
    /// store's mark written when it is used (DESIGN 4, 6).
    pub fn seal_challenge(
        &self,
        target: &ChallengeTarget,
        nonce: Option<String>,
        issued_at: Timestamp,
        sequence: u64,
        expires_at: Timestamp,
        random: [u8; 16],
    ) -> Result<Challenge, Error> {
        let (u, c, k) = match target {
            ChallengeTarget::TrackedAction(key) => (
                Some(key.user_id.to_string()),
                Some(key.action_code.to_string()),
                Some(key.idempotency_key.to_string()),
            ),
            ChallengeTarget::NewAction(code) => (None, Some(code.to_string()), None),
            ChallengeTarget::Unbound | ChallengeTarget::PushCredentialUpdate { .. } => {
                (None, None, None)
            }
        };
        let (p, f) = match target {
            ChallengeTarget::PushCredentialUpdate { key_fingerprint } => {
                (Some(PUSH_UPDATE.to_owned()), Some(key_fingerprint.clone()))
            }
            _ => (None, None),
        };
        let payload = ChallengePayload {
            t: self.tenant_id.to_string(),
            e: expires_at.unix_seconds(),
            r: hex::encode(random),
            i: issued_at.0,
            s: sequence,
            u,
            c,
            k,
            n: nonce.clone(),
            p,
            f,
        };
        let json = serde_json::to_vec(&payload).map_err(|_| Error::Internal)?;
        let signed = format!("{CHALLENGE_PREFIX}{}", encoding::encode_url_safe(&json));
        let tag = ring::hmac::sign(&self.challenge_keys[0], signed.as_bytes());
        let id = ChallengeId::parse(format!(
            "{signed}.{}",
            encoding::encode_url_safe(tag.as_ref())
        ))
        .map_err(|_| Error::invalid_request("The challenge is too large (user id too long)."))?;
        Ok(Challenge {
            tenant_id: self.tenant_id.clone(),
            id,
            target: target.clone(),
            nonce,
            expires_at: Timestamp::from_unix_seconds(payload.e),
            issued_at: Timestamp(payload.i),
            sequence: payload.s,
        })
    }

    /// The message a push credential signs to read its pending challenge with the custom
    /// data (spec 3.4.5): a MAC over the key's fingerprint and a time window, so nothing is
    /// stored and it goes stale by itself. The input cannot collide with a sealed challenge
    /// (those start with `c1.`).
    pub fn push_read_nonce(&self, fingerprint: &str, window: i64) -> String {
        self.push_read_nonces(fingerprint, window)
            .next()
            .unwrap_or_default()
    }

    /// [`Self::push_read_nonce`] under every key, newest first (key rotation).
    pub fn push_read_nonces<'a>(
        &'a self,
        fingerprint: &'a str,
        window: i64,
    ) -> impl Iterator<Item = String> + 'a {
        self.challenge_keys.iter().map(move |key| {
            let tag = ring::hmac::sign(
                key,
                format!("push-read-nonce/v1|{fingerprint}|{window}").as_bytes(),
            );
            encoding::encode_url_safe(tag.as_ref())
        })
    }

    /// Opens a challenge id sealed by this tenant. A forged, altered or other tenant's id is
    /// `ChallengeNotFound`: to this tenant it does not exist. Expiry is the caller's check.
    pub fn open_challenge(&self, id: &ChallengeId) -> Result<Challenge, Error> {
        let (signed, tag) = id
            .as_str()
            .rsplit_once('.')
            .ok_or(Error::ChallengeNotFound)?;
        let tag = encoding::decode_lenient(tag).ok_or(Error::ChallengeNotFound)?;
        let authentic = self
            .challenge_keys
            .iter()
            .any(|key| ring::hmac::verify(key, signed.as_bytes(), &tag).is_ok());
        if !authentic {
            return Err(Error::ChallengeNotFound);
        }
        let json = signed
            .strip_prefix(CHALLENGE_PREFIX)
            .and_then(encoding::decode_lenient)
            .ok_or(Error::ChallengeNotFound)?;
        let payload: ChallengePayload =
            serde_json::from_slice(&json).map_err(|_| Error::ChallengeNotFound)?;
        if payload.t != self.tenant_id.as_str() {
            return Err(Error::ChallengeNotFound);
        }
        let target = match (payload.u, payload.c, payload.k) {
            _ if payload.p.as_deref() == Some(PUSH_UPDATE) => match payload.f {
                Some(key_fingerprint) => ChallengeTarget::PushCredentialUpdate { key_fingerprint },
                // Sealed before updates were bound to their key (minutes before a release).
                None => return Err(Error::ChallengeNotFound),
            },
            _ if payload.p.is_some() || payload.f.is_some() => {
                return Err(Error::ChallengeNotFound);
            }
            (Some(u), Some(c), Some(k)) => ChallengeTarget::TrackedAction(ActionKey {
                user_id: UserId::parse(u)?,
                action_code: ActionCode::parse(c)?,
                idempotency_key: IdempotencyKey::parse(k)?,
            }),
            (None, Some(c), None) => ChallengeTarget::NewAction(ActionCode::parse(c)?),
            (None, None, None) => ChallengeTarget::Unbound,
            _ => return Err(Error::ChallengeNotFound),
        };
        Ok(Challenge {
            tenant_id: self.tenant_id.clone(),
            id: id.clone(),
            target,
            nonce: payload.n,
            expires_at: Timestamp::from_unix_seconds(payload.e),
            issued_at: Timestamp(payload.i),
            sequence: payload.s,
        })
    }
}

/// The tenant a token claims to belong to, read from its header's `kid` without verifying
/// anything. Used only to choose which tenant's keys to verify with.
pub fn claimed_tenant(token: &str) -> Option<TenantId> {
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    let (tenant, _) = kid.split_once('.')?;
    TenantId::parse(tenant).ok()
}

/// A fresh random signing key record.
pub fn new_signing_key(rng: &dyn ring::rand::SecureRandom) -> Result<SigningKeyRecord, Error> {
    let mut secret = [0u8; 32];
    rng.fill(&mut secret).map_err(|_| Error::Internal)?;
    let mut kid = [0u8; 6];
    rng.fill(&mut kid).map_err(|_| Error::Internal)?;
    Ok(SigningKeyRecord {
        kid: hex::encode(kid),
        secret: encoding::encode_standard(&secret),
        created_at: None,
        retire_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn keys_for(tenant: &str, secret_byte: u8) -> TenantKeys {
        let record = SigningKeyRecord {
            kid: "k1".into(),
            secret: encoding::encode_standard(&[secret_byte; 32]),
            created_at: None,
            retire_at: None,
        };
        TenantKeys::new(&TenantId::parse(tenant).unwrap(), &[record]).unwrap()
    }

    fn action() -> ActionKey {
        ActionKey {
            user_id: UserId::parse("user-1").unwrap(),
            action_code: ActionCode::parse("signIn").unwrap(),
            idempotency_key: IdempotencyKey::parse("idem-1").unwrap(),
        }
    }

    fn issue(keys: &TenantKeys, now: Timestamp) -> String {
        keys.issue(
            TokenRequest {
                redirect_url: None,
                redirect_to_settings: false,
                action: &action(),
                scope: Some("add:authenticators read:authenticators"),
                username: None,
                jti: "jti-1",
            },
            now,
            DEFAULT_TOKEN_LIFETIME_SECONDS,
        )
    }

    fn payload(token: &str) -> serde_json::Value {
        let middle = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(middle).unwrap()).unwrap()
    }

    /// Replaces the payload and keeps the old signature: a tampered token.
    fn swap_payload(token: &str, payload: &serde_json::Value) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
        parts.join(".")
    }

    #[test]
    fn issued_token_has_the_spec_claims_and_verifies() {
        let keys = keys_for("tenant-a", 1);
        let token = issue(&keys, NOW);
        let claims = payload(&token);
        assert_eq!(claims["sub"], "user-1");
        assert_eq!(claims["aud"], "tenant-a");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            600
        );
        assert_eq!(claims["scope"], "add:authenticators read:authenticators");
        assert_eq!(claims["other"]["tenantId"], "tenant-a");
        assert_eq!(claims["other"]["userId"], "user-1");
        assert_eq!(claims["other"]["actionCode"], "signIn");
        assert_eq!(claims["other"]["idempotencyKey"], "idem-1");

        let verified = keys.verify(&token, NOW.plus_seconds(599)).unwrap();
        assert_eq!(verified.action, action());
        assert!(verified.has_scope("add:authenticators"));
        assert!(!verified.has_scope("remove:authenticators"));
        assert_eq!(claimed_tenant(&token).unwrap().as_str(), "tenant-a");
    }

    #[test]
    fn redirect_to_settings_is_signed_in_only_when_asked_for() {
        let keys = keys_for("tenant-a", 1);
        let plain = issue(&keys, NOW);
        assert!(payload(&plain)["other"].get("redirectToSettings").is_none());
        assert!(!keys.verify(&plain, NOW).unwrap().redirect_to_settings);

        let settings = keys.issue(
            TokenRequest {
                redirect_url: None,
                redirect_to_settings: true,
                action: &action(),
                scope: None,
                username: None,
                jti: "jti-2",
            },
            NOW,
            DEFAULT_TOKEN_LIFETIME_SECONDS,
        );
        assert_eq!(payload(&settings)["other"]["redirectToSettings"], true);
        assert!(keys.verify(&settings, NOW).unwrap().redirect_to_settings);
        // Granting it to a plain token breaks the signature.
        let mut claims = payload(&plain);
        claims["other"]["redirectToSettings"] = serde_json::Value::Bool(true);
        assert_eq!(
            keys.verify(&swap_payload(&plain, &claims), NOW),
            Err(Error::InvalidToken)
        );
    }

    #[test]
    fn expired_token_is_expired_token() {
        let keys = keys_for("tenant-a", 1);
        let token = issue(&keys, NOW);
        assert_eq!(
            keys.verify(&token, NOW.plus_seconds(600)),
            Err(Error::ExpiredToken)
        );
    }

    #[test]
    fn token_from_the_future_is_refused() {
        let keys = keys_for("tenant-a", 1);
        let token = issue(&keys, NOW.plus_seconds(3600));
        assert_eq!(keys.verify(&token, NOW), Err(Error::InvalidToken));
    }

    #[test]
    fn wrong_key_is_refused() {
        let token = issue(&keys_for("tenant-a", 1), NOW);
        assert_eq!(
            keys_for("tenant-a", 2).verify(&token, NOW),
            Err(Error::InvalidToken)
        );
    }

    #[test]
    fn other_tenant_is_refused_even_with_the_same_key_material() {
        let token = issue(&keys_for("tenant-a", 1), NOW);
        assert_eq!(
            keys_for("tenant-b", 1).verify(&token, NOW),
            Err(Error::InvalidToken)
        );
    }

    /// Signs arbitrary claims with tenant-a's real key and kid: what an insider or a bug in
    /// another issuer could produce. The checks after the signature must still refuse them.
    fn signed_with_real_key(claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("tenant-a.k1".into());
        let key = EncodingKey::from_secret(&[1u8; 32]).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn good_claims() -> serde_json::Value {
        let now = NOW.unix_seconds();
        serde_json::json!({
            "sub": "user-1", "aud": "tenant-a", "iat": now, "exp": now + 600, "jti": "j",
            "other": {"tenantId": "tenant-a", "userId": "user-1", "actionCode": "signIn", "idempotencyKey": "idem-1"}
        })
    }

    #[test]
    fn claims_are_checked_after_the_signature() {
        let keys = keys_for("tenant-a", 1);
        // The control: correctly signed good claims verify, so the refusals below are due to
        // the claim each one changes.
        assert!(
            keys.verify(&signed_with_real_key(good_claims()), NOW)
                .is_ok()
        );

        type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
        let mutations: Vec<(&str, Mutation)> = vec![
            ("wrong aud", Box::new(|c| c["aud"] = "tenant-b".into())),
            (
                "other.userId differs from sub",
                Box::new(|c| c["other"]["userId"] = "user-2".into()),
            ),
            (
                "other.tenantId differs",
                Box::new(|c| c["other"]["tenantId"] = "tenant-b".into()),
            ),
            (
                "no iat",
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("iat");
                }),
            ),
            (
                "no exp",
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
            (
                "no sub",
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
            ),
            (
                "no aud",
                Box::new(|c| {
                    c.as_object_mut().unwrap().remove("aud");
                }),
            ),
            (
                "invalid action code",
                Box::new(|c| c["other"]["actionCode"] = "sign in".into()),
            ),
        ];
        for (what, mutate) in mutations {
            let mut claims = good_claims();
            mutate(&mut claims);
            assert_eq!(
                keys.verify(&signed_with_real_key(claims), NOW),
                Err(Error::InvalidToken),
                "{what}"
            );
        }
    }

    #[test]
    fn a_kid_of_another_tenant_is_refused() {
        let token = issue(&keys_for("tenant-b", 1), NOW);
        assert_eq!(
            keys_for("tenant-a", 1).verify(&token, NOW),
            Err(Error::InvalidToken)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = keys_for("tenant-a", 1);
        let token = issue(&keys, NOW);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"tenant-a.k1"}"#);
        let body = token.split('.').nth(1).unwrap();
        for forged in [format!("{header}.{body}."), format!("{header}.{body}")] {
            assert_eq!(keys.verify(&forged, NOW), Err(Error::InvalidToken));
        }
    }

    #[test]
    fn tampered_payload_is_refused() {
        let keys = keys_for("tenant-a", 1);
        let token = issue(&keys, NOW);
        let mut claims = payload(&token);
        claims["sub"] = "user-2".into();
        claims["other"]["userId"] = "user-2".into();
        assert_eq!(
            keys.verify(&swap_payload(&token, &claims), NOW),
            Err(Error::InvalidToken)
        );

        let mut claims = payload(&token);
        claims["exp"] = (claims["exp"].as_i64().unwrap() + 3600).into();
        assert_eq!(
            keys.verify(&swap_payload(&token, &claims), NOW),
            Err(Error::InvalidToken)
        );
    }

    #[test]
    fn garbage_is_refused() {
        let keys = keys_for("tenant-a", 1);
        for garbage in ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.xx"] {
            assert_eq!(
                keys.verify(garbage, NOW),
                Err(Error::InvalidToken),
                "{garbage}"
            );
        }
    }

    #[test]
    fn challenges_round_trip_and_refuse_forgery_and_other_tenants() {
        let keys = keys_for("tenant-a", 1);
        let targets = [
            ChallengeTarget::TrackedAction(action()),
            ChallengeTarget::NewAction(ActionCode::parse("pay").unwrap()),
            ChallengeTarget::Unbound,
            ChallengeTarget::PushCredentialUpdate {
                key_fingerprint: "ab".repeat(32),
            },
        ];
        for target in targets {
            let sealed = keys
                .seal_challenge(&target, Some("nonce".into()), NOW, 0, NOW, [7; 16])
                .unwrap();
            let opened = keys.open_challenge(&sealed.id).unwrap();
            assert_eq!(opened, sealed);
            assert_eq!(opened.target, target);
        }
        let sealed = keys
            .seal_challenge(&ChallengeTarget::Unbound, None, NOW, 0, NOW, [1; 16])
            .unwrap();
        // Another tenant, or another key of the same tenant name, cannot open it.
        assert_eq!(
            keys_for("tenant-b", 1).open_challenge(&sealed.id),
            Err(Error::ChallengeNotFound)
        );
        assert_eq!(
            keys_for("tenant-a", 2).open_challenge(&sealed.id),
            Err(Error::ChallengeNotFound)
        );
        // A changed payload (a later expiry) breaks the MAC.
        let (_, rest) = sealed.id.as_str().split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let forged_payload =
            encoding::encode_url_safe(br#"{"t":"tenant-a","e":99999999999,"r":"00"}"#);
        let forged = ChallengeId::parse(format!("c1.{forged_payload}.{tag}")).unwrap();
        assert_eq!(keys.open_challenge(&forged), Err(Error::ChallengeNotFound));
        // Different random bits give different ids.
        let other = keys
            .seal_challenge(&ChallengeTarget::Unbound, None, NOW, 0, NOW, [2; 16])
            .unwrap();
        assert_ne!(other.id, sealed.id);
    }

    #[test]
    fn rotated_keys_still_verify_old_tokens() {
        let tenant = TenantId::parse("tenant-a").unwrap();
        let old = SigningKeyRecord {
            kid: "old".into(),
            secret: encoding::encode_standard(&[1; 32]),
            created_at: None,
            retire_at: None,
        };
        let new = SigningKeyRecord {
            kid: "new".into(),
            secret: encoding::encode_standard(&[2; 32]),
            created_at: None,
            retire_at: None,
        };
        let before = TenantKeys::new(&tenant, std::slice::from_ref(&old)).unwrap();
        let after = TenantKeys::new(&tenant, &[new, old]).unwrap();
        let old_token = issue(&before, NOW);
        assert!(after.verify(&old_token, NOW).is_ok());
        let new_token = issue(&after, NOW);
        assert!(
            jsonwebtoken::decode_header(&new_token)
                .unwrap()
                .kid
                .unwrap()
                .ends_with(".new")
        );
    }

    /// A key with a retire time verifies its tokens until then and never after, even a token
    /// that has not expired yet (DESIGN 5).
    #[test]
    fn a_retired_key_verifies_nothing() {
        let tenant = TenantId::parse("tenant-a").unwrap();
        let old = SigningKeyRecord {
            kid: "old".into(),
            secret: encoding::encode_standard(&[1; 32]),
            created_at: None,
            retire_at: None,
        };
        let token = issue(
            &TenantKeys::new(&tenant, std::slice::from_ref(&old)).unwrap(),
            NOW,
        );
        let retired = SigningKeyRecord {
            retire_at: Some(NOW.plus_seconds(300)),
            ..old
        };
        let new = SigningKeyRecord {
            kid: "new".into(),
            secret: encoding::encode_standard(&[2; 32]),
            created_at: Some(NOW),
            retire_at: None,
        };
        let after = TenantKeys::new(&tenant, &[new, retired]).unwrap();
        assert!(after.verify(&token, NOW.plus_seconds(299)).is_ok());
        assert_eq!(
            after.verify(&token, NOW.plus_seconds(300)),
            Err(Error::InvalidToken)
        );
    }
}
