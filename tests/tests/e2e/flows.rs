//! The trusted-device flows end to end over HTTP, as a backend (server SDK) and a mobile app
//! (iOS / Android SDK) drive them (spec 6.1, 6.2).

use e2e_tests::{Auth, Device, Harness, StoreKind, jwt_payload};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn track_for_a_new_user_allows_and_issues_a_spec_token() {
    let h = Harness::start().await;
    // An empty body is allowed (PHP sends none, spec 2.2).
    let reply = h
        .send(
            Method::POST,
            "/users/new-user/actions/signIn",
            Auth::Secret(&h.a.secret),
            None,
        )
        .await
        .expect(200);
    assert_eq!(reply["state"], "ALLOW");
    assert_eq!(reply["isEnrolled"], false);
    assert_eq!(reply["enrolledVerificationMethods"], json!([]));
    assert_eq!(reply["allowedVerificationMethods"], json!([]));
    let key = reply["idempotencyKey"].as_str().unwrap();
    assert_eq!(key.len(), 36, "a UUID: {key}");

    let claims = jwt_payload(reply["token"].as_str().unwrap());
    assert_eq!(claims["sub"], "new-user");
    assert_eq!(claims["aud"], "tenant-a");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(claims["other"]["tenantId"], "tenant-a");
    assert_eq!(claims["other"]["userId"], "new-user");
    assert_eq!(claims["other"]["actionCode"], "signIn");
    assert_eq!(claims["other"]["idempotencyKey"], key);
    assert!(claims.get("scope").is_none());

    let scoped = h
        .track(
            &h.a,
            "new-user",
            "addAuthenticator",
            json!({"scope": "add:authenticators"}),
        )
        .await;
    assert_eq!(
        jwt_payload(scoped["token"].as_str().unwrap())["scope"],
        "add:authenticators"
    );
}

#[tokio::test]
async fn registration_then_lookup_in_both_platform_encodings() {
    let h = Harness::start().await;
    let device = Device::new();
    let added = h.register(&h.a, "alice", &device).await;
    assert_eq!(added["userId"], "alice");
    let id = added["userAuthenticatorId"].as_str().unwrap().to_owned();
    assert!(added["verifiedAt"].as_str().unwrap().ends_with('Z'));

    for query in [device.query_ios(), device.query_android()] {
        // Android puts standard base64 in the URL unescaped, '+' and all (spec 4.3).
        let got = h
            .get(
                &format!("/client/user-authenticators/in-app?publicKey={query}"),
                Auth::TenantIos(&h.a.id),
            )
            .await
            .expect(200);
        assert_eq!(got["userAuthenticatorId"], id.as_str());
        assert_eq!(got["userId"], "alice");
    }

    let listed = h
        .get("/users/alice/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["userAuthenticatorId"], id.as_str());
    assert_eq!(listed[0]["verificationMethod"], "DEVICE");

    // Adding the same key again is idempotent (the SDKs re-use an existing key).
    let tracked = h.track(&h.a, "alice", "addAuthenticator", json!({})).await;
    let again = h.add_credential(&tracked, &device).await.expect(200);
    assert_eq!(again["userAuthenticatorId"], id.as_str());
    let user = h
        .get("/users/alice", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert_eq!(user["isEnrolled"], true);
    assert_eq!(user["enrolledVerificationMethods"], json!(["DEVICE"]));
}

#[tokio::test]
async fn in_app_verify_with_a_tracked_action_then_validate() {
    let h = Harness::start().await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;

    let tracked = h
        .track(&h.a, "alice", "signIn", json!({"ipAddress": "203.0.113.7"}))
        .await;
    assert_eq!(tracked["state"], "CHALLENGE_REQUIRED");
    assert_eq!(tracked["isEnrolled"], true);
    let track_token = tracked["token"].as_str().unwrap();

    // Before the device signs, the token validates as not (yet) valid.
    let before = h.validate(&h.a, json!({"token": track_token})).await;
    assert_eq!(before["isValid"], false);
    assert_eq!(before["state"], "CHALLENGE_REQUIRED");
    assert_eq!(before["userId"], "alice");
    assert_eq!(before["action"], "signIn");

    let challenge_id = h.challenge(&h.a, json!({})).await;
    assert!(challenge_id.starts_with("c1."), "{challenge_id}");
    let verified = h
        .verify(Auth::Bearer(track_token), &device, &challenge_id)
        .await
        .expect(200);
    assert_eq!(verified["userId"], "alice");
    let new_token = verified["token"].as_str().unwrap();
    assert_ne!(new_token, track_token);

    let after = h
        .validate(
            &h.a,
            json!({"token": new_token, "userId": "alice", "action": "signIn"}),
        )
        .await;
    assert_eq!(after["isValid"], true);
    assert_eq!(after["state"], "CHALLENGE_SUCCEEDED");
    assert_eq!(after["action"], "signIn");
    assert_eq!(after["actionCode"], "signIn");
    assert_eq!(after["idempotencyKey"], tracked["idempotencyKey"]);
    assert_eq!(after["verificationMethod"], "DEVICE");
    assert!(after["stateUpdatedAt"].is_string());

    // The credential records its use; the action shows who verified it.
    let listed = h
        .get("/users/alice/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert!(listed[0]["lastVerifiedAt"].is_string());
    let key = tracked["idempotencyKey"].as_str().unwrap();
    let action = h.action(&h.a, "alice", "signIn", key).await;
    assert_eq!(action["state"], "CHALLENGE_SUCCEEDED");
    assert_eq!(
        action["verifiedByAuthenticatorId"],
        listed[0]["userAuthenticatorId"]
    );
    assert_eq!(
        action["output"],
        json!({"custom": {}}),
        "spec 2.5: the docs show this shape"
    );
    assert_eq!(action["rules"], json!([]));
}

/// A user's in-app challenges are used in the order they were issued (docs/dynamodb.md, "The
/// verify transaction"): a replay is `challenge_already_used`, an older challenge after a newer
/// one `challenge_superseded`, and another user's challenges are their own. Each success shows
/// as `lastVerifiedAt` on every route that returns the credential.
#[tokio::test]
async fn a_users_challenges_are_used_in_the_order_they_were_issued() {
    let h = Harness::start().await;
    let (alice, bob) = (Device::new(), Device::new());
    h.register(&h.a, "alice", &alice).await;
    h.register(&h.a, "bob", &bob).await;
    let token = |tracked: &serde_json::Value| tracked["token"].as_str().unwrap().to_owned();
    let first = token(&h.track(&h.a, "alice", "signIn", json!({})).await);
    let second = token(&h.track(&h.a, "alice", "pay", json!({})).await);
    let older = h.challenge(&h.a, json!({})).await;
    let bobs = h.challenge(&h.a, json!({})).await;
    let newer = h.challenge(&h.a, json!({})).await;

    h.verify(Auth::Bearer(&second), &alice, &newer)
        .await
        .expect(200);
    h.verify(Auth::Bearer(&first), &alice, &older)
        .await
        .expect_error(409, "challenge_superseded");
    h.verify(Auth::Bearer(&first), &alice, &newer)
        .await
        .expect_error(409, "challenge_already_used");
    let bob_token = token(&h.track(&h.a, "bob", "signIn", json!({})).await);
    h.verify(Auth::Bearer(&bob_token), &bob, &bobs)
        .await
        .expect(200);
    // A challenge asked for now completes the first action.
    let fresh = h.challenge(&h.a, json!({})).await;
    let verified = h
        .verify(Auth::Bearer(&first), &alice, &fresh)
        .await
        .expect(200);
    let validated = h.validate(&h.a, json!({"token": verified["token"]})).await;
    assert_eq!(validated["isValid"], true, "{validated}");
    assert_eq!(validated["action"], "signIn");

    let listed = h
        .get("/users/alice/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    let by_key = h
        .get(
            &format!(
                "/client/user-authenticators/in-app?publicKey={}",
                alice.query_android()
            ),
            Auth::TenantAndroid(&h.a.id),
        )
        .await
        .expect(200);
    let at = listed[0]["lastVerifiedAt"]
        .as_str()
        .expect("lastVerifiedAt");
    assert!(at.ends_with('Z'), "{at}");
    assert_eq!(by_key["lastVerifiedAt"], at);
}

#[tokio::test]
async fn in_app_verify_without_a_track_creates_the_named_action() {
    let h = Harness::start().await;
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;

    // The SDK's verify(action): both calls use tenant Basic (spec 3.4.4).
    let challenge_id = h
        .challenge(&h.a, json!({"action": "approveTransfer"}))
        .await;
    let verified = h
        .verify(Auth::TenantIos(&h.a.id), &device, &challenge_id)
        .await
        .expect(200);
    let validated = h
        .validate(
            &h.a,
            json!({"token": verified["token"], "action": "approveTransfer"}),
        )
        .await;
    assert_eq!(validated["isValid"], true);
    assert_eq!(validated["userId"], "alice");
    assert_eq!(validated["action"], "approveTransfer");
}

#[tokio::test]
async fn legacy_device_namespace_verifies_through_verify_device() {
    let h = Harness::start().await;
    let device = Device::in_namespace("device");
    h.register(&h.a, "legacy", &device).await;
    let tracked = h.track(&h.a, "legacy", "signIn", json!({})).await;
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let body = json!({"challengeId": challenge_id, "publicKey": device.public_key, "signature": device.sign(&challenge_id)});
    let verified = h
        .post(
            "/client/verify/device",
            Auth::Bearer(tracked["token"].as_str().unwrap()),
            body,
        )
        .await
        .expect(200);
    let validated = h.validate(&h.a, json!({"token": verified["token"]})).await;
    assert_eq!(validated["isValid"], true);
}

#[tokio::test]
async fn challenge_accepts_all_three_tenant_basic_encodings_and_bearer() {
    let h = Harness::start().await;
    for auth in [
        Auth::TenantIos(&h.a.id),
        Auth::TenantAndroid(&h.a.id),
        Auth::TenantBrowser(&h.a.id),
    ] {
        let reply = h
            .post("/client/challenge", auth, json!({}))
            .await
            .expect(200);
        assert!(
            reply["challengeId"].as_str().unwrap().starts_with("c1."),
            "{auth:?}"
        );
        assert!(reply.get("nonce").is_none());
    }
    // With a Bearer token the reply carries an attestation nonce (spec 3.4.1).
    let tracked = h.track(&h.a, "alice", "addAuthenticator", json!({})).await;
    let reply = h
        .post(
            "/client/challenge",
            Auth::Bearer(tracked["token"].as_str().unwrap()),
            json!({}),
        )
        .await
        .expect(200);
    assert!(reply["nonce"].as_str().unwrap().len() >= 16);
}

#[tokio::test]
async fn track_is_idempotent_and_actions_can_be_read_updated_and_queried() {
    let h = Harness::start().await;
    let first = h
        .track(
            &h.a,
            "alice",
            "withdraw",
            json!({"idempotencyKey": "order-42"}),
        )
        .await;
    assert_eq!(first["state"], "ALLOW", "not enrolled yet");
    // Enrolled now: a new track would be CHALLENGE_REQUIRED, but this one is not new.
    h.register(&h.a, "alice", &Device::new()).await;
    let again = h
        .track(
            &h.a,
            "alice",
            "withdraw",
            json!({"idempotencyKey": "order-42"}),
        )
        .await;
    assert_eq!(first["idempotencyKey"], "order-42");
    assert_eq!(again["idempotencyKey"], "order-42");
    assert_eq!(again["state"], "ALLOW", "the state first decided is kept");
    assert_ne!(again["token"], first["token"], "a fresh token each time");

    let path = "/users/alice/actions/withdraw/order-42";
    let secret = Auth::Secret(&h.a.secret);
    let updated = h
        .send(
            Method::PATCH,
            path,
            secret,
            Some(&json!({"state": "REVIEW_REQUIRED"})),
        )
        .await
        .expect(200);
    assert_eq!(updated["state"], "REVIEW_REQUIRED");
    assert_eq!(
        h.get(path, secret).await.expect(200)["state"],
        "REVIEW_REQUIRED"
    );

    let all = h.get("/users/alice/actions", secret).await.expect(200);
    let withdrawals: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["actionCode"] == "withdraw")
        .collect();
    assert_eq!(
        withdrawals.len(),
        1,
        "one action per idempotency key: {all}"
    );
    let filtered = h
        .get(
            "/users/alice/actions?codes=withdraw&state=REVIEW_REQUIRED",
            secret,
        )
        .await
        .expect(200);
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let none = h
        .get("/users/alice/actions?codes=withdraw&state=BLOCK", secret)
        .await
        .expect(200);
    assert_eq!(none, json!([]));
    h.get("/users/alice/actions/withdraw/unknown-key", secret)
        .await
        .expect_error(404, "action_not_found");
}

#[tokio::test]
async fn users_can_be_updated_with_patch_or_post_and_deleted() {
    let h = Harness::start().await;
    let secret = Auth::Secret(&h.a.secret);
    let patched = h
        .send(
            Method::PATCH,
            "/users/carol",
            secret,
            Some(&json!({"email": "c@example.com", "custom": {"tier": 2}})),
        )
        .await
        .expect(200);
    assert_eq!(patched["email"], "c@example.com");
    // Ruby and Java update with POST (spec 2.2); null means "leave as is" (spec 1.2).
    let posted = h
        .post(
            "/users/carol",
            secret,
            json!({"username": "carol", "email": null}),
        )
        .await
        .expect(200);
    assert_eq!(posted["username"], "carol");
    assert_eq!(posted["email"], "c@example.com");

    h.register(&h.a, "carol", &Device::new()).await;
    h.send(Method::DELETE, "/users/carol", secret, None)
        .await
        .expect(200);
    let user = h.get("/users/carol", secret).await.expect(200);
    assert_eq!(user["isEnrolled"], false);
    assert!(user.get("email").is_none());
    assert_eq!(
        h.get("/users/carol/authenticators", secret)
            .await
            .expect(200),
        json!([])
    );
}

/// A signature over a challenge issued before the key's current registration does not verify:
/// not after the credential was removed and the key registered again, not after the user was
/// deleted and came back, not once the key belongs to another user. Each of these starts a
/// fresh enrolment, whose last used challenge knows nothing of the earlier one's.
#[tokio::test]
async fn a_used_challenge_does_not_verify_again_under_a_new_registration_of_its_key() {
    let h = Harness::start().await;
    let secret = Auth::Secret(&h.a.secret);
    let device = Device::new();
    let used = |user: &'static str| {
        let h = &h;
        let device = &device;
        async move {
            let tracked = h.track(&h.a, user, "signIn", json!({})).await;
            let challenge = h.challenge(&h.a, json!({})).await;
            h.verify(
                Auth::Bearer(tracked["token"].as_str().unwrap()),
                device,
                &challenge,
            )
            .await
            .expect(200);
            challenge
        }
    };
    let replay_for = |user: &'static str, challenge: String| {
        let h = &h;
        let device = &device;
        async move {
            let tracked = h.track(&h.a, user, "signIn", json!({})).await;
            h.verify(
                Auth::Bearer(tracked["token"].as_str().unwrap()),
                device,
                &challenge,
            )
            .await
            .expect_error(409, "challenge_superseded");
            // Without a token: the verify that would create its own action.
            h.verify(Auth::TenantAndroid(&h.a.id), device, &challenge)
                .await
                .expect_error(409, "challenge_superseded");
        }
    };
    let remove_all = |user: &'static str| {
        let h = &h;
        async move {
            let listed = h
                .get(&format!("/users/{user}/authenticators"), secret)
                .await
                .expect(200);
            for authenticator in listed.as_array().unwrap() {
                let id = authenticator["userAuthenticatorId"].as_str().unwrap();
                h.send(
                    Method::DELETE,
                    &format!("/users/{user}/authenticators/{id}"),
                    secret,
                    None,
                )
                .await
                .expect(200);
            }
        }
    };

    // Removed, then the same key registered again by the same user.
    h.register(&h.a, "alice", &device).await;
    let challenge = used("alice").await;
    remove_all("alice").await;
    h.clock.advance_seconds(1);
    h.register(&h.a, "alice", &device).await;
    replay_for("alice", challenge).await;

    // The user deleted (their last used challenge with them) and back with the same key.
    let challenge = used("alice").await;
    h.send(Method::DELETE, "/users/alice", secret, None)
        .await
        .expect(200);
    h.clock.advance_seconds(1);
    h.register(&h.a, "alice", &device).await;
    replay_for("alice", challenge).await;

    // The key moved to another user.
    let challenge = used("alice").await;
    remove_all("alice").await;
    h.clock.advance_seconds(1);
    h.register(&h.a, "bob", &device).await;
    replay_for("bob", challenge).await;

    // What the key's current registration was issued since works.
    used("bob").await;
}

/// One key in several namespaces (the SDKs fall back to their legacy key in each, spec 3.2):
/// the device removes each credential with a fresh signature in the same window, while a
/// replay of one removal request removes nothing, in any namespace.
#[tokio::test]
async fn one_key_in_several_namespaces_is_removed_from_each_with_fresh_signatures() {
    let h = Harness::start().await;
    let device = Device::new();
    for namespace in ["push", "qr-code", "in-app"] {
        let tracked = h
            .track(
                &h.a,
                "alice",
                "addAuthenticator",
                json!({"scope": "add:authenticators"}),
            )
            .await;
        h.add_credential_in(&tracked, &device, namespace)
            .await
            .expect(200);
    }
    let now = h.clock_now();
    let remove = |namespace: &str, signature: &str| {
        let body = json!({"publicKey": device.public_key, "signature": signature});
        let path = format!("/client/user-authenticators/{namespace}/remove");
        let h = &h;
        async move { h.post(&path, Auth::TenantAndroid(&h.a.id), body).await }
    };
    let first = device.removal_signature(now);
    remove("push", &first).await.expect(200);
    remove("qr-code", &first)
        .await
        .expect_error(409, "signature_already_used");
    remove("qr-code", &device.removal_signature(now))
        .await
        .expect(200);
    remove("in-app", &device.removal_signature(now))
        .await
        .expect(200);
    let listed = h
        .get("/users/alice/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert_eq!(listed, json!([]), "every namespace's credential removed");
}

#[tokio::test]
async fn credential_removal_by_the_device_and_by_the_backend() {
    let h = Harness::start().await;
    let device = Device::new();
    let added = h.register(&h.a, "alice", &device).await;
    let now = h.clock_now();
    let signature = device.removal_signature(now);
    let body = json!({"publicKey": device.public_key, "signature": signature});
    let removed = h
        .post(
            "/client/user-authenticators/in-app/remove",
            Auth::TenantAndroid(&h.a.id),
            body.clone(),
        )
        .await
        .expect(200);
    assert_eq!(
        removed["removedAuthenticatorId"],
        added["userAuthenticatorId"]
    );
    h.get(
        &format!(
            "/client/user-authenticators/in-app?publicKey={}",
            device.query_ios()
        ),
        Auth::TenantIos(&h.a.id),
    )
    .await
    .expect_error(400, "invalid_credential");

    // Re-registered, the captured removal request is refused: each signature once per key.
    h.register(&h.a, "alice", &device).await;
    h.post(
        "/client/user-authenticators/in-app/remove",
        Auth::TenantAndroid(&h.a.id),
        body,
    )
    .await
    .expect_error(409, "signature_already_used");

    // The backend removes it with the Server API.
    let listed = h
        .get("/users/alice/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    let id = listed[0]["userAuthenticatorId"].as_str().unwrap();
    let path = format!("/users/alice/authenticators/{id}");
    h.send(Method::DELETE, &path, Auth::Secret(&h.a.secret), None)
        .await
        .expect(200);
    h.send(Method::DELETE, &path, Auth::Secret(&h.a.secret), None)
        .await
        .expect_error(404, "authenticator_not_found");
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    assert_eq!(tracked["isEnrolled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifies_of_one_challenge_have_exactly_one_winner() {
    let h = std::sync::Arc::new(Harness::start().await);
    let device = std::sync::Arc::new(Device::new());
    h.register(&h.a, "alice", &device).await;
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let token = tracked["token"].as_str().unwrap().to_owned();
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (h, device, token, challenge_id) = (
                h.clone(),
                device.clone(),
                token.clone(),
                challenge_id.clone(),
            );
            tokio::spawn(
                async move { h.verify(Auth::Bearer(&token), &device, &challenge_id).await },
            )
        })
        .collect();
    let mut successes = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status.as_u16() == 200 {
            successes += 1;
        } else {
            reply.expect_error(409, "challenge_already_used");
        }
    }
    assert_eq!(successes, 1);
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for Harness {
    fn clock_now(&self) -> i64 {
        use shared::clock::Clock;
        self.clock.now().unix_seconds()
    }
}

#[tokio::test]
async fn the_suite_runs_on_the_store_it_was_asked_for() {
    let h = Harness::start().await;
    h.track(&h.a, "alice", "signIn", json!({})).await;
    match StoreKind::from_env() {
        StoreKind::DynamoDb => {
            let requests = &h
                .dynamo
                .as_ref()
                .expect("a DynamoDB-backed server")
                .requests;
            assert!(
                requests.total_requests() > 0,
                "the track went through DynamoDB"
            );
        }
        StoreKind::Embedded => assert!(h.dynamo.is_none()),
    }
}
