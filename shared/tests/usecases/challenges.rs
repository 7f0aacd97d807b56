//! `shared::usecase::challenges`, through the public API.

use super::prelude::*;
use shared::http::error::Describe as _;
use shared::usecase::challenges::*;
use testkit::usecase::{Device, Kit};

#[tokio::test]
async fn verify_with_a_bearer_token_completes_the_tracked_action() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let token = kit.track_token("alice", "signIn", None).await;
    let result = kit.verify_with(&device, &token).await.unwrap();
    assert_eq!(result.action, token.action);
    let action = kit
        .app
        .get_action(&kit.tenant, &result.action)
        .await
        .unwrap();
    assert_eq!(action.state, ActionState::ChallengeSucceeded);
    let credential = kit
        .app
        .get_credential(&kit.tenant, Namespace::InApp, &device.public_key)
        .await
        .unwrap();
    assert_eq!(credential.last_verified_at, Some(kit.app.now()));
    // The returned token names the same action.
    let verified = kit
        .tenant
        .keys
        .verify(&result.token, kit.app.now())
        .unwrap();
    assert_eq!(verified.action, token.action);
}

#[tokio::test]
async fn verify_without_a_token_creates_the_named_action() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let code = ActionCode::parse("approvePayment").unwrap();
    let challenge = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Tenant, Some(code.clone()))
        .await
        .unwrap();
    let result = kit
        .app
        .verify_challenge(&kit.tenant, None, device.verify_command(&challenge))
        .await
        .unwrap();
    assert_eq!(result.action.action_code, code);
    assert_eq!(result.action.user_id, kit.user("alice"));
    let action = kit
        .app
        .get_action(&kit.tenant, &result.action)
        .await
        .unwrap();
    assert_eq!(action.state, ActionState::ChallengeSucceeded);

    let bare = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();
    let result = kit
        .app
        .verify_challenge(&kit.tenant, None, device.verify_command(&bare))
        .await
        .unwrap();
    assert_eq!(
        result.action.action_code.as_str(),
        DEFAULT_VERIFY_ACTION_CODE
    );
}

#[tokio::test]
async fn replay_expiry_and_unknown_challenges_are_refused() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let token = kit.track_token("alice", "signIn", None).await;
    let challenge = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();
    kit.app
        .verify_challenge(&kit.tenant, Some(&token), device.verify_command(&challenge))
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .verify_challenge(&kit.tenant, Some(&token), device.verify_command(&challenge))
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed
    );

    let late = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();
    kit.clock
        .advance_seconds(kit.app.settings().challenge_lifetime_seconds);
    assert_eq!(
        kit.app
            .verify_challenge(&kit.tenant, None, device.verify_command(&late))
            .await
            .unwrap_err(),
        Error::ChallengeExpired
    );

    let mut unknown = late.clone();
    unknown.id = ChallengeId::parse("c1.eyJ0IjoidGVuYW50LXRlc3QifQ.AAAA").unwrap();
    assert_eq!(
        kit.app
            .verify_challenge(&kit.tenant, None, device.verify_command(&unknown))
            .await
            .unwrap_err(),
        Error::ChallengeNotFound
    );
}

#[tokio::test]
async fn wrong_signatures_are_throttled_but_never_end_the_challenge() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let intruder = Device::new(Namespace::InApp);
    let challenge = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Tenant, None)
        .await
        .unwrap();

    // An unregistered key.
    assert_eq!(
        kit.app
            .verify_challenge(&kit.tenant, None, intruder.verify_command(&challenge))
            .await
            .unwrap_err(),
        Error::InvalidCredential
    );
    // The registered key with another key's signature.
    let mut forged = device.verify_command(&challenge);
    forged.signature = intruder.sign(challenge.id.as_str());
    for _ in 0..kit.app.settings().max_failed_attempts {
        assert_eq!(
            kit.app
                .verify_challenge(&kit.tenant, None, forged.clone())
                .await
                .unwrap_err(),
            Error::InvalidSignature
        );
    }
    // Past the limit, further bad signatures are throttled until the challenge expires
    // (DESIGN 6)...
    let throttled = kit
        .app
        .verify_challenge(&kit.tenant, None, forged.clone())
        .await
        .unwrap_err();
    assert_eq!(
        throttled.retry_after_seconds(),
        Some(kit.app.settings().challenge_lifetime_seconds as u64)
    );
    // ...but the right signature still uses it, once.
    kit.app
        .verify_challenge(&kit.tenant, None, device.verify_command(&challenge))
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .verify_challenge(&kit.tenant, None, device.verify_command(&challenge))
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed
    );
}

#[tokio::test]
async fn token_challenge_and_key_must_agree_on_the_user_and_action() {
    let kit = Kit::new().await;
    let alices = kit.enroll("alice").await;
    kit.enroll("bob").await;
    let bobs_token = kit.track_token("bob", "signIn", None).await;

    // Alice's key cannot complete Bob's action.
    assert_eq!(
        kit.verify_with(&alices, &bobs_token).await.unwrap_err(),
        Error::UserMismatch
    );

    // A challenge started for one tracked action cannot complete another.
    let alices_token = kit.track_token("alice", "signIn", None).await;
    let other_token = kit.track_token("alice", "signIn", None).await;
    let bound = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Token(alices_token), None)
        .await
        .unwrap();
    assert!(bound.nonce.as_ref().is_some_and(|n| n.len() >= 16));
    assert_eq!(
        kit.app
            .verify_challenge(
                &kit.tenant,
                Some(&other_token),
                alices.verify_command(&bound)
            )
            .await
            .unwrap_err(),
        Error::ChallengeMismatch
    );
}

#[tokio::test]
async fn a_challenge_for_one_action_code_cannot_complete_a_token_for_another() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let pay = ActionCode::parse("pay").unwrap();
    let for_pay = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Tenant, Some(pay.clone()))
        .await
        .unwrap();
    let sign_in = kit.track_token("alice", "signIn", None).await;
    assert_eq!(
        kit.app
            .verify_challenge(&kit.tenant, Some(&sign_in), device.verify_command(&for_pay))
            .await
            .unwrap_err(),
        Error::ChallengeMismatch
    );
    // A Bearer start that names another action than its token's is refused outright.
    let error = kit
        .app
        .start_challenge(&kit.tenant, ChallengeStarter::Token(sign_in), Some(pay))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_request");
}

#[tokio::test]
async fn blocked_actions_cannot_be_completed_by_a_signature() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let token = kit.track_token("alice", "signIn", None).await;
    kit.app
        .update_action_state(&kit.tenant, &token.action, ActionState::Block)
        .await
        .unwrap();
    assert_eq!(
        kit.verify_with(&device, &token).await.unwrap_err(),
        Error::ActionNotChallengeable("BLOCK")
    );
}
