//! Rate limits on the writes that need no secret and no token (DESIGN 6, issue #11), over
//! HTTP on the store under test: they are counted in the store, so every instance shares them.
//! Every refusal is a `429 too_many_requests` in the contract's shape (spec 1.3) with a
//! `Retry-After`. The local server sees every test request from 127.0.0.1.

use e2e_tests::{Auth, Device, Harness};
use serde_json::json;
use shared::config::Settings;

async fn start_qr(h: &Harness, tenant: &str) -> e2e_tests::Reply {
    h.post(
        "/client/challenge/qr-code",
        Auth::TenantBrowser(tenant),
        json!({"action": "kioskSignIn", "custom": {"blob": "x".repeat(4000)}}),
    )
    .await
}

#[tokio::test]
async fn anonymous_qr_starts_are_limited_per_address() {
    let h = Harness::start_with(Settings {
        anonymous_qr_starts_per_source: 3,
        ..Settings::default()
    })
    .await;
    for _ in 0..3 {
        start_qr(&h, &h.a.id).await.expect(200);
    }
    let retry_after = start_qr(&h, &h.a.id).await.expect_throttled();
    assert!(retry_after <= 60, "{retry_after}");
    // Per tenant: the same address starting another tenant's codes is counted apart.
    start_qr(&h, &h.b.id).await.expect(200);
    // A known user's start (Bearer) is not anonymous: not limited here.
    let phone = Device::in_namespace("qr-code");
    h.register(&h.a, "alice", &phone).await;
    let tracked = h.track(&h.a, "alice", "kioskSignIn", json!({})).await;
    h.post(
        "/client/challenge/qr-code",
        Auth::Bearer(tracked["token"].as_str().unwrap()),
        json!({"action": "kioskSignIn"}),
    )
    .await
    .expect(200);
    // The next window admits again.
    h.clock.advance_seconds(retry_after as i64);
    start_qr(&h, &h.a.id).await.expect(200);
}

/// Whatever the addresses, a tenant never has more anonymous codes alive than its cap: half
/// of it per window of one QR lifetime, over sharded counters.
#[tokio::test]
async fn live_anonymous_qr_codes_are_capped_per_tenant() {
    let h = Harness::start_with(Settings {
        anonymous_qr_starts_per_source: 1_000,
        anonymous_qr_live_cap: 8,
        ..Settings::default()
    })
    .await;
    let mut admitted = 0;
    let mut retry_after = 0;
    for _ in 0..80 {
        let reply = start_qr(&h, &h.a.id).await;
        if reply.status == 200 {
            admitted += 1;
        } else {
            retry_after = reply.expect_throttled();
        }
    }
    // 4 per window, one per shard: 80 random draws miss a shard with odds of about 4e-10.
    assert_eq!(admitted, 4);
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    h.clock.advance_seconds(retry_after as i64);
    start_qr(&h, &h.a.id).await.expect(200);
}

/// Alice registers a phone; an impostor of it (same public key, another private key) signs
/// three challenges of tenant A, each refused as invalid, then a fourth, which is throttled.
/// Returns the phone, that fourth challenge and its `Retry-After`.
async fn three_failed_signatures_then_throttled(
    h: &Harness,
    tenant: Auth<'_>,
) -> (Device, String, u64) {
    let phone = Device::new();
    h.register(&h.a, "alice", &phone).await;
    let impostor = phone.impostor();
    for _ in 0..3 {
        let id = h.challenge(&h.a, json!({})).await;
        h.verify(tenant, &impostor, &id)
            .await
            .expect_error(400, "invalid_signature");
    }
    let id = h.challenge(&h.a, json!({})).await;
    let retry_after = h.verify(tenant, &impostor, &id).await.expect_throttled();
    (phone, id, retry_after)
}

/// Bad signatures write (a mark per challenge), so they are limited per address; the right
/// signature is checked first and never limited.
#[tokio::test]
async fn failed_signatures_are_limited_per_address_but_the_right_one_is_not() {
    let h = Harness::start_with(Settings {
        failed_signatures_per_source: 3,
        ..Settings::default()
    })
    .await;
    let tenant = Auth::TenantIos(&h.a.id);
    let (phone, id, retry_after) = three_failed_signatures_then_throttled(&h, tenant).await;
    assert!(retry_after <= 60, "{retry_after}");
    let verified = h.verify(tenant, &phone, &id).await.expect(200);
    assert_eq!(verified["userId"], "alice");
}

/// An in-app verify with tenant Basic creates an action kept 30 days: limited per credential.
#[tokio::test]
async fn actions_created_by_a_device_are_limited_per_credential() {
    let h = Harness::start_with(Settings {
        device_actions_per_credential_per_hour: 2,
        ..Settings::default()
    })
    .await;
    let phone = Device::new();
    h.register(&h.a, "alice", &phone).await;
    let tenant = || Auth::TenantAndroid(&h.a.id);
    for _ in 0..2 {
        let id = h.challenge(&h.a, json!({"action": "approvePayment"})).await;
        h.verify(tenant(), &phone, &id).await.expect(200);
    }
    let id = h.challenge(&h.a, json!({"action": "approvePayment"})).await;
    let retry_after = h.verify(tenant(), &phone, &id).await.expect_throttled();
    assert!(retry_after <= 3600, "{retry_after}");
    // Completing a tracked action (Bearer) creates nothing: not limited.
    let tracked = h.track(&h.a, "alice", "signIn", json!({})).await;
    let id = h.challenge(&h.a, json!({})).await;
    h.verify(
        Auth::Bearer(tracked["token"].as_str().unwrap()),
        &phone,
        &id,
    )
    .await
    .expect(200);
    // Another device is counted apart.
    let tablet = Device::new();
    h.register(&h.a, "bob", &tablet).await;
    let id = h.challenge(&h.a, json!({"action": "approvePayment"})).await;
    h.verify(tenant(), &tablet, &id).await.expect(200);
}

/// Past a challenge's own count (5), bad signatures on it are `429` and spend nothing of the
/// address's budget: that budget is for failures that can still write something.
#[tokio::test]
async fn throttled_signatures_spend_no_address_budget() {
    let h = Harness::start_with(Settings {
        failed_signatures_per_source: 6,
        ..Settings::default()
    })
    .await;
    let phone = Device::new();
    h.register(&h.a, "alice", &phone).await;
    let impostor = phone.impostor();
    let tenant = || Auth::TenantIos(&h.a.id);
    let id = h.challenge(&h.a, json!({})).await;
    for _ in 0..5 {
        h.verify(tenant(), &impostor, &id)
            .await
            .expect_error(400, "invalid_signature");
    }
    for _ in 0..10 {
        h.verify(tenant(), &impostor, &id).await.expect_throttled();
    }
    // 5 of the address's 6 spent, not 15: one more failure is still counted as such.
    let other = h.challenge(&h.a, json!({})).await;
    h.verify(tenant(), &impostor, &other)
        .await
        .expect_error(400, "invalid_signature");
    h.verify(tenant(), &phone, &id).await.expect(200);
}

/// Failed signatures are limited per tenant too (many addresses, one tenant), over the
/// tenant's shards; the right signature is never limited.
#[tokio::test]
async fn failed_signatures_are_limited_per_tenant() {
    let h = Harness::start_with(Settings {
        failed_signatures_per_source: u32::MAX,
        failed_signatures_per_tenant: 3,
        rate_limit_shards: 1,
        ..Settings::default()
    })
    .await;
    let tenant = Auth::TenantAndroid(&h.a.id);
    let (phone, id, retry_after) = three_failed_signatures_then_throttled(&h, tenant).await;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    h.verify(tenant, &phone, &id).await.expect(200);
    // Another tenant's budget is its own.
    let other = Device::new();
    h.register(&h.b, "bob", &other).await;
    let id = h.challenge(&h.b, json!({})).await;
    h.verify(Auth::TenantAndroid(&h.b.id), &other.impostor(), &id)
        .await
        .expect_error(400, "invalid_signature");
}
