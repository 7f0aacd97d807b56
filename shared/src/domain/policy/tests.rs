//! Precedence, inactive rules, defaults, the unenrolled adjustment and config validation.

use super::*;
use serde_json::json;

fn config(value: Value) -> ActionConfig {
    ActionConfig::parse(value, None).unwrap()
}

/// The message of an [`Error::InvalidActionConfig`], the one error a config is refused with.
fn message(error: Error) -> String {
    match error {
        Error::InvalidActionConfig(message) => message.into_owned(),
        other => panic!("not an invalid action config: {other:?}"),
    }
}

fn refused(value: Value) -> String {
    message(ActionConfig::parse(value, None).unwrap_err())
}

fn rule(id: &str, priority: u32, outcome: &str, conditions: Value) -> Value {
    json!({"ruleId": id, "name": format!("rule {id}"), "priority": priority, "type": outcome, "conditions": conditions})
}

fn data(amount: i64) -> Value {
    json!({"custom": {"amount": amount}, "user": {"isEnrolled": true}})
}

fn outcome(effective: &EffectiveConfig, amount: i64, enrolled: bool) -> Decision {
    decide(effective, &data(amount), enrolled, false)
}

#[test]
fn nothing_configured_challenges_the_enrolled_and_allows_the_rest() {
    let none = EffectiveConfig::new(None, None);
    let enrolled = outcome(&none, 0, true);
    assert_eq!(enrolled.outcome, Outcome::Challenge);
    assert_eq!(enrolled.reason, Reason::BuiltInDefault);
    assert!(enrolled.rule_ids().is_empty());
    let unenrolled = outcome(&none, 0, false);
    assert_eq!(unenrolled.outcome, Outcome::Allow);
    assert_eq!(unenrolled.configured_outcome, Outcome::Challenge);
}

#[test]
fn the_lowest_priority_matching_active_rule_wins_and_ties_keep_list_order() {
    let pay = config(json!({
        "actionCode": "pay",
        "defaultOutcome": "ALLOW",
        "rules": [
            rule("big", 5, "REVIEW", json!({">": [{"var": "custom.amount"}, 1000]})),
            rule("huge", 1, "BLOCK", json!({">": [{"var": "custom.amount"}, 10000]})),
            rule("mid-a", 3, "CHALLENGE", json!({">": [{"var": "custom.amount"}, 100]})),
            rule("mid-b", 3, "BLOCK", json!({">": [{"var": "custom.amount"}, 100]})),
        ]
    }));
    let effective = EffectiveConfig::new(Some(pay), None);
    let ids: Vec<&str> = effective.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, ["huge", "mid-a", "mid-b", "big"]);
    assert_eq!(outcome(&effective, 20_000, true).outcome, Outcome::Block);
    assert_eq!(outcome(&effective, 20_000, true).rule_ids(), ["huge"]);
    let mid = outcome(&effective, 5_000, true);
    assert_eq!(
        mid.outcome,
        Outcome::Challenge,
        "mid-a is listed before mid-b"
    );
    assert_eq!(mid.rule_ids(), ["mid-a"]);
    assert_eq!(
        mid.trace
            .iter()
            .map(|t| t.result.clone())
            .collect::<Vec<_>>(),
        vec![
            RuleResult::Evaluated {
                value: json!(false),
                matched: false
            },
            RuleResult::Evaluated {
                value: json!(true),
                matched: true
            },
            RuleResult::NotReached,
            RuleResult::NotReached,
        ]
    );
    let small = outcome(&effective, 10, true);
    assert_eq!(small.outcome, Outcome::Allow);
    assert_eq!(small.reason, Reason::ActionDefault);
    // The dry run evaluates every rule; the decision is the same.
    let all = decide(&effective, &data(5_000), true, true);
    assert_eq!(all.outcome, mid.outcome);
    assert!(matches!(
        all.trace[3].result,
        RuleResult::Evaluated { matched: true, .. }
    ));
}

#[test]
fn inactive_rules_are_skipped() {
    let mut value = json!({"actionCode": "pay", "rules": [
        rule("off", 0, "BLOCK", json!(true)),
        rule("on", 1, "REVIEW", json!(true)),
    ]});
    value["rules"][0]["isActive"] = json!(false);
    let effective = EffectiveConfig::new(Some(config(value)), None);
    let decision = outcome(&effective, 0, true);
    assert_eq!(decision.outcome, Outcome::Review);
    assert_eq!(decision.trace[0].result, RuleResult::Inactive);
}

#[test]
fn defaults_fall_back_from_action_to_tenant_to_challenge() {
    let tenant = config(json!({"actionCode": "*", "defaultOutcome": "REVIEW",
        "rules": [rule("t", 0, "BLOCK", json!({"==": [{"var": "custom.amount"}, 13]}))]}));
    let bare_action = config(json!({"actionCode": "pay", "rules": []}));
    let own = config(json!({"actionCode": "pay", "defaultOutcome": "ALLOW"}));

    // An action without a config uses the tenant default whole, rules included.
    let unconfigured = EffectiveConfig::new(None, Some(tenant.clone()));
    assert_eq!(outcome(&unconfigured, 13, true).outcome, Outcome::Block);
    let fallback = outcome(&unconfigured, 1, true);
    assert_eq!(
        (fallback.outcome, fallback.reason),
        (Outcome::Review, Reason::TenantDefault)
    );

    // An action with a config uses its own rules and borrows only the default outcome.
    let borrowed = EffectiveConfig::new(Some(bare_action), Some(tenant.clone()));
    assert_eq!(outcome(&borrowed, 13, true).outcome, Outcome::Review);
    let owned = EffectiveConfig::new(Some(own), Some(tenant));
    let decided = outcome(&owned, 13, true);
    assert_eq!(
        (decided.outcome, decided.reason),
        (Outcome::Allow, Reason::ActionDefault)
    );
}

#[test]
fn unenrolled_users_are_allowed_instead_of_challenged_but_review_and_block_stand() {
    for (configured, unenrolled) in [
        ("CHALLENGE", Outcome::Allow),
        ("ALLOW", Outcome::Allow),
        ("REVIEW", Outcome::Review),
        ("BLOCK", Outcome::Block),
    ] {
        let effective = EffectiveConfig::new(
            Some(config(
                json!({"actionCode": "pay", "defaultOutcome": configured}),
            )),
            None,
        );
        assert_eq!(
            outcome(&effective, 0, false).outcome,
            unenrolled,
            "{configured}"
        );
    }
}

#[test]
fn for_an_unenrolled_user_a_matched_challenge_rule_does_not_hide_a_later_block() {
    let pay = config(json!({
        "actionCode": "pay",
        "defaultOutcome": "ALLOW",
        "rules": [
            rule("challenge-big", 0, "CHALLENGE", json!({">": [{"var": "custom.amount"}, 100]})),
            rule("allow-any", 1, "ALLOW", json!(true)),
            rule("block-huge", 2, "BLOCK", json!({">": [{"var": "custom.amount"}, 10000]})),
        ]
    }));
    let effective = EffectiveConfig::new(Some(pay), None);
    // Enrolled: the first match decides.
    let enrolled = outcome(&effective, 20_000, true);
    assert_eq!(enrolled.outcome, Outcome::Challenge);
    assert_eq!(enrolled.rule_ids(), ["challenge-big"]);
    // Unenrolled: the challenge cannot happen, so the later BLOCK decides; a later ALLOW does
    // not replace the challenge rule as the reason.
    let blocked = outcome(&effective, 20_000, false);
    assert_eq!(blocked.outcome, Outcome::Block);
    assert_eq!(blocked.rule_ids(), ["block-huge"]);
    let allowed = outcome(&effective, 500, false);
    assert_eq!(allowed.outcome, Outcome::Allow);
    assert_eq!(allowed.configured_outcome, Outcome::Challenge);
    assert_eq!(allowed.rule_ids(), ["challenge-big"]);
}

#[test]
fn history_is_needed_only_when_an_active_rule_reads_it() {
    let mut value = json!({"actionCode": "pay", "rules": [
        rule("a", 0, "BLOCK", json!({"var": "device.isNew"})),
        rule("b", 1, "BLOCK", json!({"var": "ip.isPrivate"})),
    ]});
    assert!(EffectiveConfig::new(Some(config(value.clone())), None).needs_history());
    value["rules"][0]["isActive"] = json!(false);
    let effective = EffectiveConfig::new(Some(config(value.clone())), None);
    assert!(!effective.needs_history());
    assert_eq!(config(value).data_points(), ["ip.isPrivate"]);
}

#[test]
fn invalid_configs_are_refused_naming_the_rule_and_the_problem() {
    assert_eq!(
        refused(json!({"actionCode": "pay", "rules": [
            rule("ok", 0, "BLOCK", json!(true)),
            rule("ok", 1, "BLOCK", json!(true)),
        ]})),
        "rule #1 (ruleId \"ok\", name \"rule ok\"): duplicate ruleId \"ok\""
    );
    assert_eq!(
        refused(
            json!({"actionCode": "pay", "rules": [rule("r1", 0, "BLOCK", json!({"regex": ["a", "b"]}))]})
        ),
        format!(
            "rule #0 (ruleId \"r1\", name \"rule r1\"): conditions: unknown operator \"regex\"; supported: {}",
            crate::rules::OPERATORS.join(", ")
        )
    );
    assert_eq!(
        refused(
            json!({"actionCode": "pay", "rules": [rule("r1", 0, "BLOCK", json!({"==": [{"var": "ip.country"}, "NZ"]}))]})
        ),
        "rule #0 (ruleId \"r1\", name \"rule r1\"): conditions at ==[0].var: unknown data point \"ip.country\""
    );
    assert_eq!(
        refused(
            json!({"actionCode": "pay", "rules": [rule("r1", 0, "BLOCK", json!({"==": [1]}))]})
        ),
        "rule #0 (ruleId \"r1\", name \"rule r1\"): conditions at ==: operator \"==\" takes 2 argument(s), found 1"
    );
    assert!(
        refused(json!({"actionCode": "pay", "rules": [rule("r1", 0, "BLOCK", json!({"ip_in_cidr": [{"var": "ip.address"}, "10.0.0.0/40"]}))]}))
            .contains("\"10.0.0.0/40\" is not a CIDR block")
    );
    let wrong_type =
        refused(json!({"actionCode": "pay", "rules": [rule("r1", 0, "DENY", json!(true))]}));
    assert!(
        wrong_type.starts_with("rule #0 (ruleId \"r1\", name \"rule r1\"): unknown variant `DENY`"),
        "{wrong_type}"
    );
    let typo = refused(
        json!({"actionCode": "pay", "rules": [{"ruleId": "r1", "name": "n", "type": "BLOCK", "conditions": true, "isActve": false}]}),
    );
    assert!(typo.contains("unknown field `isActve`"), "{typo}");
    assert!(refused(json!({"actionCode": "pay", "rules": [{"name": "n", "type": "BLOCK", "conditions": true}]}))
        .starts_with("rule #0 (name \"n\"): missing field `ruleId`"));
    assert!(
        refused(json!({"actionCode": "pay", "rules": [rule("bad id!", 0, "BLOCK", json!(true))]}))
            .contains("ruleId must be")
    );
    assert!(refused(json!({"actionCode": "no spaces"})).contains("is neither an action code"));
    assert!(refused(json!({"rules": []})).contains("actionCode is required"));
    assert!(
        refused(json!({"actionCode": "pay", "defaultOutcome": "MAYBE"}))
            .starts_with("action config: unknown variant")
    );
    assert!(refused(json!({"actionCode": "pay", "rules": vec![rule("r", 0, "BLOCK", json!(true)); MAX_RULES + 1]})).contains("at most 100"));
    let long = "x".repeat(900);
    let large: Vec<Value> = (0..MAX_RULES)
        .map(|i| json!({"ruleId": format!("r{i}"), "name": "n", "description": long, "type": "BLOCK", "conditions": true}))
        .collect();
    assert!(
        refused(json!({"actionCode": "pay", "rules": large}))
            .contains("bytes as JSON, at most 65536")
    );
}

#[test]
fn the_path_fills_or_must_match_the_action_code() {
    let pay = ConfigKey::parse("pay").unwrap();
    let filled = ActionConfig::parse(json!({"defaultOutcome": "BLOCK"}), Some(&pay)).unwrap();
    assert_eq!(filled.action_code, "pay");
    let mismatch = ActionConfig::parse(json!({"actionCode": "signIn"}), Some(&pay)).unwrap_err();
    assert!(message(mismatch).contains("differs"));
    assert_eq!(ConfigKey::parse("*").unwrap(), ConfigKey::TenantDefault);
}

/// Issue #11.3: on a device-created action nobody vouched for the request's data points, so
/// a BLOCK or REVIEW rule that reads one is taken as matched and any other such rule as not
/// matched; rules on what the server knows are evaluated as usual.
#[test]
fn device_created_actions_fail_closed_on_data_points_nobody_vouched_for() {
    let pay = config(json!({
        "actionCode": "pay",
        "defaultOutcome": "CHALLENGE",
        "rules": [
            rule("trusted-ip", 0, "ALLOW", json!({"ip_in_cidr": [{"var": "ip.address"}, "10.0.0.0/8"]})),
            rule("big", 1, "BLOCK", json!({">": [{"var": "custom.amount"}, 1000]})),
        ]
    }));
    let effective = EffectiveConfig::new(Some(pay), None);
    let small = json!({"custom": {"amount": 1}, "ip": {"address": "10.1.2.3"}});
    let device = Provenance::DeviceCreated { ip_observed: false };

    // On a track the values decide: a trusted address allows.
    assert_eq!(
        decide_with(
            &effective,
            &small,
            true,
            false,
            Provenance::Track {
                ip_unreadable: false
            }
        )
        .outcome,
        Outcome::Allow
    );
    // On a device path, the claimed address cannot allow and the claimed amount cannot
    // escape the block.
    let decided = decide_with(&effective, &small, true, false, device);
    assert_eq!(decided.outcome, Outcome::Block);
    assert_eq!(decided.rule_ids(), ["big"]);
    assert_eq!(
        decided.trace[0].result,
        RuleResult::Unvouched {
            data_points: vec!["ip.address".into()],
            assumed_match: false
        }
    );
    // An address the platform observed is vouched for.
    let observed = Provenance::DeviceCreated { ip_observed: true };
    let decided = decide_with(&effective, &small, true, false, observed);
    assert_eq!(decided.outcome, Outcome::Allow);

    // Rules only on server-side facts are evaluated.
    let counted = config(json!({
        "actionCode": "pay",
        "rules": [rule("many", 0, "BLOCK", json!({">": [{"var": "user.credentialCount"}, 3]}))]
    }));
    let effective = EffectiveConfig::new(Some(counted), None);
    let data = json!({"user": {"credentialCount": 1}});
    assert_eq!(
        decide_with(&effective, &data, true, false, device).outcome,
        Outcome::Challenge
    );
}

/// A track whose `ipAddress` is not one address (a forwarded-for list, a port): an IP-range
/// BLOCK must not let it through, so rules on `ip.*` fail closed as on a device path.
#[test]
fn an_unreadable_ip_address_on_a_track_fails_closed() {
    let wire = config(json!({
        "actionCode": "wire",
        "defaultOutcome": "ALLOW",
        "rules": [rule("lan", 0, "BLOCK", json!({"ip_in_cidr": [{"var": "ip.address"}, "10.0.0.0/8"]}))]
    }));
    let effective = EffectiveConfig::new(Some(wire), None);
    let listed = json!({"ip": {"address": "10.1.2.3, 8.8.8.8"}});
    let garbled = Provenance::Track {
        ip_unreadable: true,
    };
    assert_eq!(
        decide_with(&effective, &listed, true, false, garbled).outcome,
        Outcome::Block
    );
    assert!(crate::domain::signals::is_unreadable_ip(Some(
        "10.1.2.3, 8.8.8.8"
    )));
    assert!(crate::domain::signals::is_unreadable_ip(Some(
        "10.1.2.3:443"
    )));
    assert!(crate::domain::signals::is_unreadable_ip(Some("127.1")));
    assert!(!crate::domain::signals::is_unreadable_ip(Some(
        " 10.1.2.3 "
    )));
    assert!(!crate::domain::signals::is_unreadable_ip(Some(
        "::ffff:10.1.2.3"
    )));
    assert!(!crate::domain::signals::is_unreadable_ip(None));
}
