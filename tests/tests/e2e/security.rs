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
    h.set_action_state(&h.a, "alice", "signIn", &key, "BLOCK")
        .await;
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect_error(409, "invalid_action_state");
}

fn base64_std(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Issue #11.1: a public key belongs to one user per tenant, across namespaces. The same user
/// adds it to another namespace; another user cannot, in any namespace, so a tenant-Basic
/// verify with the key always answers for its one owner.
#[tokio::test]
async fn a_public_key_belongs_to_one_user_across_namespaces() {
    let h = Harness::start().await;
    let alices = Device::in_namespace("push");
    h.register(&h.a, "alice", &alices).await;
    let add = |user: &'static str, namespace: &'static str| {
        let h = &h;
        let key = alices.public_key.clone();
        async move {
            let tracked = h
                .track(
                    &h.a,
                    user,
                    "addAuthenticator",
                    json!({"scope": "add:authenticators"}),
                )
                .await;
            h.post(
                &format!("/client/user-authenticators/{namespace}"),
                Auth::Bearer(tracked["token"].as_str().unwrap()),
                json!({"publicKey": key}),
            )
            .await
        }
    };
    for namespace in ["in-app", "qr-code", "device", "push"] {
        add("bob", namespace)
            .await
            .expect_error(409, "credential_conflict");
    }
    // The legacy alias: the app presents one key to every namespace (spec 3.2).
    for namespace in ["in-app", "qr-code", "device"] {
        assert_eq!(add("alice", namespace).await.expect(200)["userId"], "alice");
    }
    let bobs = h
        .get("/users/bob/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert_eq!(bobs, json!([]));

    let challenge_id = h.challenge(&h.a, json!({})).await;
    let verified = h
        .post(
            "/client/verify/in-app",
            Auth::TenantAndroid(&h.a.id),
            json!({"challengeId": challenge_id, "publicKey": alices.public_key,
                   "signature": alices.sign(&challenge_id)}),
        )
        .await
        .expect(200);
    assert_eq!(verified["userId"], "alice");
}

/// Issue #11.1, raced: two users add one key at once, each in its own namespace, eight times
/// each. Exactly one user ends up holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_of_one_key_by_two_users_leave_one_holder() {
    let h = std::sync::Arc::new(Harness::start().await);
    let device = Device::new();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (user, namespace) = if i % 2 == 0 {
            ("alice", "in-app")
        } else {
            ("bob", "push")
        };
        let tracked = h
            .track(
                &h.a,
                user,
                "addAuthenticator",
                json!({"scope": "add:authenticators"}),
            )
            .await;
        let token = tracked["token"].as_str().unwrap().to_owned();
        let (h, key) = (h.clone(), device.public_key.clone());
        tasks.push(tokio::spawn(async move {
            h.post(
                &format!("/client/user-authenticators/{namespace}"),
                Auth::Bearer(&token),
                json!({"publicKey": key}),
            )
            .await
        }));
    }
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => {}
            // Lost the race to the other user, or a DynamoDB transaction conflict (retryable).
            409 => {
                reply.expect_error(409, "credential_conflict");
            }
            503 => {}
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    let mut holders = Vec::new();
    for user in ["alice", "bob"] {
        let listed = h
            .get(
                &format!("/users/{user}/authenticators"),
                Auth::Secret(&h.a.secret),
            )
            .await
            .expect(200);
        if !listed.as_array().unwrap().is_empty() {
            holders.push(user);
        }
    }
    assert_eq!(holders.len(), 1, "{holders:?}");
}

/// Issue #11.7: an add racing `DELETE /users/{id}` never leaves a credential behind (a BLOCK
/// of the add's action is checked in the same atomic step: the store conformance suite).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_add_racing_the_users_deletion_or_a_block_leaves_nothing_behind() {
    let h = std::sync::Arc::new(Harness::start().await);
    for run in 0..20 {
        let user = format!("racer-{run}");
        let tracked = h.track(&h.a, &user, "addAuthenticator", json!({})).await;
        let device = std::sync::Arc::new(Device::new());
        let add = {
            let (h, tracked, device) = (h.clone(), tracked.clone(), device.clone());
            tokio::spawn(async move { h.add_credential(&tracked, &device).await })
        };
        let delete = {
            let (h, user) = (h.clone(), user.clone());
            tokio::spawn(async move {
                h.send(
                    reqwest::Method::DELETE,
                    &format!("/users/{user}"),
                    Auth::Secret(&h.a.secret),
                    None,
                )
                .await
            })
        };
        let added = add.await.unwrap();
        delete.await.unwrap().expect(200);
        match added.status.as_u16() {
            200 => {}
            404 => {
                added.expect_error(404, "action_not_found");
            }
            other => panic!("unexpected {other}: {:?}", added.body),
        }
        let listed = h
            .get(
                &format!("/users/{user}/authenticators"),
                Auth::Secret(&h.a.secret),
            )
            .await
            .expect(200);
        assert_eq!(
            listed,
            json!([]),
            "run {run}: a credential survived the deletion"
        );
    }
}

/// Issue #11.7: sixteen concurrent adds of different keys with one scopeless token, for a
/// user with no credential: exactly one first credential; the others need the scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_credentials_with_one_scopeless_token_leave_one() {
    let h = std::sync::Arc::new(Harness::start().await);
    let tracked = h.track(&h.a, "carol", "addAuthenticator", json!({})).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (h, tracked) = (h.clone(), tracked.clone());
            tokio::spawn(async move { h.add_credential(&tracked, &Device::new()).await })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => added += 1,
            503 => {}
            _ => {
                reply.expect_error(403, "insufficient_scope");
            }
        }
    }
    assert_eq!(added, 1);
    let listed = h
        .get("/users/carol/authenticators", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
