//! The CLI's HTTP client (`device` and `conformance`): HTTP/1.1, plain or over TLS, for any
//! base URL (the local server, an API Gateway deployment, or Authsignal's own API).
//!
//! It is the stack the project already builds for webhooks (`shared::webhook`): hyper-util
//! with hyper-rustls, rustls on aws-lc-rs. The crypto provider is passed explicitly, so
//! rustls never looks for a process-level default (with none installed that lookup panics:
//! TOOLING.md). No new crate: reqwest has no TLS feature here, on purpose.

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt as _, Full};
use std::time::Duration;

type Inner = shared::webhook::HttpsClient;

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read (the API's answers are a few kilobytes).
const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
}

/// A response as received: status, `Content-Type` (as sent, if any) and body bytes.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text for a message, cut short.
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        if text.chars().count() > 500 {
            format!("{}…", text.chars().take(500).collect::<String>())
        } else {
            text.into_owned()
        }
    }
}

impl HttpClient {
    /// Builds the client; the system's root certificates are loaded here, once.
    pub fn new() -> Result<HttpClient, String> {
        Ok(HttpClient {
            inner: shared::webhook::https_client()?,
        })
    }

    /// Sends one request. `Err` is a plain-words reason the request got no HTTP answer.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header {name} is not valid in HTTP"))?;
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| format!("{url} is not a usable URL"))?;
        let response = tokio::time::timeout(TIMEOUT, async {
            let response = self.inner.request(request).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(inner) = source {
                    reason = format!("{reason}: {inner}");
                    source = inner.source();
                }
                format!("cannot reach {}: {reason}", origin(url))
            })?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("the response from {} broke off: {e}", origin(url)))?
                .to_bytes();
            Ok::<_, String>(HttpResponse {
                status,
                content_type,
                body,
            })
        })
        .await
        .map_err(|_| {
            format!(
                "no answer from {} within {} s",
                origin(url),
                TIMEOUT.as_secs()
            )
        })??;
        Ok(response)
    }
}

/// `scheme://host[:port]` of a URL, for messages: never the path or query, which may hold a
/// public key or a user id.
pub fn origin(url: &str) -> String {
    match url.parse::<axum::http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => "the server".into(),
        },
        Err(_) => "the server".into(),
    }
}
