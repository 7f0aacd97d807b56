//! A software device: a P-256 key in a file, speaking the mobile SDKs' Client API wire exactly
//! (spec 3 and 4), so that a backend can be tested without a phone.
//!
//! What goes on the wire is what the iOS or Android SDK sends, chosen by [`Platform`]:
//! tenant Basic (spec 3.1), the `?publicKey=` double encoding (spec 4.3), the SDK headers
//! (spec 1.4), standard base64 SPKI keys and DER signatures over UTF-8 messages (spec 4.2, 4.4).
//! One key serves every namespace (the SDKs fall back to one legacy key in all of them, spec
//! 3.2, and the server accepts one key in several namespaces of one user).

use crate::http_client::{HttpClient, HttpResponse};
use axum::http::Method;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The namespaces a device credential can be added to (spec 3.2), in the order `list` shows.
pub const NAMESPACES: [&str; 3] = ["in-app", "push", "qr-code"];

/// Which SDK's encodings to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Ios,
    Android,
}

impl Platform {
    /// `devicePlatform` in the add-credential body (spec 3.4.1): lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }

    /// Tenant Basic (spec 3.1): iOS base64url without padding of `"<id>:"`; Android standard
    /// base64 with padding of `"<id>:"`.
    pub fn tenant_basic(self, tenant_id: &str) -> String {
        let credentials = format!("{tenant_id}:");
        match self {
            Platform::Ios => format!("Basic {}", URL_SAFE_NO_PAD.encode(credentials)),
            Platform::Android => format!("Basic {}", STANDARD.encode(credentials)),
        }
    }

    /// `?publicKey=` (spec 4.3): the base64 SPKI string, base64-encoded again; iOS base64url
    /// without padding, Android standard base64 with padding, unescaped in the URL.
    pub fn public_key_query(self, public_key: &str) -> String {
        match self {
            Platform::Ios => URL_SAFE_NO_PAD.encode(public_key),
            Platform::Android => STANDARD.encode(public_key),
        }
    }

    /// The headers the mobile SDKs add to every Client API call (spec 1.4). The version is the
    /// SDK release whose wire this follows; the User-Agent says honestly that this is us.
    pub fn sdk_headers(self, tenant_id: &str) -> Vec<(String, String)> {
        let (sdk, version, product) = match self {
            Platform::Ios => ("ios", "2.13.0", "AuthsignalIOSSDK"),
            Platform::Android => ("android", "3.0.0", "AuthsignalAndroidSDK"),
        };
        vec![
            ("X-Authsignal-SDK".into(), sdk.into()),
            ("X-Authsignal-Version".into(), version.into()),
            ("X-Authsignal-Tenant-ID".into(), tenant_id.into()),
            (
                "User-Agent".into(),
                format!(
                    "trusted-device/{} ({} device) {product}/{version}",
                    env!("CARGO_PKG_VERSION"),
                    self.as_str()
                ),
            ),
        ]
    }
}

// ------------------------------------------------------------------------------------ errors

/// Why a device call failed, in words a person can act on.
#[derive(Debug, Clone)]
pub enum DeviceError {
    /// The server answered with an error (spec 1.3 shape, or something else).
    Api {
        method: String,
        path: String,
        status: u16,
        code: Option<String>,
        description: Option<String>,
    },
    /// No HTTP answer (connection, TLS, timeout), or an answer that is not the contract's.
    Transport(String),
    /// Something on this machine: the key file, an argument.
    Local(String),
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceError::Api {
                method,
                path,
                status,
                code,
                description,
            } => {
                write!(f, "the server refused {method} {path}: HTTP {status}")?;
                if let Some(code) = code {
                    write!(f, ", errorCode {code}")?;
                }
                if let Some(description) = description {
                    write!(f, " ({description})")?;
                }
                if let Some(hint) = code.as_deref().and_then(hint_for) {
                    write!(f, "\n  {hint}")?;
                }
                Ok(())
            }
            DeviceError::Transport(reason) | DeviceError::Local(reason) => f.write_str(reason),
        }
    }
}

impl DeviceError {
    /// The server's `errorCode`, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            DeviceError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The error as JSON, for `--json`.
    pub fn to_json(&self) -> Value {
        match self {
            DeviceError::Api {
                method,
                path,
                status,
                code,
                description,
            } => json!({
                "error": code, "errorDescription": description, "status": status,
                "method": method, "path": path, "message": self.to_string(),
            }),
            _ => json!({"error": "client_error", "message": self.to_string()}),
        }
    }
}

fn hint_for(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_credential" => {
            "The server does not know this device key in that namespace: enroll it first."
        }
        "unauthorized" => "Check --tenant-id and --url (it must end in /v1).",
        "expired_token" | "invalid_token" => {
            "Track a new action on the backend and use its fresh token."
        }
        "insufficient_scope" => {
            "The user already has a device: track addAuthenticator with scope add:authenticators."
        }
        "invalid_verification_code" => {
            "Number matching is on: pass the code the browser shows with --code."
        }
        "challenge_already_used" => "The challenge was already answered or used.",
        _ => return None,
    })
}

// ------------------------------------------------------------------------------------ the key

/// The device key: PKCS#8 in a file (ring's format, which `openssl pkcs8 -topk8 -nocrypt`
/// also writes), kept like a phone keeps it, private to its owner.
pub struct DeviceKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    /// Standard base64 of the SPKI DER, as the SDKs send it in bodies (spec 4.2).
    public_key: String,
}

impl DeviceKey {
    /// A new key in memory, with its PKCS#8 document.
    pub fn generate() -> Result<(DeviceKey, Vec<u8>), DeviceError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| DeviceError::Local("cannot generate a P-256 key".into()))?;
        let key = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<DeviceKey, DeviceError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
            .map_err(|_| DeviceError::Local("the key file is not a P-256 PKCS#8 key".into()))?;
        // The fixed P-256 SPKI header before the raw point, as iOS builds it (spec 4.2).
        let spki = shared::signature::p256_spki(pair.public_key().as_ref());
        Ok(DeviceKey {
            pair,
            pkcs8: pkcs8.to_vec(),
            public_key: STANDARD.encode(spki),
        })
    }

    /// The same key again (e.g. to speak the other platform's encodings with it).
    pub fn duplicate(&self) -> Result<DeviceKey, DeviceError> {
        Self::from_pkcs8(&self.pkcs8)
    }

    /// Reads the key file. Never prints it.
    pub fn load(path: &Path) -> Result<DeviceKey, DeviceError> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DeviceError::Local(format!(
                    "no device key at {}: run `trusted-device device enroll --token T` first \
                     (or give --key-file)",
                    path.display()
                ))
            } else {
                DeviceError::Local(format!("cannot read {}: {e}", path.display()))
            }
        })?;
        warn_if_readable_by_others(path);
        Self::from_pkcs8(&bytes).map_err(|_| {
            DeviceError::Local(format!("{} is not a P-256 PKCS#8 key", path.display()))
        })
    }

    /// Reads the key file, or creates it (mode 0600, in a directory created 0700) if there is
    /// none. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(DeviceKey, bool), DeviceError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let (key, pkcs8) = Self::generate()?;
        write_private(path, &pkcs8)?;
        Ok((key, true))
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// A short, stable name for the key, safe to show: SHA-256 of the SPKI, first 16 hex.
    pub fn fingerprint(&self) -> String {
        let der = STANDARD.decode(&self.public_key).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        hex::encode(&digest.as_ref()[..8])
    }

    /// Standard base64 of the DER ECDSA-SHA256 signature over the UTF-8 message (spec 4.4).
    pub fn sign(&self, message: &str) -> Result<String, DeviceError> {
        let rng = SystemRandom::new();
        let signature = self
            .pair
            .sign(&rng, message.as_bytes())
            .map_err(|_| DeviceError::Local("signing failed".into()))?;
        Ok(STANDARD.encode(signature.as_ref()))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DeviceError> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DeviceError::Local(format!("cannot create {}: {e}", dir.display())))?;
    }
    // create_new: never overwrite a key that appeared meanwhile; 0600 from the first byte.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DeviceError::Local(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| DeviceError::Local(format!("cannot write {}: {e}", path.display())))
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} can be read by other users; `chmod 600` it",
            path.display()
        );
    }
}

// ------------------------------------------------------------------------------------ QR content

/// The challenge id in what a QR code holds. The spec leaves the QR's content to the
/// integrator (spec 3.4.7: "The QR encodes the challengeId"): the id itself, a URL or deep link
/// with a `challengeId` (or `challenge_id`, `challenge`, `id`) query parameter or the id as its
/// last path segment, or a JSON object with `challengeId`.
pub fn challenge_id_from_qr(content: &str) -> Result<String, DeviceError> {
    let content = content.trim();
    let refuse = || {
        DeviceError::Local(
            "no challenge id found: give the id, or a URL with ?challengeId=ID, or \
             {\"challengeId\": ID}"
                .into(),
        )
    };
    if content.is_empty() {
        return Err(refuse());
    }
    if content.starts_with('{') {
        let value: Value = serde_json::from_str(content).map_err(|_| refuse())?;
        return value["challengeId"]
            .as_str()
            .filter(|id| looks_like_id(id))
            .map(str::to_owned)
            .ok_or_else(refuse);
    }
    if let Some((_, rest)) = content.split_once("://") {
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query.split('#').next().unwrap_or(""))),
            None => (rest.split('#').next().unwrap_or(""), None),
        };
        for pair in query.unwrap_or("").split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if matches!(name, "challengeId" | "challenge_id" | "challenge" | "id") {
                let value = shared::encoding::percent_decode(value).ok_or_else(refuse)?;
                if looks_like_id(&value) {
                    return Ok(value);
                }
            }
        }
        let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let last = shared::encoding::percent_decode(last).ok_or_else(refuse)?;
        if path.contains('/') && looks_like_id(&last) && last.len() >= 32 {
            return Ok(last);
        }
        return Err(refuse());
    }
    if looks_like_id(content) {
        Ok(content.to_owned())
    } else {
        Err(refuse())
    }
}

/// Ids are opaque to clients; this only keeps whitespace, quotes and URL syntax out.
fn looks_like_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 512
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
}

// ------------------------------------------------------------------------------------ the device

/// A device talking to one base URL for one tenant.
pub struct Device {
    http: HttpClient,
    base: String,
    tenant_id: String,
    platform: Platform,
    key: DeviceKey,
    observer: Option<Observer>,
}

/// What a device saw of each answer: method, path (without query), status, `Content-Type`.
/// The SDKs do not read the header, but `conformance` checks it on every response (spec 1.2).
pub type Observer = std::sync::Arc<std::sync::Mutex<Vec<(String, String, u16, Option<String>)>>>;

/// How a Client API call authenticates (spec 3.1).
enum ClientAuth<'a> {
    Tenant,
    Bearer(&'a str),
}

impl Device {
    pub fn new(
        http: HttpClient,
        base_url: &str,
        tenant_id: &str,
        platform: Platform,
        key: DeviceKey,
    ) -> Device {
        Device {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            tenant_id: tenant_id.to_owned(),
            platform,
            key,
            observer: None,
        }
    }

    /// Records every answer's status and `Content-Type` into `observer`.
    pub fn observed_by(mut self, observer: Observer) -> Device {
        self.observer = Some(observer);
        self
    }

    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// One Client API call. Success is exactly HTTP 200 with a JSON object (spec 3.6).
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: ClientAuth<'_>,
        extra_headers: &[(String, String)],
        body: Option<Value>,
    ) -> Result<Value, DeviceError> {
        let mut headers = self.platform.sdk_headers(&self.tenant_id);
        headers.push((
            "Authorization".into(),
            match auth {
                ClientAuth::Tenant => self.platform.tenant_basic(&self.tenant_id),
                ClientAuth::Bearer(token) => format!("Bearer {token}"),
            },
        ));
        headers.push(("Accept".into(), "application/json".into()));
        headers.extend_from_slice(extra_headers);
        let bytes = body.map(|b| {
            headers.push(("Content-Type".into(), "application/json".into()));
            b.to_string().into_bytes()
        });
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .send(method.clone(), &url, &headers, bytes)
            .await
            .map_err(DeviceError::Transport)?;
        // Paths are shown without their query: it holds the public key, which is not secret
        // but is noise in a message.
        let shown = path.split('?').next().unwrap_or(path);
        if let Some(observer) = &self.observer
            && let Ok(mut seen) = observer.lock()
        {
            seen.push((
                method.to_string(),
                shown.to_owned(),
                response.status,
                response.content_type.clone(),
            ));
        }
        interpret(method.as_str(), shown, response)
    }

    fn query(&self) -> String {
        format!(
            "publicKey={}",
            self.platform.public_key_query(self.key.public_key())
        )
    }

    /// Add this key as a credential (spec 3.4.1) with a track token.
    pub async fn enroll(
        &self,
        token: &str,
        namespace: &str,
        device_name: &str,
    ) -> Result<Value, DeviceError> {
        check_namespace(namespace)?;
        let body = json!({
            "publicKey": self.key.public_key(),
            "deviceName": device_name,
            "devicePlatform": self.platform.as_str(),
        });
        let reply = self
            .call(
                Method::POST,
                &format!("/client/user-authenticators/{namespace}"),
                ClientAuth::Bearer(token),
                &[],
                Some(body),
            )
            .await?;
        require_strings(&reply, &["userAuthenticatorId", "userId", "verifiedAt"])?;
        Ok(reply)
    }

    /// What the server knows about this key in a namespace (spec 3.4.2); `None` when it does
    /// not know it (`invalid_credential`, or a 404).
    pub async fn credential(&self, namespace: &str) -> Result<Option<Value>, DeviceError> {
        check_namespace(namespace)?;
        let path = format!("/client/user-authenticators/{namespace}?{}", self.query());
        match self
            .call(Method::GET, &path, ClientAuth::Tenant, &[], None)
            .await
        {
            Ok(reply) => Ok(Some(reply)),
            Err(e)
                if e.code() == Some("invalid_credential")
                    || matches!(e, DeviceError::Api { status: 404, .. }) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// In-app verify (spec 3.4.4): a challenge with tenant Basic (`{action}` or `{}`), the
    /// signature over its id, then `/verify/in-app`: with the Bearer token only when no action
    /// was given, as the SDKs do; otherwise with tenant Basic.
    pub async fn verify(
        &self,
        token: Option<&str>,
        action: Option<&str>,
    ) -> Result<Value, DeviceError> {
        let body = match action {
            Some(action) => json!({"action": action}),
            None => json!({}),
        };
        let started = self
            .call(
                Method::POST,
                "/client/challenge",
                ClientAuth::Tenant,
                &[],
                Some(body),
            )
            .await?;
        let challenge_id = string_field(&started, "challengeId")?;
        let auth = match (token, action) {
            (Some(token), None) => ClientAuth::Bearer(token),
            _ => ClientAuth::Tenant,
        };
        let reply = self
            .call(
                Method::POST,
                "/client/verify/in-app",
                auth,
                &[],
                Some(json!({
                    "challengeId": challenge_id,
                    "publicKey": self.key.public_key(),
                    "signature": self.key.sign(&challenge_id)?,
                })),
            )
            .await?;
        require_strings(&reply, &["token", "userId", "userAuthenticatorId"])?;
        Ok(reply)
    }

    /// The pending push challenge, as the SDKs read it since 2026-06 (spec 3.4.5): a nonce
    /// from `challenge/sign`, then the GET with `X-Authsignal-Signature` over it; if the nonce
    /// call fails, the GET without the header. `challengeId` is absent when none is pending.
    pub async fn pending_push(&self) -> Result<Value, DeviceError> {
        let nonce = self
            .call(
                Method::POST,
                &format!(
                    "/client/user-authenticators/push/challenge/sign?{}",
                    self.query()
                ),
                ClientAuth::Tenant,
                &[],
                None,
            )
            .await;
        let mut headers = Vec::new();
        if let Ok(nonce) = &nonce
            && let Some(message) = nonce["message"].as_str()
        {
            headers.push(("X-Authsignal-Signature".into(), self.key.sign(message)?));
        } else if let Err(e) = &nonce
            && e.code() == Some("invalid_credential")
        {
            return Err(e.clone());
        }
        self.call(
            Method::GET,
            &format!(
                "/client/user-authenticators/push/challenge?{}",
                self.query()
            ),
            ClientAuth::Tenant,
            &headers,
            None,
        )
        .await
    }

    /// Claim a QR code (spec 3.4.7): the signature over the challenge id.
    pub async fn claim(&self, challenge_id: &str) -> Result<Value, DeviceError> {
        let reply = self
            .call(
                Method::POST,
                "/client/user-authenticators/qr-code/challenge/claim",
                ClientAuth::Tenant,
                &[],
                Some(json!({
                    "challengeId": challenge_id,
                    "publicKey": self.key.public_key(),
                    "signature": self.key.sign(challenge_id)?,
                })),
            )
            .await?;
        if reply["success"].as_bool().is_none() {
            return Err(DeviceError::Transport(
                "the claim answer has no `success` (the SDKs require it, spec 3.4.7)".into(),
            ));
        }
        Ok(reply)
    }

    /// Approve or reject a push or QR challenge (spec 3.4.5): the signature covers only the
    /// challenge id. `verificationCode` is sent as the SDKs send it when there is none: Android
    /// writes an explicit `null`, iOS leaves it out (spec 1.2).
    pub async fn answer(
        &self,
        namespace: &str,
        challenge_id: &str,
        approved: bool,
        code: Option<&str>,
    ) -> Result<Value, DeviceError> {
        let mut body = json!({
            "challengeId": challenge_id,
            "publicKey": self.key.public_key(),
            "approved": approved,
            "signature": self.key.sign(challenge_id)?,
        });
        match (code, self.platform) {
            (Some(code), _) => body["verificationCode"] = json!(code),
            (None, Platform::Android) => body["verificationCode"] = Value::Null,
            (None, Platform::Ios) => {}
        }
        let reply = self
            .call(
                Method::POST,
                &format!("/client/user-authenticators/{namespace}/challenge"),
                ClientAuth::Tenant,
                &[],
                Some(body),
            )
            .await?;
        if reply["isVerified"].as_bool().is_none() {
            return Err(DeviceError::Transport(
                "the answer has no `isVerified` (iOS requires it, spec 3.4.5)".into(),
            ));
        }
        Ok(reply)
    }

    /// Remove the credential of this key in a namespace (spec 3.4.3), signing the time
    /// window `floor(t/600)` as `"<n>.0"` (spec 4.4). `window_offset` picks a neighbouring
    /// window: the server accepts the current one and one on either side, each once per key.
    pub async fn remove(&self, namespace: &str, window_offset: i64) -> Result<Value, DeviceError> {
        check_namespace(namespace)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| DeviceError::Local("the system clock is before 1970".into()))?
            .as_secs() as i64;
        let window = now.div_euclid(600) + window_offset;
        let reply = self
            .call(
                Method::POST,
                &format!("/client/user-authenticators/{namespace}/remove"),
                ClientAuth::Tenant,
                &[],
                Some(json!({
                    "publicKey": self.key.public_key(),
                    "signature": self.key.sign(&format!("{window}.0"))?,
                })),
            )
            .await?;
        Ok(reply)
    }
}

fn check_namespace(namespace: &str) -> Result<(), DeviceError> {
    if NAMESPACES.contains(&namespace) {
        Ok(())
    } else {
        Err(DeviceError::Local(format!(
            "unknown namespace {namespace}: use in-app, push or qr-code"
        )))
    }
}

/// A 200 with a JSON object is success (spec 3.6); anything else is an error, read as the
/// contract's `{error, errorCode, errorDescription}` (spec 1.3) when it is one.
fn interpret(method: &str, path: &str, response: HttpResponse) -> Result<Value, DeviceError> {
    let body = response.json();
    if response.status == 200 {
        return match body {
            Some(value @ Value::Object(_)) => Ok(value),
            _ => Err(DeviceError::Transport(format!(
                "{method} {path} answered 200 without a JSON object (the SDKs treat that as a \
                 network error, spec 3.6)"
            ))),
        };
    }
    let code = body.as_ref().and_then(|b| {
        b["errorCode"]
            .as_str()
            .or_else(|| b["error"].as_str())
            .map(str::to_owned)
    });
    let description = body
        .as_ref()
        .and_then(|b| b["errorDescription"].as_str().map(str::to_owned));
    let description = description
        .or_else(|| (body.is_none() && !response.body.is_empty()).then(|| response.body_text()));
    Err(DeviceError::Api {
        method: method.into(),
        path: path.into(),
        status: response.status,
        code,
        description,
    })
}

fn string_field(value: &Value, name: &str) -> Result<String, DeviceError> {
    value[name].as_str().map(str::to_owned).ok_or_else(|| {
        DeviceError::Transport(format!(
            "the answer has no `{name}`, which the SDKs require"
        ))
    })
}

fn require_strings(value: &Value, names: &[&str]) -> Result<(), DeviceError> {
    names
        .iter()
        .try_for_each(|name| string_field(value, name).map(|_| ()))
}

// ------------------------------------------------------------------------------------ state

/// The QR code this device claimed last, remembered beside the key (not secret: a challenge
/// id is useless without the key) so that `approve`/`reject` know what to answer.
pub fn claim_state_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".qr-claim.json");
    PathBuf::from(name)
}

pub fn remember_claim(
    key_file: &Path,
    challenge_id: &str,
    code_required: bool,
) -> Result<(), DeviceError> {
    let path = claim_state_path(key_file);
    let state = json!({"challengeId": challenge_id, "verificationCodeRequired": code_required});
    std::fs::write(&path, state.to_string())
        .map_err(|e| DeviceError::Local(format!("cannot write {}: {e}", path.display())))
}

/// The claimed QR code's id, and whether it needs a verification code.
pub fn claimed(key_file: &Path) -> Option<(String, bool)> {
    let text = std::fs::read_to_string(claim_state_path(key_file)).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    let id = value["challengeId"].as_str()?.to_owned();
    Some((id, value["verificationCodeRequired"] == json!(true)))
}

pub fn forget_claim(key_file: &Path) {
    let _ = std::fs::remove_file(claim_state_path(key_file));
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0";

    #[test]
    fn qr_content_in_every_form_gives_the_id() {
        for content in [
            ID.to_owned(),
            format!("  {ID}\n"),
            format!("https://example.com/qr?challengeId={ID}"),
            format!("https://example.com/qr?x=1&challenge_id={ID}#frag"),
            format!("myapp://login?challenge={ID}"),
            format!("https://example.com/qr/{ID}"),
            format!("{{\"challengeId\": \"{ID}\"}}"),
        ] {
            assert_eq!(challenge_id_from_qr(&content).unwrap(), ID, "{content}");
        }
        for bad in [
            "",
            "https://example.com/",
            "https://example.com/qr?other=1",
            "{\"id\": 3}",
            "two words",
        ] {
            assert!(challenge_id_from_qr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encodings_are_the_sdks() {
        assert_eq!(Platform::Ios.tenant_basic("t+?"), "Basic dCs_Og");
        assert_eq!(Platform::Android.tenant_basic("t+?"), "Basic dCs/Og==");
        let decoded = shared::encoding::tenant_id_from_basic("dCs_Og");
        assert_eq!(decoded.as_deref(), Some("t+?"));
        let (key, _) = DeviceKey::generate().unwrap();
        for platform in [Platform::Ios, Platform::Android] {
            let query = platform.public_key_query(key.public_key());
            assert_eq!(
                shared::encoding::public_key_from_query(&query).as_deref(),
                Some(key.public_key())
            );
        }
        assert!(
            !Platform::Ios
                .public_key_query(key.public_key())
                .contains('=')
        );
        assert!(
            Platform::Android
                .public_key_query(key.public_key())
                .ends_with('=')
        );
    }

    #[test]
    fn the_key_file_is_private_and_reloads_to_the_same_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/device-key.pk8");
        let (key, created) = DeviceKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = DeviceKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(key.public_key(), again.public_key());
        let public = shared::signature::PublicKey::from_base64(key.public_key()).unwrap();
        public
            .verify("hello", &again.sign("hello").unwrap())
            .unwrap();
    }
}
