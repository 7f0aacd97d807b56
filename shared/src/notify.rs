//! The notification port: how a use case tells the tenant's backend that something happened,
//! without knowing how (spec 2.11 webhooks today).
//!
//! The use cases say *what* happened ([`PushCreated`]) and *to which destination*; the adapter
//! ([`crate::webhook::WebhookNotifier`]) owns the envelope, the `X-Signature-V2` signature, the
//! delivery and the policy of which destinations are acceptable. Tests inject a recording or
//! failing notifier through [`crate::app::Ports`].

use crate::clock::Timestamp;
use crate::domain::{ActionKey, ApprovalChallenge, Credential, TenantId, WebhookEndpoint};
use async_trait::async_trait;

/// A push was started and the user's devices should be told (spec 2.11 `push.created`).
#[derive(Debug, Clone, Copy)]
pub struct PushCreated<'a> {
    pub tenant_id: &'a TenantId,
    pub challenge: &'a ApprovalChallenge,
    /// The tracked action the push completes.
    pub action: &'a ActionKey,
    /// The credentials the push is for (additive in the webhook data: their push tokens).
    pub targets: &'a [Credential],
    pub at: Timestamp,
}

/// Delivers notifications. `Err` carries why a notification was not accepted (a status, a
/// timeout, a connection failure), for the log and the `webhook_failed` description; never
/// the response of the destination.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Whether `endpoint` may be stored as a tenant's destination (`tenant configure`):
    /// `Err` says what is wrong with it.
    fn check_destination(&self, endpoint: &WebhookEndpoint) -> Result<(), String>;

    /// Tells `endpoint` that a push was created, and waits for it to accept: a push whose
    /// notification failed must fail (spec 2.11: "non-2xx fails the challenge").
    async fn push_created(
        &self,
        endpoint: &WebhookEndpoint,
        event: PushCreated<'_>,
    ) -> Result<(), String>;
}
