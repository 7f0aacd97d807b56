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
        ..Default::default()
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
    // The events webhook goes through the same check (DESIGN 10), and a weak secret too.
    let events = |url: &str, secret: &str| TenantSettingsChange {
        events_webhook: Some(Some(WebhookEndpoint {
            url: url.to_owned(),
            secret: secret.to_owned(),
        })),
        ..Default::default()
    };
    let error = kit
        .app
        .configure_tenant(
            &kit.tenant.id,
            events("http://hooks.example.com/events", "whsec_0123456789abcdef"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::invalid_request(
            "Invalid events webhook URL: plain http is only allowed to localhost; use https."
        )
    );
    let error = kit
        .app
        .configure_tenant(
            &kit.tenant.id,
            events("https://hooks.example.com/events", "short"),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("16 characters"), "{error}");
    let record = kit.store.get_tenant(&kit.tenant.id).await.unwrap().unwrap();
    assert!(record.events_webhook.is_none());
}

/// A tenant's allowed web origins (CORS) are stored without duplicates and read back with the
/// tenant; more than the maximum is refused and changes nothing; an empty list clears them.
#[tokio::test]
async fn allowed_origins_are_stored_with_the_tenant() {
    use shared::domain::AllowedOrigin;
    use shared::usecase::tenants::MAX_ALLOWED_ORIGINS;
    let kit = Kit::new().await;
    let origin = |text: &str| AllowedOrigin::parse(text).unwrap();
    let set = |origins: Vec<AllowedOrigin>| TenantSettingsChange {
        allowed_origins: Some(origins),
        ..Default::default()
    };
    kit.app
        .configure_tenant(
            &kit.tenant.id,
            set(vec![
                origin("https://app.example"),
                origin("http://localhost:3000"),
                origin("HTTPS://APP.example:443"),
            ]),
        )
        .await
        .unwrap();
    let tenant = kit.app.tenant_by_id(&kit.tenant.id).await.unwrap();
    let stored: Vec<&str> = tenant
        .allowed_origins
        .iter()
        .map(AllowedOrigin::as_str)
        .collect();
    assert_eq!(stored, ["https://app.example", "http://localhost:3000"]);

    let too_many = (0..=MAX_ALLOWED_ORIGINS)
        .map(|n| origin(&format!("https://app{n}.example")))
        .collect();
    let error = kit
        .app
        .configure_tenant(&kit.tenant.id, set(too_many))
        .await
        .unwrap_err();
    assert!(
        matches!(error, shared::error::Error::InvalidRequest(_)),
        "{error:?}"
    );
    assert_eq!(
        kit.app
            .tenant_by_id(&kit.tenant.id)
            .await
            .unwrap()
            .allowed_origins
            .len(),
        2
    );

    kit.app
        .configure_tenant(&kit.tenant.id, set(Vec::new()))
        .await
        .unwrap();
    assert!(
        kit.app
            .tenant_by_id(&kit.tenant.id)
            .await
            .unwrap()
            .allowed_origins
            .is_empty()
    );
}
