//! Property tests of the routers (issue #11): every route of the four functions, driven through
//! the same router and path normalisation the local server and Lambda use, with arbitrary
//! methods, paths, query strings, headers and bodies, mixed with valid values (a secret, a
//! tenant id, a token, a registered device key, a sealed challenge id, a signature) so that
//! requests get past authentication into the handlers.
//!
//! Properties: nothing panics, nothing is a 5xx, every response is JSON with `Content-Type:
//! application/json` exactly, and every error has the contract's shape (spec 1.2, 1.3).
//! 256 cases per property by default; `PROPTEST_CASES=100000` runs longer.

use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, Method, Request};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use shared::http::normalize_path;
use std::sync::{Arc, LazyLock};
use tower::ServiceExt as _;

const TENANT: &str = "tenant-fuzz";
const SECRET: &str = "sk_test_fuzz_0123456789abcdef";
const USER: &str = "fuzz-user";

/// The app, and valid values that open the doors to the handlers.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
    public_key: String,
    challenge_id: String,
    signature: String,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let device =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public_key = STANDARD.encode(shared::signature::p256_spki(device.public_key().as_ref()));
    let (router, token, challenge_id) = runtime.block_on(async {
        let app = e2e_tests::app_with_tenant(TENANT, SECRET).await;
        let router = trusted_device::router(Arc::new(app));
        let secret = basic_secret();
        let enroll = call(
            &router,
            "POST",
            "/v1/users/fuzz-user/actions/enroll",
            &secret,
            "{}",
        )
        .await;
        let enroll_token = format!("Bearer {}", enroll["token"].as_str().unwrap());
        let added = call(
            &router,
            "POST",
            "/v1/client/user-authenticators/in-app",
            &enroll_token,
            &json!({"publicKey": public_key}).to_string(),
        )
        .await;
        assert!(added["userAuthenticatorId"].is_string(), "{added}");
        let tracked = call(
            &router,
            "POST",
            "/v1/users/fuzz-user/actions/signIn",
            &secret,
            "{}",
        )
        .await;
        let token = tracked["token"].as_str().unwrap().to_owned();
        let challenge = call(
            &router,
            "POST",
            "/v1/client/challenge",
            &basic_tenant(),
            "{}",
        )
        .await;
        let challenge_id = challenge["challengeId"].as_str().unwrap().to_owned();
        (router, token, challenge_id)
    });
    let signature = STANDARD.encode(device.sign(&rng, challenge_id.as_bytes()).unwrap().as_ref());
    Fixture {
        runtime,
        router,
        token,
        public_key,
        challenge_id,
        signature,
    }
});

fn basic_secret() -> String {
    format!("Basic {}", STANDARD.encode(format!("{SECRET}:")))
}

fn basic_tenant() -> String {
    format!("Basic {}", URL_SAFE_NO_PAD.encode(format!("{TENANT}:")))
}

async fn call(router: &axum::Router, method: &str, uri: &str, auth: &str, body: &str) -> Value {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router
        .clone()
        .map_request(normalize_path)
        .oneshot(request)
        .await
        .unwrap();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A value from the pool: valid ones, near misses, and anything.
#[derive(Debug, Clone)]
enum Pick {
    Token,
    PublicKey,
    ChallengeId,
    Signature,
    User,
    Text(String),
}

impl Pick {
    fn text(&self) -> String {
        let fixture = &*FIXTURE;
        match self {
            Pick::Token => fixture.token.clone(),
            Pick::PublicKey => fixture.public_key.clone(),
            Pick::ChallengeId => fixture.challenge_id.clone(),
            Pick::Signature => fixture.signature.clone(),
            Pick::User => USER.to_owned(),
            Pick::Text(text) => text.clone(),
        }
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        Just(Pick::Token),
        Just(Pick::PublicKey),
        Just(Pick::ChallengeId),
        Just(Pick::Signature),
        Just(Pick::User),
        Just(Pick::Text("push".into())),
        Just(Pick::Text("signIn".into())),
        Just(Pick::Text("*".into())),
        ".{0,24}".prop_map(Pick::Text),
        "[a-zA-Z0-9_.~-]{0,12}".prop_map(Pick::Text),
    ]
}

/// A path segment: a pool value or anything, percent-encoded as the SDKs do, sometimes raw.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => pick().prop_map(|p| percent_encode(&p.text())),
        1 => "[a-zA-Z0-9%/._~+-]{0,16}",
        1 => Just(String::new()),
    ]
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A route of one of the four functions with its parameters filled, or any path.
fn path() -> impl Strategy<Value = String> {
    let routes = trusted_device::all_routes();
    let templated = (0..routes.len(), proptest::collection::vec(segment(), 4)).prop_map(
        move |(index, fills)| {
            let mut fills = fills.into_iter();
            routes[index]
                .1
                .split('/')
                .map(|part| {
                    if part.starts_with('{') {
                        fills.next().unwrap_or_default()
                    } else {
                        part.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        },
    );
    prop_oneof![
        6 => templated,
        1 => "(/[a-zA-Z0-9%._~+-]{0,8}){0,6}",
        1 => "/v1(/{1,3}[a-z-]{0,12}){0,5}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("publicKey".to_owned()),
        Just("challengeId".to_owned()),
        Just("userId".to_owned()),
        Just("fromDate".to_owned()),
        Just("state".to_owned()),
        Just("codes".to_owned()),
        "[a-zA-Z%]{0,6}",
    ];
    let value = prop_oneof![
        pick().prop_map(|p| percent_encode(&p.text())),
        pick().prop_map(|p| URL_SAFE_NO_PAD.encode(p.text())),
        "[a-zA-Z0-9%+=&]{0,12}",
    ];
    proptest::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        pick().prop_map(|p| Value::from(p.text())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-zA-Z.]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The fields the routes read, with values of any type.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("idempotencyKey"),
        Just("ipAddress"),
        Just("userAgent"),
        Just("deviceId"),
        Just("scope"),
        Just("email"),
        Just("custom"),
        Just("token"),
        Just("userId"),
        Just("action"),
        Just("publicKey"),
        Just("signature"),
        Just("challengeId"),
        Just("deviceName"),
        Just("devicePlatform"),
        Just("approved"),
        Just("verificationCode"),
        Just("decisionSignature"),
        Just("deviceCode"),
        Just("pushToken"),
        Just("numberMatching"),
        Just("state"),
        Just("actionCode"),
        Just("defaultOutcome"),
        Just("rules"),
        Just("userAuthenticatorId"),
        Just("resetExpiry"),
    ];
    let object = proptest::collection::btree_map(field, json_value(), 0..6)
        .prop_map(|m| serde_json::to_vec(&m).unwrap());
    prop_oneof![
        6 => object,
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(basic_secret())),
        Just(Some(basic_tenant())),
        Just(Some(format!("Basic {}", STANDARD.encode(TENANT)))),
        Just(Some("Bearer TOKEN".to_owned())),
        ".{0,40}".prop_map(|t| Some(format!("Bearer {t}"))),
        ".{0,40}".prop_map(Some),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::POST),
        3 => Just(Method::GET),
        1 => Just(Method::PATCH),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
    ]
}

/// Sends one request through the merged routers and checks the properties.
fn check(
    method: Method,
    path: &str,
    query: &str,
    auth: Option<String>,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<(), TestCaseError> {
    let fixture = &*FIXTURE;
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut builder = Request::builder().method(method.clone()).uri(&uri);
    if let Some(auth) = auth {
        let auth = auth.replace("TOKEN", &fixture.token);
        if let Ok(value) = HeaderValue::from_str(&auth) {
            builder = builder.header("authorization", value);
        }
    }
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(&value) {
            builder = builder.header(name, value);
        }
    }
    // Paths no HTTP client could send (not a valid URI) are not requests.
    let Ok(request) = builder.body(Body::from(body)) else {
        return Ok(());
    };
    let response = fixture.runtime.block_on(
        fixture
            .router
            .clone()
            .map_request(normalize_path)
            .oneshot(request),
    );
    let response = response.unwrap();
    let status = response.status();
    prop_assert!(
        !status.is_server_error(),
        "{method} {uri}: {status} {:?}",
        response.headers()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    // The pre-built UI's routes (issue #16) answer a page, its assets or an image when they
    // succeed, never cached and never sending a Referer; their errors are JSON like any other.
    const UI_TYPES: [&str; 4] = [
        "text/html; charset=utf-8",
        "text/javascript; charset=utf-8",
        "text/css; charset=utf-8",
        "image/svg+xml",
    ];
    if status.is_success() && content_type.is_some_and(|t| UI_TYPES.contains(&t)) {
        prop_assert!(path.contains("/ui"), "{method} {uri}: {content_type:?}");
        prop_assert_eq!(
            response
                .headers()
                .get("referrer-policy")
                .map(|v| v.as_bytes()),
            Some(&b"no-referrer"[..])
        );
        prop_assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        return Ok(());
    }
    prop_assert_eq!(content_type, Some("application/json"), "{} {}", method, uri);
    let bytes = fixture
        .runtime
        .block_on(to_bytes(response.into_body(), usize::MAX))
        .unwrap();
    if method == Method::HEAD {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|_| TestCaseError::fail(format!("{method} {uri}: not JSON: {bytes:?}")))?;
    if status.is_client_error() {
        let code = body["error"].as_str().unwrap_or_default();
        prop_assert!(!code.is_empty(), "{method} {uri}: {body}");
        prop_assert_eq!(&body["errorCode"], &body["error"], "{} {}", method, uri);
        prop_assert!(
            body["errorDescription"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{method} {uri}: {body}"
        );
    }
    Ok(())
}

fn extra_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let header = prop_oneof![
        (
            Just("x-authsignal-tenant-id".to_owned()),
            prop_oneof![Just(TENANT.to_owned()), ".{0,12}"]
        ),
        (
            Just("x-authsignal-signature".to_owned()),
            prop_oneof![Just("SIG".to_owned()), ".{0,40}"]
        ),
        (
            Just("content-type".to_owned()),
            prop_oneof![
                Just("application/json".to_owned()),
                Just("text/plain".to_owned()),
                ".{0,20}"
            ]
        ),
        (Just("x-forwarded-for".to_owned()), ".{0,20}"),
    ];
    proptest::collection::vec(header, 0..3).prop_map(|headers| {
        headers
            .into_iter()
            .map(|(name, value)| (name, value.replace("SIG", &FIXTURE.signature)))
            .collect()
    })
}

proptest! {
    #[test]
    fn any_request_to_any_route_is_answered_in_the_contracts_shape(
        method in method(),
        path in path(),
        query in query(),
        auth in authorization(),
        extra in extra_headers(),
        body in body(),
    ) {
        check(method, &path, &query, auth, extra, body)?;
    }

    /// Valid credentials on every request, so that each handler's body extractor and use case
    /// see the arbitrary bodies.
    #[test]
    fn any_body_past_authentication_is_answered_in_the_contracts_shape(
        route in 0..trusted_device::all_routes().len(),
        bearer in any::<bool>(),
        query in query(),
        body in body(),
    ) {
        let (method, template) = trusted_device::all_routes()[route];
        // The Server API takes the secret; the Client API a token or the tenant (spec 2.1, 3.1).
        let auth = match (template.starts_with("/v1/client/"), bearer) {
            (false, _) => basic_secret(),
            (true, true) => "Bearer TOKEN".to_owned(),
            (true, false) => basic_tenant(),
        };
        let path = template
            .replace("{userId}", USER)
            .replace("{action}", "signIn")
            .replace("{actionCode}", "signIn")
            .replace("{idempotencyKey}", "k")
            .replace("{namespace}", "in-app")
            .replace("{userAuthenticatorId}", "0000");
        check(method.parse().unwrap(), &path, &query, Some(auth), Vec::new(), body)?;
    }
}
