//! `shared::usecase::approvals`, through the public API.

use super::prelude::*;
use shared::store::ApprovalStore;
use shared::usecase::approvals::*;
use testkit::usecase::{Device, Kit};

/// The rate limit counts starts over a window longer than a push lives, so the record
/// that holds them must outlive the push (DynamoDB TTL and the embedded sweep delete by
/// `retain_until`).
#[tokio::test]
async fn a_push_slot_is_kept_for_the_whole_rate_limit_window() {
    let kit = Kit::new().await;
    let phone = Device::new(Namespace::Push);
    let enrol = kit
        .track_token("alice", "addAuthenticator", Some("add:authenticators"))
        .await;
    kit.app
        .add_credential(&kit.tenant, &enrol, phone.add_command())
        .await
        .unwrap();
    let token = kit.track_token("alice", "signIn", None).await;
    let start = StartPush {
        action: None,
        credential: None,
        number_matching: false,
    };
    kit.app
        .start_push(&kit.tenant, &token, start)
        .await
        .unwrap();
    let slot = kit
        .store
        .get_approval(&kit.tenant.id, &ApprovalSlot::Push(kit.user("alice")))
        .await
        .unwrap()
        .unwrap();
    let settings = kit.app.settings();
    assert_eq!(
        slot.retain_until,
        kit.app
            .now()
            .plus_seconds(settings.push_start_window_seconds)
    );
    assert!(slot.retain_until > slot.expires_at);
}

/// The tenant of the kit with a push webhook, read again after the change.
async fn with_webhook(kit: &Kit, url: &str) -> std::sync::Arc<shared::usecase::tenants::Tenant> {
    let change = shared::usecase::tenants::TenantSettingsChange {
        push_webhook: Some(Some(WebhookEndpoint {
            url: url.to_owned(),
            secret: "whsec_0123456789abcdef".to_owned(),
        })),
        require_decision_signature: None,
        passkey: None,
    };
    kit.app
        .configure_tenant(&kit.tenant.id, change)
        .await
        .unwrap();
    kit.app.tenant_by_id(&kit.tenant.id).await.unwrap()
}

/// Spec 2.11: a push to a tenant with a webhook is notified once, through the notifier
/// port, for the credentials it was sent to.
#[tokio::test]
async fn a_push_is_notified_to_the_tenants_webhook() {
    let kit = Kit::new().await;
    let tenant = with_webhook(&kit, "https://hooks.example.com/push").await;
    let phone = Device::new(Namespace::Push);
    let enrol = kit
        .track_token("alice", "addAuthenticator", Some("add:authenticators"))
        .await;
    let credential = kit
        .app
        .add_credential(&tenant, &enrol, phone.add_command())
        .await
        .unwrap();
    let token = kit.track_token("alice", "signIn", None).await;
    let start = StartPush {
        action: None,
        credential: None,
        number_matching: false,
    };
    let started = kit.app.start_push(&tenant, &token, start).await.unwrap();
    let sent = kit.notifier.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, "https://hooks.example.com/push");
    assert_eq!(sent[0].challenge_id, started.challenge_id);
    assert_eq!(sent[0].targets, vec![credential.id]);
}

/// Spec 2.11: "non-2xx fails the challenge": the browser is told `webhook_failed`, and the
/// push cannot be answered any more.
#[tokio::test]
async fn a_push_whose_notification_fails_fails_and_is_rejected() {
    let kit = Kit::new().await;
    let tenant = with_webhook(&kit, "https://hooks.example.com/push").await;
    kit.notifier.fail_with("the endpoint answered HTTP 500");
    let phone = Device::new(Namespace::Push);
    let enrol = kit
        .track_token("alice", "addAuthenticator", Some("add:authenticators"))
        .await;
    kit.app
        .add_credential(&tenant, &enrol, phone.add_command())
        .await
        .unwrap();
    let token = kit.track_token("alice", "signIn", None).await;
    let start = StartPush {
        action: None,
        credential: None,
        number_matching: false,
    };
    assert_eq!(
        kit.app
            .start_push(&tenant, &token, start)
            .await
            .unwrap_err(),
        Error::WebhookFailed("the endpoint answered HTTP 500".into())
    );
    let sent = kit.notifier.sent();
    assert_eq!(sent.len(), 1);
    let push = kit
        .store
        .get_approval(&tenant.id, &ApprovalSlot::Push(kit.user("alice")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(push.id, sent[0].challenge_id);
    assert_eq!(push.state, ApprovalState::Rejected);
}
