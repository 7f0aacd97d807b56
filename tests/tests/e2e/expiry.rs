//! The embedded store's expiry sweep (`EmbeddedStore::purge_expired`, which `trusted-device
//! serve` runs every ten minutes where DynamoDB's TTL would): it removes what has expired and
//! keeps what is live. Records are made over HTTP; the sweep and the counts are the store's
//! public API.

use e2e_tests::{Auth, Device, Harness, StoreKind};
use serde_json::json;
use shared::clock::Clock;
use shared::config::Settings;

#[tokio::test]
async fn the_sweep_removes_expired_records_and_keeps_live_ones() {
    let h = Harness::start_on(StoreKind::Embedded).await;
    let store = h.embedded.clone().expect("the embedded store");
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;

    // A first sign-in: its action and its used-up challenge expire in time.
    let first = h.track(&h.a, "alice", "signIn", json!({})).await;
    let first_token = first["token"].as_str().unwrap().to_owned();
    let challenge_id = h.challenge(&h.a, json!({})).await;
    h.verify(Auth::Bearer(&first_token), &device, &challenge_id)
        .await
        .expect(200);
    let (records, _) = store.live_counts().unwrap();
    // Nothing has expired yet: the sweep removes nothing.
    assert_eq!(store.purge_expired(h.clock.now()).await.unwrap(), 0);
    assert_eq!(store.live_counts().unwrap().0, records);

    // Past the retention of actions and every lifetime, a second sign-in starts.
    let settings = Settings::default();
    h.clock.advance_seconds(
        settings.action_retention_days * 24 * 3600
            + settings
                .token_lifetime_seconds
                .max(settings.challenge_lifetime_seconds)
            + 3600,
    );
    let second = h.track(&h.a, "alice", "signIn", json!({})).await;
    let second_token = second["token"].as_str().unwrap().to_owned();
    let live_challenge = h.challenge(&h.a, json!({})).await;
    let (with_second, _) = store.live_counts().unwrap();
    assert!(
        with_second > records,
        "the second sign-in's records are stored"
    );

    let purged = store.purge_expired(h.clock.now()).await.unwrap();
    assert!(
        purged >= 2,
        "the first sign-in's action and used-up challenge are removed, {purged} records were"
    );
    assert_eq!(
        store.live_counts().unwrap().0,
        with_second - usize::try_from(purged).unwrap()
    );
    // Everything expired went in that sweep.
    assert_eq!(store.purge_expired(h.clock.now()).await.unwrap(), 0);

    // What is live was kept: the tenant, the credential, the second action.
    h.verify(Auth::Bearer(&second_token), &device, &live_challenge)
        .await
        .expect(200);
    let validated = h.validate(&h.a, json!({"token": second_token})).await;
    assert_eq!(validated["isValid"], true, "{validated}");
    assert_eq!(validated["userId"], "alice");
}
