//! Bad input gets a clear JSON error in the contract's shape and the right 4xx, never a 500;
//! tolerated input (unknown fields, `null`, doubled slashes) is tolerated (spec 1.2, 8).

use e2e_tests::{Auth, Device, Harness};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_are_400_invalid_request() {
    let h = Harness::start().await;
    let secret = Auth::Secret(&h.a.secret);
    for raw in [
        &b"{not json"[..],
        b"[1,2,3]",
        b"\"text\"",
        b"{\"idempotencyKey\": 42}",
        // Not UTF-8, even in a field the route ignores (RFC 8259 8.1).
        b"{\"ignored\": \"\xff\xfe\"}",
    ] {
        h.send_raw(
            Method::POST,
            "/users/alice/actions/signIn",
            secret,
            raw.to_vec(),
        )
        .await
        .expect_error(400, "invalid_request");
    }
    // A required field missing, or of the wrong type.
    h.post("/validate", secret, json!({}))
        .await
        .expect_error(400, "invalid_request");
    h.post("/validate", secret, json!({"token": 7}))
        .await
        .expect_error(400, "invalid_request");
    let path = "/users/alice/actions/signIn/k";
    h.send(
        Method::PATCH,
        path,
        secret,
        Some(&json!({"state": "MAYBE"})),
    )
    .await
    .expect_error(400, "invalid_request");
    // `custom` is an object (spec 2.3, 2.6): anything else is refused, neither dropped from
    // the action nor stored on the user.
    for custom in [json!("text"), json!(5), json!(true), json!([1, 2])] {
        h.post(
            "/users/carol/actions/signIn",
            secret,
            json!({"custom": custom}),
        )
        .await
        .expect_error(400, "invalid_request");
        h.send(
            Method::PATCH,
            "/users/carol",
            secret,
            Some(&json!({"custom": custom})),
        )
        .await
        .expect_error(400, "invalid_request");
    }
    let carol = h.get("/users/carol", secret).await.expect(200);
    assert_eq!(carol.get("custom"), None, "{carol}");
    // PHP's `json_encode` of an empty array is `[]`: an empty object, as the SDK means it.
    h.send(
        Method::PATCH,
        "/users/carol",
        secret,
        Some(&json!({"custom": []})),
    )
    .await
    .expect(200);
    let actions = h.get("/users/carol/actions", secret).await.expect(200);
    assert_eq!(actions, json!([]), "no action tracked");
}

#[tokio::test]
async fn invalid_identifiers_in_paths_and_queries_are_400() {
    let h = Harness::start().await;
    let secret = Auth::Secret(&h.a.secret);
    h.post("/users/alice/actions/sign%20in", secret, json!({}))
        .await
        .expect_error(400, "invalid_request");
    let long = "a".repeat(65);
    h.post(&format!("/users/alice/actions/{long}"), secret, json!({}))
        .await
        .expect_error(400, "invalid_request");
    h.get("/users/alice/actions?fromDate=yesterday", secret)
        .await
        .expect_error(400, "invalid_request");
    h.get("/users/alice/actions?state=NOPE", secret)
        .await
        .expect_error(400, "invalid_request");
    h.post(
        "/users/alice/actions/signIn",
        secret,
        json!({"idempotencyKey": "a/b"}),
    )
    .await
    .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn bad_keys_signatures_and_challenge_ids_are_400() {
    let h = Harness::start().await;
    let tracked = h.track(&h.a, "alice", "addAuthenticator", json!({})).await;
    let token = tracked["token"].as_str().unwrap();
    let add = "/client/user-authenticators/in-app";
    for key in [json!("not base64!"), json!("AAAA"), json!(null), json!(12)] {
        h.post(add, Auth::Bearer(token), json!({"publicKey": key}))
            .await
            .expect_error(400, "invalid_request");
    }
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let verify = "/client/verify/in-app";
    let ios = Auth::TenantIos(&h.a.id);
    h.post(
        verify,
        ios,
        json!({"challengeId": challenge_id, "publicKey": device.public_key, "signature": "%%%"}),
    )
    .await
    .expect_error(400, "invalid_request");
    h.post(verify, ios, json!({"challengeId": "short", "publicKey": device.public_key, "signature": device.sign("short")}))
        .await
        .expect_error(404, "challenge_not_found");
    h.post(verify, ios, json!({"publicKey": device.public_key}))
        .await
        .expect_error(400, "invalid_request");
    h.get("/client/user-authenticators/in-app?publicKey=***", ios)
        .await
        .expect_error(400, "invalid_request");
    h.get("/client/user-authenticators/in-app", ios)
        .await
        .expect_error(400, "invalid_request");
    h.post("/client/challenge", ios, json!({"action": "no spaces"}))
        .await
        .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let h = Harness::start().await;
    let big = json!({"custom": {"blob": "x".repeat(100 * 1024)}});
    h.post(
        "/users/alice/actions/signIn",
        Auth::Secret(&h.a.secret),
        big,
    )
    .await
    .expect_error(413, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_404_and_405() {
    let h = Harness::start().await;
    h.get("/nothing/here", Auth::None)
        .await
        .expect_error(404, "not_found");
    h.post(
        "/client/user-authenticators/passkey-ish",
        Auth::Bearer("x"),
        json!({}),
    )
    .await
    .expect_error(401, "invalid_token");
    let tracked = h.track(&h.a, "alice", "addAuthenticator", json!({})).await;
    h.post(
        "/client/user-authenticators/unknown-namespace",
        Auth::Bearer(tracked["token"].as_str().unwrap()),
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
    h.send(
        Method::PUT,
        "/validate",
        Auth::Secret(&h.a.secret),
        Some(&json!({})),
    )
    .await
    .expect_error(405, "method_not_allowed");
}

#[tokio::test]
async fn unknown_fields_are_ignored_null_is_missing_and_paths_are_forgiving() {
    let h = Harness::start().await;
    // Snake_case keys from the Python SDK, extra fields, explicit nulls (Go, Android).
    let reply = h
        .post(
            "/users/alice/actions/signIn",
            Auth::Secret(&h.a.secret),
            json!({"redirect_url": "x", "redirectToSettings": null, "idempotencyKey": null, "custom": {"a": 1}}),
        )
        .await
        .expect(200);
    assert_eq!(reply["state"], "ALLOW");
    // A base URL ending in `/` doubles the slash at the join, and the Go SDK doubles /v1
    // (spec 1.1, 2.2): both reach the same routes.
    h.get("//users/alice", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    h.get("/v1//users/alice", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    let user = h
        .get("/v1/users/alice", Auth::Secret(&h.a.secret))
        .await
        .expect(200);
    assert_eq!(user["isEnrolled"], false);
    // Percent-encoded user ids are decoded (Python and PHP encode them, spec 2.2).
    let encoded = h
        .post(
            "/users/a%20b%40c/actions/signIn",
            Auth::Secret(&h.a.secret),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(
        e2e_tests::jwt_payload(encoded["token"].as_str().unwrap())["sub"],
        "a b@c"
    );
}

#[tokio::test]
async fn a_null_body_is_no_attributes_as_the_go_sdk_sends_it() {
    let h = Harness::start().await;
    let reply = h
        .send_raw(
            Method::POST,
            "/users/gopher/actions/signIn",
            Auth::Secret(&h.a.secret),
            b"null".to_vec(),
        )
        .await
        .expect(200);
    assert_eq!(reply["state"], "ALLOW");
    let updated = h
        .send_raw(
            Method::PATCH,
            "/users/gopher",
            Auth::Secret(&h.a.secret),
            b" null ".to_vec(),
        )
        .await
        .expect(200);
    assert_eq!(updated["userId"], "gopher");
}

/// An empty segment is not dropped: `/users//authenticators` is not the user named
/// `authenticators`, and no route with an empty parameter falls into a shorter one. An empty
/// `userId`, action, idempotency key or id is `400 invalid_request`, before authentication;
/// an empty segment where a route has a fixed word is no route (`404`).
#[tokio::test]
async fn an_empty_path_segment_never_falls_into_another_route() {
    let h = Harness::start().await;
    let secret = Auth::Secret(&h.a.secret);
    h.track(&h.a, "alice", "signIn", json!({"idempotencyKey": "k1"}))
        .await;
    for (method, path, parameter) in [
        (Method::GET, "/users//authenticators", "userId"),
        (Method::GET, "/users//actions", "userId"),
        (Method::POST, "/users//actions/signIn", "userId"),
        (Method::POST, "/users/alice/actions/", "action"),
        (Method::GET, "/users/alice/actions//k1", "action"),
        (
            Method::GET,
            "/users/alice/actions/signIn/",
            "idempotencyKey",
        ),
        (
            Method::PATCH,
            "/users/alice/actions/signIn/",
            "idempotencyKey",
        ),
        (
            Method::DELETE,
            "/users/alice/authenticators/",
            "userAuthenticatorId",
        ),
        (Method::GET, "/users/", "userId"),
        (Method::DELETE, "/users/", "userId"),
        (Method::GET, "/action-configs/", "actionCode"),
        (Method::GET, "/client/user-authenticators/", "namespace"),
        (
            Method::POST,
            "/client/user-authenticators//challenge",
            "namespace",
        ),
    ] {
        let body = json!({});
        let reply = h.send(method.clone(), path, secret, Some(&body)).await;
        let body = reply.expect_error(400, "invalid_request");
        assert_eq!(
            body["errorDescription"],
            format!("The path parameter `{parameter}` is empty."),
            "{method} {path}"
        );
        // Checked before authentication: the answer does not depend on the caller.
        h.send(method.clone(), path, Auth::None, None)
            .await
            .expect_error(400, "invalid_request");
    }
    for path in [
        "/users/alice//authenticators",
        "/client//challenge",
        "/users/alice/actions/signIn/k1/",
    ] {
        h.get(path, secret).await.expect_error(404, "not_found");
    }
    // The action tracked above is still reachable by its full path.
    h.get("/users/alice/actions/signIn/k1", secret)
        .await
        .expect(200);
}

/// Every route of the four functions, with each of its parameters empty in turn: `400
/// invalid_request` naming that parameter, whatever the method's handler reads first.
#[tokio::test]
async fn every_route_refuses_each_of_its_parameters_empty() {
    let h = Harness::start().await;
    for (method, route) in trusted_device::all_routes() {
        let parameters: Vec<&str> = route
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for empty in &parameters {
            let path: String = route
                .split('/')
                .map(
                    |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        Some(name) if name == *empty => "",
                        Some("namespace") => "in-app",
                        Some(_) => "x",
                        None => part,
                    },
                )
                .collect::<Vec<_>>()
                .join("/");
            let path = path.strip_prefix("/v1").unwrap();
            let body = h
                .send(method.parse().unwrap(), path, Auth::None, Some(&json!({})))
                .await
                .expect_error(400, "invalid_request");
            assert_eq!(
                body["errorDescription"],
                format!("The path parameter `{empty}` is empty."),
                "{method} {route}"
            );
        }
    }
}
