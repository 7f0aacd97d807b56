//! Issue #20 over HTTP, on the store `TRUSTED_DEVICE_TEST_STORE` names (the suite runs on
//! both): sessions from a verified token, refresh rotation and reuse, revocation, expiry, the
//! JWKS, another tenant; query users; claim; the OTP methods refused.

use e2e_tests::{Auth, Device, Harness, TestTenant};
use serde_json::{Value, json};
use shared::domain::{SessionConfig, TenantId};
use shared::store::Store;

/// Sessions for `web` on both tenants (access 60 s, refresh 600 s), as `tenant configure` does.
async fn configure_sessions(h: &Harness) {
    let store: &dyn Store = match (&h.dynamo, &h.embedded) {
        (Some(dynamo), _) => &dynamo.store,
        (None, Some(embedded)) => embedded,
        _ => panic!("no store"),
    };
    for tenant in [&h.a, &h.b] {
        let rng = ring::rand::SystemRandom::new();
        store
            .put_session_config(&SessionConfig {
                tenant_id: TenantId::parse(tenant.id.clone()).unwrap(),
                client_ids: vec!["web".into()],
                access_token_ttl_seconds: 60,
                refresh_token_ttl_seconds: 600,
                signing_keys: vec![shared::session_token::new_session_key(&rng).unwrap()],
                revision: 0,
            })
            .await
            .unwrap();
    }
}

/// A completed in-app signIn of `user`: the token `/validate` accepts.
async fn verified_token(h: &Harness, tenant: &TestTenant, user: &str, device: &Device) -> String {
    let tracked = h.track(tenant, user, "signIn", json!({})).await;
    let challenge = h.challenge(tenant, json!({})).await;
    let verified = h
        .verify(
            Auth::Bearer(tracked["token"].as_str().unwrap()),
            device,
            &challenge,
        )
        .await
        .expect(200);
    verified["token"].as_str().unwrap().to_owned()
}

fn s(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sessions_end_to_end() {
    let h = Harness::start().await;
    configure_sessions(&h).await;
    let secret = Auth::Secret(&h.a.secret);
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    let token = verified_token(&h, &h.a, "alice", &device).await;

    let pair = h
        .post(
            "/sessions",
            secret,
            json!({"clientId": "web", "token": token}),
        )
        .await
        .expect(200);
    h.post(
        "/sessions",
        secret,
        json!({"clientId": "web", "token": token}),
    )
    .await
    .expect_error(400, "token_already_used");
    let access = s(&pair, "accessToken");
    let valid = h
        .post(
            "/sessions/validate",
            secret,
            json!({"accessToken": access, "clientIds": ["web"]}),
        )
        .await
        .expect(200);
    assert_eq!(valid["user"]["userId"], "alice");
    assert_eq!(valid["verificationMethod"], "DEVICE");

    // The JWKS has the token's key; no auth needed.
    let jwks = h
        .get("/tenants/tenant-a/.well-known/jwks.json", Auth::None)
        .await
        .expect(200);
    use base64::Engine as _;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    h.get("/tenants/nobody/.well-known/jwks.json", Auth::None)
        .await
        .expect_error(404, "not_found");

    // Another tenant: nothing works with tenant A's tokens.
    let other = Auth::Secret(&h.b.secret);
    h.post("/sessions/validate", other, json!({"accessToken": access}))
        .await
        .expect_error(401, "invalid_token");
    h.post(
        "/sessions/refresh",
        other,
        json!({"refreshToken": pair["refreshToken"]}),
    )
    .await
    .expect_error(401, "invalid_refresh_token");

    // Rotation, then reuse of the first refresh token revokes the family.
    let second = h
        .post(
            "/sessions/refresh",
            secret,
            json!({"refreshToken": pair["refreshToken"]}),
        )
        .await
        .expect(200);
    h.post(
        "/sessions/refresh",
        secret,
        json!({"refreshToken": pair["refreshToken"]}),
    )
    .await
    .expect_error(401, "refresh_token_reused");
    h.post(
        "/sessions/validate",
        secret,
        json!({"accessToken": second["accessToken"]}),
    )
    .await
    .expect_error(401, "session_revoked");

    // Expiry (the server's clock), then revocation of a user's sessions.
    let third = h
        .post(
            "/sessions",
            secret,
            json!({"clientId": "web", "token": verified_token(&h, &h.a, "alice", &device).await}),
        )
        .await
        .expect(200);
    h.clock.advance_seconds(61);
    h.post(
        "/sessions/validate",
        secret,
        json!({"accessToken": third["accessToken"]}),
    )
    .await
    .expect_error(401, "expired_token");
    let fourth = h
        .post(
            "/sessions/refresh",
            secret,
            json!({"refreshToken": third["refreshToken"]}),
        )
        .await
        .expect(200);
    h.post("/sessions/user/revoke", secret, json!({"userId": "alice"}))
        .await
        .expect(200);
    h.post(
        "/sessions/validate",
        secret,
        json!({"accessToken": fourth["accessToken"]}),
    )
    .await
    .expect_error(401, "session_revoked");
    h.post(
        "/sessions/revoke",
        secret,
        json!({"accessToken": fourth["accessToken"]}),
    )
    .await
    .expect(200);

    // Bad input: 4xx in the error shape.
    h.post("/sessions", secret, json!({"clientId": "web"}))
        .await
        .expect_error(400, "invalid_request");
    h.post("/sessions/validate", secret, json!({"accessToken": 7}))
        .await
        .expect_error(400, "invalid_request");
    h.post(
        "/sessions/refresh",
        secret,
        json!({"refreshToken": "x".repeat(5000)}),
    )
    .await
    .expect_error(401, "invalid_refresh_token");
}

#[tokio::test]
async fn query_users_claim_and_otp_end_to_end() {
    let h = Harness::start().await;
    let secret = Auth::Secret(&h.a.secret);
    for user in ["q1", "q2", "q3"] {
        h.send(
            reqwest::Method::PATCH,
            &format!("/users/{user}"),
            secret,
            Some(&json!({"email": "Q@Example.com", "username": user})),
        )
        .await
        .expect(200);
    }
    let page = h
        .get("/users?email=q%40example.com&limit=2", secret)
        .await
        .expect(200);
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    assert_eq!(page["lastEvaluatedUserId"], "q2");
    let rest = h
        .get(
            "/users?email=q%40example.com&limit=2&lastEvaluatedUserId=q2",
            secret,
        )
        .await
        .expect(200);
    assert_eq!(rest["users"][0]["userId"], "q3");
    assert!(rest.get("lastEvaluatedUserId").is_none());
    let other = h
        .get("/users?email=q%40example.com", Auth::Secret(&h.b.secret))
        .await
        .expect(200);
    assert_eq!(other["users"], json!([]));
    h.get("/users", secret)
        .await
        .expect_error(400, "invalid_request");
    h.get("/users?email=a&limit=abc", secret)
        .await
        .expect_error(400, "invalid_request");

    h.post(
        "/claim",
        secret,
        json!({"challengeId": "nope", "userId": "q1"}),
    )
    .await
    .expect_error(404, "challenge_not_found");
    h.post(
        "/challenge",
        secret,
        json!({"verificationMethod": "SMS", "action": "signIn"}),
    )
    .await
    .expect_error(400, "verification_method_not_supported");
    h.post(
        "/verify",
        secret,
        json!({"challengeId": "x", "verificationCode": "1"}),
    )
    .await
    .expect_error(400, "verification_method_not_supported");
    h.post("/verify", Auth::None, json!({}))
        .await
        .expect_error(401, "unauthorized");
    // Authenticators verified elsewhere, and the .NET batch enrolment (spec 2.7): unsupported,
    // and `authenticators` never taken for a user id to update.
    h.post(
        "/users/carol/authenticators",
        secret,
        json!({"verificationMethod": "SMS", "phoneNumber": "+64270000000"}),
    )
    .await
    .expect_error(400, "verification_method_not_supported");
    h.post(
        "/users/authenticators",
        secret,
        json!({"authenticators": [{"userId": "carol", "verificationMethod": "PASSKEY"}]}),
    )
    .await
    .expect_error(400, "verification_method_not_supported");
    h.post(
        "/users/authenticators",
        secret,
        json!({"email": "bogus@example.com"}),
    )
    .await
    .expect_error(400, "verification_method_not_supported");
    let bogus = h
        .get("/users?email=bogus@example.com", secret)
        .await
        .expect(200);
    assert_eq!(bogus["users"], json!([]), "no user named `authenticators`");
    h.post("/users/authenticators", Auth::None, json!({}))
        .await
        .expect_error(401, "unauthorized");
}

/// One session per succeeded action (docs/api.md, "Sessions"): the track token, which also
/// travels in the pre-built UI's URL, cannot make a second session once the challenge's token
/// made one, nor the other way round; another action of the same user still can.
#[tokio::test]
async fn a_succeeded_action_makes_one_session_whichever_of_its_tokens_is_given() {
    let h = Harness::start().await;
    configure_sessions(&h).await;
    let secret = Auth::Secret(&h.a.secret);
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    for (first, second) in [("challenge", "track"), ("track", "challenge")] {
        let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
        let track_token = s(&tracked, "token");
        let challenge = h.challenge(&h.a, json!({})).await;
        let verified = h
            .verify(Auth::Bearer(&track_token), &device, &challenge)
            .await
            .expect(200);
        let challenge_token = s(&verified, "token");
        let token_of = |which: &str| {
            if which == "track" {
                track_token.clone()
            } else {
                challenge_token.clone()
            }
        };
        h.post(
            "/sessions",
            secret,
            json!({"clientId": "web", "token": token_of(first)}),
        )
        .await
        .expect(200);
        h.post(
            "/sessions",
            secret,
            json!({"clientId": "web", "token": token_of(second)}),
        )
        .await
        .expect_error(400, "token_already_used");
        // Both tokens still validate: the mark only limits sessions.
        for token in [&track_token, &challenge_token] {
            let validated = h.validate(&h.a, json!({"token": token})).await;
            assert_eq!(
                validated["state"], "CHALLENGE_SUCCEEDED",
                "{first} then {second}"
            );
        }
    }
}
