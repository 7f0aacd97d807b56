//! What an attacker tries, over HTTP: replays, other keys, forged and expired tokens, wrong
//! secrets, and crossing tenants. Each attempt must fail with its precise error.

use e2e_tests::{Auth, Device, Harness, tamper_payload};
use serde_json::json;

/// A registered device and a fresh CHALLENGE_REQUIRED track token for `alice` in tenant A.
async fn enrolled(h: &Harness) -> (Device, String) {
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    (device, tracked["token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_replayed_challenge_is_refused() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect(200);
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect_error(409, "challenge_already_used");
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused_and_nothing_succeeds() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;
    let intruder = Device::new();
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let forged = json!({
        "challengeId": challenge_id,
        "publicKey": device.public_key,
        "signature": intruder.sign(&challenge_id),
    });
    h.post("/client/verify/in-app", Auth::Bearer(&token), forged)
        .await
        .expect_error(400, "invalid_signature");
    let validated = h.validate(&h.a, json!({"token": token})).await;
    assert_eq!(validated["isValid"], false);
    assert_eq!(validated["state"], "CHALLENGE_REQUIRED");
}

#[tokio::test]
async fn a_signature_over_another_message_is_refused() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let other_id = h.challenge(&h.a, json!({})).await;
    let body = json!({"challengeId": challenge_id, "publicKey": device.public_key, "signature": device.sign(&other_id)});
    h.post("/client/verify/in-app", Auth::Bearer(&token), body)
        .await
        .expect_error(400, "invalid_signature");
}

#[tokio::test]
async fn an_unregistered_key_is_refused() {
    let h = Harness::start().await;
    let (_, token) = enrolled(&h).await;
    let stranger = Device::new();
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(Auth::Bearer(&token), &stranger, &challenge_id)
        .await
        .expect_error(400, "invalid_credential");
    h.get(
        &format!(
            "/client/user-authenticators/in-app?publicKey={}",
            stranger.query_ios()
        ),
        Auth::TenantIos(&h.a.id),
    )
    .await
    .expect_error(400, "invalid_credential");
}

#[tokio::test]
async fn a_key_of_one_user_cannot_complete_another_users_action_or_be_taken_over() {
    let h = Harness::start().await;
    let (alices_device, _) = enrolled(&h).await;
    h.register(&h.a, "bob", &Device::new()).await;
    let bobs = h.track(&h.a, "bob", "signIn", json!({})).await;
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(
        Auth::Bearer(bobs["token"].as_str().unwrap()),
        &alices_device,
        &challenge_id,
    )
    .await
    .expect_error(403, "user_mismatch");

    // Bob cannot register Alice's key as his.
    let bobs_add = h
        .track(
            &h.a,
            "bob",
            "addAuthenticator",
            json!({"scope": "add:authenticators"}),
        )
        .await;
    h.add_credential(&bobs_add, &alices_device)
        .await
        .expect_error(409, "credential_conflict");
}

#[tokio::test]
async fn a_second_credential_needs_the_add_scope_or_a_completed_challenge() {
    let h = Harness::start().await;
    let (first, token) = enrolled(&h).await;
    let second = Device::new();
    let plain = h.track(&h.a, "alice", "addAuthenticator", json!({})).await;
    h.add_credential(&plain, &second)
        .await
        .expect_error(403, "insufficient_scope");

    // Challenge, then enroll (authenticator binding): the signIn token, once verified.
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(Auth::Bearer(&token), &first, &challenge_id)
        .await
        .expect(200);
    let signed_in = json!({"token": token});
    h.add_credential(&signed_in, &second).await.expect(200);
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;
    let tampered = tamper_payload(&token, |claims| {
        claims["sub"] = "mallory".into();
        claims["other"]["userId"] = "mallory".into();
    });
    let stretched = tamper_payload(&token, |claims| {
        claims["exp"] = (claims["exp"].as_i64().unwrap() + 86_400).into();
    });
    for forged in [tampered, stretched, "not-a-jwt".to_owned()] {
        h.add_credential(&json!({"token": forged}), &Device::new())
            .await
            .expect_error(401, "invalid_token");
        let challenge_id = h.challenge(&h.a, json!({})).await;
        h.verify(Auth::Bearer(&forged), &device, &challenge_id)
            .await
            .expect_error(401, "invalid_token");
        let validated = h.validate(&h.a, json!({"token": forged})).await;
        assert_eq!(validated["isValid"], false);
        assert_eq!(validated["error"], "invalid_token");
    }
}

#[tokio::test]
async fn expired_tokens_are_refused_with_expired_token() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;
    h.clock.advance_seconds(600);
    h.add_credential(&json!({"token": token}), &Device::new())
        .await
        .expect_error(401, "expired_token");
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect_error(401, "expired_token");
    let validated = h.validate(&h.a, json!({"token": token})).await;
    assert_eq!(
        validated,
        json!({"isValid": false, "error": "expired_token"})
    );
}

#[tokio::test]
async fn expired_challenges_are_refused() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.clock.advance_seconds(300);
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect_error(400, "challenge_expired");
}

#[tokio::test]
async fn wrong_or_missing_secret_is_401_with_the_exact_text() {
    let h = Harness::start().await;
    for auth in [
        Auth::Secret("sk_wrong_0123456789abcdef"),
        Auth::None,
        Auth::Bearer("x"),
        Auth::TenantAndroid(&h.a.id),
    ] {
        let body = h
            .post("/users/alice/actions/signIn", auth, json!({}))
            .await
            .expect_error(401, "unauthorized");
        assert_eq!(
            body["errorDescription"],
            "The request is unauthorized. Check that your API key and region base URL are correctly configured."
        );
    }
    h.post(
        "/validate",
        Auth::Secret("sk_wrong_0123456789abcdef"),
        json!({"token": "x"}),
    )
    .await
    .expect_error(401, "unauthorized");
    // An unknown tenant on the Client API is the same 401.
    h.post(
        "/client/challenge",
        Auth::TenantIos("no-such-tenant"),
        json!({}),
    )
    .await
    .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn tenant_isolation_tokens_keys_and_challenges_are_useless_elsewhere() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;

    // Tenant A's token does not validate in tenant B.
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let verified = h
        .verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect(200);
    let in_b = h.validate(&h.b, json!({"token": verified["token"]})).await;
    assert_eq!(in_b, json!({"isValid": false, "error": "invalid_token"}));
    assert_eq!(
        h.validate(&h.a, json!({"token": verified["token"]})).await["isValid"],
        true
    );

    // Tenant A's key is unknown in tenant B.
    h.get(
        &format!(
            "/client/user-authenticators/in-app?publicKey={}",
            device.query_android()
        ),
        Auth::TenantAndroid(&h.b.id),
    )
    .await
    .expect_error(400, "invalid_credential");

    // Tenant A's challenge cannot be answered through tenant B.
    let a_challenge = h.challenge(&h.a, json!({"action": "pay"})).await;
    h.register(&h.b, "alice", &device).await;
    h.verify(Auth::TenantIos(&h.b.id), &device, &a_challenge)
        .await
        .expect_error(404, "challenge_not_found");

    // Tenant B's secret sees only tenant B's users.
    let in_b_user = h
        .get("/users/alice/authenticators", Auth::Secret(&h.b.secret))
        .await
        .expect(200);
    assert_eq!(in_b_user.as_array().unwrap().len(), 1);
    let a_list = h
        .get("/users/alice/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert_ne!(
        a_list[0]["userAuthenticatorId"],
        in_b_user[0]["userAuthenticatorId"]
    );

    // A mismatching X-Authsignal-Tenant-ID header is refused.
    let reply = h
        .http
        .post(h.url("/client/challenge"))
        .header(
            "Authorization",
            format!("Basic {}", base64_std(&format!("{}:", h.a.id))),
        )
        .header("X-Authsignal-Tenant-ID", &h.b.id)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 401);
}

#[tokio::test]
async fn validate_checks_the_user_and_action_it_is_given() {
    let h = Harness::start().await;
    let (_, token) = enrolled(&h).await;
    let wrong_user = h
        .validate(&h.a, json!({"token": token, "userId": "mallory"}))
        .await;
    assert_eq!(
        (wrong_user["isValid"].clone(), wrong_user["error"].clone()),
        (json!(false), json!("user_mismatch"))
    );
    let wrong_action = h
        .validate(&h.a, json!({"token": token, "action": "pay"}))
        .await;
    assert_eq!(wrong_action["error"], "action_mismatch");
}

#[tokio::test]
async fn a_blocked_action_cannot_be_completed_by_a_device() {
    let h = Harness::start().await;
    let (device, token) = enrolled(&h).await;
    let key = e2e_tests::jwt_payload(&token)["other"]["idempotencyKey"]
        .as_str()
        .unwrap()
        .to_owned();
    h.send(
        reqwest::Method::PATCH,
        &format!("/users/alice/actions/signIn/{key}"),
        Auth::Secret(&h.a.secret),
        Some(&json!({"state": "BLOCK"})),
    )
    .await
    .expect(200);
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect_error(409, "invalid_action_state");
}

fn base64_std(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
