//! `shared::usecase::sessions` and `query_users` (issue #20), through the public API.

use super::prelude::*;
use shared::usecase::query_users::UserQuery;
use shared::usecase::sessions::CreateSession;
use shared::usecase::users::UserPatch;
use testkit::usecase::Kit;

/// A kit whose tenant has sessions for client `web` (access 60 s, refresh 600 s), and a
/// completed signIn token of `alice`.
async fn kit_with_session_token() -> (Kit, String) {
    let kit = Kit::new().await;
    kit.app
        .configure_sessions(
            &kit.tenant.id,
            Some(vec!["web".into()]),
            Some(60),
            Some(600),
            false,
        )
        .await
        .unwrap();
    let device = kit.enroll("alice").await;
    let token = kit.track_token("alice", "signIn", None).await;
    let verified = kit.verify_with(&device, &token).await.unwrap();
    (kit, verified.token)
}

fn create(client: &str, token: &str) -> CreateSession {
    CreateSession {
        client_id: client.into(),
        token: token.into(),
        action: None,
    }
}

#[tokio::test]
async fn a_session_is_made_once_from_a_succeeded_token_and_validates() {
    let (kit, token) = kit_with_session_token().await;
    let tokens = kit
        .app
        .create_session(&kit.tenant, create("web", &token))
        .await
        .unwrap();
    let valid = kit
        .app
        .validate_session(&kit.tenant, &tokens.access_token, Some(&["web".into()]))
        .await
        .unwrap();
    assert_eq!(valid.user_id, kit.user("alice"));
    assert_eq!(valid.verification_method, Some(VerificationMethod::Device));
    assert_eq!(valid.expires_at, kit.app.now().unix_seconds() + 60);
    assert_eq!(valid.claims.aud, "web");
    assert_eq!(
        kit.app
            .create_session(&kit.tenant, create("web", &token))
            .await,
        Err(Error::TokenAlreadyUsed)
    );
    assert_eq!(
        kit.app
            .validate_session(&kit.tenant, &tokens.access_token, Some(&["ios".into()]))
            .await
            .unwrap_err(),
        Error::ClientIdMismatch
    );
}

#[tokio::test]
async fn create_refuses_unknown_clients_unfinished_challenges_and_unconfigured_tenants() {
    let (kit, token) = kit_with_session_token().await;
    assert_eq!(
        kit.app
            .create_session(&kit.tenant, create("ios", &token))
            .await,
        Err(Error::UnknownClientId)
    );
    let pending = kit.track("alice", "signIn", None).await;
    assert_eq!(
        kit.app
            .create_session(&kit.tenant, create("web", &pending.token))
            .await,
        Err(Error::ChallengeNotSucceeded)
    );
    assert_eq!(
        kit.app
            .create_session(&kit.tenant, create("web", "garbage"))
            .await,
        Err(Error::InvalidToken)
    );
    let bare = Kit::new().await;
    assert_eq!(
        bare.app
            .create_session(&bare.tenant, create("web", &token))
            .await,
        Err(Error::SessionsNotConfigured)
    );
}

#[tokio::test]
async fn refresh_rotates_once_and_reuse_revokes_the_family() {
    let (kit, token) = kit_with_session_token().await;
    let first = kit
        .app
        .create_session(&kit.tenant, create("web", &token))
        .await
        .unwrap();
    let second = kit
        .app
        .refresh_session(&kit.tenant, &first.refresh_token)
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    kit.app
        .validate_session(&kit.tenant, &second.access_token, None)
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .refresh_session(&kit.tenant, &first.refresh_token)
            .await,
        Err(Error::RefreshTokenReused)
    );
    assert_eq!(
        kit.app
            .refresh_session(&kit.tenant, &second.refresh_token)
            .await,
        Err(Error::SessionRevoked)
    );
    assert_eq!(
        kit.app
            .validate_session(&kit.tenant, &second.access_token, None)
            .await
            .unwrap_err(),
        Error::SessionRevoked
    );
    assert_eq!(
        kit.app.refresh_session(&kit.tenant, "rt1.nope").await,
        Err(Error::InvalidRefreshToken)
    );
    assert_eq!(
        kit.app
            .refresh_session(&kit.tenant, "not-a-refresh-token")
            .await,
        Err(Error::InvalidRefreshToken)
    );
}

#[tokio::test]
async fn expiry_is_checked_in_code() {
    let (kit, token) = kit_with_session_token().await;
    let tokens = kit
        .app
        .create_session(&kit.tenant, create("web", &token))
        .await
        .unwrap();
    kit.clock.advance_seconds(60);
    assert_eq!(
        kit.app
            .validate_session(&kit.tenant, &tokens.access_token, None)
            .await
            .unwrap_err(),
        Error::ExpiredToken
    );
    // Revoking an expired access token still ends its session.
    let fresh = kit
        .app
        .refresh_session(&kit.tenant, &tokens.refresh_token)
        .await
        .unwrap();
    kit.app
        .revoke_session(&kit.tenant, &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .validate_session(&kit.tenant, &fresh.access_token, None)
            .await
            .unwrap_err(),
        Error::SessionRevoked
    );
    // A refresh token past its lifetime.
    let (kit, token) = kit_with_session_token().await;
    let tokens = kit
        .app
        .create_session(&kit.tenant, create("web", &token))
        .await
        .unwrap();
    kit.clock.advance_seconds(600);
    assert_eq!(
        kit.app
            .refresh_session(&kit.tenant, &tokens.refresh_token)
            .await,
        Err(Error::ExpiredRefreshToken)
    );
}

#[tokio::test]
async fn revoke_user_sessions_ends_all_of_them_and_the_jwks_has_the_key() {
    let (kit, token) = kit_with_session_token().await;
    let tokens = kit
        .app
        .create_session(&kit.tenant, create("web", &token))
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .revoke_user_sessions(&kit.tenant, &kit.user("alice"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        kit.app
            .validate_session(&kit.tenant, &tokens.access_token, None)
            .await
            .unwrap_err(),
        Error::SessionRevoked
    );
    let jwks = kit.app.session_jwks(&kit.tenant.id).await.unwrap().unwrap();
    let kid = jsonwebtoken::decode_header(&tokens.access_token)
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    assert_eq!(
        kit.app
            .session_jwks(&TenantId::parse("nobody").unwrap())
            .await
            .unwrap(),
        None
    );
    // A rotation keeps the old key published, and tokens signed with it valid.
    kit.app
        .configure_sessions(&kit.tenant.id, None, None, None, true)
        .await
        .unwrap();
    let jwks = kit.app.session_jwks(&kit.tenant.id).await.unwrap().unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][1]["kid"], kid.as_str());
}

#[tokio::test]
async fn configure_refuses_bad_lifetimes_and_client_ids() {
    let kit = Kit::new().await;
    for (ids, access, refresh) in [
        (Some(vec!["web".to_owned()]), Some(0), None),
        (Some(vec!["web".to_owned()]), Some(600), Some(60)),
        (Some(vec!["has space".to_owned()]), None, None),
    ] {
        assert!(matches!(
            kit.app
                .configure_sessions(&kit.tenant.id, ids, access, refresh, false)
                .await,
            Err(Error::InvalidRequest(_))
        ));
    }
}

#[tokio::test]
async fn query_users_by_attribute_and_token_pages_without_a_scan() {
    let kit = Kit::new().await;
    for name in ["u1", "u2", "u3"] {
        let patch = UserPatch {
            email: Some("Same@Example.com".into()),
            username: Some(name.into()),
            ..UserPatch::default()
        };
        kit.app
            .update_user(&kit.tenant, &kit.user(name), patch)
            .await
            .unwrap();
    }
    let query = |email: &str, after: Option<&str>| UserQuery {
        email: Some(email.into()),
        limit: Some(2),
        last_evaluated_user_id: after.map(|a| UserId::parse(a).unwrap()),
        ..UserQuery::default()
    };
    let page = kit
        .app
        .query_users(&kit.tenant, query("same@example.com", None))
        .await
        .unwrap();
    assert_eq!(page.page.users.len(), 2);
    assert_eq!(page.page.last_evaluated, Some(kit.user("u2")));
    let rest = kit
        .app
        .query_users(&kit.tenant, query("SAME@example.com", Some("u2")))
        .await
        .unwrap();
    assert_eq!(rest.page.users.len(), 1);
    assert_eq!(rest.page.users[0].0, kit.user("u3"));

    // A second filter narrows the page.
    let both = UserQuery {
        email: Some("same@example.com".into()),
        username: Some("u2".into()),
        ..UserQuery::default()
    };
    let found = kit.app.query_users(&kit.tenant, both).await.unwrap();
    assert_eq!(found.page.users.len(), 1);

    let tracked = kit.track("u1", "signIn", None).await;
    let by_token = UserQuery {
        token: Some(tracked.token),
        ..UserQuery::default()
    };
    let found = kit.app.query_users(&kit.tenant, by_token).await.unwrap();
    assert_eq!(found.page.users[0].0, kit.user("u1"));
    assert_eq!(found.token_payload.unwrap()["sub"], "u1");

    assert!(matches!(
        kit.app.query_users(&kit.tenant, UserQuery::default()).await,
        Err(Error::InvalidRequest(_))
    ));
    let too_many = UserQuery {
        limit: Some(101),
        ..query("same@example.com", None)
    };
    assert!(matches!(
        kit.app.query_users(&kit.tenant, too_many).await,
        Err(Error::InvalidRequest(_))
    ));
}
