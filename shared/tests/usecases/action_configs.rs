//! `shared::usecase::action_configs`, through the public API.

use serde_json::json;
use shared::domain::ActionState;
use shared::domain::policy::ConfigKey;
use shared::error::Error;
use testkit::usecase::Kit;

#[tokio::test]
async fn a_saved_config_decides_the_next_track_and_a_deleted_one_stops() {
    let kit = Kit::new().await;
    kit.enroll("alice").await;
    let pay = ConfigKey::parse("pay").unwrap();
    kit.app
        .put_action_config(
            &kit.tenant,
            Some(&pay),
            json!({"defaultOutcome": "ALLOW", "rules": [
                {"ruleId": "new-device", "name": "New device", "type": "REVIEW",
                 "conditions": {"var": "device.isNew"}}
            ]}),
        )
        .await
        .unwrap();
    let first = kit.track("alice", "pay", None).await;
    assert_eq!(
        first.action.state,
        ActionState::ReviewRequired,
        "no deviceId: a new device (fails closed)"
    );
    kit.app
        .delete_action_config(&kit.tenant, &pay)
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .get_action_config(&kit.tenant, &pay)
            .await
            .unwrap_err(),
        Error::ActionConfigNotFound
    );
    let second = kit.track("alice", "pay", None).await;
    assert_eq!(second.action.state, ActionState::ChallengeRequired);
    assert!(matches!(
        kit.app
            .put_action_config(&kit.tenant, Some(&pay), json!({"actionCode": "other"}))
            .await,
        Err(Error::InvalidActionConfig(_))
    ));
}
