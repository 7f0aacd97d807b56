//! Outbound webhooks, the adapter of the [`Notifier`] port: the envelope, the
//! `X-Signature-V2` signature, delivery, and which URLs may receive them (spec 2.11).
//!
//! Only `push.created` is sent, synchronously: a push start waits for the customer's endpoint
//! to accept it, so that a failure to deliver the notification is an error the browser sees
//! (spec 2.11: "non-2xx fails the challenge").

use crate::clock::Timestamp;
use crate::config::Settings;
use crate::domain::WebhookEndpoint;
use crate::notify::{Notifier, PushCreated};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::rand::{SecureRandom, SystemRandom};
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

/// The `push.created` data (spec 2.11), plus, additively, the credentials to notify.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PushCreatedData<'a> {
    challenge_id: &'a str,
    user_id: &'a str,
    idempotency_key: &'a str,
    action_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<&'a str>,
    authenticators: Vec<PushTarget<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PushTarget<'a> {
    user_authenticator_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    push_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_platform: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_name: Option<&'a str>,
}

/// The `push.created` envelope of `event`, as JSON bytes (spec 2.11). `id` is the envelope's
/// own id, a random UUID as in the spec's examples.
fn push_created_body(event: &PushCreated<'_>, id: String) -> Result<Vec<u8>, String> {
    let challenge = event.challenge;
    let action = event.action;
    let envelope = Envelope {
        version: 1,
        id,
        source: "https://authsignal.com",
        time: event.at.to_iso8601(),
        tenant_id: event.tenant_id.to_string(),
        kind: "push.created",
        data: PushCreatedData {
            challenge_id: challenge.id.as_str(),
            user_id: action.user_id.as_str(),
            idempotency_key: action.idempotency_key.as_str(),
            action_code: action.action_code.as_str(),
            user_agent: challenge.context.user_agent.as_deref(),
            ip_address: challenge.context.ip_address.as_deref(),
            authenticators: event
                .targets
                .iter()
                .map(|c| PushTarget {
                    user_authenticator_id: c.id.as_str(),
                    push_token: c.push_token.as_deref(),
                    device_platform: c.device_platform.as_deref(),
                    device_name: c.device_name.as_deref(),
                })
                .collect(),
        },
    };
    serde_json::to_vec(&envelope).map_err(|e| e.to_string())
}

/// A random version-4 UUID: the envelope ids of the spec's examples (spec 2.11).
fn random_uuid(rng: &SystemRandom) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .map_err(|_| "no random bytes for the envelope id".to_owned())?;
    Ok(crate::encoding::uuid_v4(bytes))
}

/// The [`Notifier`] that sends signed webhooks: what the composition roots (the Lambda
/// functions, the local server and CLI) hand to [`crate::App`].
pub struct WebhookNotifier {
    sender: Arc<dyn WebhookSender>,
    timeout: Duration,
    rng: SystemRandom,
}

impl WebhookNotifier {
    /// Sends over HTTPS ([`HttpWebhookSender`]), waiting at most `timeout` for an answer.
    pub fn new(timeout: Duration) -> Self {
        Self::with_sender(Arc::new(HttpWebhookSender::default()), timeout)
    }

    /// The real notifier with the settings' timeout (`webhook_timeout_ms`).
    pub fn for_settings(settings: &Settings) -> Self {
        Self::new(Duration::from_millis(settings.webhook_timeout_ms))
    }

    /// Sends through `sender` instead (tests of the envelope and signature).
    pub fn with_sender(sender: Arc<dyn WebhookSender>, timeout: Duration) -> Self {
        WebhookNotifier {
            sender,
            timeout,
            rng: SystemRandom::new(),
        }
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn check_destination(&self, endpoint: &WebhookEndpoint) -> Result<(), String> {
        check_url(&endpoint.url).map_err(str::to_owned)
    }

    async fn push_created(
        &self,
        endpoint: &WebhookEndpoint,
        event: PushCreated<'_>,
    ) -> Result<(), String> {
        let body = push_created_body(&event, random_uuid(&self.rng)?)?;
        let signature = signature_header(&endpoint.secret, event.at, &body);
        self.sender
            .send(&endpoint.url, &signature, body, self.timeout)
            .await
    }
}

/// Sends one webhook. A trait so that the notifier can be tested without a network.
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

    /// What the notifier hands to the transport: the spec 2.11 envelope of `push.created`,
    /// signed over exactly the bytes sent, with the notifier's timeout.
    #[tokio::test]
    async fn the_notifier_sends_a_signed_push_created_envelope() {
        use crate::domain::{
            ActionCode, ActionKey, ApprovalChallenge, ApprovalId, ApprovalKind, ApprovalState,
            IdempotencyKey, TenantId, TrackContext, UserId,
        };
        use std::sync::Mutex;

        /// A URL, a signature, a body and a timeout.
        type Sent = (String, String, Vec<u8>, Duration);

        #[derive(Default)]
        struct Recorded(Mutex<Vec<Sent>>);

        #[async_trait]
        impl WebhookSender for Recorded {
            async fn send(
                &self,
                url: &str,
                signature: &str,
                body: Vec<u8>,
                timeout: Duration,
            ) -> Result<(), String> {
                let sent = (url.to_owned(), signature.to_owned(), body, timeout);
                self.0.lock().unwrap().push(sent);
                Ok(())
            }
        }

        let at = Timestamp::from_unix_seconds(1_790_000_000);
        let tenant_id = TenantId::parse("tenant-test").unwrap();
        let action = ActionKey {
            user_id: UserId::parse("alice").unwrap(),
            action_code: ActionCode::parse("signIn").unwrap(),
            idempotency_key: IdempotencyKey::parse("key-1").unwrap(),
        };
        let challenge = ApprovalChallenge {
            id: ApprovalId::from_random([7; 48]),
            tenant_id: tenant_id.clone(),
            kind: ApprovalKind::Push,
            state: ApprovalState::Pending,
            action_code: action.action_code.clone(),
            action: Some(action.clone()),
            user_id: Some(action.user_id.clone()),
            target_credentials: Vec::new(),
            answered_by: None,
            device_code_hash: None,
            verification_code: None,
            context: TrackContext::default(),
            failed_attempts: 0,
            token_delivered: false,
            recent_starts: Vec::new(),
            created_at: at,
            state_updated_at: at,
            expires_at: at.plus_seconds(60),
            retain_until: at.plus_seconds(60),
            version: 1,
            socket: None,
        };
        let sender = Arc::new(Recorded::default());
        let notifier = WebhookNotifier::with_sender(sender.clone(), Duration::from_millis(250));
        let endpoint = WebhookEndpoint {
            url: "https://hooks.example.com/push".into(),
            secret: "whsec_test".into(),
        };
        let event = PushCreated {
            tenant_id: &tenant_id,
            challenge: &challenge,
            action: &action,
            targets: &[],
            at,
        };
        notifier.push_created(&endpoint, event).await.unwrap();

        let sent = sender.0.lock().unwrap();
        let (url, signature, body, timeout) = &sent[0];
        assert_eq!(url, "https://hooks.example.com/push");
        assert_eq!(*timeout, Duration::from_millis(250));
        assert_eq!(signature, &signature_header("whsec_test", at, body));
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["type"], "push.created");
        assert_eq!(json["source"], "https://authsignal.com");
        assert_eq!(json["tenantId"], "tenant-test");
        assert_eq!(json["time"], at.to_iso8601());
        assert_eq!(json["data"]["challengeId"], challenge.id.as_str());
        assert_eq!(json["data"]["userId"], "alice");
        assert_eq!(json["data"]["idempotencyKey"], "key-1");
        assert_eq!(json["data"]["actionCode"], "signIn");
        assert_eq!(json["id"].as_str().unwrap().len(), 36);
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
