//! `shared::usecase::tenants`, through the public API.

use super::prelude::*;
use shared::store::TenantStore;
use shared::usecase::tenants::*;
use testkit::usecase::Kit;

#[tokio::test]
async fn secrets_resolve_their_tenant_and_nothing_else() {
    let kit = Kit::new().await;
    let tenant = kit.app.tenant_by_secret(kit.secret.expose()).await.unwrap();
    assert_eq!(tenant.id, kit.tenant.id);
    assert_eq!(
        kit.app
            .tenant_by_secret("sk_wrong_secret_value")
            .await
            .unwrap_err(),
        Error::Unauthorized
    );
    assert_eq!(
        kit.app.tenant_by_secret("").await.unwrap_err(),
        Error::Unauthorized
    );
}

#[tokio::test]
async fn secrets_are_stored_hashed() {
    let kit = Kit::new().await;
    let record = kit.store.get_tenant(&kit.tenant.id).await.unwrap().unwrap();
    assert_eq!(record.secret_key_hashes, vec![kit.secret.hash()]);
    assert!(!format!("{record:?}").contains(kit.secret.expose()));
    assert_eq!(format!("{:?}", kit.secret), "ApiSecret(<redacted>)");
}

#[tokio::test]
async fn ensure_tenant_rotates_the_secret_and_keeps_token_keys() {
    let kit = Kit::new().await;
    let before = kit.store.get_tenant(&kit.tenant.id).await.unwrap().unwrap();
    let new_secret = ApiSecret::parse("another-secret-0123456789").unwrap();
    assert!(
        !kit.app
            .ensure_tenant(&kit.tenant.id, &new_secret)
            .await
            .unwrap()
    );
    let after = kit.store.get_tenant(&kit.tenant.id).await.unwrap().unwrap();
    assert_eq!(before.signing_keys, after.signing_keys);
    assert!(kit.app.tenant_by_secret(kit.secret.expose()).await.is_err());
    assert!(kit.app.tenant_by_secret(new_secret.expose()).await.is_ok());
}

#[test]
fn short_or_spaced_secrets_are_refused() {
    assert!(ApiSecret::parse("short").is_err());
    assert!(ApiSecret::parse("has a space in it, long").is_err());
    assert!(ApiSecret::parse("has:colon-0123456789").is_err());
    assert!(ApiSecret::parse("sk_0123456789abcdef").is_ok());
}

/// Which webhook destinations are acceptable is the notifier's policy: a plain-http URL to
/// another host is refused, and the tenant is left as it was.
#[tokio::test]
async fn configure_refuses_a_destination_the_notifier_refuses() {
    let kit = Kit::new().await;
    let change = |url: &str| TenantSettingsChange {
        push_webhook: Some(Some(WebhookEndpoint {
            url: url.to_owned(),
            secret: "whsec_0123456789abcdef".to_owned(),
        })),
        require_decision_signature: None,
        passkey: None,
    };
    let error = kit
        .app
        .configure_tenant(&kit.tenant.id, change("http://hooks.example.com/push"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::invalid_request(
            "Invalid push webhook URL: plain http is only allowed to localhost; use https."
        )
    );
    let record = kit.store.get_tenant(&kit.tenant.id).await.unwrap().unwrap();
    assert!(record.push_webhook.is_none());
    kit.app
        .configure_tenant(&kit.tenant.id, change("https://hooks.example.com/push"))
        .await
        .unwrap();
    let record = kit.store.get_tenant(&kit.tenant.id).await.unwrap().unwrap();
    assert_eq!(
        record.push_webhook.map(|w| w.url).as_deref(),
        Some("https://hooks.example.com/push")
    );
}
