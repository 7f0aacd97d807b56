//! The end-to-end harness: the real server (all four routers, the embedded store on disk) on
//! `127.0.0.1:0`, two tenants, and a device that signs like the iOS and Android SDKs. Tests
//! talk to it over HTTP only, with the headers and encodings the official SDKs use.
//!
//! The server's clock is a [`ManualClock`] started at the real time, so expiry is tested by
//! moving it rather than by sleeping.
//!
//! The store is the embedded one, or DynamoDB through a real DynamoDB-compatible server
//! (dynoxide, embedded here, on a free loopback port) when `TRUSTED_DEVICE_TEST_STORE=dynamodb`
//! or when a test asks for it with [`Harness::start_on`]. The test command runs the whole suite
//! once on each.

pub mod lambda_events;
pub use testkit::soft_passkey;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, StatusCode};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use shared::App;
use shared::clock::{Clock, ManualClock, SystemClock};
use shared::config::Settings;
use shared::domain::TenantId;
use shared::store::Store;
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::store::embedded::EmbeddedStore;
use shared::usecase::tenants::{ApiSecret, TenantSettingsChange};
use std::sync::Arc;
use testkit::dynamodb::{LocalDynamo, unique_table};
use trusted_device::RunningServer;

pub struct TestTenant {
    pub id: String,
    pub secret: String,
}

/// Which store the server under test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Embedded,
    DynamoDb,
}

impl StoreKind {
    /// `TRUSTED_DEVICE_TEST_STORE`: unset or `embedded` runs the suite on the embedded store,
    /// `dynamodb` on DynamoDB. Any other value panics, so that a typo never runs the embedded
    /// store in place of the one asked for.
    pub fn from_env() -> StoreKind {
        Self::from_setting(std::env::var_os(STORE_VARIABLE).as_deref())
    }

    /// [`StoreKind::from_env`] for a value of the variable (`None`: unset).
    pub fn from_setting(value: Option<&std::ffi::OsStr>) -> StoreKind {
        let Some(value) = value else {
            return StoreKind::Embedded;
        };
        match value.to_str() {
            Some("embedded") => StoreKind::Embedded,
            Some("dynamodb") => StoreKind::DynamoDb,
            _ => panic!(
                "{STORE_VARIABLE}={value:?} names no store: set it to `embedded` or `dynamodb`, \
                 or leave it unset for the embedded store"
            ),
        }
    }
}

/// The variable that chooses the store the suite runs on ([`StoreKind::from_env`]).
pub const STORE_VARIABLE: &str = "TRUSTED_DEVICE_TEST_STORE";

/// The four Lambda functions, by their package names.
pub const FUNCTIONS: [&str; 4] = ["track", "add-authenticator", "challenge", "validate"];

/// A function's routes (method, API Gateway route template), from its router's table.
pub fn routes_of(function: &str) -> &'static [(&'static str, &'static str)] {
    match function {
        "track" => track::ROUTES,
        "add-authenticator" => add_authenticator::ROUTES,
        "challenge" => challenge::ROUTES,
        "validate" => validate::ROUTES,
        other => panic!("unknown function {other}"),
    }
}

/// An app on a fresh in-memory embedded store and the system clock, with one tenant: the
/// set-up of the tests that drive a router or a server directly rather than a [`Harness`].
pub async fn app_with_tenant(tenant: &str, secret: &str) -> App {
    let store = Arc::new(EmbeddedStore::in_memory().unwrap());
    let app = testkit::app(store, Arc::new(SystemClock), Settings::default());
    app.ensure_tenant(
        &TenantId::parse(tenant).unwrap(),
        &ApiSecret::parse(secret).unwrap(),
    )
    .await
    .unwrap();
    app
}

/// The DynamoDB side of a harness: the server, the adapter (to read items directly) and the
/// usage meter (requests and consumed capacity).
pub struct DynamoSide {
    pub local: LocalDynamo,
    pub store: DynamoStore,
    pub requests: UsageMeter,
}

pub struct Harness {
    pub server: RunningServer,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub a: TestTenant,
    pub b: TestTenant,
    pub dynamo: Option<DynamoSide>,
    /// The embedded store the server runs on (for fault injection), when it is that one.
    pub embedded: Option<EmbeddedStore>,
    _data_dir: tempfile::TempDir,
}

/// A response: status, and the JSON body (every response must have one).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// The `Retry-After` header, in seconds, if the response had one.
    pub retry_after: Option<u64>,
}

impl Reply {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.body
        );
        self.body
    }

    /// Asserts a `429 too_many_requests` in the contract's shape with a `Retry-After`;
    /// returns its seconds.
    #[track_caller]
    pub fn expect_throttled(self) -> u64 {
        let retry_after = self.retry_after;
        self.expect_error(429, "too_many_requests");
        let seconds = retry_after.expect("a 429 has a Retry-After header");
        assert!(seconds >= 1);
        seconds
    }

    /// Asserts an error in the contract's shape (spec 1.3) with this status and code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["error"], code, "{body}");
        assert_eq!(body["errorCode"], code, "{body}");
        assert!(
            body["errorDescription"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        body
    }
}

/// How a client authenticates (spec 2.1, 3.1).
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// Server API: `Basic base64("<secret>:")`.
    Secret(&'a str),
    /// Client API tenant Basic as iOS sends it: base64url, no padding, of `"<id>:"`.
    TenantIos(&'a str),
    /// As Android sends it: standard base64 with padding of `"<id>:"`.
    TenantAndroid(&'a str),
    /// As the browser sends it: standard base64 of the id, no colon.
    TenantBrowser(&'a str),
    Bearer(&'a str),
}

impl Auth<'_> {
    fn header(self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Secret(secret) => {
                Some(format!("Basic {}", STANDARD.encode(format!("{secret}:"))))
            }
            Auth::TenantIos(id) => Some(format!(
                "Basic {}",
                URL_SAFE_NO_PAD.encode(format!("{id}:"))
            )),
            Auth::TenantAndroid(id) => Some(format!("Basic {}", STANDARD.encode(format!("{id}:")))),
            Auth::TenantBrowser(id) => Some(format!("Basic {}", STANDARD.encode(id))),
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(Settings::default()).await
    }

    pub async fn start_with(settings: Settings) -> Harness {
        Self::start_full(StoreKind::from_env(), settings).await
    }

    pub async fn start_on(kind: StoreKind) -> Harness {
        Self::start_full(kind, Settings::default()).await
    }

    /// Starts with tenant A's settings changed (push webhook, decision signature
    /// requirement, allowed web origins), as the CLI's `tenant configure` does. The change is stored before the
    /// server starts, so no cached copy of the tenant predates it.
    pub async fn start_configured(settings: Settings, tenant_a: TenantSettingsChange) -> Harness {
        Self::start_inner(StoreKind::from_env(), settings, tenant_a).await
    }

    /// [`Harness::start_configured`] on the store named.
    pub async fn start_configured_on(
        kind: StoreKind,
        settings: Settings,
        tenant_a: TenantSettingsChange,
    ) -> Harness {
        Self::start_inner(kind, settings, tenant_a).await
    }

    async fn start_full(kind: StoreKind, settings: Settings) -> Harness {
        Self::start_inner(kind, settings, TenantSettingsChange::default()).await
    }

    async fn start_inner(
        kind: StoreKind,
        settings: Settings,
        tenant_a: TenantSettingsChange,
    ) -> Harness {
        let data_dir = tempfile::tempdir().unwrap();
        let mut embedded = None;
        let (store, dynamo): (Arc<dyn Store>, _) = match kind {
            StoreKind::Embedded => {
                let store = EmbeddedStore::open(&data_dir.path().join("e2e.db")).unwrap();
                embedded = Some(store.clone());
                (Arc::new(store), None)
            }
            StoreKind::DynamoDb => {
                let local = LocalDynamo::start().await;
                let requests = UsageMeter::recording_items();
                let config = DynamoConfig {
                    endpoint_url: Some(local.endpoint()),
                };
                let client = dynamodb::client(&config, requests.clone()).await;
                let table = unique_table("e2e");
                dynamodb::create_table(&client, &table).await.unwrap();
                let store = DynamoStore::new(client, table, requests.clone());
                (
                    Arc::new(store.clone()),
                    Some(DynamoSide {
                        local,
                        store,
                        requests,
                    }),
                )
            }
        };
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let app = testkit::app(store, clock.clone(), settings);
        let a = TestTenant {
            id: "tenant-a".into(),
            secret: "sk_test_tenant_a_0123456789".into(),
        };
        let b = TestTenant {
            id: "tenant-b".into(),
            secret: "sk_test_tenant_b_0123456789".into(),
        };
        for tenant in [&a, &b] {
            app.ensure_tenant(
                &TenantId::parse(tenant.id.clone()).unwrap(),
                &ApiSecret::parse(&tenant.secret).unwrap(),
            )
            .await
            .unwrap();
        }
        if tenant_a.push_webhook.is_some()
            || tenant_a.require_decision_signature.is_some()
            || tenant_a.allowed_origins.is_some()
            || tenant_a.passkey.is_some()
        {
            app.configure_tenant(&TenantId::parse(a.id.clone()).unwrap(), tenant_a)
                .await
                .unwrap();
        }
        let server = RunningServer::start(app).await.unwrap();
        Harness {
            server,
            http: reqwest::Client::new(),
            clock,
            a,
            b,
            dynamo,
            embedded,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// Sends a request; `body` `None` sends no body at all. Asserts the response has
    /// `Content-Type: application/json` exactly and a JSON body (spec 1.2, 3.6).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Reply {
        self.send_with_headers(method, path, auth, &[], body).await
    }

    /// [`Harness::send`] with extra request headers, e.g. `X-Authsignal-Signature`.
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(header) = auth.header() {
            request = request.header("Authorization", header);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        self.finish(request).await
    }

    /// Sends raw bytes as the body, for malformed-input tests.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path)).body(body);
        if let Some(header) = auth.header() {
            request = request.header("Authorization", header);
        }
        self.finish(request).await
    }

    async fn finish(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "status {status}"
        );
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        Reply {
            status,
            body,
            retry_after,
        }
    }

    pub async fn post(&self, path: &str, auth: Auth<'_>, body: Value) -> Reply {
        self.send(Method::POST, path, auth, Some(&body)).await
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Reply {
        self.send(Method::GET, path, auth, None).await
    }

    // ------------------------------------------------------------ the flows, as SDKs do them

    /// Server SDK `track` (spec 2.3).
    pub async fn track(
        &self,
        tenant: &TestTenant,
        user: &str,
        action: &str,
        attributes: Value,
    ) -> Value {
        self.post(
            &format!("/users/{user}/actions/{action}"),
            Auth::Secret(&tenant.secret),
            attributes,
        )
        .await
        .expect(200)
    }

    /// Backend tracks `addAuthenticator`, the app adds its in-app key (spec 6.1).
    pub async fn register(&self, tenant: &TestTenant, user: &str, device: &Device) -> Value {
        let tracked = self
            .track(
                tenant,
                user,
                "addAuthenticator",
                json!({"scope": "add:authenticators"}),
            )
            .await;
        self.add_credential(&tracked, device).await.expect(200)
    }

    pub async fn add_credential(&self, tracked: &Value, device: &Device) -> Reply {
        self.add_credential_in(tracked, device, device.namespace)
            .await
    }

    /// `add_credential` in another namespace than the device's own: one key in several (the
    /// SDKs' legacy key, spec 3.2).
    pub async fn add_credential_in(
        &self,
        tracked: &Value,
        device: &Device,
        namespace: &str,
    ) -> Reply {
        let token = tracked["token"].as_str().unwrap();
        self.post(
            &format!("/client/user-authenticators/{namespace}"),
            Auth::Bearer(token),
            json!({"publicKey": device.public_key, "deviceName": "iPhone", "devicePlatform": "ios"}),
        )
        .await
    }

    /// `POST /client/challenge` with Android's tenant Basic (spec 3.4.4 step 1).
    pub async fn challenge(&self, tenant: &TestTenant, body: Value) -> String {
        let reply = self
            .post("/client/challenge", Auth::TenantAndroid(&tenant.id), body)
            .await
            .expect(200);
        reply["challengeId"].as_str().unwrap().to_owned()
    }

    /// `POST /client/verify/in-app` with the signature over the challenge id.
    pub async fn verify(&self, auth: Auth<'_>, device: &Device, challenge_id: &str) -> Reply {
        self.post(
            "/client/verify/in-app",
            auth,
            json!({
                "challengeId": challenge_id,
                "publicKey": device.public_key,
                "signature": device.sign(challenge_id),
            }),
        )
        .await
    }

    /// Server SDK `getAction`: the action `user`'s `action` with this idempotency key (200).
    pub async fn action(&self, tenant: &TestTenant, user: &str, action: &str, key: &str) -> Value {
        self.get(
            &format!("/users/{user}/actions/{action}/{key}"),
            Auth::Secret(&tenant.secret),
        )
        .await
        .expect(200)
    }

    /// Server SDK `updateAction`: sets the action's state (e.g. `BLOCK`); returns the answer (200).
    pub async fn set_action_state(
        &self,
        tenant: &TestTenant,
        user: &str,
        action: &str,
        key: &str,
        state: &str,
    ) -> Value {
        self.send(
            Method::PATCH,
            &format!("/users/{user}/actions/{action}/{key}"),
            Auth::Secret(&tenant.secret),
            Some(&json!({ "state": state })),
        )
        .await
        .expect(200)
    }

    /// Server SDK `validateChallenge` (spec 2.4).
    pub async fn validate(&self, tenant: &TestTenant, body: Value) -> Value {
        self.post("/validate", Auth::Secret(&tenant.secret), body)
            .await
            .expect(200)
    }
}

/// A device key pair, as the Secure Enclave or Android Keystore holds it.
pub struct Device {
    pair: EcdsaKeyPair,
    /// Standard base64 SPKI, as the SDKs send it in bodies (spec 4.2).
    pub public_key: String,
    pub namespace: &'static str,
}

impl Device {
    pub fn new() -> Device {
        Self::in_namespace("in-app")
    }

    pub fn in_namespace(namespace: &'static str) -> Device {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // iOS: the fixed P-256 SPKI header before the raw point (spec 4.2).
        let spki = shared::signature::p256_spki(pair.public_key().as_ref());
        Device {
            pair,
            public_key: STANDARD.encode(spki),
            namespace,
        }
    }

    /// Someone who knows only this device's public key: it presents that key and signs
    /// with a private key of its own.
    pub fn impostor(&self) -> Device {
        Device {
            public_key: self.public_key.clone(),
            ..Device::in_namespace(self.namespace)
        }
    }

    /// Standard base64 of the DER ECDSA signature over the UTF-8 message (spec 4.4).
    pub fn sign(&self, message: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        STANDARD.encode(self.pair.sign(&rng, message.as_bytes()).unwrap().as_ref())
    }

    /// `?publicKey=` as iOS builds it: base64url without padding of the base64 string.
    pub fn query_ios(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.public_key)
    }

    /// `?publicKey=` as Android builds it: standard base64 with padding, unescaped in the URL.
    pub fn query_android(&self) -> String {
        STANDARD.encode(&self.public_key)
    }

    /// The removal message of spec 4.4 for a Unix time.
    pub fn removal_signature(&self, unix_seconds: i64) -> String {
        self.sign(&format!("{}.0", unix_seconds.div_euclid(600)))
    }
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

/// The payload of a JWT, decoded without verifying (as the SDKs do, spec 5).
pub fn jwt_payload(token: &str) -> Value {
    let middle = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(middle).unwrap()).unwrap()
}

/// Replaces a JWT's payload, keeping its header and signature: a forgery.
pub fn tamper_payload(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut payload = jwt_payload(token);
    edit(&mut payload);
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    )
}

#[cfg(test)]
mod tests {
    use super::StoreKind;
    use std::ffi::OsStr;

    #[test]
    fn the_store_variable_unset_or_embedded_is_the_embedded_store() {
        assert_eq!(StoreKind::from_setting(None), StoreKind::Embedded);
        assert_eq!(
            StoreKind::from_setting(Some(OsStr::new("embedded"))),
            StoreKind::Embedded
        );
    }

    #[test]
    fn the_store_variable_dynamodb_is_dynamodb() {
        assert_eq!(
            StoreKind::from_setting(Some(OsStr::new("dynamodb"))),
            StoreKind::DynamoDb
        );
    }

    #[test]
    #[should_panic(expected = "names no store")]
    fn any_other_store_is_refused_loudly() {
        StoreKind::from_setting(Some(OsStr::new("DynamoDB")));
    }

    #[test]
    #[should_panic(expected = "names no store")]
    fn an_empty_store_is_refused_loudly() {
        StoreKind::from_setting(Some(OsStr::new("")));
    }
}
