//! `shared::usecase::track`, through the public API.

use super::prelude::*;
use shared::usecase::track::*;
use testkit::usecase::Kit;

#[tokio::test]
async fn unenrolled_user_is_allowed_and_enrolled_user_challenged() {
    let kit = Kit::new().await;
    let first = kit.track("alice", "signIn", None).await;
    assert_eq!(first.action.state, ActionState::Allow);
    assert!(!first.is_enrolled);
    kit.enroll("alice").await;
    let second = kit.track("alice", "signIn", None).await;
    assert_eq!(second.action.state, ActionState::ChallengeRequired);
    assert!(second.is_enrolled);
    assert_eq!(second.enrolled_methods, vec![VerificationMethod::Device]);
}

#[tokio::test]
async fn same_idempotency_key_returns_the_same_action() {
    let kit = Kit::new().await;
    let first = kit.track("alice", "signIn", Some("key-1")).await;
    kit.enroll("alice").await;
    let again = kit.track("alice", "signIn", Some("key-1")).await;
    assert_eq!(again.action, first.action, "state is the one first decided");
    let sign_ins = ActionQuery {
        codes: Some(vec![ActionCode::parse("signIn").unwrap()]),
        ..Default::default()
    };
    let actions = kit
        .app
        .query_actions(&kit.tenant, &kit.user("alice"), sign_ins)
        .await
        .unwrap();
    assert_eq!(actions, vec![first.action]);
}

#[tokio::test]
async fn actions_past_retention_are_gone() {
    let kit = Kit::new().await;
    let tracked = kit.track("alice", "signIn", None).await;
    kit.clock.advance_seconds(31 * 24 * 3600);
    assert_eq!(
        kit.app
            .get_action(&kit.tenant, &tracked.action.key)
            .await
            .unwrap_err(),
        Error::ActionNotFound
    );
    let listed = kit
        .app
        .query_actions(&kit.tenant, &kit.user("alice"), ActionQuery::default())
        .await
        .unwrap();
    assert!(listed.is_empty());
}

#[tokio::test]
async fn query_filters_by_code_and_state() {
    let kit = Kit::new().await;
    kit.track("alice", "signIn", None).await;
    kit.clock.advance_seconds(1);
    let pay = kit.track("alice", "pay", None).await;
    let codes = Some(vec![ActionCode::parse("pay").unwrap()]);
    let only_pay = kit
        .app
        .query_actions(
            &kit.tenant,
            &kit.user("alice"),
            ActionQuery {
                codes,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(only_pay, vec![pay.action.clone()]);
    kit.app
        .update_action_state(&kit.tenant, &pay.action.key, ActionState::Block)
        .await
        .unwrap();
    let blocked = kit
        .app
        .query_actions(
            &kit.tenant,
            &kit.user("alice"),
            ActionQuery {
                state: Some(ActionState::Block),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].key, pay.action.key);
}
