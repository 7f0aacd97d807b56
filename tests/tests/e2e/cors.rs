//! CORS over HTTP (docs/api.md "CORS", DESIGN 9): preflights answered on the Client API and
//! refused on the Server API; actual requests get `Access-Control-Allow-Origin` only for the
//! tenant's own allowed origins, and state-changing calls from any other origin are refused
//! before they change anything. The same in a real browser: `tests/browser/`.

use e2e_tests::{Auth, Device, FUNCTIONS, Harness, routes_of};
use reqwest::Method;
use serde_json::{Value, json};
use shared::config::Settings;
use shared::domain::AllowedOrigin;
use shared::usecase::tenants::TenantSettingsChange;

const APP: &str = "https://app.example";
const LOCAL_APP: &str = "http://localhost:3000";
const EVIL: &str = "https://evil.example";

/// Tenant A allows the two app origins; tenant B allows none.
async fn harness() -> Harness {
    Harness::start_configured(
        Settings::default(),
        TenantSettingsChange {
            allowed_origins: Some(vec![
                AllowedOrigin::parse(APP).unwrap(),
                AllowedOrigin::parse(LOCAL_APP).unwrap(),
            ]),
            ..TenantSettingsChange::default()
        },
    )
    .await
}

/// A response's status, headers and JSON body (`Null` when empty).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn allowed_origin(&self) -> Option<&str> {
        self.header("access-control-allow-origin")
    }
}

async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> Answer {
    let mut request = h.http.request(method, h.url(path));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn preflight(h: &Harness, path: &str, origin: &str, method: &str, headers: &str) -> Answer {
    send(
        h,
        Method::OPTIONS,
        path,
        &[
            ("origin", origin.to_owned()),
            ("access-control-request-method", method.to_owned()),
            ("access-control-request-headers", headers.to_owned()),
        ],
        None,
    )
    .await
}

/// The browser SDK's tenant Basic: base64 of the id, no colon.
fn browser_basic(tenant: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(tenant)
    )
}

/// A route template with sample parameters.
fn concrete(route: &str) -> String {
    route
        .trim_start_matches("/v1")
        .replace("{userId}", "alice")
        .replace("{action}", "signIn")
        .replace("{idempotencyKey}", "k1")
        .replace("{actionCode}", "signIn")
        .replace("{namespace}", "push")
        .replace("{userAuthenticatorId}", "x")
        .replace("{tenantId}", "t")
}

#[tokio::test]
async fn every_client_api_path_answers_a_preflight_and_every_server_api_path_refuses_it() {
    let h = harness().await;
    let mut client_paths = 0;
    for function in FUNCTIONS {
        for (method, route) in routes_of(function) {
            if *method != "OPTIONS" {
                continue;
            }
            let path = concrete(route);
            // Preflights carry no credentials: any origin a tenant could allow is answered.
            let answer = preflight(&h, &path, EVIL, "POST", "authorization,content-type").await;
            if route.starts_with("/v1/client/") {
                client_paths += 1;
                assert_eq!(answer.status, 204, "{route}: {}", answer.body);
                assert_eq!(answer.allowed_origin(), Some(EVIL), "{route}");
                assert_eq!(
                    answer.header("access-control-allow-methods"),
                    Some("GET, POST, PATCH")
                );
                assert_eq!(
                    answer.header("access-control-allow-headers"),
                    Some("authorization, content-type")
                );
                assert_eq!(answer.header("access-control-max-age"), Some("7200"));
                assert!(answer.header("vary").unwrap().contains("Origin"));
            } else {
                assert_eq!(answer.status, 403, "{route}");
                assert_eq!(answer.body["errorCode"], "cors_not_allowed", "{route}");
                assert_eq!(answer.body["error"], "cors_not_allowed", "{route}");
                assert_eq!(answer.allowed_origin(), None, "{route}");
                // Not even for an origin tenant A allows.
                let answer = preflight(&h, &path, APP, "GET", "authorization").await;
                assert_eq!(answer.status, 403, "{route}");
                assert_eq!(answer.allowed_origin(), None, "{route}");
            }
        }
    }
    assert_eq!(client_paths, 20);
}

#[tokio::test]
async fn a_preflight_names_what_the_sdks_send_and_nothing_else() {
    let h = harness().await;
    let path = "/client/challenge/qr-code";
    let answer = preflight(
        &h,
        path,
        LOCAL_APP,
        "POST",
        "Authorization, Content-Type, X-Authsignal-Version, X-Authsignal-SDK",
    )
    .await;
    assert_eq!(answer.status, 204);
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("authorization, content-type, x-authsignal-version, x-authsignal-sdk")
    );
    for (origin, method, headers) in [
        (APP, "DELETE", "authorization"),
        (APP, "PUT", "authorization"),
        (APP, "POST", "authorization, cookie-monster"),
        ("null", "POST", "authorization"),
        ("http://app.example", "POST", "authorization"),
        ("https://app.example/", "POST", "authorization"),
    ] {
        let answer = preflight(&h, path, origin, method, headers).await;
        assert_eq!(answer.status, 403, "{origin} {method} {headers}");
        assert_eq!(answer.body["errorCode"], "cors_not_allowed");
        assert_eq!(answer.allowed_origin(), None);
    }
    // An OPTIONS without the preflight headers is no preflight.
    let answer = send(&h, Method::OPTIONS, path, &[], None).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.body["errorCode"], "cors_not_allowed");
}

#[tokio::test]
async fn the_tenants_allowed_origin_gets_cors_headers_and_another_is_refused_before_any_change() {
    let h = harness().await;
    let start = |origin: Option<&str>, tenant: String| {
        let mut headers = vec![("authorization", browser_basic(&tenant))];
        if let Some(origin) = origin {
            headers.push(("origin", origin.to_owned()));
        }
        let h = &h;
        async move {
            send(
                h,
                Method::POST,
                "/client/challenge/qr-code",
                &headers,
                Some(json!({"action": "signIn"})),
            )
            .await
        }
    };
    let allowed = start(Some(LOCAL_APP), h.a.id.clone()).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.allowed_origin(), Some(LOCAL_APP));
    assert_eq!(allowed.header("vary"), Some("Origin"));
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("Retry-After")
    );

    let refused = start(Some(EVIL), h.a.id.clone()).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"], "origin_not_allowed");
    assert_eq!(refused.body["errorCode"], "origin_not_allowed");
    assert_eq!(refused.allowed_origin(), None);
    assert_eq!(refused.header("vary"), Some("Origin"));

    // Tenant A's origin is not tenant B's: each request is checked against its own tenant.
    let other_tenant = start(Some(APP), h.b.id.clone()).await;
    assert_eq!(other_tenant.status, 403);
    assert_eq!(other_tenant.body["errorCode"], "origin_not_allowed");
    assert_eq!(other_tenant.allowed_origin(), None);

    // Without an Origin (mobile SDKs, servers) nothing changes; the server's own origin is
    // same-origin and needs no CORS.
    let mobile = start(None, h.b.id.clone()).await;
    assert_eq!(mobile.status, 200);
    assert_eq!(mobile.allowed_origin(), None);
    let own = h.server.base_url().trim_end_matches("/v1").to_owned();
    let same_origin = start(Some(&own), h.b.id.clone()).await;
    assert_eq!(same_origin.status, 200, "{}", same_origin.body);
    assert_eq!(same_origin.allowed_origin(), None);
}

#[tokio::test]
async fn a_refused_push_start_creates_no_challenge_and_reads_from_other_origins_are_not_shared() {
    let h = harness().await;
    let phone = Device::in_namespace("push");
    h.register(&h.a, "alice", &phone).await;
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let token = tracked["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let refused = send(
        &h,
        Method::POST,
        "/client/challenge/push",
        &[("authorization", bearer.clone()), ("origin", EVIL.into())],
        Some(json!({"action": "signIn"})),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["errorCode"], "origin_not_allowed");
    // The phone has nothing to answer: the refused start did nothing.
    let pending = h
        .get(
            &format!(
                "/client/user-authenticators/push/challenge?publicKey={}",
                phone.query_ios()
            ),
            Auth::TenantIos(&h.a.id),
        )
        .await
        .expect(200);
    assert!(pending.get("challengeId").is_none(), "{pending}");

    // A read from another origin is answered (it changes nothing), without CORS headers: the
    // browser keeps it from the page.
    let read = send(
        &h,
        Method::GET,
        &format!(
            "/client/user-authenticators/push/challenge?publicKey={}",
            phone.query_ios()
        ),
        &[
            ("authorization", browser_basic(&h.a.id)),
            ("origin", EVIL.into()),
        ],
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.allowed_origin(), None);
    let read = send(
        &h,
        Method::GET,
        &format!(
            "/client/user-authenticators/push/challenge?publicKey={}",
            phone.query_ios()
        ),
        &[
            ("authorization", browser_basic(&h.a.id)),
            ("origin", APP.into()),
        ],
        None,
    )
    .await;
    assert_eq!(read.allowed_origin(), Some(APP));

    // From the allowed origin the start works, and an expired token's 401 is readable by the
    // page (the SDK's onTokenExpired needs its errorCode).
    let started = send(
        &h,
        Method::POST,
        "/client/challenge/push",
        &[("authorization", bearer), ("origin", APP.into())],
        Some(json!({"action": "signIn"})),
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.allowed_origin(), Some(APP));
    h.clock.advance_seconds(3600);
    let expired = send(
        &h,
        Method::POST,
        "/client/verify/push",
        &[
            ("authorization", format!("Bearer {token}")),
            ("origin", APP.into()),
        ],
        Some(json!({"challengeId": started.body["challengeId"]})),
    )
    .await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.body["errorCode"], "expired_token");
    assert_eq!(expired.allowed_origin(), Some(APP));
}

#[tokio::test]
async fn the_server_api_sends_no_cors_headers_even_to_an_allowed_origin() {
    let h = harness().await;
    let answer = send(
        &h,
        Method::POST,
        "/users/alice/actions/signIn",
        &[
            ("authorization", {
                use base64::Engine as _;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{}:", h.a.secret))
                )
            }),
            ("origin", APP.into()),
        ],
        Some(json!({})),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.allowed_origin(), None);
    assert_eq!(answer.header("vary"), None);
}
