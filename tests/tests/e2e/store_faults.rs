//! The embedded store when its files stop taking writes (a data directory that became
//! read-only, or a full disk): writes answer 503 in the contract's error shape, nothing
//! half-written is visible, reads go on, and the server serves writes again once the fault is
//! gone, without a restart.
//!
//! The fault is injected through the store (SQLite's `query_only`): the tests run as root,
//! for whom `chmod` cannot make a file read-only, and there is no small filesystem to fill.
//! SQLite fails the write with `SQLITE_READONLY` as it would on a read-only file.

use e2e_tests::{Auth, Device, Harness, StoreKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_answers_503_then_serves_again_when_it_is_writable() {
    let h = Harness::start_on(StoreKind::Embedded).await;
    let store = h.embedded.clone().expect("the embedded store");
    let device = Device::new();
    h.register(&h.a, "alice", &device).await;
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let token = tracked["token"].as_str().unwrap().to_owned();
    let challenge_id = h.challenge(&h.a, json!({})).await;

    store.set_read_only_fault(true).unwrap();
    let refused = h
        .post(
            "/users/alice/actions/signIn",
            Auth::Secret(&h.a.secret),
            json!({"idempotencyKey": "during-the-fault"}),
        )
        .await
        .expect_error(503, "service_unavailable");
    assert!(refused["errorDescription"].is_string());
    // The verify's one transaction (challenge used up, action succeeded) fails whole.
    h.verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect_error(503, "service_unavailable");
    // Reads go on: the action is there, unchanged.
    let key = tracked["idempotencyKey"].as_str().unwrap();
    let action = h.action(&h.a, "alice", "signIn", key).await;
    assert_eq!(action["state"], "CHALLENGE_REQUIRED");

    store.set_read_only_fault(false).unwrap();
    // Nothing of the failed write: the same challenge verifies now, once.
    let verified = h
        .verify(Auth::Bearer(&token), &device, &challenge_id)
        .await
        .expect(200);
    let validated = h.validate(&h.a, json!({"token": verified["token"]})).await;
    assert_eq!(validated["state"], "CHALLENGE_SUCCEEDED");
    h.get(
        "/users/alice/actions/signIn/during-the-fault",
        Auth::Secret(&h.a.secret),
    )
    .await
    .expect(404);
    h.post(
        "/users/alice/actions/signIn",
        Auth::Secret(&h.a.secret),
        json!({"idempotencyKey": "after-the-fault"}),
    )
    .await
    .expect(200);
}
