//! `shared::usecase::validate`, through the public API.

use super::prelude::*;
use shared::usecase::validate::*;
use testkit::usecase::Kit;

fn command(token: &str) -> ValidateCommand {
    ValidateCommand {
        token: token.to_owned(),
        user_id: None,
        action: None,
    }
}

#[tokio::test]
async fn only_a_completed_challenge_is_valid() {
    let kit = Kit::new().await;
    let device = kit.enroll("alice").await;
    let tracked = kit.track("alice", "signIn", None).await;
    match kit
        .app
        .validate(&kit.tenant, command(&tracked.token))
        .await
        .unwrap()
    {
        Validation::Resolved {
            action,
            is_valid,
            error,
        } => {
            assert!(!is_valid);
            assert_eq!(error, None);
            assert_eq!(action.state, ActionState::ChallengeRequired);
        }
        other => panic!("{other:?}"),
    }
    let token = kit
        .tenant
        .keys
        .verify(&tracked.token, kit.app.now())
        .unwrap();
    let verified = kit.verify_with(&device, &token).await.unwrap();
    match kit
        .app
        .validate(&kit.tenant, command(&verified.token))
        .await
        .unwrap()
    {
        Validation::Resolved {
            is_valid, action, ..
        } => {
            assert!(is_valid);
            assert_eq!(action.state, ActionState::ChallengeSucceeded);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn user_and_action_are_checked_when_given() {
    let kit = Kit::new().await;
    let tracked = kit.track("alice", "signIn", None).await;
    let mut wrong_user = command(&tracked.token);
    wrong_user.user_id = Some(kit.user("mallory"));
    let mut wrong_action = command(&tracked.token);
    wrong_action.action = Some(ActionCode::parse("pay").unwrap());
    for (cmd, expected) in [
        (wrong_user, "user_mismatch"),
        (wrong_action, "action_mismatch"),
    ] {
        match kit.app.validate(&kit.tenant, cmd).await.unwrap() {
            Validation::Resolved {
                is_valid, error, ..
            } => {
                assert!(!is_valid);
                assert_eq!(error, Some(expected));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn forged_and_expired_tokens_are_unusable() {
    let kit = Kit::new().await;
    let tracked = kit.track("alice", "signIn", None).await;
    assert_eq!(
        kit.app
            .validate(&kit.tenant, command("not.a.token"))
            .await
            .unwrap(),
        Validation::Unusable {
            error: "invalid_token"
        }
    );
    kit.clock.advance_seconds(600);
    assert_eq!(
        kit.app
            .validate(&kit.tenant, command(&tracked.token))
            .await
            .unwrap(),
        Validation::Unusable {
            error: "expired_token"
        }
    );
}
