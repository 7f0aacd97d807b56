//! Adaptive rules over HTTP (spec 2.3, 2.5, 7): configs saved through our extension routes
//! decide what track returns; every data point, precedence, inactive rules, the defaults, each
//! outcome through track and then validate, and invalid configs refused with clear messages.
//! Runs on both stores (`TRUSTED_DEVICE_TEST_STORE=dynamodb`).

use e2e_tests::{Auth, Device, Harness, TestTenant};
use reqwest::Method;
use serde_json::{Value, json};
use shared::clock::Clock;
use shared::domain::signals::DATA_POINTS;
use std::collections::BTreeSet;

async fn put_config(h: &Harness, tenant: &TestTenant, code: &str, body: Value) -> e2e_tests::Reply {
    h.send(
        Method::PUT,
        &format!("/action-configs/{code}"),
        Auth::Secret(&tenant.secret),
        Some(&body),
    )
    .await
}

/// Saves a config for `pay` whose one rule `r` blocks when `conditions` hold, and allows
/// otherwise.
async fn block_pay_when(h: &Harness, conditions: Value) {
    put_config(
        h,
        &h.a,
        "pay",
        json!({"defaultOutcome": "ALLOW", "rules": [
            {"ruleId": "r", "name": "Under test", "type": "BLOCK", "conditions": conditions}
        ]}),
    )
    .await
    .expect(200);
}

/// Tracks `pay` and says whether rule `r` decided it.
async fn blocked(h: &Harness, user: &str, attributes: Value) -> bool {
    let tracked = h.track(&h.a, user, "pay", attributes).await;
    match tracked["state"].as_str() {
        Some("BLOCK") => {
            assert_eq!(tracked["ruleIds"], json!(["r"]), "{tracked}");
            true
        }
        Some("ALLOW") => {
            assert_eq!(tracked["ruleIds"], json!([]), "{tracked}");
            false
        }
        other => panic!("unexpected state {other:?}: {tracked}"),
    }
}

/// A reviewer approves a tracked `pay` action (spec 2.5), which proves its device.
async fn prove(h: &Harness, user: &str, tracked: &Value) {
    let key = tracked["idempotencyKey"].as_str().unwrap();
    h.send(
        Method::PATCH,
        &format!("/users/{user}/actions/pay/{key}"),
        Auth::Secret(&h.a.secret),
        Some(&json!({"state": "REVIEW_SUCCEEDED"})),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn every_data_point_decides_a_rule() {
    let h = Harness::start().await;
    let mut tested = BTreeSet::new();
    let mut check = |name: &'static str| {
        tested.insert(name);
    };

    // --- from the request
    check("ip.address");
    block_pay_when(&h, json!({"==": [{"var": "ip.address"}, "198.51.100.7"]})).await;
    assert!(blocked(&h, "u-ip", json!({"ipAddress": "198.51.100.7"})).await);
    assert!(!blocked(&h, "u-ip", json!({"ipAddress": "198.51.100.8"})).await);
    block_pay_when(
        &h,
        json!({"ip_in_cidr": [{"var": "ip.address"}, ["198.51.100.0/24", "2001:db8::/32"]]}),
    )
    .await;
    assert!(blocked(&h, "u-ip", json!({"ipAddress": "198.51.100.200"})).await);
    assert!(blocked(&h, "u-ip", json!({"ipAddress": "2001:db8::5"})).await);
    assert!(!blocked(&h, "u-ip", json!({"ipAddress": "203.0.113.1"})).await);
    assert!(
        !blocked(&h, "u-ip", json!({})).await,
        "no ipAddress matches no CIDR"
    );

    check("ip.version");
    block_pay_when(&h, json!({"==": [{"var": "ip.version"}, 6]})).await;
    assert!(blocked(&h, "u-ipv", json!({"ipAddress": "2001:db8::1"})).await);
    assert!(!blocked(&h, "u-ipv", json!({"ipAddress": "192.0.2.1"})).await);

    check("ip.isPrivate");
    block_pay_when(&h, json!({"var": "ip.isPrivate"})).await;
    assert!(blocked(&h, "u-ipp", json!({"ipAddress": "10.2.3.4"})).await);
    assert!(!blocked(&h, "u-ipp", json!({"ipAddress": "192.0.2.1"})).await);

    check("userAgent");
    block_pay_when(&h, json!({"in": ["EvilBrowser", {"var": "userAgent"}]})).await;
    assert!(
        blocked(
            &h,
            "u-ua",
            json!({"userAgent": "Mozilla/5.0 EvilBrowser/1"})
        )
        .await
    );
    assert!(!blocked(&h, "u-ua", json!({"userAgent": "Mozilla/5.0 Safari/17"})).await);

    check("device.id");
    block_pay_when(&h, json!({"==": [{"var": "device.id"}, "stolen-device"]})).await;
    assert!(blocked(&h, "u-did", json!({"deviceId": "stolen-device"})).await);
    assert!(!blocked(&h, "u-did", json!({"deviceId": "my-device"})).await);

    check("device.isBot");
    block_pay_when(&h, json!({"var": "device.isBot"})).await;
    assert!(blocked(&h, "u-bot", json!({"userAgent": "python-requests/2.31"})).await);
    assert!(
        !blocked(
            &h,
            "u-bot",
            json!({"userAgent": "Mozilla/5.0 (iPhone) AuthsignalIOSSDK/2"})
        )
        .await
    );

    check("user.email");
    block_pay_when(
        &h,
        json!({"in": ["@mailinator.com", {"var": "user.email"}]}),
    )
    .await;
    assert!(blocked(&h, "u-mail", json!({"email": "x@mailinator.com"})).await);
    assert!(!blocked(&h, "u-mail", json!({"email": "x@example.com"})).await);

    check("user.phoneNumber");
    block_pay_when(&h, json!({"missing": ["user.phoneNumber"]})).await;
    assert!(blocked(&h, "u-phone", json!({})).await);
    assert!(!blocked(&h, "u-phone", json!({"phoneNumber": "+64211234567"})).await);

    check("action.code");
    // In the tenant default, which every action without a config of its own uses.
    put_config(
        &h,
        &h.a,
        "*",
        json!({"defaultOutcome": "ALLOW", "rules": [{"ruleId": "r", "name": "No withdrawals",
            "type": "BLOCK", "conditions": {"==": [{"var": "action.code"}, "withdraw"]}}]}),
    )
    .await
    .expect(200);
    assert_eq!(
        h.track(&h.a, "u-code", "withdraw", json!({})).await["state"],
        "BLOCK"
    );
    assert_eq!(
        h.track(&h.a, "u-code", "deposit", json!({})).await["state"],
        "ALLOW"
    );

    check("custom.*");
    block_pay_when(&h, json!({">": [{"var": "custom.amount"}, 1000]})).await;
    assert!(blocked(&h, "u-custom", json!({"custom": {"amount": 5000}})).await);
    assert!(!blocked(&h, "u-custom", json!({"custom": {"amount": 10}})).await);
    assert!(!blocked(&h, "u-custom", json!({})).await);

    // --- from the clock (the harness clock stands still)
    let now = h.clock.now().unix_seconds();
    check("time.hourUtc");
    block_pay_when(
        &h,
        json!({"==": [{"var": "time.hourUtc"}, now.rem_euclid(86_400) / 3600]}),
    )
    .await;
    assert!(blocked(&h, "u-time", json!({})).await);
    block_pay_when(
        &h,
        json!({"==": [{"var": "time.hourUtc"}, (now.rem_euclid(86_400) / 3600 + 1) % 24]}),
    )
    .await;
    assert!(!blocked(&h, "u-time", json!({})).await);
    check("time.dayOfWeekUtc");
    let weekday = (now.div_euclid(86_400) + 4).rem_euclid(7);
    block_pay_when(&h, json!({"==": [{"var": "time.dayOfWeekUtc"}, weekday]})).await;
    assert!(blocked(&h, "u-time", json!({})).await);
    block_pay_when(
        &h,
        json!({"==": [{"var": "time.dayOfWeekUtc"}, (weekday + 1) % 7]}),
    )
    .await;
    assert!(!blocked(&h, "u-time", json!({})).await);

    // --- from the credentials
    let device = Device::new();
    h.register(&h.a, "u-enrolled", &device).await;
    check("user.isEnrolled");
    block_pay_when(&h, json!({"var": "user.isEnrolled"})).await;
    assert!(blocked(&h, "u-enrolled", json!({})).await);
    assert!(!blocked(&h, "u-stranger", json!({})).await);
    check("user.credentialCount");
    block_pay_when(&h, json!({"<": [{"var": "user.credentialCount"}, 1]})).await;
    assert!(!blocked(&h, "u-enrolled", json!({})).await);
    assert!(blocked(&h, "u-stranger", json!({})).await);
    check("user.enrolledVerificationMethods");
    block_pay_when(
        &h,
        json!({"in": ["DEVICE", {"var": "user.enrolledVerificationMethods"}]}),
    )
    .await;
    assert!(blocked(&h, "u-enrolled", json!({})).await);
    assert!(!blocked(&h, "u-stranger", json!({})).await);

    // --- from the user's history. A device becomes known once an action from it was
    // proven; here a reviewer approves it (`PATCH` to REVIEW_SUCCEEDED).
    check("device.isNew");
    block_pay_when(&h, json!({"var": "device.isNew"})).await;
    let first = h
        .track(&h.a, "u-hist", "pay", json!({"deviceId": "d1"}))
        .await;
    assert_eq!(first["state"], "BLOCK", "first sight: {first}");
    assert!(
        blocked(&h, "u-hist", json!({"deviceId": "d1"})).await,
        "a blocked attempt proves nothing: a retry from d1 is still new"
    );
    prove(&h, "u-hist", &first).await;
    assert!(
        !blocked(&h, "u-hist", json!({"deviceId": "d1"})).await,
        "seen before, and proven"
    );
    assert!(
        blocked(&h, "u-hist", json!({})).await,
        "no deviceId: new (fails closed)"
    );
    assert!(
        blocked(&h, "u-other", json!({"deviceId": "d1"})).await,
        "per user"
    );

    check("device.count");
    block_pay_when(&h, json!({">=": [{"var": "device.count"}, 3]})).await;
    let second = h
        .track(&h.a, "u-hist", "pay", json!({"deviceId": "d2"}))
        .await;
    assert_eq!(second["state"], "ALLOW", "d1, d2: {second}");
    assert!(
        !blocked(&h, "u-hist", json!({"deviceId": "d3"})).await,
        "d1, d3: the d2 attempt is not proven"
    );
    prove(&h, "u-hist", &second).await;
    assert!(
        blocked(&h, "u-hist", json!({"deviceId": "d3"})).await,
        "d1, d2, d3"
    );

    check("action.countLastHour");
    block_pay_when(&h, json!({">=": [{"var": "action.countLastHour"}, 2]})).await;
    assert!(!blocked(&h, "u-rate", json!({})).await, "0 earlier");
    assert!(!blocked(&h, "u-rate", json!({})).await, "1 earlier");
    assert!(blocked(&h, "u-rate", json!({})).await, "2 earlier");
    assert_eq!(
        h.track(&h.a, "u-rate", "signIn", json!({})).await["state"],
        "ALLOW",
        "other codes are not counted (and signIn has the tenant default)"
    );
    check("user.actionCountLastHour");
    block_pay_when(&h, json!({">=": [{"var": "user.actionCountLastHour"}, 5]})).await;
    assert!(!blocked(&h, "u-rate", json!({})).await, "3 pay + 1 signIn");
    assert!(blocked(&h, "u-rate", json!({})).await, "4 pay + 1 signIn");

    check("action.countLastDay");
    h.clock.advance_seconds(2 * 3600);
    block_pay_when(&h, json!({">=": [{"var": "action.countLastHour"}, 1]})).await;
    assert!(
        !blocked(&h, "u-rate", json!({})).await,
        "the hour has passed"
    );
    block_pay_when(&h, json!({">=": [{"var": "action.countLastDay"}, 6]})).await;
    assert!(
        blocked(&h, "u-rate", json!({})).await,
        "6 earlier pay today"
    );
    h.clock.advance_seconds(24 * 3600);
    assert!(
        !blocked(&h, "u-rate", json!({})).await,
        "the day has passed"
    );

    let documented: BTreeSet<&str> = DATA_POINTS
        .iter()
        .map(|p| p.name)
        .chain(["custom.*"])
        .collect();
    assert_eq!(tested, documented, "every data point has a test here");
}

#[tokio::test]
async fn precedence_inactive_rules_and_what_get_action_shows() {
    let h = Harness::start().await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    put_config(
        &h,
        &h.a,
        "pay",
        json!({
            "actionCode": "pay",
            "defaultOutcome": "CHALLENGE",
            "rules": [
                {"ruleId": "big", "name": "Big payment", "description": "More than 1,000",
                 "priority": 10, "type": "REVIEW", "conditions": {">": [{"var": "custom.amount"}, 1000]}},
                {"ruleId": "huge", "name": "Huge payment", "priority": 1, "type": "BLOCK",
                 "conditions": {">": [{"var": "custom.amount"}, 100000]}},
                {"ruleId": "switched-off", "name": "Off", "priority": 0, "isActive": false,
                 "type": "BLOCK", "conditions": true},
                {"ruleId": "small-a", "name": "Small A", "priority": 5, "type": "ALLOW",
                 "conditions": {"<": [{"var": "custom.amount"}, 10]}},
                {"ruleId": "small-b", "name": "Small B", "priority": 5, "type": "BLOCK",
                 "conditions": {"<": [{"var": "custom.amount"}, 10]}}
            ]
        }),
    )
    .await
    .expect(200);
    let track = |amount: i64| h.track(&h.a, "alice", "pay", json!({"custom": {"amount": amount}}));

    let huge = track(500_000).await;
    assert_eq!(
        (huge["state"].clone(), huge["ruleIds"].clone()),
        (json!("BLOCK"), json!(["huge"])),
        "priority 1 before 10; the inactive rule is skipped"
    );
    let small = track(5).await;
    assert_eq!(
        (small["state"].clone(), small["ruleIds"].clone()),
        (json!("ALLOW"), json!(["small-a"])),
        "a tie keeps list order"
    );
    let plain = track(500).await;
    assert_eq!(
        (plain["state"].clone(), plain["ruleIds"].clone()),
        (json!("CHALLENGE_REQUIRED"), json!([])),
        "no match: the action default"
    );

    let big = track(5000).await;
    assert_eq!(big["state"], "REVIEW_REQUIRED");
    assert_eq!(big["ruleIds"], json!(["big"]));
    let key = big["idempotencyKey"].as_str().unwrap();
    let action = h.action(&h.a, "alice", "pay", key).await;
    assert_eq!(
        action["rules"],
        json!([{"ruleId": "big", "name": "Big payment", "description": "More than 1,000"}])
    );
    assert_eq!(action["ruleIds"], json!(["big"]));
    assert_eq!(action["output"], json!({"custom": {"amount": 5000}}));

    // A change applies to the very next track: configs are not cached.
    put_config(&h, &h.a, "pay", json!({"defaultOutcome": "ALLOW"}))
        .await
        .expect(200);
    assert_eq!(track(5000).await["state"], "ALLOW");

    // The same idempotency key returns the action first decided, not a new decision.
    let again = h
        .track(
            &h.a,
            "alice",
            "pay",
            json!({"idempotencyKey": key, "custom": {"amount": 5000}}),
        )
        .await;
    assert_eq!(again["state"], "REVIEW_REQUIRED");
    assert_eq!(again["ruleIds"], json!(["big"]));
}

#[tokio::test]
async fn defaults_tenant_default_and_unenrolled_users() {
    let h = Harness::start().await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;

    // Nothing configured: enrolled users are challenged, others allowed (spec 2.3).
    assert_eq!(
        h.track(&h.a, "alice", "pay", json!({})).await["state"],
        "CHALLENGE_REQUIRED"
    );
    let stranger = h.track(&h.a, "bob", "pay", json!({})).await;
    assert_eq!(
        (stranger["state"].clone(), stranger["isEnrolled"].clone()),
        (json!("ALLOW"), json!(false))
    );

    // The tenant default applies to every action without its own config.
    put_config(&h, &h.a, "*", json!({"defaultOutcome": "REVIEW"}))
        .await
        .expect(200);
    assert_eq!(
        h.track(&h.a, "alice", "pay", json!({})).await["state"],
        "REVIEW_REQUIRED"
    );
    assert_eq!(
        h.track(&h.a, "bob", "pay", json!({})).await["state"],
        "REVIEW_REQUIRED",
        "REVIEW applies to users without a device too"
    );
    // An action's own default wins over it; without one, the tenant's is borrowed.
    put_config(&h, &h.a, "pay", json!({"defaultOutcome": "CHALLENGE"}))
        .await
        .expect(200);
    assert_eq!(
        h.track(&h.a, "alice", "pay", json!({})).await["state"],
        "CHALLENGE_REQUIRED"
    );
    let unenrolled = h.track(&h.a, "bob", "pay", json!({})).await;
    assert_eq!(
        (
            unenrolled["state"].clone(),
            unenrolled["isEnrolled"].clone()
        ),
        (json!("ALLOW"), json!(false)),
        "a user without a credential cannot be challenged"
    );
    put_config(&h, &h.a, "pay", json!({"rules": []}))
        .await
        .expect(200);
    assert_eq!(
        h.track(&h.a, "alice", "pay", json!({})).await["state"],
        "REVIEW_REQUIRED"
    );
    put_config(&h, &h.a, "*", json!({"defaultOutcome": "BLOCK"}))
        .await
        .expect(200);
    assert_eq!(
        h.track(&h.a, "bob", "pay", json!({})).await["state"],
        "BLOCK",
        "BLOCK applies to users without a device"
    );

    // Another tenant is untouched.
    assert_eq!(
        h.track(&h.b, "bob", "pay", json!({})).await["state"],
        "ALLOW"
    );
    h.get("/action-configs/pay", Auth::Secret(&h.b.secret))
        .await
        .expect_error(404, "action_config_not_found");
}

#[tokio::test]
async fn each_outcome_through_track_and_validate() {
    let h = Harness::start().await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    put_config(
        &h,
        &h.a,
        "pay",
        json!({"defaultOutcome": "CHALLENGE", "rules": [
            {"ruleId": "allow", "name": "Allow", "type": "ALLOW", "conditions": {"==": [{"var": "custom.case"}, "allow"]}},
            {"ruleId": "review", "name": "Review", "type": "REVIEW", "conditions": {"==": [{"var": "custom.case"}, "review"]}},
            {"ruleId": "block", "name": "Block", "type": "BLOCK", "conditions": {"==": [{"var": "custom.case"}, "block"]}}
        ]}),
    )
    .await
    .expect(200);
    let track = |case: &str| h.track(&h.a, "alice", "pay", json!({"custom": {"case": case}}));
    let validate = |token: &Value| h.validate(&h.a, json!({"token": token, "userId": "alice"}));
    let (harness, signer) = (&h, &device);
    let complete = |token: String| async move {
        let challenge_id = harness.challenge(&harness.a, json!({})).await;
        harness
            .verify(Auth::Bearer(&token), signer, &challenge_id)
            .await
    };

    // ALLOW: nothing to prove; validate says so.
    let allowed = track("allow").await;
    assert_eq!(allowed["state"], "ALLOW");
    let v = validate(&allowed["token"]).await;
    assert_eq!(
        (v["isValid"].clone(), v["state"].clone()),
        (json!(false), json!("ALLOW"))
    );

    // CHALLENGE: valid only after the device signs.
    let challenged = track("none").await;
    assert_eq!(challenged["state"], "CHALLENGE_REQUIRED");
    let v = validate(&challenged["token"]).await;
    assert_eq!(
        (v["isValid"].clone(), v["state"].clone()),
        (json!(false), json!("CHALLENGE_REQUIRED"))
    );
    let verified = complete(challenged["token"].as_str().unwrap().to_owned())
        .await
        .expect(200);
    let v = validate(&verified["token"]).await;
    assert_eq!(
        (v["isValid"].clone(), v["state"].clone()),
        (json!(true), json!("CHALLENGE_SUCCEEDED"))
    );

    // REVIEW: a device signature cannot settle it; the backend resolves it with PATCH.
    let reviewed = track("review").await;
    assert_eq!(reviewed["state"], "REVIEW_REQUIRED");
    let token = reviewed["token"].as_str().unwrap().to_owned();
    complete(token.clone())
        .await
        .expect_error(409, "invalid_action_state");
    let v = validate(&reviewed["token"]).await;
    assert_eq!(
        (v["isValid"].clone(), v["state"].clone()),
        (json!(false), json!("REVIEW_REQUIRED"))
    );
    let key = reviewed["idempotencyKey"].as_str().unwrap();
    let resolved = h
        .set_action_state(&h.a, "alice", "pay", key, "REVIEW_SUCCEEDED")
        .await;
    assert_eq!(resolved["state"], "REVIEW_SUCCEEDED");
    assert_eq!(resolved["rules"][0]["ruleId"], "review");
    let v = validate(&reviewed["token"]).await;
    assert_eq!(
        (v["isValid"].clone(), v["state"].clone()),
        (json!(false), json!("REVIEW_SUCCEEDED")),
        "isValid means a device proved it (docs/api.md); the backend reads state for reviews"
    );

    // BLOCK: never valid, and a device signature cannot override it.
    let blocked = track("block").await;
    assert_eq!(blocked["state"], "BLOCK");
    complete(blocked["token"].as_str().unwrap().to_owned())
        .await
        .expect_error(409, "invalid_action_state");
    let v = validate(&blocked["token"]).await;
    assert_eq!(
        (v["isValid"].clone(), v["state"].clone()),
        (json!(false), json!("BLOCK"))
    );
    // Nor can its token add a device.
    h.add_credential(&blocked, &Device::new())
        .await
        .expect_error(403, "action_not_allowed");
}

#[tokio::test]
async fn invalid_configs_are_refused_with_messages_that_name_the_rule_and_problem() {
    let h = Harness::start().await;
    let harness = &h;
    let refused = |body: Value| async move {
        let reply = put_config(harness, &harness.a, "pay", body)
            .await
            .expect_error(400, "invalid_action_config");
        reply["errorDescription"].as_str().unwrap().to_owned()
    };
    let rule = |id: &str, conditions: Value| json!({"ruleId": id, "name": format!("Rule {id}"), "type": "BLOCK", "conditions": conditions});

    assert_eq!(
        refused(json!({"rules": [rule("a", json!(true)), rule("a", json!(false))]})).await,
        "rule #1 (ruleId \"a\", name \"Rule a\"): duplicate ruleId \"a\""
    );
    assert!(
        refused(json!({"rules": [rule("a", json!({"regex": ["x", "y"]}))]}))
            .await
            .starts_with(
                "rule #0 (ruleId \"a\", name \"Rule a\"): conditions: unknown operator \"regex\""
            )
    );
    assert_eq!(
        refused(json!({"rules": [rule("geo", json!({"==": [{"var": "ip.country"}, "NZ"]}))]}))
            .await,
        "rule #0 (ruleId \"geo\", name \"Rule geo\"): conditions at ==[0].var: unknown data point \"ip.country\""
    );
    assert_eq!(
        refused(json!({"rules": [rule("a", json!(true)), rule("b", json!({"!": [1, 2]}))]})).await,
        "rule #1 (ruleId \"b\", name \"Rule b\"): conditions at !: operator \"!\" takes 1 argument(s), found 2"
    );
    assert!(refused(json!({"rules": [rule("net", json!({"ip_in_cidr": [{"var": "ip.address"}, "10.0.0.0/99"]}))]})).await
        .contains("\"10.0.0.0/99\" is not a CIDR block"));
    assert!(
        refused(
            json!({"rules": [{"ruleId": "t", "name": "T", "type": "DENY", "conditions": true}]})
        )
        .await
        .starts_with("rule #0 (ruleId \"t\", name \"T\"): unknown variant `DENY`")
    );
    assert!(
        refused(json!({"actionCode": "signIn"}))
            .await
            .contains("differs from \"pay\"")
    );
    assert!(
        refused(json!({"defaultOutcome": "SOMETIMES"}))
            .await
            .starts_with("action config: unknown variant `SOMETIMES`")
    );

    // Nothing was saved by the refusals.
    h.get("/action-configs/pay", Auth::Secret(&h.a.secret))
        .await
        .expect_error(404, "action_config_not_found");
    // A code that is neither an action code nor `*`.
    h.send(
        Method::PUT,
        "/action-configs/no%20spaces",
        Auth::Secret(&h.a.secret),
        Some(&json!({})),
    )
    .await
    .expect_error(400, "invalid_action_config");
    // The secret key is required.
    h.get("/action-configs", Auth::Secret("sk_not_a_real_secret_0000"))
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn configs_can_be_listed_read_and_deleted() {
    let h = Harness::start().await;
    put_config(&h, &h.a, "*", json!({"defaultOutcome": "ALLOW"}))
        .await
        .expect(200);
    let saved = put_config(
        &h,
        &h.a,
        "pay",
        json!({"rules": [{"ruleId": "r", "name": "R", "type": "REVIEW", "conditions": {"var": "custom.flag"}}]}),
    )
    .await
    .expect(200);
    assert_eq!(saved["actionCode"], "pay");
    assert_eq!(
        saved["rules"][0]["isActive"], true,
        "isActive defaults to true"
    );
    assert_eq!(saved["rules"][0]["priority"], 0);
    let listed = h
        .get("/action-configs", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    let codes: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["actionCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["*", "pay"]);
    assert_eq!(
        h.get("/action-configs/pay", Auth::Secret(&h.a.secret))
            .await
            .expect(200),
        saved
    );
    assert_eq!(
        h.get("/action-configs/%2A", Auth::Secret(&h.a.secret))
            .await
            .expect(200)["defaultOutcome"],
        "ALLOW"
    );
    h.send(
        Method::DELETE,
        "/action-configs/pay",
        Auth::Secret(&h.a.secret),
        None,
    )
    .await
    .expect(200);
    h.send(
        Method::DELETE,
        "/action-configs/pay",
        Auth::Secret(&h.a.secret),
        None,
    )
    .await
    .expect_error(404, "action_config_not_found");
    assert!(
        h.get("/action-configs", Auth::Secret(&h.b.secret))
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// An anonymous kiosk's QR sign-in for `adminSignIn`, claimed and approved by `phone`: the
/// approval's reply and the kiosk's poll after it.
async fn qr_sign_in(h: &Harness, phone: &Device, custom: Value) -> (e2e_tests::Reply, Value) {
    let basic = || Auth::TenantAndroid(&h.a.id);
    let started = h
        .post(
            "/client/challenge/qr-code",
            basic(),
            json!({"action": "adminSignIn", "custom": custom}),
        )
        .await
        .expect(200);
    let id = started["challengeId"].as_str().unwrap().to_owned();
    let signed =
        json!({"challengeId": id, "publicKey": phone.public_key, "signature": phone.sign(&id)});
    h.post(
        "/client/user-authenticators/qr-code/challenge/claim",
        basic(),
        signed.clone(),
    )
    .await
    .expect(200);
    let mut approve = signed;
    approve["approved"] = json!(true);
    let answered = h
        .post(
            "/client/user-authenticators/qr-code/challenge",
            basic(),
            approve,
        )
        .await;
    let polled = h
        .post(
            "/client/verify/qr-code",
            basic(),
            json!({"challengeId": id, "deviceCode": started["deviceCode"]}),
        )
        .await
        .expect(200);
    (answered, polled)
}

/// An action a device creates without a track (an anonymous QR code, an in-app verify with
/// tenant Basic) is decided by the rules as a track would be: a BLOCK or REVIEW outcome
/// cannot be completed by a signature. No backend vouched for its data points, so a BLOCK or
/// REVIEW rule that reads one (here `custom.kiosk`, which the kiosk itself sends) fails
/// closed whatever the value; a rule on what the server knows decides as usual.
#[tokio::test]
async fn rules_decide_actions_that_devices_create_without_a_track() {
    let h = Harness::start().await;
    put_config(
        &h,
        &h.a,
        "adminSignIn",
        json!({"defaultOutcome": "CHALLENGE", "rules": [
            {"ruleId": "kiosk-block", "name": "No admin sign-in at kiosks", "type": "BLOCK",
             "conditions": {"==": [{"var": "custom.kiosk"}, "lobby"]}},
            {"ruleId": "review-all", "name": "Review the rest", "type": "REVIEW",
             "conditions": {"==": [{"var": "custom.kiosk"}, "office"]}}
        ]}),
    )
    .await
    .expect(200);
    let phone = Device::in_namespace("qr-code");
    h.register(&h.a, "alice", &phone).await;
    let basic = || Auth::TenantAndroid(&h.a.id);
    for kiosk in ["lobby", "office", "home"] {
        let (answered, polled) = qr_sign_in(&h, &phone, json!({"kiosk": kiosk})).await;
        answered.expect_error(409, "invalid_action_state");
        assert_eq!(polled["isConsumed"], true, "{polled}");
        assert_eq!(polled["isVerified"], false, "{polled}");
        assert!(polled.get("accessToken").is_none());
    }

    // Rules on what the server itself knows (credentials, the clock, the kiosk's address as
    // the platform saw it) decide as on a track.
    put_config(
        &h,
        &h.a,
        "adminSignIn",
        json!({"defaultOutcome": "CHALLENGE", "rules": [
            {"ruleId": "many-devices", "name": "Too many devices", "type": "BLOCK",
             "conditions": {">": [{"var": "user.credentialCount"}, 5]}},
            {"ruleId": "not-loopback", "name": "Kiosks are on the LAN", "type": "REVIEW",
             "conditions": {"!": {"ip_in_cidr": [{"var": "ip.address"}, "127.0.0.0/8"]}}}
        ]}),
    )
    .await
    .expect(200);
    let (answered, polled) = qr_sign_in(&h, &phone, json!({"kiosk": "home"})).await;
    assert_eq!(answered.expect(200)["isVerified"], true);
    let validated = h
        .validate(&h.a, json!({"token": polled["accessToken"]}))
        .await;
    assert_eq!(validated["isValid"], true);
    assert_eq!(validated["action"], "adminSignIn");

    // The in-app verify of an action named at challenge start is decided the same way.
    put_config(
        &h,
        &h.a,
        "wipeAccount",
        json!({"defaultOutcome": "BLOCK", "rules": []}),
    )
    .await
    .expect(200);
    let in_app = Device::new();
    h.register(&h.a, "alice", &in_app).await;
    let id = h.challenge(&h.a, json!({"action": "wipeAccount"})).await;
    h.verify(basic(), &in_app, &id)
        .await
        .expect_error(409, "invalid_action_state");
}

/// Issue #11.3: rules that block `pay` over `custom.amount` or an IP range block a tracked
/// `pay`; the user's own device must not complete a `pay` of its own with tenant Basic and
/// the SDK's tokenless `verify(action)`, where no amount and no address was ever given. A
/// code that no such rule guards still verifies tokenless.
#[tokio::test]
async fn a_device_cannot_complete_an_action_that_rules_on_track_data_would_block() {
    let h = Harness::start().await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    let basic = || Auth::TenantAndroid(&h.a.id);
    let guards = [
        json!({">": [{"var": "custom.amount"}, 1000]}),
        json!({"ip_in_cidr": [{"var": "ip.address"}, "203.0.113.0/24"]}),
        json!({"==": [{"var": "userAgent"}, "evil"]}),
        json!({"==": [{"var": "device.id"}, "stolen"]}),
    ];
    for conditions in guards {
        block_pay_when(&h, conditions.clone()).await;
        let tracked = h
            .track(
                &h.a,
                "alice",
                "pay",
                json!({"custom": {"amount": 5000}, "ipAddress": "203.0.113.9",
                       "userAgent": "evil", "deviceId": "stolen"}),
            )
            .await;
        assert_eq!(tracked["state"], "BLOCK", "{conditions}: {tracked}");

        let id = h.challenge(&h.a, json!({"action": "pay"})).await;
        let refused = h.verify(basic(), &device, &id).await;
        refused.expect_error(409, "invalid_action_state");
    }

    // A code with rules only on what the server knows verifies without a track.
    put_config(
        &h,
        &h.a,
        "viewStatement",
        json!({"defaultOutcome": "CHALLENGE", "rules": [
            {"ruleId": "busy", "name": "Too many tries", "type": "BLOCK",
             "conditions": {">": [{"var": "action.countLastHour"}, 50]}}
        ]}),
    )
    .await
    .expect(200);
    let id = h.challenge(&h.a, json!({"action": "viewStatement"})).await;
    let verified = h.verify(basic(), &device, &id).await.expect(200);
    let validated = h
        .validate(
            &h.a,
            json!({"token": verified["token"], "action": "viewStatement"}),
        )
        .await;
    assert_eq!(validated["isValid"], true, "{validated}");
    assert_eq!(validated["state"], "CHALLENGE_SUCCEEDED");
}

/// A backend that passes a raw forwarded-for list, or an address with a port, as `ipAddress`
/// must not slip past an IP-range BLOCK: such an address cannot be read, so the rule fails
/// closed (found by an adversarial review of issue #11).
#[tokio::test]
async fn an_ip_range_block_fails_closed_on_an_address_that_is_not_one() {
    let h = Harness::start().await;
    block_pay_when(
        &h,
        json!({"ip_in_cidr": [{"var": "ip.address"}, "10.0.0.0/8"]}),
    )
    .await;
    for address in [
        "10.1.2.3",
        "10.1.2.3, 8.8.8.8",
        "10.1.2.3:443",
        "[::ffff:10.1.2.3]",
        "127.1",
    ] {
        assert!(
            blocked(&h, "alice", json!({"ipAddress": address})).await,
            "{address}"
        );
    }
    for address in ["8.8.8.8", "::ffff:8.8.8.8", " 8.8.8.8 "] {
        assert!(
            !blocked(&h, "alice", json!({"ipAddress": address})).await,
            "{address}"
        );
    }
}

/// A second server process on the same store, as another Lambda instance or another
/// `serve` would be: its own tenant cache, nothing shared in memory with the first.
async fn second_instance(h: &Harness) -> trusted_device::RunningServer {
    use std::sync::Arc;
    let store: Arc<dyn shared::store::Store> = match (&h.dynamo, &h.embedded) {
        (Some(dynamo), _) => Arc::new(dynamo.store.clone()),
        (None, Some(embedded)) => Arc::new(embedded.clone()),
        (None, None) => unreachable!("the harness runs on one of the two stores"),
    };
    let app = testkit::app(store, h.clock.clone(), shared::config::Settings::default());
    trusted_device::RunningServer::start(app).await.unwrap()
}

/// Tracks `pay` for `user` on the server at `base` and returns its state.
async fn state_on(h: &Harness, base: &str, user: &str) -> String {
    let response = h
        .http
        .post(format!("{base}/users/{user}/actions/pay"))
        .basic_auth(&h.a.secret, Some(""))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["state"].as_str().unwrap().to_owned()
}

/// Issue #18: configs are not cached, and on DynamoDB each user reads one of several copies;
/// a change saved through one instance applies to the very next track on every instance and
/// for every user (whichever copy it reads), on both stores.
#[tokio::test]
async fn a_config_change_applies_to_the_next_track_on_every_instance() {
    for kind in [
        e2e_tests::StoreKind::Embedded,
        e2e_tests::StoreKind::DynamoDb,
    ] {
        let h = Harness::start_on(kind).await;
        let other = second_instance(&h).await;
        let (first, second) = (h.server.base_url(), other.base_url());
        let users: Vec<String> = (0..40).map(|i| format!("shard-user-{i}")).collect();
        // Both instances warm (tenant cached), every user allowed.
        for user in &users {
            assert_eq!(state_on(&h, &first, user).await, "ALLOW");
            assert_eq!(state_on(&h, &second, user).await, "ALLOW");
        }
        put_config(&h, &h.a, "pay", json!({"defaultOutcome": "BLOCK"}))
            .await
            .expect(200);
        for user in &users {
            assert_eq!(state_on(&h, &second, user).await, "BLOCK", "{kind:?}");
            assert_eq!(state_on(&h, &first, user).await, "BLOCK", "{kind:?}");
        }
        let deleted = h
            .http
            .delete(format!("{second}/action-configs/pay"))
            .basic_auth(&h.a.secret, Some(""))
            .send()
            .await
            .unwrap();
        assert!(deleted.status().is_success(), "{}", deleted.status());
        for user in &users {
            assert_eq!(state_on(&h, &first, user).await, "ALLOW", "{kind:?}");
        }
    }
}
