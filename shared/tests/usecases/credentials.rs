//! `shared::usecase::credentials`, through the public API.

use super::prelude::*;
use shared::usecase::credentials::*;
use testkit::usecase::{Device, Kit};

#[tokio::test]
async fn first_credential_needs_no_scope_and_re_adding_is_idempotent() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let token = kit.track_token("alice", "addAuthenticator", None).await;
    let again = kit
        .app
        .add_credential(&kit.tenant, &token, device.add_command())
        .await
        .unwrap();
    assert_eq!(again, device.credential);
    assert_eq!(
        kit.app
            .list_authenticators(&kit.tenant, &kit.user("alice"))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_later_credential_needs_the_scope_or_a_completed_challenge() {
    let kit = Kit::new().await;
    let first = kit.enroll("alice").await;
    let second = Device::new(Namespace::InApp);

    let plain = kit.track_token("alice", "signIn", None).await;
    assert_eq!(
        kit.app
            .add_credential(&kit.tenant, &plain, second.add_command())
            .await
            .unwrap_err(),
        Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE)
    );

    // Challenge, then enroll: the same token works once its action has succeeded.
    kit.verify_with(&first, &plain).await.unwrap();
    kit.app
        .add_credential(&kit.tenant, &plain, second.add_command())
        .await
        .unwrap();

    let third = Device::new(Namespace::InApp);
    let scoped = kit
        .track_token("alice", "addAuthenticator", Some(ADD_AUTHENTICATORS_SCOPE))
        .await;
    kit.app
        .add_credential(&kit.tenant, &scoped, third.add_command())
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .list_authenticators(&kit.tenant, &kit.user("alice"))
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_device_verify_without_a_track_cannot_authorise_another_device() {
    use shared::usecase::challenges::ChallengeStarter;
    let kit = Kit::new().await;
    let first = kit.enroll("alice").await;
    // The anonymous verify creates an action, already succeeded, for the key's owner...
    let challenge = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();
    let verified = kit
        .app
        .verify_challenge(&kit.tenant, None, first.verify_command(&challenge))
        .await
        .unwrap();
    let token = kit
        .tenant
        .keys
        .verify(&verified.token, kit.app.now())
        .unwrap();
    // ...whose token must not add a second device.
    let second = Device::new(Namespace::InApp);
    assert_eq!(
        kit.app
            .add_credential(&kit.tenant, &token, second.add_command())
            .await
            .unwrap_err(),
        Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE)
    );
}

#[tokio::test]
async fn a_blocked_or_deleted_action_withdraws_its_token() {
    let kit = Kit::new().await;
    let token = kit.track_token("alice", "addAuthenticator", None).await;
    kit.app
        .update_action_state(&kit.tenant, &token.action, ActionState::Block)
        .await
        .unwrap();
    let device = Device::new(Namespace::InApp);
    assert_eq!(
        kit.app
            .add_credential(&kit.tenant, &token, device.add_command())
            .await
            .unwrap_err(),
        Error::ActionForbidsEnrolment("BLOCK")
    );

    let token = kit.track_token("bob", "addAuthenticator", None).await;
    kit.app
        .delete_user(&kit.tenant, &kit.user("bob"))
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .add_credential(&kit.tenant, &token, device.add_command())
            .await
            .unwrap_err(),
        Error::ActionNotFound
    );
}

#[tokio::test]
async fn a_key_of_another_user_is_refused() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let bobs_token = kit.track_token("bob", "addAuthenticator", None).await;
    assert_eq!(
        kit.app
            .add_credential(&kit.tenant, &bobs_token, device.add_command())
            .await
            .unwrap_err(),
        Error::CredentialConflict
    );
}

#[tokio::test]
async fn removal_is_accepted_once_per_window() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let now = kit.app.now().unix_seconds();
    let signature = device.sign(&format!("{}.0", now.div_euclid(600)));
    kit.app
        .remove_credential(
            &kit.tenant,
            Namespace::InApp,
            &device.public_key,
            &signature,
        )
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .get_credential(&kit.tenant, Namespace::InApp, &device.public_key)
            .await
            .unwrap_err(),
        Error::InvalidCredential
    );

    // Re-registered, the captured request cannot remove it again.
    let token = kit.track_token("alice", "addAuthenticator", None).await;
    kit.app
        .add_credential(&kit.tenant, &token, device.add_command())
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .remove_credential(
                &kit.tenant,
                Namespace::InApp,
                &device.public_key,
                &signature
            )
            .await
            .unwrap_err(),
        Error::SignatureAlreadyUsed
    );
}

#[tokio::test]
async fn removal_outside_the_window_or_by_another_key_is_refused() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let window = kit.app.now().unix_seconds().div_euclid(600);
    let stale = device.sign(&format!("{}.0", window - 2));
    assert_eq!(
        kit.app
            .remove_credential(&kit.tenant, Namespace::InApp, &device.public_key, &stale)
            .await
            .unwrap_err(),
        Error::InvalidSignature
    );
    let other = Device::new(Namespace::InApp);
    let forged = other.sign(&format!("{window}.0"));
    assert_eq!(
        kit.app
            .remove_credential(&kit.tenant, Namespace::InApp, &device.public_key, &forged)
            .await
            .unwrap_err(),
        Error::InvalidSignature
    );
    // Next window still fine (clock skew).
    let ahead = device.sign(&format!("{}", window + 1));
    kit.app
        .remove_credential(&kit.tenant, Namespace::InApp, &device.public_key, &ahead)
        .await
        .unwrap();
}
