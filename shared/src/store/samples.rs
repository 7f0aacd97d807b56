//! Sample records for the store's unit tests: copies of `sample_tenant`, `sample_challenge_id`
//! and `approval` in `testkit::conformance`.
//!
//! The copies stay on purpose. The unit tests that use them (the embedded store's faults and
//! journal, the DynamoDB item mapping) reach `pub(crate)` internals, so they must live inside
//! `shared`; and inside `shared`'s own test build, `testkit` links the *other* build of
//! `shared`, whose `TenantRecord`, `ChallengeId` and `ApprovalChallenge` are different types
//! from `crate::domain`'s. Keep the two in step by hand.

use crate::clock::Timestamp;
use crate::domain::{
    ActionCode, ApprovalChallenge, ApprovalId, ApprovalKind, ApprovalState, ChallengeId,
    SigningKeyRecord, TenantId, TenantRecord, TrackContext, UserId, WebhookEndpoint,
};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test in this process uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

const NOW: Timestamp = Timestamp(1_800_000_000_000);

pub(crate) fn sample_tenant(name: &str) -> TenantRecord {
    TenantRecord {
        id: TenantId::parse(unique(name)).unwrap(),
        secret_key_hashes: vec![unique("hash")],
        signing_keys: vec![SigningKeyRecord {
            kid: "k1".into(),
            secret: "c2VjcmV0".into(),
            created_at: None,
            retire_at: None,
        }],
        created_at: NOW,
        revision: 0,
        secret_key_created_at: Default::default(),
        revoked_secret_key_hashes: Vec::new(),
        push_webhook: None,
        events_webhook: None,
        require_decision_signature: false,
        allowed_origins: Vec::new(),
        passkey: None,
        ui: None,
    }
}

/// `sample_tenant` named `id` exactly, with an events webhook: the embedded store's outbox
/// keeps its changes (DESIGN 10).
pub(crate) fn tenant_with_events_webhook(id: &str) -> TenantRecord {
    TenantRecord {
        id: TenantId::parse(id).unwrap(),
        events_webhook: Some(WebhookEndpoint {
            url: "https://backend.example/events".into(),
            secret: "whsec_0123456789abcdef0123456789abcdef".into(),
        }),
        ..sample_tenant(id)
    }
}

/// A well-formed challenge id no other test uses (the store never opens it).
pub(crate) fn sample_challenge_id() -> ChallengeId {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    ChallengeId::parse(format!("c1.{n:016x}{}.mac", std::process::id())).unwrap()
}

pub(crate) fn approval(
    tenant: &TenantId,
    user: Option<&UserId>,
    kind: ApprovalKind,
) -> ApprovalChallenge {
    let mut id = [0u8; 48];
    id[..8].copy_from_slice(&COUNTER.fetch_add(1, Ordering::SeqCst).to_be_bytes());
    id[8..16].copy_from_slice(&u64::from(std::process::id()).to_be_bytes());
    ApprovalChallenge {
        id: ApprovalId::from_random(id),
        tenant_id: tenant.clone(),
        kind,
        state: ApprovalState::Pending,
        action_code: ActionCode::parse("signIn").unwrap(),
        action: None,
        user_id: user.cloned(),
        target_credentials: vec![],
        answered_by: None,
        device_code_hash: Some("ab".repeat(32)),
        verification_code: None,
        context: TrackContext {
            ip_address: Some("203.0.113.7".into()),
            custom: Some(serde_json::json!({"amount": 10})),
            ..TrackContext::default()
        },
        failed_attempts: 0,
        token_delivered: false,
        recent_starts: vec![NOW],
        created_at: NOW,
        state_updated_at: NOW,
        expires_at: NOW.plus_seconds(300),
        retain_until: NOW.plus_seconds(600),
        version: 1,
        socket: None,
    }
}
