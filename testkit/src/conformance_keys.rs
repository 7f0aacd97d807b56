//! Conformance scenes of key rotation (issue #19, DESIGN 5): a tenant and its session settings
//! are written only over the revision they were read at, so two rotations at once cannot lose
//! a key; `list_tenants` lists every tenant.

use crate::conformance::{sample_tenant, unique_name};
use shared::domain::{SessionConfig, SigningKeyRecord, TenantId, TenantRecord};
use shared::http::error::Describe as _;
use shared::store::Store;
use std::sync::Arc;

fn key(kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        secret: "c2VjcmV0".into(),
        created_at: None,
        retire_at: None,
    }
}

/// A write over the revision read succeeds once; a second one made from the same read is
/// refused and writes nothing, secret index included; `list_tenants` has every tenant.
pub async fn tenant_revisions(store: &dyn Store) {
    let tenant = sample_tenant("rev");
    // Nothing stored is revision 0.
    let created = TenantRecord {
        revision: 1,
        ..tenant.clone()
    };
    assert!(store.replace_tenant(&created, 0).await.unwrap());
    // A second creation from "nothing stored" loses.
    assert!(!store.replace_tenant(&created, 0).await.unwrap());

    let mut first = created.clone();
    first.secret_key_hashes.insert(0, unique_name("first"));
    first.revision = 2;
    let mut second = created.clone();
    second.secret_key_hashes.insert(0, unique_name("second"));
    second.revision = 2;
    assert!(store.replace_tenant(&first, 1).await.unwrap());
    assert!(!store.replace_tenant(&second, 1).await.unwrap());
    assert_eq!(
        store.get_tenant(&tenant.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .find_tenant_by_secret_hash(&second.secret_key_hashes[0])
            .await
            .unwrap(),
        None,
        "the refused write indexed its secret"
    );
    assert_eq!(
        store
            .find_tenant_by_secret_hash(&first.secret_key_hashes[0])
            .await
            .unwrap(),
        Some(first.clone()),
        "the tenant as the winning write left it"
    );

    // Revoking (dropping a hash) over the right revision drops it from the index.
    let mut revoked = first.clone();
    let dropped = revoked.secret_key_hashes.remove(1);
    revoked.revision = 3;
    assert!(store.replace_tenant(&revoked, 2).await.unwrap());
    assert_eq!(
        store.find_tenant_by_secret_hash(&dropped).await.unwrap(),
        None
    );

    // A secret of another tenant is refused as with put_tenant, nothing written.
    let other = sample_tenant("rev-other");
    store.put_tenant(&other).await.unwrap();
    let mut thief = revoked.clone();
    thief.secret_key_hashes = other.secret_key_hashes.clone();
    thief.revision = 4;
    let error = store.replace_tenant(&thief, 3).await.unwrap_err();
    assert_eq!(error.code(), "invalid_request");
    assert_eq!(store.get_tenant(&tenant.id).await.unwrap(), Some(revoked));

    // A tenant written before revisions existed (revision 0) is replaced over 0.
    let legacy = sample_tenant("rev-legacy");
    store.put_tenant(&legacy).await.unwrap();
    let changed = TenantRecord {
        revision: 1,
        require_decision_signature: true,
        ..legacy.clone()
    };
    assert!(!store.replace_tenant(&changed, 1).await.unwrap());
    assert!(store.replace_tenant(&changed, 0).await.unwrap());

    let listed: Vec<TenantId> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    for id in [&tenant.id, &other.id, &legacy.id] {
        assert!(listed.contains(id), "{id} not listed");
    }
    assert!(listed.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
}

/// Rotations at once, each reading, adding its key and writing over the revision it read
/// (again on a refusal, as the use case does): every key is kept.
pub async fn concurrent_rotations_keep_every_key(store: Arc<dyn Store>) {
    let tenant = sample_tenant("rotations");
    store.put_tenant(&tenant).await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let id = tenant.id.clone();
            tokio::spawn(async move {
                loop {
                    let mut record = store.get_tenant(&id).await.unwrap().unwrap();
                    let read_at = record.revision;
                    record.signing_keys.insert(0, key(&format!("k{i}")));
                    record.revision = read_at + 1;
                    // DynamoDB may cancel a transaction that meets another one (a retryable
                    // `StoreUnavailable`): read again, as after a refusal.
                    match store.replace_tenant(&record, read_at).await {
                        Ok(true) => return,
                        Ok(false) | Err(shared::error::Error::StoreUnavailable) => {}
                        Err(other) => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stored = store.get_tenant(&tenant.id).await.unwrap().unwrap();
    assert_eq!(stored.revision, 6);
    for i in 0..6 {
        assert!(
            stored.signing_keys.iter().any(|k| k.kid == format!("k{i}")),
            "key k{i} lost"
        );
    }
}

/// Session settings: created over revision 0 (nothing stored) once; a stale write is refused.
pub async fn session_config_revisions(store: &dyn Store) {
    let tenant = TenantId::parse(unique_name("sessions-rev")).unwrap();
    let config = SessionConfig {
        tenant_id: tenant.clone(),
        client_ids: vec!["web".into()],
        access_token_ttl_seconds: 60,
        refresh_token_ttl_seconds: 600,
        signing_keys: Vec::new(),
        revision: 1,
    };
    assert!(store.replace_session_config(&config, 0).await.unwrap());
    assert!(!store.replace_session_config(&config, 0).await.unwrap());
    let newer = SessionConfig {
        client_ids: vec!["app".into()],
        revision: 2,
        ..config.clone()
    };
    assert!(store.replace_session_config(&newer, 1).await.unwrap());
    let stale = SessionConfig {
        client_ids: vec!["stale".into()],
        revision: 2,
        ..config
    };
    assert!(!store.replace_session_config(&stale, 1).await.unwrap());
    assert_eq!(
        store.get_session_config(&tenant).await.unwrap(),
        Some(newer)
    );
}
