//! CORS: browser pages on a tenant's allowed origins may call the Client API; nothing else is
//! opened to browsers (DESIGN 9, docs/api.md "CORS").
//!
//! Three pieces, all in the shared layers, so the local server and the Lambda functions answer
//! alike:
//! - [`preflight`], the handler of every path's `OPTIONS` line in the route tables (so API
//!   Gateway routes preflights to the functions like any other route). A preflight carries no
//!   credentials, so the tenant is unknown: on a Client API path it is answered for any origin
//!   that a tenant *could* allow (a well-formed `https` origin, or `http://localhost`), for the
//!   methods and headers the SDKs use. That opens nothing: the actual request is checked
//!   against its own tenant's list. On a Server API path it is refused (`403 cors_not_allowed`).
//! - [`layer`], around every router: on a Client API request with an `Origin` it leaves a
//!   [`CorsGrant`] for the auth extractor, and adds `Access-Control-Allow-Origin` to the answer
//!   only if the extractor granted it.
//! - [`check_origin`], called by the client auth extractors once the tenant is known: the
//!   tenant's allowed origin is granted; any other origin gets no CORS headers (the browser
//!   hides the answer), and a state-changing call from it is refused with `403
//!   origin_not_allowed` before it does anything.

use super::HttpError;
use crate::domain::AllowedOrigin;
use crate::domain::origin::is_same_origin;
use crate::error::Error;
use crate::usecase::tenants::Tenant;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The prefix of the Client API's paths (spec 3.3): the only paths open to browsers.
pub const CLIENT_API_PREFIX: &str = "/v1/client/";

/// The methods the Client API uses (spec 3.3).
pub const ALLOWED_METHODS: &str = "GET, POST, PATCH";

/// The request headers a preflight may ask for: what `@authsignal/browser` sends
/// (`Authorization`, `Content-Type`), plus any `X-Authsignal-*` (spec 1.4) that SDK releases
/// add.
const ALLOWED_HEADERS: [&str; 2] = ["authorization", "content-type"];
const ALLOWED_HEADER_PREFIX: &str = "x-authsignal-";

/// How long a browser may reuse a preflight answer, in seconds (Chromium caps it at 7200).
pub const MAX_AGE_SECONDS: u32 = 7200;

/// Whether `path` is a Client API path.
pub fn is_client_path(path: &str) -> bool {
    path.starts_with(CLIENT_API_PREFIX)
}

/// The handler of the `OPTIONS` line of every route path (see the module docs).
pub async fn preflight(uri: Uri, headers: HeaderMap) -> Response {
    match answer_preflight(uri.path(), &headers) {
        Ok(response) => response,
        Err(refusal) => {
            tracing::warn!(
                origin = header_text(&headers, header::ORIGIN),
                reason = refusal.description().as_ref(),
                "CORS preflight refused"
            );
            let mut response = refusal.into_response();
            response
                .headers_mut()
                .insert(header::VARY, preflight_vary());
            response
        }
    }
}

fn answer_preflight(path: &str, headers: &HeaderMap) -> Result<Response, HttpError> {
    if path == "/v1/ui" || path.starts_with("/v1/ui/") {
        return Err(HttpError::PreflightRefused(
            "The pre-built UI is not called across origins: open its page (track's url) instead",
        ));
    }
    if !is_client_path(path) {
        return Err(HttpError::PreflightRefused(
            "The Server API is not callable from browsers: call it from your backend with the secret key",
        ));
    }
    let origin = headers
        .get(header::ORIGIN)
        .ok_or(HttpError::PreflightRefused(
            "An OPTIONS request here is a CORS preflight and needs an Origin header",
        ))?;
    if !could_be_allowed(origin) {
        return Err(HttpError::PreflightRefused(
            "The Origin is not one a tenant can allow (https, or http://localhost)",
        ));
    }
    let method = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|value| value.to_str().ok())
        .ok_or(HttpError::PreflightRefused(
            "A CORS preflight needs an Access-Control-Request-Method header",
        ))?;
    if !["GET", "POST", "PATCH"].contains(&method) {
        return Err(HttpError::PreflightRefused(
            "The Client API takes GET, POST and PATCH only",
        ));
    }
    let requested = requested_headers(headers).ok_or(HttpError::PreflightRefused(
        "The Client API takes the request headers Authorization, Content-Type and X-Authsignal-* only",
    ))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(MAX_AGE_SECONDS),
    );
    out.insert(header::VARY, preflight_vary());
    Ok(response)
}

fn preflight_vary() -> HeaderValue {
    HeaderValue::from_static(
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    )
}

/// An `Origin` a tenant could have allowed: exactly the serialized form of an
/// [`AllowedOrigin`] (no `null`, no plain `http` other than localhost).
fn could_be_allowed(origin: &HeaderValue) -> bool {
    origin
        .to_str()
        .ok()
        .is_some_and(|text| AllowedOrigin::parse(text).is_ok_and(|parsed| parsed.as_str() == text))
}

/// The `Access-Control-Allow-Headers` answer: the requested names, lowercased, if each is
/// allowed; the SDK's two when none is requested; `None` if one is not allowed.
fn requested_headers(headers: &HeaderMap) -> Option<HeaderValue> {
    let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) else {
        return Some(HeaderValue::from_static("authorization, content-type"));
    };
    let requested = requested.to_str().ok()?.to_ascii_lowercase();
    let names: Vec<&str> = requested
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let allowed = |name: &&str| {
        ALLOWED_HEADERS.contains(name)
            || (name.len() > ALLOWED_HEADER_PREFIX.len()
                && name.starts_with(ALLOWED_HEADER_PREFIX)
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    if !names.iter().all(allowed) {
        return None;
    }
    if names.is_empty() {
        return Some(HeaderValue::from_static("authorization, content-type"));
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Left on a Client API request that carries an `Origin` by [`layer`]; [`check_origin`] sets it
/// when the tenant allows that origin, and [`layer`] then answers with the CORS headers.
#[derive(Debug, Clone)]
pub(crate) struct CorsGrant {
    origin: HeaderValue,
    granted: Arc<AtomicBool>,
}

/// Around every router (in [`super::finish`]): see the module docs.
pub(crate) async fn layer(mut request: Request, next: Next) -> Response {
    let client = is_client_path(request.uri().path());
    let grant = match request.headers().get(header::ORIGIN) {
        Some(origin) if client && request.method() != Method::OPTIONS => {
            let grant = CorsGrant {
                origin: origin.clone(),
                granted: Arc::new(AtomicBool::new(false)),
            };
            request.extensions_mut().insert(grant.clone());
            Some(grant)
        }
        _ => None,
    };
    let mut response = next.run(request).await;
    if client && !response.headers().contains_key(header::VARY) {
        // A cache must not serve one origin's answer to another.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(grant) = grant
        && grant.granted.load(Ordering::Acquire)
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, grant.origin);
        // A 429's Retry-After (DESIGN 6) is readable by the page too.
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
    response
}

/// The origin check of a Client API request whose tenant is now known (see the module docs).
/// No `Origin` (mobile SDKs, servers), or the server's own origin: nothing to check.
pub(crate) fn check_origin(parts: &Parts, tenant: &Tenant) -> Result<(), Error> {
    let Some(grant) = parts.extensions.get::<CorsGrant>() else {
        return Ok(());
    };
    let origin = grant.origin.to_str().unwrap_or_default();
    if is_same_origin(origin, header_text(&parts.headers, header::HOST)) {
        return Ok(());
    }
    if tenant.allows_origin(origin) {
        grant.granted.store(true, Ordering::Release);
        return Ok(());
    }
    let safe = parts.method == Method::GET || parts.method == Method::HEAD;
    tracing::warn!(
        tenant = tenant.id.as_str(),
        origin,
        method = %parts.method,
        refused = !safe,
        "Client API call from an origin the tenant does not allow"
    );
    if safe {
        // Changes nothing; without CORS headers the browser hides the answer from the page.
        Ok(())
    } else {
        Err(Error::OriginNotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight_headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn a_client_preflight_is_answered_for_the_sdks_methods_and_headers() {
        let headers = preflight_headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "Authorization,Content-Type,X-Authsignal-Version",
            ),
        ]);
        let response = answer_preflight("/v1/client/challenge/push", &headers).unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert_eq!(h["access-control-allow-methods"], ALLOWED_METHODS);
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization, content-type, x-authsignal-version"
        );
        assert_eq!(h["access-control-max-age"], "7200");
        assert!(h["vary"].to_str().unwrap().starts_with("Origin"));
    }

    #[test]
    fn preflights_are_refused_off_the_client_api_and_for_other_methods_headers_or_origins() {
        let ok = [
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ];
        let refused = |path: &str, headers: &[(&'static str, &'static str)]| {
            let error = answer_preflight(path, &preflight_headers(headers)).unwrap_err();
            assert_eq!(error.status(), StatusCode::FORBIDDEN, "{path} {headers:?}");
            assert_eq!(error.code(), "cors_not_allowed");
        };
        refused("/v1/users/alice/actions/signIn", &ok);
        refused("/v1/validate", &ok);
        refused("/v1/challenges", &ok);
        refused("/v1/client/challenge", &ok[1..]);
        refused("/v1/client/challenge", &ok[..1]);
        for origin in ["null", "http://app.example", "https://app.example/", "x"] {
            refused(
                "/v1/client/challenge",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                ],
            );
        }
        refused(
            "/v1/client/challenge",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "DELETE"),
            ],
        );
        refused(
            "/v1/client/challenge",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization, x-other"),
            ],
        );
        refused(
            "/v1/client/challenge",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-authsignal-"),
            ],
        );
    }

    #[test]
    fn same_origin_is_the_host_header() {
        let headers = preflight_headers(&[("host", "auth.example:8443")]);
        let host = header_text(&headers, header::HOST);
        assert!(is_same_origin("https://auth.example:8443", host));
        assert!(!is_same_origin("https://auth.example", host));
        assert!(!is_same_origin("https://evil.example:8443", host));
    }
}
