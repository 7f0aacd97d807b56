//! Outbound webhooks: the envelope, the `X-Signature-V2` signature and delivery (spec 2.11).
//!
//! Only `push.created` is sent, synchronously: a push start waits for the customer's endpoint
//! to accept it, so that a failure to deliver the notification is an error the browser sees
//! (spec 2.11: "non-2xx fails the challenge").

use crate::clock::Timestamp;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The header the official SDKs' webhook verifiers read (spec 2.11).
pub const SIGNATURE_HEADER: &str = "x-signature-v2";

/// The envelope every webhook has (spec 2.11).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T: Serialize> {
    pub version: u8,
    pub id: String,
    pub source: &'static str,
    pub time: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub data: T,
}

/// The value of `X-Signature-V2`: `t=<unix seconds>,v2=<signature>`, where the signature is
/// base64 (standard alphabet, `=` padding removed) of HMAC-SHA256(secret, "<t>.<raw body>")
/// (spec 2.11; authsignal-node `src/webhook.ts`).
pub fn signature_header(secret: &str, at: Timestamp, body: &[u8]) -> String {
    use base64::Engine as _;
    let t = at.unix_seconds();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(format!("{t}.").as_bytes());
    context.update(body);
    let tag = context.sign();
    let signature = base64::engine::general_purpose::STANDARD_NO_PAD.encode(tag.as_ref());
    format!("t={t},v2={signature}")
}

/// Whether a webhook URL may be used: `https`, or `http` to a loopback host only (local
/// development and tests). Anything else would send signed challenge data in the clear.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let uri: axum::http::Uri = url.parse().map_err(|_| "the URL does not parse")?;
    let host = uri.host().ok_or("the URL has no host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") => Ok(()),
        Some("http") => Err("plain http is only allowed to localhost; use https"),
        _ => Err("the URL must start with https://"),
    }
}

/// Sends one webhook. A trait so that the use cases can be tested without a network.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` as JSON with the signature header; `Err` describes why it was not
    /// accepted (a status, a timeout, a connection failure), without echoing the response.
    async fn send(
        &self,
        url: &str,
        signature: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), String>;
}

/// An HTTP/1.1 client for https (and http) URLs, on the TLS stack the AWS SDK already builds.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds an [`HttpsClient`] trusting the system's root certificates (`SSL_CERT_FILE` may
/// name others). The provider is passed explicitly: rustls then never looks for a
/// process-wide default, which is what panics when none is installed (TOOLING.md). The
/// webhook sender and the CLI's `device` and `conformance` share it.
pub fn https_client() -> Result<HttpsClient, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| format!("TLS set-up failed (no usable root certificates?): {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The real sender: HTTP/1.1 over rustls with the system's root certificates. The client is
/// built on first use, so a function whose tenants have no webhook never loads certificates.
#[derive(Default)]
pub struct HttpWebhookSender {
    client: OnceLock<Result<HttpsClient, String>>,
}

impl HttpWebhookSender {
    fn client(&self) -> Result<&HttpsClient, String> {
        self.client
            .get_or_init(https_client)
            .as_ref()
            .map_err(Clone::clone)
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(
        &self,
        url: &str,
        signature: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), String> {
        let client = self.client()?;
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "trusted-device-webhook/1")
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "the webhook URL is not usable".to_owned())?;
        let response = tokio::time::timeout(timeout, client.request(request))
            .await
            .map_err(|_| format!("no response within {} ms", timeout.as_millis()))?
            .map_err(|e| format!("the request failed: {e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered HTTP {}", status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answer, computed independently with Python:
    /// `base64.b64encode(hmac.new(b"whsec_test", b"1700000000.{\"a\":1}", sha256).digest()).rstrip(b"=")`
    #[test]
    fn signature_header_matches_an_independent_computation() {
        let header = signature_header(
            "whsec_test",
            Timestamp::from_unix_seconds(1_700_000_000),
            br#"{"a":1}"#,
        );
        assert_eq!(
            header, "t=1700000000,v2=OIdxOQIZk7gwrzL+6m4YqNqD6y9uSe5QvZ5M9MpNN4k",
            "header {header}"
        );
    }

    #[test]
    fn only_https_or_loopback_http_urls_are_accepted() {
        assert!(check_url("https://hooks.example.com/authsignal").is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("http://localhost/hook").is_ok());
        assert!(check_url("http://hooks.example.com/hook").is_err());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("not a url").is_err());
    }
}
