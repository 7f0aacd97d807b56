//! The pre-built UI (issue #16, DESIGN 9): the page track's `url` points at, its script and
//! stylesheet (compiled into the binary), and the QR-code image it shows.
//!
//! The page is bound to one action and user by the track token in its URL. The HTML is built
//! here with every tenant and user string escaped; the script then runs each method through
//! the Client API's own routes with that token, as `@authsignal/browser` does. Headers
//! (docs/security.md, "The pre-built UI"): a strict CSP with no inline script or style
//! (`script-src 'self'`), `frame-ancestors` = the tenant's allowed origins (the browser SDK's
//! popup mode frames the page), `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::domain::ActionState;
use shared::error::Error;
use shared::http::media::{Css, Html, JavaScript, Svg};
use shared::http::{MediaResponse, SharedApp};
use shared::usecase::tenants::Tenant;
use shared::usecase::ui::UiPage;
use std::sync::Arc;

const APP_JS: &str = include_str!("../assets/ui/app.js");
const APP_CSS: &str = include_str!("../assets/ui/app.css");

/// The longest text the QR-code image encodes: a sealed challenge id is well under it.
const MAX_QR_TEXT: usize = 1024;

/// The page's address for a track token: `{public base}/ui?token=…` (spec 2.3, track's
/// `url`). The browser SDK's popup and window modes append `&mode=popup`, so the query is
/// never empty.
pub fn page_url(base: &str, token: &str) -> String {
    format!("{base}/ui?token={token}")
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the script reads from the page's `data-config` (escaped JSON): no token (the script
/// takes it from the URL), the redirect from the signed token only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageConfig<'a> {
    state: Option<ActionState>,
    action_code: Option<&'a str>,
    push: bool,
    qr_code: bool,
    passkey: bool,
    add_passkey: bool,
    /// Track's `redirectUrl`, from the verified token; never from the page's own URL.
    redirect_url: Option<&'a str>,
    /// Track's `redirectToSettings`, from the verified token: show the settings screen after
    /// the challenge (or at once when the action needs none).
    settings: bool,
    /// The settings screen offers to add a passkey.
    settings_add_passkey: bool,
    /// The token may remove authenticators already (a challenge completed its action).
    may_remove: bool,
    /// Where popup and window modes post their messages (and nowhere else).
    allowed_origins: Vec<&'a str>,
    colour: Option<&'a str>,
    /// Why the page cannot go on, when it cannot: `expired_token`, `invalid_token`, ...
    error: Option<&'a str>,
}

/// `GET /v1/ui?token=…[&mode=popup]`.
pub async fn page(State(app): State<SharedApp>, RawQuery(query): RawQuery) -> MediaResponse<Html> {
    MediaResponse::new(page_response(&app, query).await)
}

async fn page_response(app: &SharedApp, query: Option<String>) -> Response {
    let token = query.as_deref().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned())
    });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return render(None, None, Some(&Error::InvalidToken));
    };
    // The tenant named by the token's `kid`, for its frame-ancestors and branding even when
    // the token itself is refused (then the page shows only the refusal).
    let tenant = match shared::token::claimed_tenant(&token) {
        Some(id) => app.tenant_by_id(&id).await.ok(),
        None => None,
    };
    let Some(tenant) = tenant else {
        return render(None, None, Some(&Error::InvalidToken));
    };
    let result = match tenant.keys.verify(&token, app.now()) {
        Ok(verified) => app.ui_page(&tenant, &verified).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(view) => render(Some(&tenant), Some(&view), None),
        Err(error) => render(Some(&tenant), None, Some(&error)),
    }
}

fn render(tenant: Option<&Arc<Tenant>>, view: Option<&UiPage>, error: Option<&Error>) -> Response {
    let branding = tenant.map(|t| &t.ui);
    let name = branding
        .and_then(|b| b.name.as_deref())
        .unwrap_or("Verify it's you");
    let code = error.map(|e| shared::http::error::HttpError::from(e.clone()).code());
    let config = PageConfig {
        state: view.map(|v| v.state),
        action_code: view.map(|v| v.action_code.as_str()),
        push: view.is_some_and(|v| v.push_devices > 0),
        qr_code: view.is_some_and(|v| v.qr_devices > 0),
        passkey: view.is_some_and(|v| v.passkeys_enabled && v.passkeys > 0),
        add_passkey: view.is_some_and(|v| v.may_add_passkey),
        redirect_url: view.and_then(|v| v.redirect_url.as_deref()),
        settings: view.is_some_and(|v| v.settings),
        settings_add_passkey: view.is_some_and(|v| v.settings_add_passkey),
        may_remove: view.is_some_and(|v| v.may_remove),
        allowed_origins: tenant
            .map(|t| t.allowed_origins.iter().map(|o| o.as_str()).collect())
            .unwrap_or_default(),
        colour: branding.and_then(|b| b.colour.as_deref()),
        error: code,
    };
    let config = serde_json::to_string(&config).unwrap_or_else(|_| "{}".to_owned());
    let logo = branding
        .and_then(|b| b.logo_url.as_deref())
        .map(|url| {
            format!(
                r#"<img class="logo" src="{}" alt="" referrerpolicy="no-referrer">"#,
                escape_html(url)
            )
        })
        .unwrap_or_default();
    let html = format!(
        include_str!("../assets/ui/page.html"),
        name = escape_html(name),
        logo = logo,
        config = escape_html(&config),
    );
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let csp = content_security_policy(tenant.map(|t| &**t));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    security_headers(headers);
    response
}

/// The page's CSP (docs/security.md): only its own script, style, images and API; the
/// tenant's logo origin for `img-src`; framed only by the tenant's allowed origins.
pub fn content_security_policy(tenant: Option<&Tenant>) -> String {
    let logo = tenant
        .and_then(|t| t.ui.logo_origin())
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    let ancestors: Vec<&str> = tenant
        .map(|t| t.allowed_origins.iter().map(|o| o.as_str()).collect())
        .unwrap_or_default();
    let ancestors = if ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'{logo}; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
}

/// What every UI answer carries: the token in the page URL never leaves in a `Referer`, no
/// cache keeps a page, no type is sniffed.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    security_headers(headers);
    response
}

/// `GET /v1/ui/app.js`.
pub async fn script() -> MediaResponse<JavaScript> {
    MediaResponse::new(asset("text/javascript; charset=utf-8", APP_JS))
}

/// `GET /v1/ui/app.css`.
pub async fn stylesheet() -> MediaResponse<Css> {
    MediaResponse::new(asset("text/css; charset=utf-8", APP_CSS))
}

/// `GET /v1/ui/qr-code.svg?text=…`: the QR code the page shows (a challenge id), drawn here
/// so that the page loads no QR library. It draws any short text; it reads and writes nothing.
pub async fn qr_code(RawQuery(query): RawQuery) -> MediaResponse<Svg> {
    MediaResponse::new(qr_code_response(query))
}

fn qr_code_response(query: Option<String>) -> Response {
    let text = query.as_deref().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "text")
            .map(|(_, value)| value.into_owned())
    });
    let Some(text) = text.filter(|t| !t.is_empty() && t.len() <= MAX_QR_TEXT) else {
        return shared::http::error::HttpError::from(Error::invalid_request(format!(
            "text must be 1 to {MAX_QR_TEXT} bytes (UTF-8)."
        )))
        .into_response();
    };
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return shared::http::error::HttpError::from(Error::invalid_request(
            "text cannot be drawn as a QR code.",
        ))
        .into_response();
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let mut response = svg.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    security_headers(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            escape_html(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_page_url_carries_the_token_in_its_query() {
        assert_eq!(
            page_url("https://auth.example/v1", "a.b.c"),
            "https://auth.example/v1/ui?token=a.b.c"
        );
    }
}
