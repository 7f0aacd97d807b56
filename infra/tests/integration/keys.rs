//! Key rotation without downtime (issue #19), the way an operator does it: the `trusted-device
//! tenant` commands next to a server, requests over HTTP. On the embedded store the server
//! keeps running (it checks a cached tenant's revision, so a change applies at once); on
//! DynamoDB a fresh server process is started after each change, as a cold Lambda instance
//! would see it (warm ones see it within the tenant cache's 60 s).

use crate::cli::{Served, request, run_cli, track};
use serde_json::{Value, json};
use shared::store::Store;
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::store::embedded::{Durability, EmbeddedStore};
use std::sync::Arc;

/// A JWT's header, decoded.
fn header(token: &str) -> Value {
    use base64::Engine as _;
    let first = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(first)
            .unwrap(),
    )
    .unwrap()
}

fn cli(args: &[&str], store: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend_from_slice(store);
    let (ok, out, err) = run_cli(&all);
    assert!(ok, "{all:?} failed: {err}");
    out
}

fn printed<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {out}"))
        .trim()
}

/// `POST /validate` with `secret`: what the backend's `validateChallenge` gets.
fn validate(base_url: &str, secret: &str, token: &str) -> Value {
    let url = format!("{base_url}/validate");
    let (status, body) = request(|c| {
        c.post(url)
            .basic_auth(secret, Some(""))
            .json(&json!({ "token": token }))
    });
    assert_eq!(status, 200, "{body}");
    body
}

fn track_status(base_url: &str, secret: &str) -> u16 {
    let url = format!("{base_url}/users/bob/actions/signIn");
    request(|c| c.post(url).basic_auth(secret, Some(""))).0
}

fn jwks_kids(base_url: &str, tenant: &str) -> Vec<String> {
    let url = format!("{base_url}/tenants/{tenant}/.well-known/jwks.json");
    let (status, body) = request(|c| c.get(url));
    assert_eq!(status, 200, "{body}");
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Every secret value the store holds for the tenant: token keys and session private keys.
async fn key_material(store: Arc<dyn Store>, tenant: &str) -> Vec<String> {
    let id = shared::domain::TenantId::parse(tenant).unwrap();
    let record = store.get_tenant(&id).await.unwrap().unwrap();
    let mut material: Vec<String> = record
        .signing_keys
        .iter()
        .map(|k| k.secret.clone())
        .collect();
    material.extend(record.secret_key_hashes.iter().cloned());
    if let Some(config) = store.get_session_config(&id).await.unwrap() {
        material.extend(config.signing_keys.iter().map(|k| k.pkcs8.clone()));
    }
    material
}

/// The whole rotation as an operator runs it against one store. `open` opens that store in
/// this process (to read what must never be printed); `restart` starts a fresh server after
/// each change.
fn rotation_without_downtime(
    tenant: &str,
    store: &[&str],
    data_dir: &std::path::Path,
    restart: bool,
    open: impl Fn() -> Arc<dyn Store>,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let created = cli(&["tenant", "create", "--tenant-id", tenant], store);
    let old_secret = printed(&created, "secret key: ").to_owned();
    cli(
        &[
            "tenant",
            "configure",
            "--tenant-id",
            tenant,
            "--session-client-id",
            "web",
        ],
        store,
    );
    // `Served` names the data directory itself; the DynamoDB flags are passed on.
    let serve_flags: &[&str] = if store.contains(&"dynamodb") {
        store
    } else {
        &[]
    };
    let mut served = Served::start(data_dir, serve_flags);
    let after_change = |served: Served| {
        if restart {
            served.stop();
            Served::start(data_dir, serve_flags)
        } else {
            served
        }
    };

    // Before: one token key, one session key.
    let before = track(&served.base_url, &old_secret, "alice");
    let old_token = before["token"].as_str().unwrap().to_owned();
    let old_kid = header(&old_token)["kid"].as_str().unwrap().to_owned();
    let old_jwks = jwks_kids(&served.base_url, tenant);
    assert_eq!(old_jwks.len(), 1);

    // rotate-keys: new keys sign, the old ones still verify, the JWKS has both.
    let rotated = cli(&["tenant", "rotate-keys", "--tenant-id", tenant], store);
    let new_kid = printed(&rotated, "token signing key:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let new_session_kid = printed(&rotated, "session signing key:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    served = after_change(served);
    let validated = validate(&served.base_url, &old_secret, &old_token);
    assert_eq!(validated["state"], "ALLOW", "{validated}");
    assert!(validated.get("error").is_none(), "{validated}");
    let after = track(&served.base_url, &old_secret, "alice");
    let new_token = after["token"].as_str().unwrap().to_owned();
    assert_eq!(header(&new_token)["kid"], new_kid.as_str());
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        jwks_kids(&served.base_url, tenant),
        [new_session_kid.clone(), old_jwks[0].clone()],
        "the JWKS lists the new key and the old one during the overlap"
    );

    // rotate-secret: both secrets work; revoke-secret (by key id): only the new one.
    let shown = cli(&["tenant", "show", "--tenant-id", tenant], store);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let old_key_id = shown["secretKeys"][0]["keyId"].as_str().unwrap().to_owned();
    let rotated_secret = cli(&["tenant", "rotate-secret", "--tenant-id", tenant], store);
    let new_secret = printed(&rotated_secret, "secret key: ").to_owned();
    let new_key_id = printed(&rotated_secret, "key id: ").to_owned();
    assert_ne!(new_key_id, old_key_id);
    served = after_change(served);
    assert_eq!(track_status(&served.base_url, &old_secret), 200);
    assert_eq!(track_status(&served.base_url, &new_secret), 200);
    // A third is refused: the old one must be revoked first.
    let (ok, _, err) = run_cli(
        &[
            &["tenant", "rotate-secret", "--tenant-id", tenant][..],
            store,
        ]
        .concat(),
    );
    assert!(!ok && err.contains("revoke"), "{err}");
    cli(
        &[
            "tenant",
            "revoke-secret",
            "--tenant-id",
            tenant,
            "--key-id",
            &old_key_id,
        ],
        store,
    );
    served = after_change(served);
    assert_eq!(track_status(&served.base_url, &old_secret), 401);
    assert_eq!(track_status(&served.base_url, &new_secret), 200);
    // The last secret cannot be revoked.
    let (ok, _, err) = run_cli(
        &[
            &[
                "tenant",
                "revoke-secret",
                "--tenant-id",
                tenant,
                "--key-id",
                &new_key_id,
            ][..],
            store,
        ]
        .concat(),
    );
    assert!(!ok && err.contains("only one"), "{err}");

    // show and list: key ids and times, never a secret or a private key.
    let shown = cli(&["tenant", "show", "--tenant-id", tenant], store);
    let listed = cli(&["tenant", "list"], store);
    let view: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(view["secretKeys"].as_array().unwrap().len(), 1);
    assert_eq!(view["secretKeys"][0]["keyId"], new_key_id.as_str());
    let token_keys: Vec<&str> = view["tokenSigningKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(token_keys, [new_kid.as_str(), old_kid.as_str()]);
    assert!(view["tokenSigningKeys"][1]["retireAt"].is_string());
    let list: Value = serde_json::from_str(&listed).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["tenantId"] == tenant)
    );
    let material = runtime.block_on(key_material(open(), tenant));
    assert!(material.len() >= 5);
    for secret in material
        .iter()
        .map(String::as_str)
        .chain([old_secret.as_str(), new_secret.as_str()])
    {
        assert!(
            !shown.contains(secret) && !listed.contains(secret),
            "printed a secret, a hash or a private key"
        );
    }

    // rotate-keys --revoke-previous (a leaked key): what the replaced keys signed is refused.
    cli(
        &[
            "tenant",
            "rotate-keys",
            "--tenant-id",
            tenant,
            "--revoke-previous",
        ],
        store,
    );
    served = after_change(served);
    for token in [&old_token, &new_token] {
        let refused = validate(&served.base_url, &new_secret, token);
        assert_eq!(refused["isValid"], false);
        assert_eq!(refused["error"], "invalid_token", "{refused}");
    }
    let fresh = track(&served.base_url, &new_secret, "alice");
    let fresh = validate(
        &served.base_url,
        &new_secret,
        fresh["token"].as_str().unwrap(),
    );
    assert_eq!(fresh["state"], "ALLOW", "{fresh}");
    assert_eq!(jwks_kids(&served.base_url, tenant).len(), 1);
    served.stop();
}

#[test]
fn keys_and_secrets_rotate_without_downtime_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    rotation_without_downtime(
        "rotating",
        &["--data-dir", &path],
        dir.path(),
        false,
        || {
            let (store, _) = EmbeddedStore::open_data_dir(dir.path(), Durability::Normal).unwrap();
            Arc::new(store)
        },
    );
}

#[test]
fn keys_and_secrets_rotate_without_downtime_on_dynamodb() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local = runtime.block_on(testkit::dynamodb::LocalDynamo::start());
    let endpoint = local.endpoint();
    let (ok, _, err) = run_cli(&[
        "table",
        "create",
        "--table",
        "td-keys",
        "--endpoint-url",
        &endpoint,
    ]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let store = [
        "--store",
        "dynamodb",
        "--table",
        "td-keys",
        "--endpoint-url",
        &endpoint,
    ];
    rotation_without_downtime("rotating", &store, dir.path(), true, || {
        let client = runtime.block_on(dynamodb::client(
            &DynamoConfig {
                endpoint_url: Some(endpoint.clone()),
            },
            UsageMeter::default(),
        ));
        Arc::new(DynamoStore::new(client, "td-keys", UsageMeter::default()))
    });
    drop(local);
}

/// A server restarted with the environment it had before a secret was rotated (found by the
/// attacker review): during the rotation it keeps both secrets; once the old one is revoked it
/// refuses to start with it (rather than accept it again and drop the new one); with the
/// current secret it serves as before.
#[test]
fn a_restart_keeps_a_rotation_and_refuses_a_revoked_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let store = ["--data-dir", path.as_str()];
    let tenant = "restarted";
    let created = cli(&["tenant", "create", "--tenant-id", tenant], &store);
    let old_secret = printed(&created, "secret key: ").to_owned();
    let shown: Value =
        serde_json::from_str(&cli(&["tenant", "show", "--tenant-id", tenant], &store)).unwrap();
    let old_key_id = shown["secretKeys"][0]["keyId"].as_str().unwrap().to_owned();
    let with_old = ["--tenant-id", tenant, "--secret-key", old_secret.as_str()];

    let rotated = cli(&["tenant", "rotate-secret", "--tenant-id", tenant], &store);
    let new_secret = printed(&rotated, "secret key: ").to_owned();
    // A restart with the old secret in its environment: the rotation goes on.
    let served = Served::start(dir.path(), &with_old);
    assert_eq!(track_status(&served.base_url, &old_secret), 200);
    assert_eq!(track_status(&served.base_url, &new_secret), 200);
    served.stop();

    cli(
        &[
            "tenant",
            "revoke-secret",
            "--tenant-id",
            tenant,
            "--key-id",
            &old_key_id,
        ],
        &store,
    );
    // The same restart now refuses to start, and changes nothing.
    let (ok, _, err) = run_cli(
        &[
            &[
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--data-dir",
                path.as_str(),
            ][..],
            &with_old,
        ]
        .concat(),
    );
    assert!(!ok, "a server started with a revoked secret");
    assert!(err.contains("revoked"), "{err}");
    assert!(!err.contains(&old_secret), "the error printed the secret");
    let served = Served::start(
        dir.path(),
        &["--tenant-id", tenant, "--secret-key", &new_secret],
    );
    assert_eq!(track_status(&served.base_url, &old_secret), 401);
    assert_eq!(track_status(&served.base_url, &new_secret), 200);
    served.stop();
}
