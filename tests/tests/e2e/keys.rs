//! Key rotation over time (issue #19, DESIGN 5), on the embedded store whose server honours a
//! change made by another process at once: the operator's app (as `trusted-device tenant
//! rotate-keys` is) rotates; a challenge id sealed, a challenge token and an access token
//! issued before still work after; once the replaced keys' retire time has passed (the
//! clock moved), the JWKS drops the old key and new tokens keep working.

use e2e_tests::{Auth, Device, Harness, StoreKind, jwt_payload};
use serde_json::{Value, json};
use shared::clock::Clock;
use shared::config::Settings;
use shared::domain::TenantId;
use shared::usecase::keys::Retirement;
use std::sync::Arc;

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(h: &Harness) -> Vec<String> {
    let jwks = h
        .get("/tenants/tenant-a/.well-known/jwks.json", Auth::None)
        .await
        .expect(200);
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn what_was_signed_before_a_rotation_works_after_it_until_the_old_key_retires() {
    let h = Harness::start_on(StoreKind::Embedded).await;
    let store = h.embedded.clone().unwrap();
    let operator = testkit::app(Arc::new(store), h.clock.clone(), Settings::default());
    let tenant = TenantId::parse("tenant-a").unwrap();
    operator
        .configure_sessions(&tenant, Some(vec!["web".into()]), None, None, false)
        .await
        .unwrap();
    let secret = Auth::Secret(&h.a.secret);
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;

    // Before the rotation: a session's access token, and a sign-in half done (its token and
    // its sealed challenge id issued, the signature not sent yet).
    let first = h.track(&h.a, "alice", "signIn", json!({})).await;
    let challenge = h.challenge(&h.a, json!({})).await;
    let verified = h
        .verify(
            Auth::Bearer(first["token"].as_str().unwrap()),
            &device,
            &challenge,
        )
        .await
        .expect(200);
    let session = h
        .post(
            "/sessions",
            secret,
            json!({"clientId": "web", "token": verified["token"]}),
        )
        .await
        .expect(200);
    let old_access = session["accessToken"].as_str().unwrap().to_owned();
    let pending = h.track(&h.a, "alice", "signIn", json!({})).await;
    let pending_token = pending["token"].as_str().unwrap().to_owned();
    let pending_challenge = h.challenge(&h.a, json!({})).await;
    let old_token_kid = kid(&pending_token);
    let old_jwks = jwks_kids(&h).await;
    assert_eq!(old_jwks, [kid(&old_access)]);

    let rotated = operator
        .rotate_keys(&tenant, Retirement::AfterUse)
        .await
        .unwrap();
    let (new_session_kid, session_retire_at) = rotated.session.clone().unwrap();
    assert_ne!(rotated.token_kid, old_token_kid);

    // After: the half-done sign-in completes and validates; the access token validates;
    // the JWKS has both keys; what is issued now carries the new key ids.
    let completed = h
        .verify(Auth::Bearer(&pending_token), &device, &pending_challenge)
        .await
        .expect(200);
    let validated = h.validate(&h.a, json!({"token": completed["token"]})).await;
    assert_eq!(validated["isValid"], true, "{validated}");
    assert_eq!(kid(completed["token"].as_str().unwrap()), rotated.token_kid);
    h.post(
        "/sessions/validate",
        secret,
        json!({"accessToken": old_access}),
    )
    .await
    .expect(200);
    assert_eq!(
        jwks_kids(&h).await,
        [new_session_kid.clone(), old_jwks[0].clone()]
    );
    let refreshed = h
        .post(
            "/sessions/refresh",
            secret,
            json!({"refreshToken": session["refreshToken"]}),
        )
        .await
        .expect(200);
    assert_eq!(
        kid(refreshed["accessToken"].as_str().unwrap()),
        new_session_kid
    );

    // The replaced keys retire once what they signed has expired: the old access token's
    // expiry is its key's retire time at the latest.
    assert!(jwt_payload(&old_access)["exp"].as_i64().unwrap() <= session_retire_at.unix_seconds());
    h.clock.advance_seconds(
        session_retire_at.seconds_after(h.clock.now()).max(
            rotated
                .token_previous_retire_at
                .seconds_after(h.clock.now()),
        ) + 1,
    );
    assert_eq!(jwks_kids(&h).await, [new_session_kid]);
    let refused = h.validate(&h.a, json!({"token": pending_token})).await;
    assert_eq!(refused["isValid"], false, "{refused}");
    // Its key is no longer known at all: the token is refused as one no key of the tenant
    // signed.
    h.post(
        "/sessions/validate",
        secret,
        json!({"accessToken": old_access}),
    )
    .await
    .expect_error(401, "invalid_token");
    // New tokens, signed with the new key, work.
    let again = h.track(&h.a, "alice", "signIn", json!({})).await;
    let again_challenge = h.challenge(&h.a, json!({})).await;
    let done = h
        .verify(
            Auth::Bearer(again["token"].as_str().unwrap()),
            &device,
            &again_challenge,
        )
        .await
        .expect(200);
    let valid = h.validate(&h.a, json!({"token": done["token"]})).await;
    assert_eq!(valid["isValid"], true, "{valid}");

    // A key that leaked: `--revoke-previous` retires the replaced keys at once. A token and a
    // challenge id they signed are refused, each on its own.
    let leaked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let leaked_token = leaked["token"].as_str().unwrap().to_owned();
    let leaked_challenge = h.challenge(&h.a, json!({})).await;
    operator
        .rotate_keys(&tenant, Retirement::Now)
        .await
        .unwrap();
    h.verify(Auth::Bearer(&leaked_token), &device, &leaked_challenge)
        .await
        .expect_error(401, "invalid_token");
    let refused = h.validate(&h.a, json!({"token": leaked_token})).await;
    assert_eq!(refused["error"], "invalid_token", "{refused}");
    let fresh = h.track(&h.a, "alice", "signIn", json!({})).await;
    let reply = h
        .verify(
            Auth::Bearer(fresh["token"].as_str().unwrap()),
            &device,
            &leaked_challenge,
        )
        .await;
    reply.expect_error(404, "challenge_not_found");
}
