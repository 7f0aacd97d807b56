//! `trusted-device conformance`: the contract, run against a live deployment the way the
//! official SDKs use it, with nothing but the tenant's id and secret key.
//!
//! Every check is named; a failure keeps the request that failed (method, path, status,
//! body, never the secret, and with tokens in bodies redacted). Users are created under a
//! random prefix (`conformance-<hex>-`) and deleted at the end, also after failures.

use crate::device::{Device, DeviceKey, Platform};
use crate::http_client::{HttpClient, HttpResponse};
use axum::http::Method;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The 401 description the real API returns and the SDKs' own tests assert (spec 1.3).
pub const UNAUTHORIZED_DESCRIPTION: &str = "The request is unauthorized. Check that your API key and region base URL are correctly configured.";

/// One exchange, as shown for a failed check.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Option<Value>,
    pub raw_body: String,
}

impl Exchange {
    fn field(&self, name: &str) -> Option<&str> {
        self.body.as_ref().and_then(|b| b[name].as_str())
    }
}

/// How a check ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Pass,
    Fail {
        reason: String,
        request: Option<Exchange>,
    },
    Skip(String),
}

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub outcome: Outcome,
}

/// A check failed: why, and the exchange that showed it.
#[derive(Debug)]
struct Failure {
    reason: String,
    request: Option<Box<Exchange>>,
}

type Checked<T> = Result<T, Failure>;

fn fail<T>(reason: impl Into<String>, request: Option<&Exchange>) -> Checked<T> {
    Err(Failure {
        reason: reason.into(),
        request: request.cloned().map(Box::new),
    })
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Secret(&'a str),
    /// Tenant Basic as iOS, Android or the browser encodes it (spec 3.1).
    Tenant(Encoding),
    Bearer(&'a str),
}

#[derive(Clone, Copy)]
enum Encoding {
    Ios,
    Android,
    Browser,
}

pub struct Options {
    pub base_url: String,
    pub tenant_id: String,
    pub secret_key: String,
}

struct Run {
    http: HttpClient,
    base: String,
    tenant_id: String,
    secret: String,
    prefix: String,
    users: Vec<String>,
    results: Vec<CheckResult>,
    /// The first response whose Content-Type was not exactly `application/json` (spec 1.2).
    bad_content_type: Option<Exchange>,
    /// The answers the devices got, for the same check.
    device_answers: crate::device::Observer,
}

struct Seed {
    user: String,
    in_app: Device,
    challenge_id: String,
    sign_in_token: String,
}

impl Run {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Vec<u8>>,
    ) -> Checked<Exchange> {
        let mut headers: Vec<(String, String)> = Vec::new();
        let header = match auth {
            Auth::Secret(secret) => format!("Basic {}", STANDARD.encode(format!("{secret}:"))),
            Auth::Tenant(Encoding::Ios) => {
                format!(
                    "Basic {}",
                    URL_SAFE_NO_PAD.encode(format!("{}:", self.tenant_id))
                )
            }
            Auth::Tenant(Encoding::Android) => {
                format!("Basic {}", STANDARD.encode(format!("{}:", self.tenant_id)))
            }
            Auth::Tenant(Encoding::Browser) => format!(
                "Basic {}",
                STANDARD.encode(encode_uri_component(&self.tenant_id))
            ),
            Auth::Bearer(token) => format!("Bearer {token}"),
        };
        headers.push(("Authorization".into(), header));
        headers.push((
            "User-Agent".into(),
            format!("trusted-device-conformance/{}", env!("CARGO_PKG_VERSION")),
        ));
        if body.is_some() {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        let url = self.url(path);
        let response: HttpResponse = self
            .http
            .send(method.clone(), &url, &headers, body)
            .await
            .map_err(|reason| Failure {
                reason,
                request: None,
            })?;
        let exchange = Exchange {
            method: method.to_string(),
            path: format!("{}{}", path_prefix(&self.base), path),
            status: response.status,
            content_type: response.content_type.clone(),
            body: response.json(),
            raw_body: response.body_text(),
        };
        if exchange.content_type.as_deref() != Some("application/json")
            && self.bad_content_type.is_none()
        {
            self.bad_content_type = Some(exchange.clone());
        }
        Ok(exchange)
    }

    async fn json(
        &mut self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Value,
    ) -> Checked<Exchange> {
        self.send(method, path, auth, Some(body.to_string().into_bytes()))
            .await
    }

    /// A request that must answer 200 with a JSON object.
    async fn ok(
        &mut self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Checked<Exchange> {
        let exchange = match body {
            Some(body) => self.json(method, path, auth, body).await?,
            None => self.send(method, path, auth, None).await?,
        };
        if exchange.status != 200 || !exchange.body.as_ref().is_some_and(Value::is_object) {
            return fail("expected HTTP 200 with a JSON object", Some(&exchange));
        }
        Ok(exchange)
    }

    fn new_user(&mut self, name: &str) -> String {
        let user = format!("{}{name}", self.prefix);
        self.users.push(user.clone());
        user
    }

    fn device(&self, platform: Platform) -> Checked<Device> {
        let (key, _) = DeviceKey::generate().map_err(|e| Failure {
            reason: e.to_string(),
            request: None,
        })?;
        let http = self.http.clone();
        Ok(
            Device::new(http, &self.base, &self.tenant_id, platform, key)
                .observed_by(self.device_answers.clone()),
        )
    }

    fn record(&mut self, name: &'static str, result: Checked<()>) -> bool {
        let passed = result.is_ok();
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(Failure { reason, request }) => Outcome::Fail {
                reason,
                request: request.map(|r| *r),
            },
        };
        self.results.push(CheckResult { name, outcome });
        passed
    }

    fn skip(&mut self, name: &'static str, why: &str) {
        self.results.push(CheckResult {
            name,
            outcome: Outcome::Skip(why.into()),
        });
    }

    async fn track(&mut self, user: &str, action: &str, attributes: Value) -> Checked<Exchange> {
        let secret = self.secret.clone();
        let exchange = self
            .ok(
                Method::POST,
                &format!("/users/{user}/actions/{action}"),
                Auth::Secret(&secret),
                Some(attributes),
            )
            .await?;
        if exchange.field("token").is_none() || exchange.field("idempotencyKey").is_none() {
            return fail(
                "track must return token and idempotencyKey (spec 2.3)",
                Some(&exchange),
            );
        }
        Ok(exchange)
    }

    async fn validate(&mut self, token: &str, expect_action: &str) -> Checked<Exchange> {
        let secret = self.secret.clone();
        let exchange = self
            .ok(
                Method::POST,
                "/validate",
                Auth::Secret(&secret),
                Some(json!({"token": token})),
            )
            .await?;
        let body = exchange.body.clone().unwrap_or_default();
        if body["isValid"] != json!(true) || body["state"] != "CHALLENGE_SUCCEEDED" {
            return fail(
                "validate must say isValid: true, state CHALLENGE_SUCCEEDED (spec 2.4)",
                Some(&exchange),
            );
        }
        if body["action"] != expect_action || body["actionCode"] != expect_action {
            return fail(
                format!(
                    "validate must give both action and actionCode = {expect_action} (spec 2.4)"
                ),
                Some(&exchange),
            );
        }
        Ok(exchange)
    }
}

/// `/v1` of `http://host/v1`: shown in front of request paths.
fn path_prefix(base: &str) -> String {
    base.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_default()
}

/// A device call failed: keep its words (they carry the status and `errorCode`).
fn device_failure(e: crate::device::DeviceError) -> Failure {
    Failure {
        reason: e.to_string(),
        request: None,
    }
}

fn expect_error(exchange: &Exchange, status: u16, code: &str) -> Checked<()> {
    if exchange.status != status {
        return fail(format!("expected HTTP {status} {code}"), Some(exchange));
    }
    let body = exchange.body.clone().unwrap_or_default();
    if body["error"] != code || body["errorCode"] != code {
        return fail(
            format!("expected error and errorCode {code} (spec 1.3)"),
            Some(exchange),
        );
    }
    if body["errorDescription"].as_str().is_none_or(str::is_empty) {
        return fail(
            "errorDescription must be a non-empty string (spec 1.3)",
            Some(exchange),
        );
    }
    Ok(())
}

/// JavaScript's `encodeURIComponent`, which the browser SDK applies to the tenant id before
/// base64 (spec 3.1).
fn encode_uri_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buffer).is_err() {
        // No system randomness: the names need only differ between runs (two runs on one
        // tenant must not share, and so delete, each other's users), so the clock and the
        // process id will do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = nanos ^ (u128::from(std::process::id()) << 96);
        for (byte, source) in buffer.iter_mut().zip(seed.to_le_bytes().iter().cycle()) {
            *byte = *source;
        }
    }
    hex::encode(buffer)
}

/// What a run did: the checks in order, and the users it made (and deleted).
pub struct Report {
    pub results: Vec<CheckResult>,
    pub users: Vec<String>,
}

/// Runs every check; cleans up whatever happened.
pub async fn run(options: Options) -> Result<Report, String> {
    let mut run = Run {
        http: HttpClient::new()?,
        base: options.base_url.trim_end_matches('/').to_owned(),
        tenant_id: options.tenant_id,
        secret: options.secret_key,
        prefix: format!("conformance-{}-", random_hex(6)),
        users: Vec::new(),
        results: Vec::new(),
        bad_content_type: None,
        device_answers: Default::default(),
    };

    // One probe first: a wrong URL or a server that is down is one plain error, not a table
    // of identical failures.
    let probe = run.url("/validate");
    run.http
        .send(Method::GET, &probe, &[], None)
        .await
        .map_err(|reason| format!("{reason} (is --url the base URL, ending in /v1?)"))?;
    // And the secret: a refused one would fail every check the same way. Reading an unknown
    // user answers 200 `isEnrolled: false` (spec 2.6) and writes nothing.
    let secret = run.secret.clone();
    let probe_path = format!("/users/{}probe", run.prefix);
    let read = run
        .send(Method::GET, &probe_path, Auth::Secret(&secret), None)
        .await
        .map_err(|failure| failure.reason)?;
    if read.status == 401 {
        return Err(format!(
            "the secret key was refused (GET {} → 401 {}): check TRUSTED_DEVICE_SECRET_KEY \
             and that --url is this tenant's deployment",
            read.path,
            read.field("errorCode").unwrap_or("without an error code")
        ));
    }

    let result = wrong_secret(&mut run).await;
    run.record("401 unauthorized for a wrong secret, exact body", result);
    let seed = seed_flow(&mut run).await;
    let (seed, result) = match seed {
        Ok(seed) => (Some(seed), Ok(())),
        Err(failure) => (None, Err(failure)),
    };
    run.record(
        "seed flow: enroll, signIn CHALLENGE_REQUIRED, challenge, verify, validate",
        result,
    );
    let needs_seed = "needs the seed flow, which failed";
    if let Some(seed) = &seed {
        let result = replay(&mut run, seed).await;
        run.record(
            "a used challenge is refused: 409 challenge_already_used",
            result,
        );
        let result = tenant_encodings(&mut run, seed).await;
        run.record(
            "tenant Basic and ?publicKey= in the iOS and Android encodings",
            result,
        );
        let result = tokenless_verify(&mut run, seed).await;
        run.record(
            "tokenless verify(action) creates and completes the action",
            result,
        );
        let result = cross_user(&mut run, seed).await;
        run.record(
            "another user's token with this key: 403 user_mismatch",
            result,
        );
        let result = push(&mut run, seed).await;
        run.record(
            "push: start, pending, approve, poll, validate (PUSH)",
            result,
        );
        let result = qr(&mut run, seed).await;
        run.record("QR code: start, claim, approve, poll, validate", result);
    } else {
        for name in [
            "a used challenge is refused: 409 challenge_already_used",
            "tenant Basic and ?publicKey= in the iOS and Android encodings",
            "tokenless verify(action) creates and completes the action",
            "another user's token with this key: 403 user_mismatch",
            "push: start, pending, approve, poll, validate (PUSH)",
            "QR code: start, claim, approve, poll, validate",
        ] {
            run.skip(name, needs_seed);
        }
    }
    let result = idempotency(&mut run).await;
    run.record("same idempotencyKey, same action", result);
    let result = invalid_request(&mut run).await;
    run.record("malformed JSON: 400 invalid_request", result);
    let result = not_found(&mut run).await;
    run.record(
        "unknown action: 404 action_not_found; unknown route: 404",
        result,
    );
    match rules_round_trip(&mut run).await {
        Ok(true) => run.record("rules config round trip (/action-configs, ours)", Ok(())),
        Ok(false) => {
            run.skip(
                "rules config round trip (/action-configs, ours)",
                "404 without the route: not a trusted-device deployment (the route is our extension)",
            );
            true
        }
        Err(failure) => run.record(
            "rules config round trip (/action-configs, ours)",
            Err(failure),
        ),
    };
    // The devices' answers count too: the first one with another Content-Type, if no
    // request of the run's own had one.
    if run.bad_content_type.is_none() {
        let seen = run
            .device_answers
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default();
        run.bad_content_type = seen
            .into_iter()
            .find(|(_, _, _, content_type)| content_type.as_deref() != Some("application/json"))
            .map(|(method, path, status, content_type)| Exchange {
                method,
                path: format!("{}{path}", path_prefix(&run.base)),
                status,
                content_type,
                body: None,
                raw_body: "(a device's answer: body not kept)".into(),
            });
    }
    let result = match run.bad_content_type.take() {
        None => Ok(()),
        Some(exchange) => fail(
            "Content-Type must be exactly application/json (spec 1.2); the Python SDK ignores \
             the body otherwise",
            Some(&exchange),
        ),
    };
    run.record("Content-Type: application/json on every response", result);
    let users = run.users.clone();
    let result = cleanup(&mut run).await;
    run.record("clean-up: DELETE /users/{id} for every user made", result);
    Ok(Report {
        results: run.results,
        users,
    })
}

async fn wrong_secret(run: &mut Run) -> Checked<()> {
    let user = run.new_user("nobody");
    let wrong = format!("sk_wrong_{}", random_hex(16));
    let exchange = run
        .json(
            Method::POST,
            &format!("/users/{user}/actions/signIn"),
            Auth::Secret(&wrong),
            json!({}),
        )
        .await?;
    expect_error(&exchange, 401, "unauthorized")?;
    let expected = json!({
        "error": "unauthorized",
        "errorCode": "unauthorized",
        "errorDescription": UNAUTHORIZED_DESCRIPTION,
    });
    if exchange.body.as_ref() != Some(&expected) {
        return fail(
            format!("the body must be exactly {expected} (spec 1.3; the SDKs' tests assert it)"),
            Some(&exchange),
        );
    }
    Ok(())
}

async fn seed_flow(run: &mut Run) -> Checked<Seed> {
    let user = run.new_user("a");
    let enroll = run
        .track(
            &user,
            "addAuthenticator",
            json!({"scope": "add:authenticators"}),
        )
        .await?;
    let enroll_token = enroll.field("token").unwrap_or_default().to_owned();
    let device = run.device(Platform::Ios)?;
    let added = device
        .enroll(&enroll_token, "in-app", "conformance")
        .await
        .map_err(device_failure)?;
    if added["userId"] != user.as_str() {
        return fail(format!("the credential must belong to {user}"), None);
    }
    let tracked = run.track(&user, "signIn", json!({})).await?;
    let body = tracked.body.clone().unwrap_or_default();
    if body["state"] != "CHALLENGE_REQUIRED" || body["isEnrolled"] != json!(true) {
        return fail(
            "an enrolled user's signIn must be CHALLENGE_REQUIRED with isEnrolled: true (spec 2.3; \
             unless the tenant's rules say otherwise)",
            Some(&tracked),
        );
    }
    let token = tracked.field("token").unwrap_or_default().to_owned();
    let challenge = run
        .ok(
            Method::POST,
            "/client/challenge",
            Auth::Tenant(Encoding::Ios),
            Some(json!({})),
        )
        .await?;
    let Some(challenge_id) = challenge.field("challengeId").map(str::to_owned) else {
        return fail(
            "the challenge has no challengeId (spec 3.4.4)",
            Some(&challenge),
        );
    };
    let verified = run
        .ok(
            Method::POST,
            "/client/verify/in-app",
            Auth::Bearer(&token),
            Some(json!({
                "challengeId": challenge_id,
                "publicKey": device.key().public_key(),
                "signature": device.key().sign(&challenge_id).map_err(device_failure)?,
            })),
        )
        .await?;
    let Some(new_token) = verified.field("token").map(str::to_owned) else {
        return fail("verify must return a token (spec 3.4.4)", Some(&verified));
    };
    if verified.field("userId") != Some(user.as_str()) {
        return fail(format!("verify must name userId {user}"), Some(&verified));
    }
    run.validate(&new_token, "signIn").await?;
    Ok(Seed {
        user,
        in_app: device,
        challenge_id,
        sign_in_token: token,
    })
}

async fn replay(run: &mut Run, seed: &Seed) -> Checked<()> {
    let body = json!({
        "challengeId": seed.challenge_id,
        "publicKey": seed.in_app.key().public_key(),
        "signature": seed.in_app.key().sign(&seed.challenge_id).map_err(device_failure)?,
    });
    let exchange = run
        .json(
            Method::POST,
            "/client/verify/in-app",
            Auth::Bearer(&seed.sign_in_token),
            body,
        )
        .await?;
    expect_error(&exchange, 409, "challenge_already_used")
}

async fn tenant_encodings(run: &mut Run, seed: &Seed) -> Checked<()> {
    for (platform, encoding) in [
        (Platform::Ios, Encoding::Ios),
        (Platform::Android, Encoding::Android),
    ] {
        let query = platform.public_key_query(seed.in_app.key().public_key());
        let path = format!("/client/user-authenticators/in-app?publicKey={query}");
        let exchange = run
            .ok(Method::GET, &path, Auth::Tenant(encoding), None)
            .await?;
        if exchange.field("userId") != Some(seed.user.as_str()) {
            return fail(
                format!("the credential must name userId {}", seed.user),
                Some(&exchange),
            );
        }
    }
    Ok(())
}

async fn tokenless_verify(run: &mut Run, seed: &Seed) -> Checked<()> {
    // The SDK's verify(action): both calls with tenant Basic (spec 3.4.4), here Android's.
    let android = Device::new(
        run.http.clone(),
        &run.base,
        &run.tenant_id,
        Platform::Android,
        seed.in_app.key().duplicate().map_err(device_failure)?,
    )
    .observed_by(run.device_answers.clone());
    let verified = android
        .verify(None, Some("conformanceVerify"))
        .await
        .map_err(device_failure)?;
    let token = verified["token"].as_str().unwrap_or_default().to_owned();
    run.validate(&token, "conformanceVerify").await?;
    Ok(())
}

async fn cross_user(run: &mut Run, seed: &Seed) -> Checked<()> {
    let other = run.new_user("b");
    {
        let tracked = run.track(&other, "signIn", json!({})).await?;
        let token = tracked.field("token").unwrap_or_default().to_owned();
        let challenge = run
            .ok(
                Method::POST,
                "/client/challenge",
                Auth::Tenant(Encoding::Android),
                Some(json!({})),
            )
            .await?;
        let challenge_id = challenge
            .field("challengeId")
            .unwrap_or_default()
            .to_owned();
        let exchange = run
            .json(
                Method::POST,
                "/client/verify/in-app",
                Auth::Bearer(&token),
                json!({
                    "challengeId": challenge_id,
                    "publicKey": seed.in_app.key().public_key(),
                    "signature": seed.in_app.key().sign(&challenge_id).map_err(device_failure)?,
                }),
            )
            .await?;
        expect_error(&exchange, 403, "user_mismatch")
    }
}

async fn enroll_more(run: &mut Run, user: &str, namespace: &str) -> Checked<Device> {
    let enroll = run
        .track(
            user,
            "addAuthenticator",
            json!({"scope": "add:authenticators"}),
        )
        .await?;
    let token = enroll.field("token").unwrap_or_default().to_owned();
    let device = run.device(Platform::Android)?;
    device
        .enroll(&token, namespace, "conformance")
        .await
        .map_err(device_failure)?;
    Ok(device)
}

/// The phone approves `challenge_id` in `namespace`; the answer must say `isVerified: true`.
async fn approve(phone: &Device, namespace: &str, challenge_id: &str) -> Checked<()> {
    let answered = phone
        .answer(namespace, challenge_id, true, None)
        .await
        .map_err(device_failure)?;
    if answered["isVerified"] != json!(true) {
        return fail(
            format!("an approval must say isVerified: true; got {answered}"),
            None,
        );
    }
    Ok(())
}

async fn push(run: &mut Run, seed: &Seed) -> Checked<()> {
    let user = seed.user.clone();
    let phone = enroll_more(run, &user, "push").await?;
    let tracked = run.track(&user, "signIn", json!({})).await?;
    let token = tracked.field("token").unwrap_or_default().to_owned();
    let started = run
        .ok(
            Method::POST,
            "/client/challenge/push",
            Auth::Bearer(&token),
            Some(json!({"action": "signIn"})),
        )
        .await?;
    let Some(challenge_id) = started.field("challengeId").map(str::to_owned) else {
        return fail(
            "the push start has no challengeId (spec 3.4.6)",
            Some(&started),
        );
    };
    let pending = phone.pending_push().await.map_err(device_failure)?;
    if pending["challengeId"] != challenge_id.as_str() {
        return fail(
            format!("the phone's read must show the pending challenge (spec 3.4.5); got {pending}"),
            None,
        );
    }
    let poll = run
        .ok(
            Method::POST,
            "/client/verify/push",
            Auth::Bearer(&token),
            Some(json!({"challengeId": challenge_id})),
        )
        .await?;
    if poll
        .body
        .as_ref()
        .is_some_and(|b| b["isConsumed"] != json!(false))
    {
        return fail(
            "before the answer the poll must say isConsumed: false",
            Some(&poll),
        );
    }
    approve(&phone, "push", &challenge_id).await?;
    let poll = run
        .ok(
            Method::POST,
            "/client/verify/push",
            Auth::Bearer(&token),
            Some(json!({"challengeId": challenge_id})),
        )
        .await?;
    let body = poll.body.clone().unwrap_or_default();
    let Some(access) = body["accessToken"]
        .as_str()
        .filter(|_| body["isVerified"] == json!(true))
    else {
        return fail(
            "after approval the poll must say isVerified: true with accessToken",
            Some(&poll),
        );
    };
    let validated = run.validate(access, "signIn").await?;
    if validated.field("verificationMethod") != Some("PUSH") {
        return fail(
            "a push approval validates with verificationMethod PUSH",
            Some(&validated),
        );
    }
    Ok(())
}

async fn qr(run: &mut Run, seed: &Seed) -> Checked<()> {
    let user = seed.user.clone();
    let phone = enroll_more(run, &user, "qr-code").await?;
    // The kiosk: anonymous, with the browser SDK's tenant Basic (spec 3.1, 3.4.7).
    let started = run
        .ok(
            Method::POST,
            "/client/challenge/qr-code",
            Auth::Tenant(Encoding::Browser),
            Some(json!({"action": "conformanceQr"})),
        )
        .await?;
    let (Some(challenge_id), Some(device_code)) = (
        started.field("challengeId").map(str::to_owned),
        started.field("deviceCode").map(str::to_owned),
    ) else {
        return fail(
            "the QR start needs challengeId and deviceCode (spec 3.4.7)",
            Some(&started),
        );
    };
    let poll_body = json!({"challengeId": challenge_id, "deviceCode": device_code});
    let poll = run
        .ok(
            Method::POST,
            "/client/verify/qr-code",
            Auth::Tenant(Encoding::Browser),
            Some(poll_body.clone()),
        )
        .await?;
    if poll
        .body
        .as_ref()
        .is_some_and(|b| b["isClaimed"] != json!(false))
    {
        return fail(
            "before the claim the poll must say isClaimed: false",
            Some(&poll),
        );
    }
    let claimed = phone.claim(&challenge_id).await.map_err(device_failure)?;
    if claimed["success"] != json!(true) {
        return fail(
            format!("the claim must say success: true; got {claimed}"),
            None,
        );
    }
    let poll = run
        .ok(
            Method::POST,
            "/client/verify/qr-code",
            Auth::Tenant(Encoding::Browser),
            Some(poll_body.clone()),
        )
        .await?;
    if poll
        .body
        .as_ref()
        .is_some_and(|b| b["isClaimed"] != json!(true))
    {
        return fail(
            "after the claim the poll must say isClaimed: true",
            Some(&poll),
        );
    }
    approve(&phone, "qr-code", &challenge_id).await?;
    let poll = run
        .ok(
            Method::POST,
            "/client/verify/qr-code",
            Auth::Tenant(Encoding::Browser),
            Some(poll_body),
        )
        .await?;
    let body = poll.body.clone().unwrap_or_default();
    let Some(access) = body["accessToken"]
        .as_str()
        .filter(|_| body["isVerified"] == json!(true))
    else {
        return fail(
            "after approval the poll must say isVerified: true with accessToken",
            Some(&poll),
        );
    };
    let validated = run.validate(access, "conformanceQr").await?;
    if validated.field("userId") != Some(user.as_str()) {
        return fail(
            format!("the QR action must belong to the claimer {user}"),
            Some(&validated),
        );
    }
    Ok(())
}

async fn idempotency(run: &mut Run) -> Checked<()> {
    let user = run.new_user("c");
    let key = format!("conformance-{}", random_hex(8));
    let first = run
        .track(&user, "signIn", json!({"idempotencyKey": key}))
        .await?;
    let second = run
        .track(&user, "signIn", json!({"idempotencyKey": key}))
        .await?;
    if first.field("idempotencyKey") != Some(key.as_str())
        || second.field("idempotencyKey") != Some(key.as_str())
        || first.field("state") != second.field("state")
    {
        return fail(
            "the same idempotencyKey must give the same action and state",
            Some(&second),
        );
    }
    let secret = run.secret.clone();
    let read = run
        .ok(
            Method::GET,
            &format!("/users/{user}/actions/signIn/{key}"),
            Auth::Secret(&secret),
            None,
        )
        .await?;
    if read.field("state") != first.field("state") {
        return fail(
            "get action must give the tracked state (spec 2.5)",
            Some(&read),
        );
    }
    Ok(())
}

async fn invalid_request(run: &mut Run) -> Checked<()> {
    let user = run.new_user("d");
    let secret = run.secret.clone();
    let exchange = run
        .send(
            Method::POST,
            &format!("/users/{user}/actions/signIn"),
            Auth::Secret(&secret),
            Some(b"{\"idempotencyKey\":".to_vec()),
        )
        .await?;
    expect_error(&exchange, 400, "invalid_request")
}

async fn not_found(run: &mut Run) -> Checked<()> {
    let user = run.new_user("e");
    let secret = run.secret.clone();
    let exchange = run
        .send(
            Method::GET,
            &format!("/users/{user}/actions/signIn/no-such-key-{}", random_hex(4)),
            Auth::Secret(&secret),
            None,
        )
        .await?;
    expect_error(&exchange, 404, "action_not_found")?;
    // On AWS an unknown route never reaches a function: API Gateway answers it itself,
    // `404 {"message":"Not Found"}`, which the SDKs report as a wrong base URL (spec 1.3).
    // So only the status is checked here.
    let exchange = run
        .send(
            Method::GET,
            "/conformance-no-such-route",
            Auth::Secret(&secret),
            None,
        )
        .await?;
    if exchange.status != 404 {
        return fail("an unknown route must be 404", Some(&exchange));
    }
    Ok(())
}

/// `Ok(false)` when the deployment does not have the route (Authsignal's API).
async fn rules_round_trip(run: &mut Run) -> Result<bool, Failure> {
    let secret = run.secret.clone();
    let code = format!("conformance-{}", random_hex(4));
    let path = format!("/action-configs/{code}");
    let config = json!({
        "defaultOutcome": "ALLOW",
        "rules": [{
            "ruleId": "conformance", "name": "Conformance", "type": "BLOCK",
            "conditions": {"==": [{"var": "custom.conformance"}, "block-me"]}
        }]
    });
    let put = run
        .json(Method::PUT, &path, Auth::Secret(&secret), config)
        .await?;
    if put.status == 404 && put.field("errorCode") != Some("action_config_not_found") {
        return Ok(false);
    }
    if put.status != 200 || put.field("actionCode") != Some(code.as_str()) {
        return fail(
            "PUT must save and return the config with its actionCode",
            Some(&put),
        );
    }
    let result = async {
        let got = run
            .ok(Method::GET, &path, Auth::Secret(&secret), None)
            .await?;
        let body = got.body.clone().unwrap_or_default();
        if body["defaultOutcome"] != "ALLOW" || body["rules"][0]["ruleId"] != "conformance" {
            return fail("GET must return what PUT saved", Some(&got));
        }
        // The rule applies to the very next track.
        let user = run.new_user("f");
        let tracked = run
            .track(&user, &code, json!({"custom": {"conformance": "block-me"}}))
            .await?;
        if tracked.field("state") != Some("BLOCK") {
            return fail(
                "a matching BLOCK rule must decide the next track",
                Some(&tracked),
            );
        }
        Ok(())
    }
    .await;
    let deleted = run
        .send(Method::DELETE, &path, Auth::Secret(&secret), None)
        .await?;
    result?;
    if deleted.status != 200 {
        return fail("DELETE must answer 200", Some(&deleted));
    }
    let gone = run
        .send(Method::GET, &path, Auth::Secret(&secret), None)
        .await?;
    expect_error(&gone, 404, "action_config_not_found")?;
    Ok(true)
}

async fn cleanup(run: &mut Run) -> Checked<()> {
    let secret = run.secret.clone();
    let users = std::mem::take(&mut run.users);
    let mut first_failure = None;
    for user in &users {
        match run
            .send(
                Method::DELETE,
                &format!("/users/{user}"),
                Auth::Secret(&secret),
                None,
            )
            .await
        {
            Ok(exchange) if (200..300).contains(&exchange.status) => {}
            Ok(exchange) => {
                first_failure.get_or_insert(Failure {
                    reason: format!("could not delete {user}"),
                    request: Some(Box::new(exchange)),
                });
            }
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    match first_failure {
        None => Ok(()),
        Some(failure) => Err(failure),
    }
}

// ------------------------------------------------------------------------------------ output

/// Replaces tokens in a body shown for a failure: they are bearer credentials.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if matches!(k.as_str(), "token" | "accessToken" | "deviceCode")
                        && v.is_string()
                    {
                        Value::String("<redacted>".into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn shown_body(exchange: &Exchange) -> String {
    match &exchange.body {
        Some(body) => redact(body).to_string(),
        None if exchange.raw_body.is_empty() => "(empty)".into(),
        None => exchange.raw_body.clone(),
    }
}

/// The table a person reads.
pub fn render(results: &[CheckResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for result in results {
        let (mark, detail) = match &result.outcome {
            Outcome::Pass => ("pass", String::new()),
            Outcome::Skip(why) => ("skip", format!("\n      {why}")),
            Outcome::Fail { reason, request } => {
                let mut detail = format!("\n      {reason}");
                if let Some(x) = request {
                    detail.push_str(&format!(
                        "\n      {} {} → {} (Content-Type: {})\n      {}",
                        x.method,
                        x.path,
                        x.status,
                        x.content_type.as_deref().unwrap_or("none"),
                        shown_body(x)
                    ));
                }
                ("FAIL", detail)
            }
        };
        let row = format!("{mark}  {:<width$}", result.name);
        out.push_str(row.trim_end());
        out.push_str(&detail);
        out.push('\n');
    }
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail { .. }))
        .count();
    let passed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass))
        .count();
    out.push_str(&format!(
        "\n{passed} passed, {failed} failed, {} skipped\n",
        results.len() - passed - failed
    ));
    out
}

/// The results as JSON, for scripts.
pub fn to_json(report: &Report) -> Value {
    let results = &report.results;
    let checks: Vec<Value> = results
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Pass => json!({"check": r.name, "result": "pass"}),
            Outcome::Skip(why) => json!({"check": r.name, "result": "skip", "note": why}),
            Outcome::Fail { reason, request } => json!({
                "check": r.name, "result": "fail", "reason": reason,
                "request": request.as_ref().map(|x| json!({
                    "method": x.method, "path": x.path, "status": x.status,
                    "contentType": x.content_type, "body": shown_body(x),
                })),
            }),
        })
        .collect();
    json!({
        "passed": results.iter().all(|r| !matches!(r.outcome, Outcome::Fail { .. })),
        "checks": checks,
        "users": report.users,
    })
}

pub fn any_failed(results: &[CheckResult]) -> bool {
    results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Fail { .. }))
}

// ------------------------------------------------------------------------------------ CLI

#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// The deployment's base URL, ending in /v1 (the SAM stack's ApiUrl output).
    #[arg(long, env = "TRUSTED_DEVICE_URL")]
    url: String,
    #[arg(long, env = "TRUSTED_DEVICE_TENANT_ID")]
    tenant_id: String,
    /// The tenant's API secret key. Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "TRUSTED_DEVICE_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the checks and prints them; `Err` when any failed (the process then exits non-zero).
pub async fn cli(args: ConformanceArgs) -> Result<(), String> {
    // The secret key goes in every Server API request: never in clear text over a network
    // (the webhook's URL policy: https, or http to this machine).
    shared::webhook::check_url(&args.url).map_err(|problem| format!("--url: {problem}"))?;
    let report = run(Options {
        base_url: args.url,
        tenant_id: args.tenant_id,
        secret_key: args.secret_key,
    })
    .await?;
    if args.json {
        crate::say!("{}", to_json(&report));
    } else {
        crate::write_stdout(&render(&report.results));
    }
    if any_failed(&report.results) {
        Err("the deployment does not conform: see the failed checks above".into())
    } else {
        Ok(())
    }
}
