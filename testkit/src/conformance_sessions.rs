//! Conformance scenes of issue #20, run by [`crate::conformance::run_all`] on every adapter:
//! sessions (config, create once per token, refresh once, reuse and revocation) and users by
//! attribute value (query users).

use shared::clock::Timestamp;
use shared::domain::{
    ActionCode, RefreshTokenRecord, SessionConfig, SessionKeyRecord, SessionRecord, TenantId,
    UserId, UserProfile, VerificationMethod,
};
use shared::error::Error;
use shared::store::Store;
use std::sync::Arc;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn tenant() -> TenantId {
    TenantId::parse(super::conformance::unique_name("sess")).unwrap()
}

fn session(tenant: &TenantId, user: &UserId, id: &str) -> SessionRecord {
    SessionRecord {
        tenant_id: tenant.clone(),
        user_id: user.clone(),
        id: id.to_owned(),
        client_id: "web".into(),
        action_code: ActionCode::parse("signIn").unwrap(),
        verification_method: Some(VerificationMethod::Device),
        created_at: NOW,
        expires_at: NOW.plus_seconds(600),
        revoked: false,
    }
}

fn refresh(tenant: &TenantId, user: &UserId, session: &str, hash: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        tenant_id: tenant.clone(),
        hash: hash.to_owned(),
        user_id: user.clone(),
        session_id: session.to_owned(),
        expires_at: NOW.plus_seconds(600),
        used: false,
    }
}

pub async fn sessions(store: &dyn Store) {
    let t = tenant();
    let alice = UserId::parse("alice").unwrap();

    // Config round trip.
    assert_eq!(store.get_session_config(&t).await.unwrap(), None);
    let config = SessionConfig {
        tenant_id: t.clone(),
        client_ids: vec!["web".into()],
        access_token_ttl_seconds: 60,
        refresh_token_ttl_seconds: 600,
        signing_keys: vec![SessionKeyRecord {
            kid: "k1".into(),
            pkcs8: "AAAA".into(),
            created_at: None,
            longest_lifetime_seconds: None,
            retire_at: None,
        }],
        revision: 0,
    };
    store.put_session_config(&config).await.unwrap();
    assert_eq!(
        store.get_session_config(&t).await.unwrap(),
        Some(config.clone())
    );
    // A change is what every later read returns (DynamoDB keeps copies of this item, written
    // together, and reads any one: DESIGN 4, no hot item).
    let rotated = SessionConfig {
        access_token_ttl_seconds: 120,
        signing_keys: vec![
            SessionKeyRecord {
                kid: "k2".into(),
                pkcs8: "BBBB".into(),
                created_at: None,
                longest_lifetime_seconds: None,
                retire_at: None,
            },
            config.signing_keys[0].clone(),
        ],
        ..config.clone()
    };
    store.put_session_config(&rotated).await.unwrap();
    for _ in 0..64 {
        assert_eq!(
            store.get_session_config(&t).await.unwrap().as_ref(),
            Some(&rotated)
        );
    }
    store.put_session_config(&config).await.unwrap();

    // A token makes one session: the second create writes nothing.
    let s1 = session(&t, &alice, "s1");
    let r1 = refresh(&t, &alice, "s1", "h1");
    store
        .create_session("tok1", NOW.plus_seconds(600), &s1, &r1)
        .await
        .unwrap();
    let s1b = session(&t, &alice, "s1b");
    let r1b = refresh(&t, &alice, "s1b", "h1b");
    assert_eq!(
        store
            .create_session("tok1", NOW.plus_seconds(600), &s1b, &r1b)
            .await,
        Err(Error::TokenAlreadyUsed)
    );
    assert_eq!(store.get_session(&t, &alice, "s1b").await.unwrap(), None);
    assert_eq!(store.get_refresh_token(&t, "h1b").await.unwrap(), None);
    assert_eq!(
        store.get_session(&t, &alice, "s1").await.unwrap(),
        Some(s1.clone())
    );
    assert_eq!(
        store.get_refresh_token(&t, "h1").await.unwrap(),
        Some(r1.clone())
    );
    // Another tenant sees none of it.
    let other = tenant();
    assert_eq!(store.get_refresh_token(&other, "h1").await.unwrap(), None);
    assert_eq!(store.get_session(&other, &alice, "s1").await.unwrap(), None);

    // Rotation: once; the session's expiry follows the new token.
    let mut r2 = refresh(&t, &alice, "s1", "h2");
    r2.expires_at = NOW.plus_seconds(900);
    store.rotate_refresh_token(&r1, &r2).await.unwrap();
    assert!(
        store
            .get_refresh_token(&t, "h1")
            .await
            .unwrap()
            .unwrap()
            .used
    );
    assert_eq!(
        store
            .get_session(&t, &alice, "s1")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        r2.expires_at
    );
    let r3 = refresh(&t, &alice, "s1", "h3");
    assert_eq!(
        store.rotate_refresh_token(&r1, &r3).await,
        Err(Error::RefreshTokenReused)
    );
    assert_eq!(store.get_refresh_token(&t, "h3").await.unwrap(), None);

    // Revoked: no rotation, and the flag reads back.
    store.revoke_session(&t, &alice, "s1").await.unwrap();
    assert!(
        store
            .get_session(&t, &alice, "s1")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert_eq!(
        store.rotate_refresh_token(&r2, &r3).await,
        Err(Error::SessionRevoked)
    );
    assert!(
        !store
            .get_refresh_token(&t, "h2")
            .await
            .unwrap()
            .unwrap()
            .used
    );
    // Revoking a missing session is no error and creates nothing.
    store.revoke_session(&t, &alice, "nope").await.unwrap();
    assert_eq!(store.get_session(&t, &alice, "nope").await.unwrap(), None);

    // A user's sessions: only the live ones count, all end.
    for (id, hash, token) in [("a", "ha", "tok-a"), ("b", "hb", "tok-b")] {
        store
            .create_session(
                token,
                NOW.plus_seconds(600),
                &session(&t, &alice, id),
                &refresh(&t, &alice, id, hash),
            )
            .await
            .unwrap();
    }
    let bob = UserId::parse("bob").unwrap();
    store
        .create_session(
            "tok-bob",
            NOW.plus_seconds(600),
            &session(&t, &bob, "c"),
            &refresh(&t, &bob, "c", "hc"),
        )
        .await
        .unwrap();
    assert_eq!(store.revoke_user_sessions(&t, &alice).await.unwrap(), 2);
    for id in ["a", "b"] {
        assert!(
            store
                .get_session(&t, &alice, id)
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
    }
    assert!(
        !store
            .get_session(&t, &bob, "c")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert_eq!(store.revoke_user_sessions(&t, &alice).await.unwrap(), 0);

    // Deleting a user deletes its sessions.
    store.delete_user(&t, &bob).await.unwrap();
    assert_eq!(store.get_session(&t, &bob, "c").await.unwrap(), None);
}

/// Concurrent refreshes with one token: exactly one wins.
pub async fn concurrent_refreshes_have_one_winner(store: Arc<dyn Store>) {
    let t = tenant();
    let alice = UserId::parse("alice").unwrap();
    let r0 = refresh(&t, &alice, "s", "h0");
    store
        .create_session("tok", NOW.plus_seconds(600), &session(&t, &alice, "s"), &r0)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let old = r0.clone();
        let new = refresh(&t, &alice, "s", &format!("n{i}"));
        tasks.push(tokio::spawn(async move {
            store.rotate_refresh_token(&old, &new).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => wins += 1,
            Err(Error::RefreshTokenReused) | Err(Error::StoreUnavailable) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

pub async fn user_lookups(store: &dyn Store) {
    let t = tenant();
    let profile = |email: &str, username: Option<&str>| UserProfile {
        email: Some(email.to_owned()),
        username: username.map(str::to_owned),
        ..UserProfile::default()
    };
    let users: Vec<UserId> = ["u1", "u2", "u3"]
        .iter()
        .map(|u| UserId::parse(*u).unwrap())
        .collect();
    for user in &users {
        store
            .put_user(
                &t,
                user,
                &profile("Shared@Example.com", Some(user.as_str())),
            )
            .await
            .unwrap();
    }
    let page = store
        .query_users(&t, "email", "shared@example.com", 2, None)
        .await
        .unwrap();
    let ids: Vec<&str> = page.users.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(ids, ["u1", "u2"]);
    assert_eq!(page.users[0].1.email.as_deref(), Some("Shared@Example.com"));
    let last = page.last_evaluated.expect("more may follow");
    let rest = store
        .query_users(&t, "email", "shared@example.com", 2, Some(&last))
        .await
        .unwrap();
    let ids: Vec<&str> = rest.users.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(ids, ["u3"]);
    assert_eq!(rest.last_evaluated, None);

    // A changed value moves the entry; a deleted user leaves.
    store
        .put_user(&t, &users[0], &profile("other@example.com", Some("u1")))
        .await
        .unwrap();
    store.delete_user(&t, &users[1]).await.unwrap();
    let ids = |page: shared::store::UserPage| {
        page.users
            .into_iter()
            .map(|(u, _)| u.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store
            .query_users(&t, "email", "shared@example.com", 10, None)
            .await
            .unwrap()),
        ["u3"]
    );
    assert_eq!(
        ids(store
            .query_users(&t, "email", "other@example.com", 10, None)
            .await
            .unwrap()),
        ["u1"]
    );
    assert_eq!(
        ids(store
            .query_users(&t, "username", "u2", 10, None)
            .await
            .unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(store
            .query_users(&t, "username", "u3", 10, None)
            .await
            .unwrap()),
        ["u3"]
    );
    // Another tenant finds nothing.
    assert!(
        store
            .query_users(&tenant(), "email", "other@example.com", 10, None)
            .await
            .unwrap()
            .users
            .is_empty()
    );
}
