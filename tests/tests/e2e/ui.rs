//! The pre-built UI over HTTP (issue #16, docs/security.md "The pre-built UI"), on both stores:
//! track's `url`, the page's headers (CSP, frame-ancestors, Referer, cache), every tenant and
//! user string escaped, the redirect taken from the signed token only, refusals as pages. The
//! flows themselves run in a real browser: `tests/browser/ui.test.mjs`.

use e2e_tests::{Harness, StoreKind};
use serde_json::json;
use shared::config::{PublicUrl, Settings};
use shared::domain::{AllowedOrigin, UiBranding};
use shared::usecase::tenants::TenantSettingsChange;

const APP: &str = "https://app.example";
const NAME: &str = r#"<img src=x onerror=alert(1)>"'&"#;

async fn harness(kind: StoreKind) -> Harness {
    let settings = Settings {
        public_url: PublicUrl::parse("https://auth.example/v1/").unwrap(),
        ..Settings::default()
    };
    Harness::start_configured_on(
        kind,
        settings,
        TenantSettingsChange {
            allowed_origins: Some(vec![AllowedOrigin::parse(APP).unwrap()]),
            ui: Some(Some(UiBranding {
                name: Some(NAME.to_owned()),
                logo_url: Some("https://cdn.example:8443/logo.png".to_owned()),
                colour: Some("#123456".to_owned()),
            })),
            ..TenantSettingsChange::default()
        },
    )
    .await
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

async fn get(h: &Harness, path: &str) -> Page {
    let response = h.http.get(h.url(path)).send().await.unwrap();
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// What the local server serves, the path of track's `url`.
fn served_path(url: &str) -> String {
    url.strip_prefix("https://auth.example/v1")
        .expect("the configured public URL")
        .to_owned()
}

#[tokio::test]
async fn the_page_of_tracks_url_is_bound_to_its_token_with_strict_headers_and_escaped_strings() {
    for kind in [StoreKind::Embedded, StoreKind::DynamoDb] {
        let h = harness(kind).await;
        let tracked = h
            .track(
                &h.a,
                "alice",
                "signIn",
                json!({"redirectUrl": "https://app.example/done?from=<ui>"}),
            )
            .await;
        let url = tracked["url"].as_str().expect("track returns url");
        let token = tracked["token"].as_str().unwrap();
        assert_eq!(url, format!("https://auth.example/v1/ui?token={token}"));

        // A redirectUrl in the page's own URL is never read: the config has the token's.
        let page = get(
            &h,
            &format!(
                "{}&redirectUrl=https%3A%2F%2Fevil.example%2F&mode=popup",
                served_path(url)
            ),
        )
        .await;
        assert_eq!(page.status, 200, "{kind:?}");
        assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        assert_eq!(page.header("cache-control"), "no-store");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(
            page.header("content-security-policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; \
             img-src 'self' https://cdn.example:8443; connect-src 'self'; base-uri 'none'; \
             form-action 'none'; frame-ancestors https://app.example"
        );
        // The tenant's name, escaped in the title and the heading, never raw.
        let escaped = "&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;";
        assert_eq!(page.body.matches(escaped).count(), 2, "{}", page.body);
        assert!(!page.body.contains("<img src=x"));
        // The only scripts are the page's own file; no inline script or style.
        assert_eq!(page.body.matches("<script").count(), 1);
        assert!(
            page.body
                .contains(r#"<script src="ui/app.js" defer></script>"#)
        );
        assert!(!page.body.contains("style="));
        // The redirect is the token's (escaped JSON in an attribute); the token is not echoed.
        assert!(page.body.contains(
            "&quot;redirectUrl&quot;:&quot;https://app.example/done?from=%3Cui%3E&quot;"
        ));
        assert!(!page.body.contains("evil.example"));
        assert!(!page.body.contains(token));
        assert!(
            page.body
                .contains("&quot;allowedOrigins&quot;:[&quot;https://app.example&quot;]")
        );

        // Tenant B allows no origin and has no branding: framed by nobody, default name.
        let other = h.track(&h.b, "bob", "signIn", json!({})).await;
        let page = get(&h, &served_path(other["url"].as_str().unwrap())).await;
        assert!(
            page.header("content-security-policy")
                .ends_with("frame-ancestors 'none'")
        );
        assert!(
            page.header("content-security-policy")
                .contains("img-src 'self';")
        );
        assert!(
            page.body
                .contains("<h1 id=\"heading\">Verify it&#39;s you</h1>")
        );
    }
}

#[tokio::test]
async fn refusals_are_pages_and_a_bad_redirect_url_is_refused_at_track() {
    for kind in [StoreKind::Embedded, StoreKind::DynamoDb] {
        let h = harness(kind).await;
        // An expired token (the clock moved past its 10 minutes): the page says so.
        let tracked = h.track(&h.a, "carol", "signIn", json!({})).await;
        h.clock
            .advance_seconds(Settings::default().token_lifetime_seconds + 1);
        let page = get(&h, &served_path(tracked["url"].as_str().unwrap())).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body
                .contains("&quot;error&quot;:&quot;expired_token&quot;"),
            "{kind:?}"
        );
        assert!(
            page.header("content-security-policy")
                .ends_with("frame-ancestors https://app.example")
        );
        // No token, or a forged one: the page says the link is not valid, framed by nobody.
        for path in ["/ui", "/ui?token=", "/ui?token=a.b.c"] {
            let page = get(&h, path).await;
            assert_eq!(page.status, 200, "{path}");
            assert!(
                page.body
                    .contains("&quot;error&quot;:&quot;invalid_token&quot;"),
                "{path}"
            );
            assert!(
                page.header("content-security-policy")
                    .ends_with("frame-ancestors 'none'")
            );
        }
        // Track refuses a redirect the page could be abused with.
        for bad in [
            "javascript:alert(1)",
            "http://app.example/",
            "https://u:p@app.example/",
            "/x",
        ] {
            let answer = h
                .post(
                    "/users/dave/actions/signIn",
                    e2e_tests::Auth::Secret(&h.a.secret),
                    json!({"redirectUrl": bad}),
                )
                .await
                .expect(400);
            assert_eq!(answer["errorCode"], "invalid_request", "{bad}");
        }
    }
}

#[tokio::test]
async fn the_assets_and_the_qr_image_are_served_with_their_types() {
    let h = harness(StoreKind::from_env()).await;
    let script = get(&h, "/ui/app.js").await;
    assert_eq!(
        script.header("content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(script.body.contains("AUTHSIGNAL_CLOSE_POPUP"));
    let css = get(&h, "/ui/app.css").await;
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    let qr = get(&h, "/ui/qr-code.svg?text=c1.abc").await;
    assert_eq!(qr.status, 200);
    assert_eq!(qr.header("content-type"), "image/svg+xml");
    assert!(qr.body.contains("<svg"));
    let too_long = get(&h, &format!("/ui/qr-code.svg?text={}", "x".repeat(1025))).await;
    assert_eq!(too_long.status, 400);
    assert!(too_long.body.contains("invalid_request"));
    // Not the Client API: a preflight is refused, like the Server API's.
    let preflight = h
        .http
        .request(reqwest::Method::OPTIONS, h.url("/ui"))
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 403);
}
