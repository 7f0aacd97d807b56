//! `shared::usecase::users`, through the public API.

use super::prelude::*;
use shared::usecase::users::*;
use testkit::usecase::Kit;

#[tokio::test]
async fn unknown_user_reads_back_empty_and_not_enrolled() {
    let kit = Kit::new().await;
    let view = kit
        .app
        .get_user(&kit.tenant, &kit.user("nobody"))
        .await
        .unwrap();
    assert!(!view.is_enrolled());
    assert_eq!(view.profile, UserProfile::default());
}

#[tokio::test]
async fn update_merges_and_delete_removes_everything() {
    let kit = Kit::new().await;
    let alice = kit.user("alice");
    let patch = UserPatch {
        email: Some("a@example.com".into()),
        ..Default::default()
    };
    kit.app
        .update_user(&kit.tenant, &alice, patch)
        .await
        .unwrap();
    let patch = UserPatch {
        username: Some("alice".into()),
        ..Default::default()
    };
    let profile = kit
        .app
        .update_user(&kit.tenant, &alice, patch)
        .await
        .unwrap();
    assert_eq!(profile.email.as_deref(), Some("a@example.com"));
    assert_eq!(profile.username.as_deref(), Some("alice"));

    kit.enroll("alice").await;
    assert!(
        kit.app
            .get_user(&kit.tenant, &alice)
            .await
            .unwrap()
            .is_enrolled()
    );
    kit.app.delete_user(&kit.tenant, &alice).await.unwrap();
    let view = kit.app.get_user(&kit.tenant, &alice).await.unwrap();
    assert!(!view.is_enrolled());
    assert_eq!(view.profile, UserProfile::default());
}

#[tokio::test]
async fn delete_authenticator_needs_the_owner() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let bob = kit.user("bob");
    assert_eq!(
        kit.app
            .delete_authenticator(&kit.tenant, &bob, &device.credential.id)
            .await
            .unwrap_err(),
        Error::AuthenticatorNotFound
    );
    let alice = kit.user("alice");
    kit.app
        .delete_authenticator(&kit.tenant, &alice, &device.credential.id)
        .await
        .unwrap();
    assert!(
        kit.app
            .list_authenticators(&kit.tenant, &alice)
            .await
            .unwrap()
            .is_empty()
    );
}
