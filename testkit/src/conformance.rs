//! The store conformance suite: every trait method and every condition, run against each
//! adapter (DESIGN 3, 8). An adapter is correct when `run_all` passes on it; `tests/` of this
//! crate run it on the embedded store (in memory and on disk) and on DynamoDB (dynoxide).

use shared::clock::Timestamp;
use shared::domain::{
    Action, ActionCode, ActionKey, ActionState, ApprovalChallenge, ApprovalId, ApprovalKind,
    ApprovalSlot, ApprovalState, ChallengeId, ChallengeMark, ChallengeOrder, Credential,
    CredentialId, Enrolment, IdempotencyKey, Namespace, SigningKeyRecord, TenantId, TenantRecord,
    TrackContext, UserId, UserProfile, VerificationMethod,
};
use shared::domain::{Ceremony, CeremonyPurpose, PasskeyRecord};
use shared::error::Error;
use shared::error::Result;
use shared::http::error::Describe as _;
use shared::store::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod sockets;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test in this process uses (for the scenes in other files).
pub(crate) fn unique_name(prefix: &str) -> String {
    unique(prefix)
}

/// A name no other test in this process uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

const NOW: Timestamp = Timestamp(1_800_000_000_000);

pub fn sample_tenant(name: &str) -> TenantRecord {
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

fn tenant_id(name: &str) -> TenantId {
    TenantId::parse(unique(name)).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(unique(name)).unwrap()
}

fn credential(
    tenant: &TenantId,
    user: &UserId,
    namespace: Namespace,
    fingerprint: &str,
) -> Credential {
    Credential {
        id: CredentialId::parse(format!("{:032x}", COUNTER.fetch_add(1, Ordering::SeqCst)))
            .unwrap(),
        tenant_id: tenant.clone(),
        user_id: user.clone(),
        namespace,
        public_key: "pk".into(),
        key_fingerprint: fingerprint.into(),
        device_name: Some("Pixel".into()),
        device_platform: Some("android".into()),
        push_token: None,
        created_at: NOW,
        last_verified_at: None,
        expires_at: None,
    }
}

/// A well-formed challenge id no other test uses (the store never opens it).
pub fn sample_challenge_id() -> ChallengeId {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    ChallengeId::parse(format!("c1.{n:016x}{}.mac", std::process::id())).unwrap()
}

fn action(tenant: &TenantId, user: &UserId, code: &str, state: ActionState) -> Action {
    Action {
        tenant_id: tenant.clone(),
        key: ActionKey {
            user_id: user.clone(),
            action_code: ActionCode::parse(code).unwrap(),
            idempotency_key: IdempotencyKey::parse(unique("idem")).unwrap(),
        },
        state,
        created_at: NOW,
        state_updated_at: NOW,
        verification_method: None,
        verified_by_authenticator_id: None,
        context: TrackContext::default(),
        rule_ids: vec![],
        rules: vec![],
        origin: shared::domain::ActionOrigin::Track,
        enrolled_passkey_id: None,
        expires_at: NOW.plus_seconds(30 * 24 * 3600),
    }
}

/// A retained, enrolment-allowing action of `credential`'s user, and the guard an add with its
/// token (with the scope, so any number of credentials) carries.
async fn enrolment_action(store: &dyn Store, credential: &Credential) -> EnrolmentGuard {
    let mut action = action(
        &credential.tenant_id,
        &credential.user_id,
        "addAuthenticator",
        ActionState::Allow,
    );
    // Tracked long ago, so scenes that list recent actions do not see it.
    action.created_at = NOW.plus_seconds(-7 * 24 * 3600);
    store.create_action(&action).await.unwrap();
    EnrolmentGuard {
        action: action.key,
        first_credential_only: false,
        now: NOW,
    }
}

/// Inserts `credential` as an add with a fresh token of its user would.
async fn enrol(store: &dyn Store, credential: &Credential) -> Result<InsertOutcome> {
    let guard = enrolment_action(store, credential).await;
    store.insert_credential(credential, &guard).await
}

pub async fn run_all(store: Arc<dyn Store>) {
    tenants(&*store).await;
    crate::conformance_keys::tenant_revisions(&*store).await;
    crate::conformance_keys::concurrent_rotations_keep_every_key(store.clone()).await;
    crate::conformance_keys::session_config_revisions(&*store).await;
    credentials(&*store).await;
    removal_receipts(&*store).await;
    challenges(&*store).await;
    actions(&*store).await;
    user_activity(&*store).await;
    action_configs(&*store).await;
    enrolment_summary(&*store).await;
    config_changes_reach_every_copy(&*store).await;
    users(&*store).await;
    verification(&*store).await;
    verification_failures_write_nothing(&*store).await;
    in_app_challenges_are_used_in_order(&*store).await;
    concurrent_verifies_have_one_winner(store.clone()).await;
    concurrent_adds_leave_one_credential(store.clone()).await;
    enrolment_guard(&*store).await;
    one_user_per_key_across_namespaces(store.clone()).await;
    concurrent_first_credentials_leave_one(store.clone()).await;
    approvals(&*store).await;
    approval_commit(&*store).await;
    concurrent_approvals_have_one_winner(store.clone()).await;
    credential_update_once(&*store).await;
    deleting_a_user_deletes_their_push(&*store).await;
    rate_limits(&*store).await;
    concurrent_hits_never_pass_the_limit(store.clone()).await;
    sockets::run(&*store).await;
    crate::conformance_sessions::sessions(&*store).await;
    crate::conformance_sessions::concurrent_refreshes_have_one_winner(store.clone()).await;
    crate::conformance_sessions::user_lookups(&*store).await;
    passkey_enrolment(&*store).await;
    passkey_sign_in(&*store).await;
    concurrent_passkey_sign_ins_have_one_winner(store.clone()).await;
    passkeys_go_with_their_user(&*store).await;
}

fn bucket(key: &str, limit: u32, expires_at: Timestamp) -> RateBucket {
    RateBucket {
        key: key.to_owned(),
        limit,
        expires_at,
    }
}

async fn rate_limits(store: &dyn Store) {
    let tenant = tenant_id("t");
    let key = unique("anon-qr#src#203.0.113.7#100");
    let end = NOW.plus_seconds(60);
    let b = bucket(&key, 3, end);
    for _ in 0..3 {
        assert!(store.hit(&tenant, &b, NOW).await.unwrap());
    }
    // Full: refused, however often asked, until the window ends.
    for _ in 0..3 {
        assert!(!store.hit(&tenant, &b, NOW.plus_seconds(59)).await.unwrap());
    }
    // Counters are per tenant and per key.
    assert!(store.hit(&tenant_id("other"), &b, NOW).await.unwrap());
    let other_key = bucket(&unique("anon-qr#src#203.0.113.8#100"), 3, end);
    assert!(store.hit(&tenant, &other_key, NOW).await.unwrap());
    // Past its end a counter is empty, deleted or not (TTL deletes late): checked in code.
    // It starts again from one, and counts to its limit again, not past it.
    let later = bucket(&key, 3, end.plus_seconds(60));
    assert!(store.hit(&tenant, &later, end).await.unwrap());
    assert!(store.hit(&tenant, &later, end).await.unwrap());
    assert!(store.hit(&tenant, &later, end).await.unwrap());
    assert!(!store.hit(&tenant, &later, end).await.unwrap());
    // A limit of zero refuses everything.
    let closed = bucket(&unique("closed"), 0, end);
    assert!(!store.hit(&tenant, &closed, NOW).await.unwrap());
}

/// How many of the tasks answered `true`.
async fn successes(tasks: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    let mut count = 0;
    for task in tasks {
        if task.await.unwrap() {
            count += 1;
        }
    }
    count
}

/// The user's credentials, as the store lists them.
async fn credentials_of(store: &dyn Store, tenant: &TenantId, user: &UserId) -> Vec<Credential> {
    store.list_user_credentials(tenant, user).await.unwrap()
}

async fn concurrent_hits_never_pass_the_limit(store: Arc<dyn Store>) {
    let tenant = tenant_id("t");
    let b = bucket(&unique("sig#tenant#7#100"), 5, NOW.plus_seconds(60));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let tenant = tenant.clone();
            let b = b.clone();
            tokio::spawn(async move { store.hit(&tenant, &b, NOW).await.unwrap() })
        })
        .collect();
    assert_eq!(successes(tasks).await, 5, "exactly the limit is admitted");
}

pub fn approval(tenant: &TenantId, user: Option<&UserId>, kind: ApprovalKind) -> ApprovalChallenge {
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

async fn approvals(store: &dyn Store) {
    let tenant = tenant_id("t");
    let alice = user("alice");

    // A QR code: created once, then every change only over the version it was read at.
    let qr = approval(&tenant, None, ApprovalKind::QrCode);
    let slot = qr.slot();
    assert_eq!(store.get_approval(&tenant, &slot).await.unwrap(), None);
    assert!(store.put_approval(&qr, None).await.unwrap());
    assert!(
        !store.put_approval(&qr, None).await.unwrap(),
        "an existing challenge is never overwritten by a create"
    );
    assert_eq!(
        store.get_approval(&tenant, &slot).await.unwrap(),
        Some(qr.clone())
    );
    let claimed = qr.moved_to(ApprovalState::Claimed, NOW.plus_seconds(5));
    assert!(store.put_approval(&claimed, Some(1)).await.unwrap());
    let stale = qr.moved_to(ApprovalState::Rejected, NOW.plus_seconds(6));
    assert!(
        !store.put_approval(&stale, Some(1)).await.unwrap(),
        "a write over a version that moved on is refused"
    );
    assert_eq!(
        store
            .get_approval(&tenant, &slot)
            .await
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Claimed
    );

    // A push lives in its user's one slot: a new challenge replaces the old one.
    let first = approval(&tenant, Some(&alice), ApprovalKind::Push);
    assert!(store.put_approval(&first, None).await.unwrap());
    let second = ApprovalChallenge {
        version: first.version + 1,
        ..approval(&tenant, Some(&alice), ApprovalKind::Push)
    };
    assert!(
        store
            .put_approval(&second, Some(first.version))
            .await
            .unwrap()
    );
    let held = store
        .get_approval(&tenant, &ApprovalSlot::Push(alice.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.id, second.id);
    assert_eq!(held, second);

    // Other tenants see nothing.
    assert_eq!(
        store
            .get_approval(&tenant_id("other"), &slot)
            .await
            .unwrap(),
        None
    );
}

/// An approval's commit: the challenge moves only from the version before, with the action
/// and the credential, or nothing changes.
async fn approval_commit(store: &dyn Store) {
    let s = scene(store, ActionState::ChallengeRequired).await;
    let pending = pending_push(&s);
    assert!(store.put_approval(&pending, None).await.unwrap());
    let approved = pending.moved_to(ApprovalState::Approved, NOW.plus_seconds(1));
    let commit =
        |approved: &ApprovalChallenge| commit_approval(&s, approved.clone(), NOW.plus_seconds(1));
    store
        .complete_verification(&commit(&approved))
        .await
        .unwrap();
    let stored = store
        .get_approval(&s.tenant, &pending.slot())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, ApprovalState::Approved);
    let action = store
        .get_action(&s.tenant, &s.action.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(action.state, ActionState::ChallengeSucceeded);
    assert_eq!(action.verification_method, Some(VerificationMethod::Push));

    // The same answer again is refused and changes nothing.
    assert_eq!(
        store
            .complete_verification(&commit(&approved))
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed
    );
    // An approval of an expired challenge is refused before anything is written.
    let s2 = scene(store, ActionState::ChallengeRequired).await;
    let late = ApprovalChallenge {
        expires_at: NOW,
        ..pending_push(&s2)
    };
    assert!(store.put_approval(&late, None).await.unwrap());
    let late_commit = commit_approval(
        &s2,
        late.moved_to(ApprovalState::Approved, NOW.plus_seconds(1)),
        NOW.plus_seconds(1),
    );
    assert_eq!(
        store.complete_verification(&late_commit).await.unwrap_err(),
        Error::ChallengeExpired
    );
    // A blocked action fails the commit, and the challenge stays pending.
    let s3 = scene(store, ActionState::Block).await;
    let blocked = pending_push(&s3);
    assert!(store.put_approval(&blocked, None).await.unwrap());
    let blocked_commit = commit_approval(
        &s3,
        blocked.moved_to(ApprovalState::Approved, NOW.plus_seconds(1)),
        NOW.plus_seconds(1),
    );
    assert_eq!(
        store
            .complete_verification(&blocked_commit)
            .await
            .unwrap_err(),
        Error::ActionNotChallengeable("BLOCK")
    );
    assert_eq!(
        store
            .get_approval(&s3.tenant, &blocked.slot())
            .await
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Pending,
        "nothing half-written"
    );
}

async fn concurrent_approvals_have_one_winner(store: Arc<dyn Store>) {
    let s = scene(&*store, ActionState::ChallengeRequired).await;
    let pending = pending_push(&s);
    assert!(store.put_approval(&pending, None).await.unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let mut next = pending.moved_to(
                if i % 2 == 0 {
                    ApprovalState::Approved
                } else {
                    ApprovalState::Rejected
                },
                NOW.plus_seconds(1),
            );
            next.answered_by = Some(s.credential.id.clone());
            let commit = commit_approval(&s, next.clone(), NOW.plus_seconds(1));
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store.complete_verification(&commit).await.is_ok()
                } else {
                    store.put_approval(&next, Some(1)).await.unwrap()
                }
            })
        })
        .collect();
    assert_eq!(successes(tasks).await, 1, "exactly one answer wins");
}

async fn credential_update_once(store: &dyn Store) {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let old = credential(&tenant, &alice, Namespace::Push, &unique("fp"));
    enrol(store, &old).await.unwrap();
    let mut new = old.clone();
    new.push_token = Some("new-token".into());
    new.expires_at = Some(NOW.plus_seconds(86_400));
    new.last_verified_at = Some(NOW);
    let update = CredentialUpdate {
        tenant_id: tenant.clone(),
        challenge: OneTimeMark {
            challenge_id: sample_challenge_id(),
            expires_at: NOW.plus_seconds(300),
        },
        credential: new.clone(),
        now: NOW,
    };
    store.update_credential_once(&update).await.unwrap();
    let stored = store
        .get_credential(&tenant, Namespace::Push, &old.key_fingerprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, new);
    let listed = credentials_of(store, &tenant, &alice).await;
    assert_eq!(listed, vec![new.clone()], "both copies changed");
    assert_eq!(
        store.update_credential_once(&update).await.unwrap_err(),
        Error::ChallengeAlreadyUsed
    );
    // A removed credential cannot be updated, and the challenge is not used up by trying.
    let gone = credential(&tenant, &alice, Namespace::Push, &unique("fp"));
    let attempt = CredentialUpdate {
        challenge: OneTimeMark {
            challenge_id: sample_challenge_id(),
            expires_at: NOW.plus_seconds(300),
        },
        credential: gone,
        ..update.clone()
    };
    assert_eq!(
        store.update_credential_once(&attempt).await.unwrap_err(),
        Error::InvalidCredential
    );
    assert_eq!(
        store
            .get_challenge_mark(&tenant, &attempt.challenge.challenge_id)
            .await
            .unwrap(),
        None
    );
}

async fn deleting_a_user_deletes_their_push(store: &dyn Store) {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let push = approval(&tenant, Some(&alice), ApprovalKind::Push);
    assert!(store.put_approval(&push, None).await.unwrap());
    store.delete_user(&tenant, &alice).await.unwrap();
    assert_eq!(
        store.get_approval(&tenant, &push.slot()).await.unwrap(),
        None
    );
}

async fn tenants(store: &dyn Store) {
    let mut tenant = sample_tenant("tenant");
    assert_eq!(store.get_tenant(&tenant.id).await.unwrap(), None);
    store.put_tenant(&tenant).await.unwrap();
    assert_eq!(
        store.get_tenant(&tenant.id).await.unwrap().as_ref(),
        Some(&tenant)
    );
    let old_hash = tenant.secret_key_hashes[0].clone();
    assert_eq!(
        store
            .find_tenant_by_secret_hash(&old_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&tenant)
    );

    // Rotating the secret drops the old hash from the index.
    tenant.secret_key_hashes = vec![unique("new-hash")];
    store.put_tenant(&tenant).await.unwrap();
    assert_eq!(
        store.find_tenant_by_secret_hash(&old_hash).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .find_tenant_by_secret_hash(&tenant.secret_key_hashes[0])
            .await
            .unwrap()
            .as_ref(),
        Some(&tenant),
        "the tenant as rotated, not a copy from before"
    );

    // A secret cannot belong to two tenants.
    let mut thief = sample_tenant("thief");
    thief.secret_key_hashes = tenant.secret_key_hashes.clone();
    let error = store.put_tenant(&thief).await.unwrap_err();
    assert_eq!(error.code(), "invalid_request");
    assert_eq!(store.get_tenant(&thief.id).await.unwrap(), None);
}

async fn credentials(store: &dyn Store) {
    let (tenant, other_tenant) = (tenant_id("t"), tenant_id("t"));
    let (alice, bob) = (user("alice"), user("bob"));
    let first = credential(&tenant, &alice, Namespace::InApp, "fp-1");
    assert_eq!(enrol(store, &first).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(
        store
            .get_credential(&tenant, Namespace::InApp, "fp-1")
            .await
            .unwrap()
            .as_ref(),
        Some(&first)
    );

    // The same key again, for anyone, is reported with the stored credential.
    let again = credential(&tenant, &bob, Namespace::InApp, "fp-1");
    assert_eq!(
        enrol(store, &again).await.unwrap(),
        InsertOutcome::AlreadyRegistered(first.clone())
    );

    // The same key in another namespace, or another tenant, is a different credential.
    let push = credential(&tenant, &alice, Namespace::Push, "fp-1");
    assert_eq!(enrol(store, &push).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(
        store
            .get_credential(&other_tenant, Namespace::InApp, "fp-1")
            .await
            .unwrap(),
        None
    );
    let elsewhere = credential(&other_tenant, &alice, Namespace::InApp, "fp-1");
    assert_eq!(
        enrol(store, &elsewhere).await.unwrap(),
        InsertOutcome::Inserted
    );

    let listed = credentials_of(store, &tenant, &alice).await;
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&first) && listed.contains(&push));
    assert!(credentials_of(store, &tenant, &bob).await.is_empty());

    // Deleting needs the right user and id.
    assert_eq!(
        store
            .delete_credential(&tenant, &bob, &first.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_credential(&tenant, &alice, &first.id)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .delete_credential(&tenant, &alice, &first.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_credential(&tenant, Namespace::InApp, "fp-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(credentials_of(store, &tenant, &alice).await, vec![push]);
}

async fn removal_receipts(store: &dyn Store) {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let cred = credential(&tenant, &alice, Namespace::InApp, "fp-remove");
    enrol(store, &cred).await.unwrap();
    let receipt = RemovalReceipt {
        window: 42,
        signature_id: "r1".into(),
        expires_at: NOW.plus_seconds(1800),
    };
    store.remove_credential_once(&cred, &receipt).await.unwrap();
    assert_eq!(
        store
            .get_credential(&tenant, Namespace::InApp, "fp-remove")
            .await
            .unwrap(),
        None
    );

    // Re-registered, the same signature cannot remove it again.
    enrol(store, &cred).await.unwrap();
    assert_eq!(
        store
            .remove_credential_once(&cred, &receipt)
            .await
            .unwrap_err(),
        Error::SignatureAlreadyUsed
    );
    assert!(
        store
            .get_credential(&tenant, Namespace::InApp, "fp-remove")
            .await
            .unwrap()
            .is_some()
    );

    // The same key in another namespace: the signature is spent for the key.
    let mut other_namespace = cred.clone();
    other_namespace.namespace = Namespace::Push;
    other_namespace.id = CredentialId::parse("00000000000000000000000000000abc").unwrap();
    enrol(store, &other_namespace).await.unwrap();
    assert_eq!(
        store
            .remove_credential_once(&other_namespace, &receipt)
            .await
            .unwrap_err(),
        Error::SignatureAlreadyUsed
    );
    // A fresh signature in the same window removes it (one key in several namespaces, spec
    // 3.2), and then the first namespace's credential registered again.
    let fresh = RemovalReceipt {
        signature_id: "r2".into(),
        ..receipt.clone()
    };
    store
        .remove_credential_once(&other_namespace, &fresh)
        .await
        .unwrap();
    let fresher = RemovalReceipt {
        signature_id: "r3".into(),
        ..receipt.clone()
    };
    store.remove_credential_once(&cred, &fresher).await.unwrap();
    enrol(store, &cred).await.unwrap();

    // Another window works; a credential that is gone is reported as such.
    let next = RemovalReceipt {
        window: 43,
        ..receipt
    };
    store.remove_credential_once(&cred, &next).await.unwrap();
    let later = RemovalReceipt { window: 44, ..next };
    assert_eq!(
        store
            .remove_credential_once(&cred, &later)
            .await
            .unwrap_err(),
        Error::InvalidCredential
    );
}

async fn challenges(store: &dyn Store) {
    let tenant = tenant_id("t");
    let challenge = sample_challenge_id();
    let expires_at = NOW.plus_seconds(300);
    let fail = || store.record_failed_attempt(&tenant, &challenge, expires_at, 3);
    let mark = || store.get_challenge_mark(&tenant, &challenge);
    assert_eq!(mark().await.unwrap(), None);
    for _ in 0..2 {
        assert!(fail().await.unwrap());
    }
    assert_eq!(
        mark().await.unwrap().unwrap(),
        ChallengeMark {
            consumed: false,
            failed_attempts: 2,
            expires_at
        }
    );
    // Counting stops at the limit: an attacker cannot make every bad signature a write,
    // and the caller learns that the limit is reached (it throttles, DESIGN 6).
    assert!(fail().await.unwrap());
    for _ in 0..5 {
        assert!(!fail().await.unwrap());
    }
    assert_eq!(mark().await.unwrap().unwrap().failed_attempts, 3);
    // Marks are per tenant.
    assert_eq!(
        store
            .get_challenge_mark(&tenant_id("other"), &challenge)
            .await
            .unwrap(),
        None
    );
}

async fn actions(store: &dyn Store) {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let first = action(&tenant, &alice, "signIn", ActionState::ChallengeRequired);
    assert_eq!(store.create_action(&first).await.unwrap(), first);

    // The same key again returns the stored action and changes nothing.
    let mut duplicate = first.clone();
    duplicate.state = ActionState::Allow;
    assert_eq!(store.create_action(&duplicate).await.unwrap(), first);
    assert_eq!(
        store
            .get_action(&tenant, &first.key)
            .await
            .unwrap()
            .as_ref(),
        Some(&first)
    );
    assert_eq!(
        store
            .get_action(&tenant_id("other"), &first.key)
            .await
            .unwrap(),
        None
    );

    let later = NOW.plus_seconds(5);
    let updated = store
        .set_action_state(&tenant, &first.key, ActionState::ReviewRequired, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.state, updated.state_updated_at),
        (ActionState::ReviewRequired, later)
    );
    assert_eq!(
        store.get_action(&tenant, &first.key).await.unwrap(),
        Some(updated)
    );
    let missing = action(&tenant, &alice, "signIn", ActionState::Allow);
    assert_eq!(
        store
            .set_action_state(&tenant, &missing.key, ActionState::Block, later)
            .await
            .unwrap(),
        None
    );

    let mut newer = action(&tenant, &alice, "withdraw", ActionState::Allow);
    newer.created_at = NOW.plus_seconds(60);
    store.create_action(&newer).await.unwrap();
    let all = store.list_actions(&tenant, &alice, NOW).await.unwrap();
    assert_eq!(
        all.iter().map(|a| &a.key).collect::<Vec<_>>(),
        vec![&newer.key, &first.key]
    );
    let recent = store
        .list_actions(&tenant, &alice, NOW.plus_seconds(30))
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert!(
        store
            .list_actions(&tenant, &user("nobody"), NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn user_activity(store: &dyn Store) {
    let tenant = tenant_id("t");
    let (alice, bob) = (user("alice"), user("bob"));
    let credential = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
    enrol(store, &credential).await.unwrap();
    store
        .put_user(&tenant, &alice, &UserProfile::default())
        .await
        .unwrap();
    let mut tracked = action(&tenant, &alice, "pay", ActionState::Allow);
    tracked.context.device_id = Some("device-1".into());
    tracked.rule_ids = vec!["r1".into()];
    tracked.rules = vec![shared::domain::RuleRef {
        rule_id: "r1".into(),
        name: "Rule one".into(),
        description: Some("why".into()),
    }];
    store.create_action(&tracked).await.unwrap();
    let mut old = action(&tenant, &alice, "pay", ActionState::Block);
    old.created_at = NOW.plus_seconds(-3600);
    store.create_action(&old).await.unwrap();
    store
        .create_action(&action(&tenant, &bob, "pay", ActionState::Allow))
        .await
        .unwrap();

    let (credentials, actions, _) = store
        .list_user_activity(&tenant, &alice, NOW.plus_seconds(-60))
        .await
        .unwrap();
    assert_eq!(credentials, vec![credential]);
    assert_eq!(
        actions,
        vec![tracked.clone()],
        "bob's and older ones are not"
    );
    let (_, all, _) = store
        .list_user_activity(&tenant, &alice, NOW.plus_seconds(-7200))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        store
            .get_action(&tenant, &tracked.key)
            .await
            .unwrap()
            .unwrap()
            .rules,
        tracked.rules,
        "the deciding rule is kept with the action"
    );
    let (none, nothing, _) = store
        .list_user_activity(&tenant, &user("nobody"), NOW)
        .await
        .unwrap();
    assert!(none.is_empty() && nothing.is_empty());
}

/// The two configs track reads for `code` (the user's enrolment is read with them).
async fn configs(
    store: &dyn Store,
    tenant: &TenantId,
    code: &ActionCode,
) -> (
    Option<shared::domain::policy::ActionConfig>,
    Option<shared::domain::policy::ActionConfig>,
) {
    let inputs = store
        .get_decision_inputs(tenant, code, &user("anyone"))
        .await
        .unwrap();
    (inputs.own, inputs.tenant_default)
}

/// How many authenticators of each method `user` has, as track reads it.
async fn enrolment_of(store: &dyn Store, tenant: &TenantId, user: &UserId) -> Enrolment {
    store
        .get_decision_inputs(tenant, &ActionCode::parse("signIn").unwrap(), user)
        .await
        .unwrap()
        .enrolment
}

/// The enrolment track reads with the configs follows every add and removal of a credential
/// or passkey, and the deletion of the user (DESIGN 4: track reads it instead of the
/// credentials, so it must never say "not enrolled" of a user with an authenticator).
async fn enrolment_summary(store: &dyn Store) {
    let (tenant, alice, p) = enrolled_passkey(store).await;
    let summary = |device, push, passkey| Enrolment {
        device,
        push,
        passkey,
    };
    assert_eq!(enrolment_of(store, &tenant, &alice).await, summary(0, 0, 1));
    let in_app = credential(&tenant, &alice, Namespace::InApp, "fp-sum-1");
    let qr = credential(&tenant, &alice, Namespace::QrCode, "fp-sum-1");
    let push = credential(&tenant, &alice, Namespace::Push, "fp-sum-2");
    for c in [&in_app, &qr, &push] {
        assert_eq!(enrol(store, c).await.unwrap(), InsertOutcome::Inserted);
    }
    // The same key again is not a second credential.
    assert!(matches!(
        enrol(store, &in_app).await.unwrap(),
        InsertOutcome::AlreadyRegistered(_)
    ));
    assert_eq!(enrolment_of(store, &tenant, &alice).await, summary(2, 1, 1));
    assert_eq!(
        enrolment_of(store, &tenant, &user("bob")).await,
        summary(0, 0, 0)
    );

    store
        .delete_credential(&tenant, &alice, &in_app.id)
        .await
        .unwrap();
    let receipt = RemovalReceipt {
        window: 7,
        signature_id: "r1".into(),
        expires_at: NOW.plus_seconds(1800),
    };
    store.remove_credential_once(&push, &receipt).await.unwrap();
    assert_eq!(enrolment_of(store, &tenant, &alice).await, summary(1, 0, 1));
    store.delete_passkey(&tenant, &alice, &p.id).await.unwrap();
    assert_eq!(enrolment_of(store, &tenant, &alice).await, summary(1, 0, 0));
    store.delete_user(&tenant, &alice).await.unwrap();
    assert_eq!(enrolment_of(store, &tenant, &alice).await, summary(0, 0, 0));
    // A new credential after the deletion counts from zero.
    enrol(
        store,
        &credential(&tenant, &alice, Namespace::InApp, "fp-sum-3"),
    )
    .await
    .unwrap();
    assert_eq!(enrolment_of(store, &tenant, &alice).await, summary(1, 0, 0));
}

/// A saved, replaced or deleted config is what the very next read returns, for every user
/// (DynamoDB keeps one copy per shard of users, written together: DESIGN 4; users `user-0`
/// to `user-159` read every copy, `dynamodb::keys` tests).
async fn config_changes_reach_every_copy(store: &dyn Store) {
    use shared::domain::policy::{ActionConfig, ConfigKey};
    let tenant = tenant_id("shards");
    let code = ActionCode::parse("pay").unwrap();
    let users: Vec<UserId> = (0..160)
        .map(|i| UserId::parse(format!("user-{i}")).unwrap())
        .collect();
    let seen_by_all = |expected: Option<ActionConfig>| {
        let (users, code, tenant) = (&users, &code, &tenant);
        async move {
            for user in users {
                let inputs = store.get_decision_inputs(tenant, code, user).await.unwrap();
                assert_eq!(inputs.own, expected, "{user:?}");
            }
        }
    };
    let config = |outcome: &str| {
        ActionConfig::parse(
            serde_json::json!({"actionCode": "pay", "defaultOutcome": outcome, "rules": []}),
            None,
        )
        .unwrap()
    };
    seen_by_all(None).await;
    store
        .put_action_config(&tenant, &config("ALLOW"))
        .await
        .unwrap();
    seen_by_all(Some(config("ALLOW"))).await;
    store
        .put_action_config(&tenant, &config("BLOCK"))
        .await
        .unwrap();
    seen_by_all(Some(config("BLOCK"))).await;
    let key = ConfigKey::Action(code.clone());
    assert!(store.delete_action_config(&tenant, &key).await.unwrap());
    seen_by_all(None).await;
    assert!(!store.delete_action_config(&tenant, &key).await.unwrap());
}

async fn action_configs(store: &dyn Store) {
    use shared::domain::policy::{ActionConfig, ConfigKey};
    let tenant = tenant_id("t");
    let other = tenant_id("other");
    let pay_code = ActionCode::parse("pay").unwrap();
    let config = |code: &str, outcome: &str| {
        ActionConfig::parse(
            serde_json::json!({"actionCode": code, "defaultOutcome": outcome, "rules": [
                {"ruleId": "r1", "name": "Big", "type": "REVIEW", "priority": 2,
                 "conditions": {">": [{"var": "custom.amount"}, 100]}}
            ]}),
            None,
        )
        .unwrap()
    };
    assert_eq!(configs(store, &tenant, &pay_code).await, (None, None));
    let pay = config("pay", "ALLOW");
    let fallback = config("*", "BLOCK");
    store.put_action_config(&tenant, &pay).await.unwrap();
    assert_eq!(
        configs(store, &tenant, &pay_code).await,
        (Some(pay.clone()), None)
    );
    store.put_action_config(&tenant, &fallback).await.unwrap();
    store
        .put_action_config(&tenant, &config("signIn", "CHALLENGE"))
        .await
        .unwrap();
    assert_eq!(
        configs(store, &tenant, &pay_code).await,
        (Some(pay.clone()), Some(fallback.clone()))
    );
    let unconfigured = ActionCode::parse("withdraw").unwrap();
    assert_eq!(
        configs(store, &tenant, &unconfigured).await,
        (None, Some(fallback.clone()))
    );
    assert_eq!(
        store
            .get_action_config(&tenant, &ConfigKey::TenantDefault)
            .await
            .unwrap(),
        Some(fallback.clone())
    );

    // Replacing keeps one config per code.
    let replaced = config("pay", "REVIEW");
    store.put_action_config(&tenant, &replaced).await.unwrap();
    let codes: Vec<String> = store
        .list_action_configs(&tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.action_code)
        .collect();
    assert_eq!(codes, ["*", "pay", "signIn"]);
    assert_eq!(
        store
            .get_action_config(&tenant, &ConfigKey::Action(pay_code.clone()))
            .await
            .unwrap(),
        Some(replaced)
    );

    // Tenants do not see each other's configs.
    assert!(store.list_action_configs(&other).await.unwrap().is_empty());
    assert_eq!(configs(store, &other, &pay_code).await, (None, None));

    let pay_key = ConfigKey::Action(pay_code.clone());
    assert!(store.delete_action_config(&tenant, &pay_key).await.unwrap());
    assert!(!store.delete_action_config(&tenant, &pay_key).await.unwrap());
    assert_eq!(
        configs(store, &tenant, &pay_code).await,
        (None, Some(fallback))
    );
}

async fn users(store: &dyn Store) {
    let tenant = tenant_id("t");
    let (alice, bob) = (user("alice"), user("bob"));
    assert_eq!(store.get_user(&tenant, &alice).await.unwrap(), None);
    let profile = UserProfile {
        email: Some("alice@example.com".into()),
        custom: Some(serde_json::json!({"tier": "gold"})),
        ..UserProfile::default()
    };
    store.put_user(&tenant, &alice, &profile).await.unwrap();
    store.put_user(&tenant, &bob, &profile).await.unwrap();
    assert_eq!(
        store.get_user(&tenant, &alice).await.unwrap().as_ref(),
        Some(&profile)
    );

    let cred = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
    enrol(store, &cred).await.unwrap();
    let bobs = credential(&tenant, &bob, Namespace::InApp, &unique("fp"));
    enrol(store, &bobs).await.unwrap();
    let tracked = action(&tenant, &alice, "signIn", ActionState::Allow);
    store.create_action(&tracked).await.unwrap();

    store.delete_user(&tenant, &alice).await.unwrap();
    assert_eq!(store.get_user(&tenant, &alice).await.unwrap(), None);
    assert!(credentials_of(store, &tenant, &alice).await.is_empty());
    assert_eq!(
        store
            .get_credential(&tenant, Namespace::InApp, &cred.key_fingerprint)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_action(&tenant, &tracked.key).await.unwrap(), None);
    // Bob is untouched.
    assert_eq!(store.get_user(&tenant, &bob).await.unwrap(), Some(profile));
    assert_eq!(credentials_of(store, &tenant, &bob).await, vec![bobs]);
}

struct Scene {
    tenant: TenantId,
    credential: Credential,
    challenge: ChallengeId,
    action: Action,
}

async fn scene(store: &dyn Store, state: ActionState) -> Scene {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let credential = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
    enrol(store, &credential).await.unwrap();
    let challenge = sample_challenge_id();
    let action = action(&tenant, &alice, "signIn", state);
    store.create_action(&action).await.unwrap();
    Scene {
        tenant,
        credential,
        challenge,
        action,
    }
}

/// A pending push challenge of the scene's user, tied to the scene's action.
fn pending_push(scene: &Scene) -> ApprovalChallenge {
    ApprovalChallenge {
        action: Some(scene.action.key.clone()),
        ..approval(
            &scene.tenant,
            Some(&scene.credential.user_id),
            ApprovalKind::Push,
        )
    }
}

/// The commit of an answer to a push challenge of the scene: the challenge moves to
/// `approved` with the scene's credential and action.
fn commit_approval(
    scene: &Scene,
    approved: ApprovalChallenge,
    now: Timestamp,
) -> VerificationCommit {
    VerificationCommit {
        tenant_id: scene.tenant.clone(),
        single_use: SingleUse::Approval { approved },
        credential: scene.credential.clone(),
        method: VerificationMethod::Push,
        action: ActionWrite::Complete(scene.action.key.clone()),
        now,
    }
}

/// The in-app single use of `challenge`, expiring at `expires_at` and issued 300 s before.
fn in_order(challenge: &ChallengeId, expires_at: Timestamp) -> SingleUse {
    SingleUse::InOrder {
        order: ChallengeOrder::at(Timestamp(expires_at.0 - 300_000), 0, challenge),
        expires_at,
    }
}

fn commit(scene: &Scene, now: Timestamp) -> VerificationCommit {
    VerificationCommit {
        tenant_id: scene.tenant.clone(),
        single_use: in_order(&scene.challenge, NOW.plus_seconds(300)),
        credential: scene.credential.clone(),
        method: VerificationMethod::Device,
        action: ActionWrite::Complete(scene.action.key.clone()),
        now,
    }
}

async fn verification(store: &dyn Store) {
    let s = scene(store, ActionState::ChallengeRequired).await;
    let at = NOW.plus_seconds(10);
    let key = store.complete_verification(&commit(&s, at)).await.unwrap();
    assert_eq!(key, s.action.key);
    let done = store.get_action(&s.tenant, &key).await.unwrap().unwrap();
    assert_eq!(done.state, ActionState::ChallengeSucceeded);
    assert_eq!(done.state_updated_at, at);
    assert_eq!(
        done.created_at, s.action.created_at,
        "the rest of the action is kept"
    );
    assert_eq!(done.verification_method, Some(VerificationMethod::Device));
    assert_eq!(
        done.verified_by_authenticator_id.as_ref(),
        Some(&s.credential.id)
    );
    assert_eq!(
        store
            .get_challenge_mark(&s.tenant, &s.challenge)
            .await
            .unwrap(),
        None,
        "an in-app challenge is used in order, with no record of its own"
    );
    assert_last_verified(store, &s.credential, Some(at)).await;

    // Replay.
    assert_eq!(
        store
            .complete_verification(&commit(&s, at))
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed
    );

    // A verification that creates its action.
    let s2 = scene(store, ActionState::Allow).await;
    let mut new_action = action(
        &s2.tenant,
        &s2.credential.user_id,
        "pay",
        ActionState::ChallengeRequired,
    );
    new_action.created_at = at;
    let mut create = commit(&s2, at);
    create.action = ActionWrite::Create(new_action.clone());
    let key = store.complete_verification(&create).await.unwrap();
    assert_eq!(key, new_action.key);
    let created = store.get_action(&s2.tenant, &key).await.unwrap().unwrap();
    assert_eq!(created.state, ActionState::ChallengeSucceeded);
    assert_eq!(
        created.verified_by_authenticator_id.as_ref(),
        Some(&s2.credential.id)
    );
    assert_eq!(created.created_at, at);
}

/// Each failed condition gives its own error, and leaves every record as it was.
async fn verification_failures_write_nothing(store: &dyn Store) {
    async fn assert_untouched(store: &dyn Store, s: &Scene) {
        let action = store
            .get_action(&s.tenant, &s.action.key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(action.state, s.action.state);
        assert_last_verified(store, &s.credential, None).await;
    }

    // Expired: checked in code, whatever TTL has or has not deleted.
    let s = scene(store, ActionState::ChallengeRequired).await;
    let late = NOW.plus_seconds(300);
    assert_eq!(
        store
            .complete_verification(&commit(&s, late))
            .await
            .unwrap_err(),
        Error::ChallengeExpired
    );
    assert_untouched(store, &s).await;

    // Failed signatures never end a challenge (DESIGN 6): even at the counting limit, the
    // right signature still completes it.
    let s = scene(store, ActionState::ChallengeRequired).await;
    for _ in 0..4 {
        store
            .record_failed_attempt(&s.tenant, &s.challenge, NOW.plus_seconds(300), 3)
            .await
            .unwrap();
    }
    store.complete_verification(&commit(&s, NOW)).await.unwrap();
    assert_eq!(
        store
            .complete_verification(&commit(&s, NOW))
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed
    );

    // A blocked action cannot be completed by a signature.
    let s = scene(store, ActionState::Block).await;
    assert_eq!(
        store
            .complete_verification(&commit(&s, NOW))
            .await
            .unwrap_err(),
        Error::ActionNotChallengeable("BLOCK")
    );
    assert_untouched(store, &s).await;

    // A missing action, or one past its retention.
    let s = scene(store, ActionState::ChallengeRequired).await;
    let mut no_action = commit(&s, NOW);
    no_action.action = ActionWrite::Complete(
        action(&s.tenant, &s.credential.user_id, "x", ActionState::Allow).key,
    );
    assert_eq!(
        store.complete_verification(&no_action).await.unwrap_err(),
        Error::ActionNotFound
    );
    assert_untouched(store, &s).await;
    let retired = s.action.expires_at;
    let mut after_retention = commit(&s, retired);
    after_retention.single_use = in_order(&s.challenge, retired.plus_seconds(300));
    assert_eq!(
        store
            .complete_verification(&after_retention)
            .await
            .unwrap_err(),
        Error::ActionNotFound
    );
    assert_untouched(store, &s).await;

    // The credential was removed in between.
    let s = scene(store, ActionState::ChallengeRequired).await;
    store
        .delete_credential(&s.tenant, &s.credential.user_id, &s.credential.id)
        .await
        .unwrap();
    assert_eq!(
        store
            .complete_verification(&commit(&s, NOW))
            .await
            .unwrap_err(),
        Error::InvalidCredential
    );

    // The credential was replaced by another registration of the same key.
    let s = scene(store, ActionState::ChallengeRequired).await;
    let mut stale = commit(&s, NOW);
    stale.credential.id = CredentialId::parse("0000").unwrap();
    assert_eq!(
        store.complete_verification(&stale).await.unwrap_err(),
        Error::InvalidCredential
    );
    assert_untouched(store, &s).await;
    // Nor was the challenge used up by the refusal: it still completes the action.
    store.complete_verification(&commit(&s, NOW)).await.unwrap();
}

/// A user's in-app challenges are used in the order they were issued ([`ChallengeOrder`]): a
/// replay is `ChallengeAlreadyUsed`, an older challenge after a newer one
/// `ChallengeSuperseded`, and neither writes anything; other users are not affected.
async fn in_app_challenges_are_used_in_order(store: &dyn Store) {
    let s = scene(store, ActionState::ChallengeRequired).await;
    let older = (sample_challenge_id(), NOW.plus_seconds(299));
    let newer = (sample_challenge_id(), NOW.plus_seconds(300));
    let with = |challenge: &(ChallengeId, Timestamp)| VerificationCommit {
        single_use: in_order(&challenge.0, challenge.1),
        ..commit(&s, NOW)
    };

    store.complete_verification(&with(&newer)).await.unwrap();
    assert_eq!(
        store
            .complete_verification(&with(&newer))
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed
    );
    assert_eq!(
        store
            .complete_verification(&with(&older))
            .await
            .unwrap_err(),
        Error::ChallengeSuperseded
    );
    // Issued in the same millisecond: the issuing process's sequence orders them; on two
    // instances with the same sequence number, the fingerprint.
    let at = NOW.plus_seconds(1);
    let expires_at = at.plus_seconds(300);
    let same_ms = |sequence: u64, id: &ChallengeId| VerificationCommit {
        single_use: SingleUse::InOrder {
            order: ChallengeOrder::at(at, sequence, id),
            expires_at,
        },
        ..commit(&s, NOW)
    };
    let (a, b) = (sample_challenge_id(), sample_challenge_id());
    store.complete_verification(&same_ms(7, &b)).await.unwrap();
    store.complete_verification(&same_ms(8, &a)).await.unwrap();
    assert_eq!(
        store
            .complete_verification(&same_ms(7, &b))
            .await
            .unwrap_err(),
        Error::ChallengeSuperseded
    );
    let (c, d) = (sample_challenge_id(), sample_challenge_id());
    let (first, second) = if ChallengeOrder::at(at, 9, &c) < ChallengeOrder::at(at, 9, &d) {
        (c, d)
    } else {
        (d, c)
    };
    store
        .complete_verification(&same_ms(9, &first))
        .await
        .unwrap();
    store
        .complete_verification(&same_ms(9, &second))
        .await
        .unwrap();
    assert_eq!(
        store
            .complete_verification(&same_ms(9, &second))
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed
    );

    // Another user's older challenge is theirs to use.
    let other = scene(store, ActionState::ChallengeRequired).await;
    let other_commit = VerificationCommit {
        single_use: in_order(&older.0, older.1),
        ..commit(&other, NOW)
    };
    store.complete_verification(&other_commit).await.unwrap();

    // A refused one changed nothing: the action of a fresh scene stays as it was.
    let fresh = scene(store, ActionState::ChallengeRequired).await;
    store
        .complete_verification(&commit(&fresh, NOW))
        .await
        .unwrap();
    let replay_elsewhere = VerificationCommit {
        action: ActionWrite::Complete(
            action(
                &fresh.tenant,
                &fresh.credential.user_id,
                "x",
                ActionState::Allow,
            )
            .key,
        ),
        ..commit(&fresh, NOW.plus_seconds(1))
    };
    assert_eq!(
        store
            .complete_verification(&replay_elsewhere)
            .await
            .unwrap_err(),
        Error::ChallengeAlreadyUsed,
        "a replay is refused as one even where its action is gone"
    );
    assert_last_verified(store, &fresh.credential, Some(NOW)).await;
}

/// `last_verified_at` of `credential` as every read shows it: by key, by user, with passkeys.
async fn assert_last_verified(store: &dyn Store, credential: &Credential, at: Option<Timestamp>) {
    let tenant = &credential.tenant_id;
    let by_key = store
        .get_credential(tenant, credential.namespace, &credential.key_fingerprint)
        .await
        .unwrap();
    if let Some(by_key) = by_key {
        assert_eq!(by_key.last_verified_at, at, "get_credential");
    }
    let of_user = |list: Vec<Credential>| {
        list.into_iter()
            .find(|c| c.id == credential.id)
            .and_then(|c| c.last_verified_at)
    };
    let listed = store
        .list_user_credentials(tenant, &credential.user_id)
        .await
        .unwrap();
    assert_eq!(of_user(listed), at, "list_user_credentials");
    let (listed, _) = store
        .list_user_authenticators(tenant, &credential.user_id)
        .await
        .unwrap();
    assert_eq!(of_user(listed), at, "list_user_authenticators");
}

async fn concurrent_verifies_have_one_winner(store: Arc<dyn Store>) {
    let s = scene(&*store, ActionState::ChallengeRequired).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (store, c) = (store.clone(), commit(&s, NOW));
            tokio::spawn(async move { store.complete_verification(&c).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(error) => assert_eq!(error, Error::ChallengeAlreadyUsed),
        }
    }
    assert_eq!(wins, 1);
}

async fn concurrent_adds_leave_one_credential(store: Arc<dyn Store>) {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let fingerprint = unique("fp");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let c = credential(&tenant, &alice, Namespace::InApp, &fingerprint);
            tokio::spawn(async move { enrol(&*store, &c).await })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() == InsertOutcome::Inserted {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1);
    assert_eq!(credentials_of(&*store, &tenant, &alice).await.len(), 1);
}

/// The guard is checked with the insert (issue #11.7): a gone, expired or blocked action, and a
/// first-credential-only add for a user who has one, write nothing.
async fn enrolment_guard(store: &dyn Store) {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let first = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
    let mut guard = enrolment_action(store, &first).await;
    guard.first_credential_only = true;

    let mut gone = guard.clone();
    gone.action.idempotency_key = IdempotencyKey::parse(unique("never-tracked")).unwrap();
    assert_eq!(
        store.insert_credential(&first, &gone).await.unwrap_err(),
        Error::ActionNotFound
    );
    let mut late = guard.clone();
    late.now = NOW.plus_seconds(31 * 24 * 3600);
    assert_eq!(
        store.insert_credential(&first, &late).await.unwrap_err(),
        Error::ActionNotFound
    );
    store
        .set_action_state(&tenant, &guard.action, ActionState::Block, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.insert_credential(&first, &guard).await.unwrap_err(),
        Error::ActionForbidsEnrolment("BLOCK")
    );
    assert!(credentials_of(store, &tenant, &alice).await.is_empty());

    store
        .set_action_state(&tenant, &guard.action, ActionState::ChallengeRequired, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.insert_credential(&first, &guard).await.unwrap(),
        InsertOutcome::Inserted
    );
    // The same key again is the same credential, not a second one.
    assert_eq!(
        store.insert_credential(&first, &guard).await.unwrap(),
        InsertOutcome::AlreadyRegistered(first.clone())
    );
    let second = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
    assert_eq!(
        store.insert_credential(&second, &guard).await.unwrap_err(),
        Error::InsufficientScope(shared::domain::ADD_AUTHENTICATORS_SCOPE)
    );
    // With the scope, a second one; once both are removed, a first one again.
    guard.first_credential_only = false;
    store.insert_credential(&second, &guard).await.unwrap();
    for c in [&first, &second] {
        store
            .delete_credential(&tenant, &alice, &c.id)
            .await
            .unwrap()
            .unwrap();
    }
    guard.first_credential_only = true;
    let third = credential(&tenant, &alice, Namespace::Push, &unique("fp"));
    assert_eq!(
        store.insert_credential(&third, &guard).await.unwrap(),
        InsertOutcome::Inserted
    );

    // Deleting the user withdraws the guard's action.
    store.delete_user(&tenant, &alice).await.unwrap();
    let fourth = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
    assert_eq!(
        store.insert_credential(&fourth, &guard).await.unwrap_err(),
        Error::ActionNotFound
    );
    assert!(credentials_of(store, &tenant, &alice).await.is_empty());
}

/// A public key belongs to one user per tenant, whatever the namespace (DESIGN 4, issue
/// #11.1): its holder may add it to other namespaces, nobody else may, until every
/// credential of it is gone. Two users racing for one key in different namespaces: exactly
/// one ends up holding it.
async fn one_user_per_key_across_namespaces(store: Arc<dyn Store>) {
    let tenant = tenant_id("t");
    let (alice, bob) = (user("alice"), user("bob"));
    let fingerprint = unique("fp");
    let alices_push = credential(&tenant, &alice, Namespace::Push, &fingerprint);
    enrol(&*store, &alices_push).await.unwrap();
    let alices_in_app = credential(&tenant, &alice, Namespace::InApp, &fingerprint);
    assert_eq!(
        enrol(&*store, &alices_in_app).await.unwrap(),
        InsertOutcome::Inserted
    );
    for namespace in [Namespace::InApp, Namespace::QrCode, Namespace::Device] {
        let bobs = credential(&tenant, &bob, namespace, &fingerprint);
        let outcome = enrol(&*store, &bobs).await;
        assert!(
            matches!(
                outcome,
                Err(Error::CredentialConflict) | Ok(InsertOutcome::AlreadyRegistered(_))
            ),
            "{namespace:?}: {outcome:?}"
        );
        assert_eq!(
            store
                .get_credential(&tenant, namespace, &fingerprint)
                .await
                .unwrap()
                .map(|c| c.user_id),
            (namespace == Namespace::InApp).then(|| alice.clone())
        );
    }
    // Once alice holds it nowhere, bob may.
    for c in [&alices_push, &alices_in_app] {
        store
            .delete_credential(&tenant, &alice, &c.id)
            .await
            .unwrap()
            .unwrap();
    }
    let bobs = credential(&tenant, &bob, Namespace::QrCode, &fingerprint);
    assert_eq!(
        enrol(&*store, &bobs).await.unwrap(),
        InsertOutcome::Inserted
    );

    // The race: 8 adds each for two users, each user in its own namespace.
    let fingerprint = unique("fp");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (holder, namespace) = if i % 2 == 0 {
            (&alice, Namespace::InApp)
        } else {
            (&bob, Namespace::Push)
        };
        let store = store.clone();
        let c = credential(&tenant, holder, namespace, &fingerprint);
        let guard = enrolment_action(&*store, &c).await;
        tasks.push(tokio::spawn(async move {
            store.insert_credential(&c, &guard).await
        }));
    }
    let mut inserted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(InsertOutcome::Inserted) => inserted += 1,
            Ok(InsertOutcome::AlreadyRegistered(_)) | Err(Error::CredentialConflict) => {}
            // DynamoDB cancels a transaction that conflicts with one under way: retryable.
            Err(Error::StoreUnavailable) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(inserted, 1);
    let mut holders = Vec::new();
    for namespace in [Namespace::InApp, Namespace::Push] {
        if let Some(c) = store
            .get_credential(&tenant, namespace, &fingerprint)
            .await
            .unwrap()
        {
            holders.push(c.user_id);
        }
    }
    assert_eq!(holders.len(), 1, "{holders:?}");
}

/// Sixteen concurrent first-credential-only adds of different keys for a user with none
/// (one scopeless token, issue #11.7): exactly one credential.
async fn concurrent_first_credentials_leave_one(store: Arc<dyn Store>) {
    let tenant = tenant_id("t");
    let alice = user("alice");
    let probe = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
    let mut guard = enrolment_action(&*store, &probe).await;
    guard.first_credential_only = true;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let guard = guard.clone();
            let c = credential(&tenant, &alice, Namespace::InApp, &unique("fp"));
            tokio::spawn(async move { store.insert_credential(&c, &guard).await })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(InsertOutcome::Inserted) => inserted += 1,
            Err(Error::InsufficientScope(_)) | Err(Error::StoreUnavailable) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(inserted, 1);
    assert_eq!(credentials_of(&*store, &tenant, &alice).await.len(), 1);
}

// ---------------------------------------------------------------- passkeys (issue #15)

fn passkey(tenant: &TenantId, user: &UserId) -> PasskeyRecord {
    PasskeyRecord {
        id: CredentialId::parse(format!("{:032x}", COUNTER.fetch_add(1, Ordering::SeqCst)))
            .unwrap(),
        tenant_id: tenant.clone(),
        user_id: user.clone(),
        credential_id: unique("cred").replace('-', "_"),
        user_handle: "aGFuZGxl".into(),
        credential: serde_json::json!({"opaque": "library state"}),
        counter: 0,
        name: Some("alice@example.com".into()),
        aaguid: None,
        backed_up: true,
        created_at: NOW,
        last_verified_at: None,
    }
}

fn ceremony(tenant: &TenantId, expires_at: Timestamp) -> Ceremony {
    Ceremony {
        id: unique("ceremony").replace('-', "_"),
        tenant_id: tenant.clone(),
        purpose: CeremonyPurpose::Authentication {
            target: shared::domain::ChallengeTarget::Unbound,
            user: None,
        },
        state: serde_json::json!({"challenge": "abc"}),
        consumed: false,
        expires_at,
    }
}

/// A user with a retained action that allows enrolment, and the guard of a scoped token.
async fn passkey_scene(store: &dyn Store) -> (TenantId, UserId, EnrolmentGuard) {
    let tenant = tenant_id("pk");
    let user = user("pk-user");
    let enrolment = action(&tenant, &user, "addAuthenticator", ActionState::Allow);
    store.create_action(&enrolment).await.unwrap();
    let guard = EnrolmentGuard {
        action: enrolment.key,
        first_credential_only: false,
        now: NOW,
    };
    (tenant, user, guard)
}

async fn passkey_enrolment(store: &dyn Store) {
    let (tenant, user, guard) = passkey_scene(store).await;
    let live = ceremony(&tenant, NOW.plus_seconds(300));
    store.put_ceremony(&live).await.unwrap();
    assert_eq!(
        store.get_ceremony(&tenant, &live.id, NOW).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store
            .get_ceremony(&tenant_id("other"), &live.id, NOW)
            .await
            .unwrap(),
        None
    );

    let first = passkey(&tenant, &user);
    let enrolment =
        |ceremony_id: &str, passkey: &PasskeyRecord, guard: &EnrolmentGuard| PasskeyEnrolment {
            ceremony_id: ceremony_id.to_owned(),
            passkey: passkey.clone(),
            guard: guard.clone(),
            completes_action: true,
        };
    store
        .enrol_passkey(&enrolment(&live.id, &first, &guard))
        .await
        .unwrap();
    // Found by credential id and listed with the user; the ceremony is used up.
    assert_eq!(
        store
            .get_passkey(&tenant, &first.credential_id)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.list_user_passkeys(&tenant, &user).await.unwrap(),
        vec![first.clone()]
    );
    assert!(
        store
            .get_ceremony(&tenant, &live.id, NOW)
            .await
            .unwrap()
            .unwrap()
            .consumed
    );
    // spec 3.5: the token's action completed by the registration, in the same step.
    let completed = store
        .get_action(&tenant, &guard.action)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(completed.state, ActionState::ChallengeSucceeded);
    assert_eq!(completed.state_updated_at, NOW);
    assert_eq!(
        completed.verification_method,
        Some(shared::domain::VerificationMethod::Passkey)
    );
    assert_eq!(
        completed.verified_by_authenticator_id,
        Some(first.id.clone())
    );
    assert_eq!(completed.enrolled_passkey_id, Some(first.id.clone()));

    // Each refusal below on an action of its own that may still register.
    let fresh_guard = || async {
        let fresh = action(&tenant, &user, "addAuthenticator", ActionState::Allow);
        store.create_action(&fresh).await.unwrap();
        EnrolmentGuard {
            action: fresh.key,
            ..guard.clone()
        }
    };
    let new_ceremony = || async {
        let c = ceremony(&tenant, NOW.plus_seconds(300));
        store.put_ceremony(&c).await.unwrap();
        c.id
    };

    // The same ceremony again: refused, nothing written.
    let second = passkey(&tenant, &user);
    assert_eq!(
        store
            .enrol_passkey(&enrolment(&live.id, &second, &fresh_guard().await))
            .await,
        Err(Error::ChallengeAlreadyUsed)
    );
    // The same token's action with a new ceremony: it registered a passkey already.
    assert_eq!(
        store
            .enrol_passkey(&enrolment(&new_ceremony().await, &second, &guard))
            .await,
        Err(Error::PasskeyTokenAlreadyUsed)
    );
    // An unknown or expired ceremony.
    assert_eq!(
        store
            .enrol_passkey(&enrolment("unknown", &second, &fresh_guard().await))
            .await,
        Err(Error::ChallengeNotFound)
    );
    let old = ceremony(&tenant, NOW);
    store.put_ceremony(&old).await.unwrap();
    assert_eq!(
        store
            .enrol_passkey(&enrolment(&old.id, &second, &fresh_guard().await))
            .await,
        Err(Error::ChallengeExpired)
    );
    // A credential id already registered (to anyone in the tenant).
    let clash = PasskeyRecord {
        credential_id: first.credential_id.clone(),
        ..passkey(&tenant, &user)
    };
    let clash_guard = fresh_guard().await;
    assert_eq!(
        store
            .enrol_passkey(&enrolment(&new_ceremony().await, &clash, &clash_guard))
            .await,
        Err(Error::CredentialConflict)
    );
    // Nothing of a refused registration is written: its action is still open.
    let untouched = store
        .get_action(&tenant, &clash_guard.action)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.state, ActionState::Allow);
    assert_eq!(untouched.enrolled_passkey_id, None);
    // A token that may add only a first authenticator: the user has one (a passkey).
    let first_only = EnrolmentGuard {
        first_credential_only: true,
        ..fresh_guard().await
    };
    assert_eq!(
        store
            .enrol_passkey(&enrolment(&new_ceremony().await, &second, &first_only))
            .await,
        Err(Error::InsufficientScope(
            shared::domain::ADD_AUTHENTICATORS_SCOPE
        ))
    );
    // ... and the same for a device credential of that user.
    let device = credential(&tenant, &user, Namespace::InApp, &unique("fp"));
    assert_eq!(
        store.insert_credential(&device, &first_only).await,
        Err(Error::InsufficientScope(
            shared::domain::ADD_AUTHENTICATORS_SCOPE
        ))
    );
    // A blocked action withdraws its token.
    let blocked = action(&tenant, &user, "addAuthenticator", ActionState::Block);
    store.create_action(&blocked).await.unwrap();
    let withdrawn = EnrolmentGuard {
        action: blocked.key,
        ..guard.clone()
    };
    assert_eq!(
        store
            .enrol_passkey(&enrolment(&new_ceremony().await, &second, &withdrawn))
            .await,
        Err(Error::ActionForbidsEnrolment("BLOCK"))
    );
    // An action a challenge completed: registering leaves its state and method, and marks it.
    let mut challenged = action(
        &tenant,
        &user,
        "addAuthenticator",
        ActionState::ChallengeSucceeded,
    );
    challenged.verification_method = Some(shared::domain::VerificationMethod::Push);
    store.create_action(&challenged).await.unwrap();
    let challenged_guard = EnrolmentGuard {
        action: challenged.key.clone(),
        ..guard.clone()
    };
    // Expected open but found completed (a challenge won the race): refused.
    assert_eq!(
        store
            .enrol_passkey(&enrolment(
                &new_ceremony().await,
                &second,
                &challenged_guard
            ))
            .await,
        Err(Error::ActionNotChallengeable("CHALLENGE_SUCCEEDED"))
    );
    store
        .enrol_passkey(&PasskeyEnrolment {
            completes_action: false,
            ..enrolment(&new_ceremony().await, &second, &challenged_guard)
        })
        .await
        .unwrap();
    let marked = store
        .get_action(&tenant, &challenged.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marked.state, ActionState::ChallengeSucceeded);
    assert_eq!(
        marked.verification_method,
        Some(shared::domain::VerificationMethod::Push)
    );
    assert_eq!(marked.enrolled_passkey_id, Some(second.id.clone()));
    assert_eq!(
        store
            .list_user_passkeys(&tenant, &user)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn enrolled_passkey(store: &dyn Store) -> (TenantId, UserId, PasskeyRecord) {
    let (tenant, user, guard) = passkey_scene(store).await;
    let c = ceremony(&tenant, NOW.plus_seconds(300));
    store.put_ceremony(&c).await.unwrap();
    let p = passkey(&tenant, &user);
    store
        .enrol_passkey(&PasskeyEnrolment {
            ceremony_id: c.id,
            passkey: p.clone(),
            guard,
            completes_action: true,
        })
        .await
        .unwrap();
    (tenant, user, p)
}

fn sign_in(
    p: &PasskeyRecord,
    ceremony_id: &str,
    action: ActionWrite,
    counter: u32,
) -> PasskeySignIn {
    PasskeySignIn {
        tenant_id: p.tenant_id.clone(),
        ceremony_id: ceremony_id.to_owned(),
        passkey: PasskeyRecord {
            counter,
            last_verified_at: Some(NOW),
            ..p.clone()
        },
        previous_counter: p.counter,
        action,
        now: NOW,
    }
}

async fn passkey_sign_in(store: &dyn Store) {
    let (tenant, user, p) = enrolled_passkey(store).await;
    let target = action(&tenant, &user, "signIn", ActionState::ChallengeRequired);
    store.create_action(&target).await.unwrap();
    let c = ceremony(&tenant, NOW.plus_seconds(300));
    store.put_ceremony(&c).await.unwrap();

    let done = store
        .complete_passkey_sign_in(&sign_in(
            &p,
            &c.id,
            ActionWrite::Complete(target.key.clone()),
            7,
        ))
        .await
        .unwrap();
    assert_eq!(done, target.key);
    let action = store
        .get_action(&tenant, &target.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(action.state, ActionState::ChallengeSucceeded);
    assert_eq!(
        action.verification_method,
        Some(VerificationMethod::Passkey)
    );
    assert_eq!(action.verified_by_authenticator_id, Some(p.id.clone()));
    // Both copies carry the new counter.
    let stored = store
        .get_passkey(&tenant, &p.credential_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.counter, 7);
    assert_eq!(stored.last_verified_at, Some(NOW));
    assert_eq!(
        store.list_user_passkeys(&tenant, &user).await.unwrap()[0].counter,
        7
    );

    // The ceremony is single-use.
    assert_eq!(
        store
            .complete_passkey_sign_in(&sign_in(
                &stored,
                &c.id,
                ActionWrite::Complete(target.key.clone()),
                8
            ))
            .await,
        Err(Error::ChallengeAlreadyUsed)
    );
    // A sign-in computed from a stale counter (a concurrent one won): refused, nothing written.
    let c = ceremony(&tenant, NOW.plus_seconds(300));
    store.put_ceremony(&c).await.unwrap();
    assert_eq!(
        store
            .complete_passkey_sign_in(&sign_in(
                &p,
                &c.id,
                ActionWrite::Complete(target.key.clone()),
                8
            ))
            .await,
        Err(Error::PasskeyRejected(
            shared::domain::PasskeyCheck::CounterRegression
        ))
    );
    assert!(
        !store
            .get_ceremony(&tenant, &c.id, NOW)
            .await
            .unwrap()
            .unwrap()
            .consumed
    );
    // A blocked action is not completed.
    let blocked = self::action(&tenant, &user, "pay", ActionState::Block);
    store.create_action(&blocked).await.unwrap();
    assert_eq!(
        store
            .complete_passkey_sign_in(&sign_in(
                &stored,
                &c.id,
                ActionWrite::Complete(blocked.key.clone()),
                8
            ))
            .await,
        Err(Error::ActionNotChallengeable("BLOCK"))
    );
    // A created action (discoverable sign-in).
    let created = self::action(
        &tenant,
        &user,
        "signInWithPasskey",
        ActionState::ChallengeRequired,
    );
    let key = store
        .complete_passkey_sign_in(&sign_in(
            &stored,
            &c.id,
            ActionWrite::Create(created.clone()),
            8,
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_action(&tenant, &key)
            .await
            .unwrap()
            .unwrap()
            .state,
        ActionState::ChallengeSucceeded
    );
}

async fn concurrent_passkey_sign_ins_have_one_winner(store: Arc<dyn Store>) {
    let (tenant, user, p) = enrolled_passkey(&*store).await;
    let target = action(&tenant, &user, "signIn", ActionState::ChallengeRequired);
    store.create_action(&target).await.unwrap();
    let c = ceremony(&tenant, NOW.plus_seconds(300));
    store.put_ceremony(&c).await.unwrap();
    let mut tasks = Vec::new();
    for counter in 1..=8 {
        let store = store.clone();
        let attempt = sign_in(
            &p,
            &c.id,
            ActionWrite::Complete(target.key.clone()),
            counter,
        );
        tasks.push(tokio::spawn(async move {
            store.complete_passkey_sign_in(&attempt).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::ChallengeAlreadyUsed | Error::StoreUnavailable) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn passkeys_go_with_their_user(store: &dyn Store) {
    let (tenant, user, p) = enrolled_passkey(store).await;
    // Another user of the tenant, whose first authenticator is a passkey.
    let other_user = self::user("pk-other");
    let enrolment = action(&tenant, &other_user, "addAuthenticator", ActionState::Allow);
    store.create_action(&enrolment).await.unwrap();
    let c = ceremony(&tenant, NOW.plus_seconds(300));
    store.put_ceremony(&c).await.unwrap();
    let kept = passkey(&tenant, &other_user);
    store
        .enrol_passkey(&PasskeyEnrolment {
            ceremony_id: c.id,
            passkey: kept.clone(),
            guard: EnrolmentGuard {
                action: enrolment.key,
                first_credential_only: true,
                now: NOW,
            },
            completes_action: true,
        })
        .await
        .unwrap();
    // Removal by authenticator id, of the owner only.
    assert_eq!(
        store
            .delete_passkey(&tenant, &other_user, &p.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.delete_passkey(&tenant, &user, &p.id).await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(
        store.get_passkey(&tenant, &p.credential_id).await.unwrap(),
        None
    );
    assert!(
        store
            .list_user_passkeys(&tenant, &user)
            .await
            .unwrap()
            .is_empty()
    );
    // Deleting a user deletes both copies of their passkeys, and no one else's.
    store.delete_user(&tenant, &other_user).await.unwrap();
    assert_eq!(
        store
            .get_passkey(&tenant, &kept.credential_id)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .list_user_passkeys(&tenant, &other_user)
            .await
            .unwrap()
            .is_empty()
    );
}
