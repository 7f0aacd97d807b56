//! The pre-built UI's settings screen over HTTP (spec 2.3 `redirectToSettings`, issue #16,
//! docs/security.md "The pre-built UI"), on both stores: track's flag in the signed token and
//! the page's config, the token's user's list (`GET /v1/client/user-authenticators`), and the
//! removal (`DELETE /v1/ui/authenticators/{id}`) with each of its refusals. The screens
//! themselves run in a real browser: `tests/browser/ui.test.mjs`.

use e2e_tests::soft_passkey::SoftPasskey;
use e2e_tests::{Auth, Device, Harness, StoreKind, jwt_payload};
use reqwest::Method;
use serde_json::{Value, json};
use shared::config::{PublicUrl, Settings};
use shared::domain::{AllowedOrigin, PasskeyConfig, UserVerification};
use shared::usecase::tenants::TenantSettingsChange;

const APP: &str = "https://app.example";
const RP_ID: &str = "localhost";
const PASSKEY_ORIGIN: &str = "http://localhost:5173";

async fn harness(kind: StoreKind) -> Harness {
    let settings = Settings {
        public_url: PublicUrl::parse("https://auth.example/v1/").unwrap(),
        ..Settings::default()
    };
    Harness::start_configured_on(
        kind,
        settings,
        TenantSettingsChange {
            allowed_origins: Some(vec![AllowedOrigin::parse(APP).unwrap()]),
            passkey: Some(Some(PasskeyConfig {
                rp_id: RP_ID.into(),
                rp_name: "Acme".into(),
                origins: vec![PASSKEY_ORIGIN.into()],
                user_verification: UserVerification::Required,
                require_attestation: false,
                attestation_cas: Vec::new(),
            })),
            ..TenantSettingsChange::default()
        },
    )
    .await
}

/// The page's `data-config`, as the script reads it (the attribute's JSON, unescaped).
async fn page_config(h: &Harness, tracked: &Value) -> Value {
    let url = tracked["url"].as_str().unwrap();
    let path = url.strip_prefix("https://auth.example/v1").unwrap();
    let body = h
        .http
        .get(h.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = body.find("data-config=\"").unwrap() + "data-config=\"".len();
    let end = start + body[start..].find('"').unwrap();
    let json = body[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap()
}

async fn list(h: &Harness, token: &str) -> Vec<Value> {
    let answer = h
        .get("/client/user-authenticators", Auth::Bearer(token))
        .await
        .expect(200);
    answer.as_array().expect("an array (spec 3.6)").clone()
}

async fn remove(h: &Harness, token: Option<&str>, id: &str) -> e2e_tests::Reply {
    let auth = token.map_or(Auth::None, Auth::Bearer);
    h.send(
        Method::DELETE,
        &format!("/ui/authenticators/{id}"),
        auth,
        None,
    )
    .await
}

/// The Server API's list of `user` (spec 2.7): the authenticator ids it holds.
async fn server_ids(h: &Harness, user: &str) -> Vec<String> {
    let answer = h
        .get(
            &format!("/users/{user}/authenticators"),
            Auth::Secret(&h.a.secret),
        )
        .await
        .expect(200);
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["userAuthenticatorId"].as_str().unwrap().to_owned())
        .collect()
}

/// Track with `redirectToSettings` (spec 2.3): the settings screen's action for `user`.
async fn track_settings(h: &Harness, user: &str) -> Value {
    h.track(
        &h.a,
        user,
        "manageDevices",
        json!({"redirectToSettings": true}),
    )
    .await
}

/// Registers a new soft passkey with `token` through the Client API (spec 3.5), as the
/// settings screen does: the passkey and the registration's answer.
async fn register_passkey(h: &Harness, token: &str) -> (SoftPasskey, Value) {
    let options = h
        .post(
            "/client/user-authenticators/passkey/registration-options",
            Auth::Bearer(token),
            json!({}),
        )
        .await
        .expect(200);
    let mut passkey = SoftPasskey::new(PASSKEY_ORIGIN, RP_ID);
    let credential = passkey.create(&options["options"]);
    let added = h
        .post(
            "/client/user-authenticators/passkey",
            Auth::Bearer(token),
            json!({"registrationCredential": credential, "challengeId": options["challengeId"]}),
        )
        .await
        .expect(200);
    (passkey, added)
}

/// Completes the tracked action with the in-app device (the user proves possession).
async fn challenge_with(h: &Harness, token: &str, device: &Device) -> String {
    let challenge_id = h.challenge(&h.a, json!({})).await;
    let verified = h
        .verify(Auth::Bearer(token), device, &challenge_id)
        .await
        .expect(200);
    verified["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn removal_needs_redirect_to_settings_a_challenge_and_the_tokens_own_user() {
    for kind in [StoreKind::Embedded, StoreKind::DynamoDb] {
        let h = harness(kind).await;
        let phone = Device::new();
        let old_phone = Device::in_namespace("push");
        let alice_phone = h.register(&h.a, "alice", &phone).await;
        let alice_old = h.register(&h.a, "alice", &old_phone).await;
        let bob_phone = h.register(&h.a, "bob", &Device::new()).await;
        let old_id = alice_old["userAuthenticatorId"].as_str().unwrap();
        let bob_id = bob_phone["userAuthenticatorId"].as_str().unwrap();
        // The devices predate the settings track (the proof a removal needs).
        h.clock.advance_seconds(1);

        let tracked = h
            .track(
                &h.a,
                "alice",
                "manageDevices",
                json!({"redirectToSettings": true, "redirectUrl": "https://app.example/done"}),
            )
            .await;
        assert_eq!(tracked["state"], "CHALLENGE_REQUIRED", "{kind:?}");
        let token = tracked["token"].as_str().unwrap();
        // Signed into the token; the page reads it from there.
        assert_eq!(jwt_payload(token)["other"]["redirectToSettings"], true);
        let config = page_config(&h, &tracked).await;
        assert_eq!(config["settings"], true, "{config}");
        assert_eq!(config["mayRemove"], false, "{config}");
        assert_eq!(config["settingsAddPasskey"], true, "{config}");

        // The token's own user's authenticators, in the Server API's shape.
        let listed = list(&h, token).await;
        let mut ids: Vec<&str> = listed
            .iter()
            .map(|a| a["userAuthenticatorId"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        let mut expected = vec![alice_phone["userAuthenticatorId"].as_str().unwrap(), old_id];
        expected.sort_unstable();
        assert_eq!(ids, expected, "{kind:?}");
        assert!(listed.iter().all(|a| a["userId"] == "alice"));
        assert!(listed.iter().all(|a| a["displayName"] == "iPhone"));
        // Enrolled as "ios"; listed as the browser SDK's enum (spec 2.7).
        assert!(listed.iter().all(|a| a["devicePlatform"] == "IOS"));
        assert!(listed.iter().all(|a| a["createdAt"].is_string()));

        // Before a challenge: refused, nothing removed.
        remove(&h, Some(token), old_id)
            .await
            .expect_error(403, "challenge_required");
        assert_eq!(server_ids(&h, "alice").await.len(), 2);

        let access_token = challenge_with(&h, token, &phone).await;
        assert_eq!(page_config(&h, &tracked).await["mayRemove"], true);

        // Another user's authenticator is not found for this token, and stays.
        remove(&h, Some(token), bob_id)
            .await
            .expect_error(404, "authenticator_not_found");
        assert_eq!(server_ids(&h, "bob").await, vec![bob_id.to_owned()]);
        // Unknown and malformed ids.
        for id in ["00000000-0000-4000-8000-000000000000", "not-an-id"] {
            remove(&h, Some(token), id)
                .await
                .expect_error(404, "authenticator_not_found");
        }
        // No token, a forged one.
        remove(&h, None, old_id)
            .await
            .expect_error(401, "unauthorized");
        remove(&h, Some("a.b.c"), old_id)
            .await
            .expect_error(401, "invalid_token");
        // The challenge's own token carries no redirectToSettings: only the tracked one does.
        remove(&h, Some(&access_token), old_id)
            .await
            .expect_error(403, "settings_not_requested");
        // A token tracked without the flag, its action challenged too: refused.
        let plain = h.track(&h.a, "alice", "signIn", json!({})).await;
        let plain_token = plain["token"].as_str().unwrap();
        challenge_with(&h, plain_token, &phone).await;
        remove(&h, Some(plain_token), old_id)
            .await
            .expect_error(403, "settings_not_requested");
        assert_eq!(server_ids(&h, "alice").await.len(), 2);

        // The removal: once, through the Server API's delete.
        let removed = remove(&h, Some(token), old_id).await.expect(200);
        assert_eq!(removed["removedAuthenticatorId"], old_id);
        assert_eq!(
            server_ids(&h, "alice").await,
            vec![
                alice_phone["userAuthenticatorId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            ]
        );
        remove(&h, Some(token), old_id)
            .await
            .expect_error(404, "authenticator_not_found");
        // The removed key no longer verifies.
        let again = h.track(&h.a, "alice", "signIn", json!({})).await;
        let challenge_id = h.challenge(&h.a, json!({})).await;
        h.verify(
            Auth::Bearer(again["token"].as_str().unwrap()),
            &old_phone,
            &challenge_id,
        )
        .await
        .expect_error(400, "invalid_credential");

        // The action is still completed for the backend ("Done" returns with a token).
        let validated = h.validate(&h.a, json!({"token": access_token})).await;
        assert_eq!(validated["state"], "CHALLENGE_SUCCEEDED");

        // An expired token removes nothing.
        h.clock
            .advance_seconds(Settings::default().token_lifetime_seconds + 1);
        let phone_id = alice_phone["userAuthenticatorId"].as_str().unwrap();
        remove(&h, Some(token), phone_id)
            .await
            .expect_error(401, "expired_token");
        assert_eq!(server_ids(&h, "alice").await, vec![phone_id.to_owned()]);
    }
}

/// A track again with the idempotency key of an action that already succeeded returns that
/// action with a new token: asking for settings then does not inherit the old challenge's
/// proof (it was not for this token), while the original settings token keeps it.
#[tokio::test]
async fn a_track_again_of_a_succeeded_action_does_not_inherit_its_proof_for_removal() {
    for kind in [StoreKind::Embedded, StoreKind::DynamoDb] {
        let h = harness(kind).await;
        let phone = Device::new();
        h.register(&h.a, "alice", &phone).await;
        let old = h
            .register(&h.a, "alice", &Device::in_namespace("push"))
            .await;
        let old_id = old["userAuthenticatorId"].as_str().unwrap();
        h.clock.advance_seconds(1);
        let attributes = json!({"redirectToSettings": true, "idempotencyKey": "fixed-key-1"});
        let tracked = h
            .track(&h.a, "alice", "manageDevices", attributes.clone())
            .await;
        let token = tracked["token"].as_str().unwrap();
        challenge_with(&h, token, &phone).await;

        // A millisecond later: within the same second of `iat`, which alone could not tell.
        h.clock.advance_millis(1);
        let again = h.track(&h.a, "alice", "manageDevices", attributes).await;
        assert_eq!(again["state"], "CHALLENGE_SUCCEEDED", "{kind:?}");
        assert_eq!(again["idempotencyKey"], "fixed-key-1");
        let later_token = again["token"].as_str().unwrap();
        assert_ne!(later_token, token);
        assert_eq!(page_config(&h, &again).await["mayRemove"], false);
        remove(&h, Some(later_token), old_id)
            .await
            .expect_error(403, "challenge_required");
        assert_eq!(server_ids(&h, "alice").await.len(), 2, "{kind:?}");

        // The token the challenge was for still may.
        assert_eq!(page_config(&h, &tracked).await["mayRemove"], true);
        remove(&h, Some(token), old_id).await.expect(200);
    }
}

#[tokio::test]
async fn an_allowed_action_shows_settings_at_once_and_a_new_passkey_is_no_proof_for_removal() {
    for kind in [StoreKind::Embedded, StoreKind::DynamoDb] {
        let h = harness(kind).await;
        // Carol has nothing yet: the rules allow, and the page may add a first passkey.
        let tracked = track_settings(&h, "carol").await;
        assert_eq!(tracked["state"], "ALLOW", "{kind:?}");
        let token = tracked["token"].as_str().unwrap();
        let config = page_config(&h, &tracked).await;
        assert_eq!(config["settings"], true);
        assert_eq!(config["mayRemove"], false);
        assert_eq!(config["settingsAddPasskey"], true);
        assert!(list(&h, token).await.is_empty());

        // The settings screen's registration is the Client API's, with the track token.
        let (_, added) = register_passkey(&h, token).await;
        let passkey_id = added["userAuthenticatorId"].as_str().unwrap();
        let listed = list(&h, token).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["verificationMethod"], "PASSKEY");
        assert_eq!(listed[0]["userAuthenticatorId"], passkey_id);
        // Its access token completes the action (one prompt, spec 3.5) ...
        let validated = h
            .validate(&h.a, json!({"token": added["accessToken"]}))
            .await;
        assert_eq!(validated["state"], "CHALLENGE_SUCCEEDED");
        assert_eq!(validated["verificationMethod"], "PASSKEY");
        // ... but registering is not proving possession of what the user had: no removal.
        assert_eq!(page_config(&h, &tracked).await["mayRemove"], false);
        remove(&h, Some(token), passkey_id)
            .await
            .expect_error(403, "challenge_required");
        assert_eq!(server_ids(&h, "carol").await, vec![passkey_id.to_owned()]);
    }
}

#[tokio::test]
async fn the_removal_route_is_closed_to_other_origins_and_the_list_is_the_client_apis() {
    let h = harness(StoreKind::from_env()).await;
    // Not the Client API: a browser of another origin gets no preflight for it.
    let preflight = h
        .http
        .request(Method::OPTIONS, h.url("/ui/authenticators/x"))
        .header("origin", APP)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 403);
    // The list is the Client API's: the tenant's allowed origin may read it.
    let preflight = h
        .http
        .request(Method::OPTIONS, h.url("/client/user-authenticators"))
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    // A token is required to read it.
    h.get("/client/user-authenticators", Auth::None)
        .await
        .expect_error(401, "unauthorized");
    h.get("/client/user-authenticators", Auth::Bearer("a.b.c"))
        .await
        .expect_error(401, "invalid_token");
}

/// The proof a removal needs is an authenticator the user had before the settings action was
/// tracked (docs/security.md, "The pre-built UI"): a passkey added meanwhile through another
/// token (one with `add:authenticators`) completes the action, but does not vouch for the
/// user's older authenticators; a sign-in with the older device on a new settings token does.
#[tokio::test]
async fn a_passkey_added_after_the_settings_track_is_no_proof_for_removal() {
    for kind in [StoreKind::Embedded, StoreKind::DynamoDb] {
        let h = harness(kind).await;
        let phone = Device::new();
        let phone_id = h.register(&h.a, "dave", &phone).await["userAuthenticatorId"]
            .as_str()
            .unwrap()
            .to_owned();
        h.clock.advance_seconds(1);
        let settings = track_settings(&h, "dave").await;
        assert_eq!(settings["state"], "CHALLENGE_REQUIRED", "{kind:?}");
        let settings_token = settings["token"].as_str().unwrap();

        // Meanwhile another token, allowed to add authenticators, registers a passkey.
        h.clock.advance_seconds(1);
        let adding = h
            .track(
                &h.a,
                "dave",
                "addPasskey",
                json!({"scope": "add:authenticators"}),
            )
            .await;
        let adding_token = adding["token"].as_str().unwrap();
        let (mut passkey, added) = register_passkey(&h, adding_token).await;
        let passkey_id = added["userAuthenticatorId"].as_str().unwrap().to_owned();

        // The settings action is completed with that new passkey ...
        let sign_in = h
            .post(
                "/client/user-authenticators/passkey/authentication-options",
                Auth::Bearer(settings_token),
                json!({}),
            )
            .await
            .expect(200);
        let assertion = passkey.get(&sign_in["options"]);
        h.post(
            "/client/verify/passkey",
            Auth::Bearer(settings_token),
            json!({"authenticationCredential": assertion, "challengeId": sign_in["challengeId"]}),
        )
        .await
        .expect(200);
        let validated = h.validate(&h.a, json!({"token": settings_token})).await;
        assert_eq!(validated["state"], "CHALLENGE_SUCCEEDED", "{kind:?}");
        // ... which does not let it remove the phone the user had.
        assert_eq!(page_config(&h, &settings).await["mayRemove"], false);
        remove(&h, Some(settings_token), &phone_id)
            .await
            .expect_error(403, "challenge_required");
        let mut ids = server_ids(&h, "dave").await;
        ids.sort_unstable();
        let mut expected = vec![phone_id.clone(), passkey_id.clone()];
        expected.sort_unstable();
        assert_eq!(ids, expected, "{kind:?}");

        // A new settings token completed with the phone (older than that track) may remove.
        h.clock.advance_seconds(1);
        let again = track_settings(&h, "dave").await;
        let again_token = again["token"].as_str().unwrap();
        challenge_with(&h, again_token, &phone).await;
        assert_eq!(page_config(&h, &again).await["mayRemove"], true);
        remove(&h, Some(again_token), &passkey_id).await.expect(200);
        assert_eq!(
            server_ids(&h, "dave").await,
            vec![phone_id.clone()],
            "{kind:?}"
        );
    }
}
