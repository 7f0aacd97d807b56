//! Events to the tenant's backend (issue #19, DESIGN 10): signed webhooks, in the envelope and
//! with the `X-Signature-V2` signature of `push.created` (spec 2.11), for what happened to the
//! records the store holds.
//!
//! Events are derived from the store's changes, never from the use cases, so no code path that
//! writes can forget to send one: on AWS from DynamoDB Streams (the `events` function), on one
//! machine from the embedded store's outbox, written in the same SQLite transaction as the change
//! (`store::embedded`, DESIGN 10). Both decode a change into a [`Change`] (the record before and
//! after) and call the one mapping, [`events_of`].
//!
//! | type | when | ours? |
//! |---|---|---|
//! | `authenticator.created` | a device credential or a passkey appears | Authsignal's name and data |
//! | `authenticator.deleted` | a device credential (not when it expires) or a passkey is removed | Authsignal's name and data |
//! | `action.state_changed` | an action is created, or its state changes | ours |
//! | `challenge.attempts_exceeded` | a challenge reaches the failed-signature limit | ours |
//!
//! Each event's `id` is derived from the change it reports (a SHA-256 of what identifies it,
//! shaped as a UUID), so a redelivery, a retried stream batch or the outbox after a restart
//! carries the same id: receivers de-duplicate on it.

#[cfg(feature = "embedded")]
pub mod outbox;

use crate::clock::Timestamp;
use crate::domain::{
    Action, ActionState, ApprovalChallenge, ApprovalKind, ChallengeMark, Credential, PasskeyRecord,
    TenantId, VerificationMethod, WebhookEndpoint,
};
use crate::webhook::{Envelope, WebhookSender, signature_header};
use serde_json::{Value, json};
use std::time::Duration;

/// The event types (spec 2.11 for the first two; ours for the others, docs/api.md).
pub const AUTHENTICATOR_CREATED: &str = "authenticator.created";
pub const AUTHENTICATOR_DELETED: &str = "authenticator.deleted";
pub const ACTION_STATE_CHANGED: &str = "action.state_changed";
pub const CHALLENGE_ATTEMPTS_EXCEEDED: &str = "challenge.attempts_exceeded";

/// One record as it was before a write and as it is after (`None`: absent), for the kinds of
/// record that can make an event.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one short-lived value per change handled; boxing would only add allocations"
)]
pub enum Record {
    Credential(Option<Credential>, Option<Credential>),
    /// A passkey (spec 3.5): an authenticator too, listed by `getAuthenticators` under its
    /// `id`.
    Passkey(Option<PasskeyRecord>, Option<PasskeyRecord>),
    Action(Option<Action>, Option<Action>),
    /// A push or QR-code challenge.
    Approval(Option<ApprovalChallenge>, Option<ApprovalChallenge>),
    /// The failure count of an in-app challenge, known by the SHA-256 of its id only.
    ChallengeMark {
        fingerprint: String,
        old: Option<ChallengeMark>,
        new: Option<ChallengeMark>,
    },
}

/// A change to one record of a tenant, and when it happened (DynamoDB's
/// `ApproximateCreationDateTime`, the outbox row's time).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub tenant_id: TenantId,
    pub record: Record,
    pub at: Timestamp,
    /// Whether the store removed the record because it expired (DynamoDB TTL, the embedded
    /// purge): expiry is not a removal anyone asked for, so it is no event.
    pub expired: bool,
}

/// One event for a tenant's backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable for the change it reports ([`derived_id`]).
    pub id: String,
    pub tenant_id: TenantId,
    pub kind: &'static str,
    /// When the change happened (the envelope's `time`).
    pub time: Timestamp,
    pub data: Value,
}

/// The events a change makes: none for most writes (a credential's push token or last use, a
/// passkey's signature counter and last use, a counter), at most one otherwise. `max_failed_attempts` is the per-challenge limit the use
/// cases count to (`Settings::max_failed_attempts`).
pub fn events_of(change: &Change, max_failed_attempts: u32) -> Vec<Event> {
    let tenant = &change.tenant_id;
    let event = |kind: &'static str, identity: &[&str], time: Timestamp, data: Value| Event {
        id: derived_id(tenant, kind, identity),
        tenant_id: tenant.clone(),
        kind,
        time,
        data,
    };
    match &change.record {
        Record::Credential(None, Some(added)) => vec![event(
            AUTHENTICATOR_CREATED,
            &[added.id.as_str()],
            added.created_at,
            authenticator_data(added, None),
        )],
        Record::Credential(Some(removed), None) if !change.expired => vec![event(
            AUTHENTICATOR_DELETED,
            &[removed.id.as_str()],
            change.at,
            authenticator_data(removed, Some(change.at)),
        )],
        // spec 3.5: a passkey is an authenticator of the Server API (spec 2.7), so it is
        // announced as a device credential is, under the id `getAuthenticators` and
        // `deleteAuthenticator` use. Passkeys never expire: every removal was asked for. A
        // sign-in (old and new both present) is no event.
        Record::Passkey(None, Some(added)) => vec![event(
            AUTHENTICATOR_CREATED,
            &[added.id.as_str()],
            added.created_at,
            passkey_data(added, None),
        )],
        Record::Passkey(Some(removed), None) if !change.expired => vec![event(
            AUTHENTICATOR_DELETED,
            &[removed.id.as_str()],
            change.at,
            passkey_data(removed, Some(change.at)),
        )],
        Record::Action(old, Some(action))
            if old.as_ref().map(|a| a.state) != Some(action.state) =>
        {
            let updated = action.state_updated_at.0.to_string();
            vec![event(
                ACTION_STATE_CHANGED,
                &[
                    action.key.user_id.as_str(),
                    action.key.action_code.as_str(),
                    action.key.idempotency_key.as_str(),
                    action.state.as_str(),
                    &updated,
                ],
                action.state_updated_at,
                action_data(action, old.as_ref().map(|a| a.state)),
            )]
        }
        Record::Approval(old, Some(challenge))
            if crossed(
                old.as_ref().map(|c| c.failed_attempts),
                challenge.failed_attempts,
                max_failed_attempts,
            ) =>
        {
            vec![event(
                CHALLENGE_ATTEMPTS_EXCEEDED,
                &[challenge.id.as_str()],
                change.at,
                approval_data(challenge),
            )]
        }
        Record::ChallengeMark {
            fingerprint,
            old,
            new: Some(mark),
        } if crossed(
            old.as_ref().map(|m| m.failed_attempts),
            mark.failed_attempts,
            max_failed_attempts,
        ) =>
        {
            vec![event(
                CHALLENGE_ATTEMPTS_EXCEEDED,
                &[fingerprint],
                change.at,
                json!({
                    "challengeType": "IN_APP",
                    "challengeFingerprint": fingerprint,
                    "failedAttempts": mark.failed_attempts,
                }),
            )]
        }
        _ => Vec::new(),
    }
}

/// Whether a failure count reached the limit with this write (and not before it).
fn crossed(old: Option<u32>, new: u32, max: u32) -> bool {
    new >= max && old.unwrap_or(0) < max
}

/// `authenticator.created|deleted` data (spec 2.11, Authsignal's fields), plus, additively, the
/// device's name and platform.
fn authenticator_data(credential: &Credential, deleted_at: Option<Timestamp>) -> Value {
    let mut data = json!({
        "userId": credential.user_id.as_str(),
        "userAuthenticatorId": credential.id.as_str(),
        "verificationMethod": credential.namespace.verification_method(),
        "createdAt": credential.created_at.to_iso8601(),
    });
    if let Some(at) = deleted_at {
        data["deletedAt"] = json!(at.to_iso8601());
    }
    if let Some(name) = &credential.device_name {
        data["deviceName"] = json!(name);
    }
    if let Some(platform) = &credential.device_platform {
        data["devicePlatform"] = json!(platform);
    }
    data
}

/// `authenticator.created|deleted` data of a passkey: Authsignal's fields, plus, additively,
/// the `webauthnCredential` that `getAuthenticators` shows for it (spec 2.7), so a receiver can
/// match the two.
fn passkey_data(passkey: &PasskeyRecord, deleted_at: Option<Timestamp>) -> Value {
    let mut data = json!({
        "userId": passkey.user_id.as_str(),
        "userAuthenticatorId": passkey.id.as_str(),
        "verificationMethod": VerificationMethod::Passkey,
        "createdAt": passkey.created_at.to_iso8601(),
        "webauthnCredential": {
            "credentialId": passkey.credential_id,
            "credentialBackedUp": passkey.backed_up,
            "credentialDeviceType": if passkey.backed_up { "multiDevice" } else { "singleDevice" },
        },
    });
    if let Some(at) = deleted_at {
        data["deletedAt"] = json!(at.to_iso8601());
    }
    if let Some(name) = &passkey.name {
        data["displayName"] = json!(name);
        data["webauthnCredential"]["name"] = json!(name);
    }
    data
}

fn action_data(action: &Action, previous: Option<ActionState>) -> Value {
    let mut data = json!({
        "userId": action.key.user_id.as_str(),
        "actionCode": action.key.action_code.as_str(),
        "idempotencyKey": action.key.idempotency_key.as_str(),
        "state": action.state.as_str(),
        "stateUpdatedAt": action.state_updated_at.to_iso8601(),
    });
    if let Some(previous) = previous {
        data["previousState"] = json!(previous.as_str());
    }
    if let Some(method) = action.verification_method {
        data["verificationMethod"] = json!(method);
    }
    if let Some(by) = &action.verified_by_authenticator_id {
        data["userAuthenticatorId"] = json!(by.as_str());
    }
    data
}

fn approval_data(challenge: &ApprovalChallenge) -> Value {
    let mut data = json!({
        "challengeId": challenge.id.as_str(),
        "challengeType": match challenge.kind {
            ApprovalKind::Push => "PUSH",
            ApprovalKind::QrCode => "QR_CODE",
        },
        "actionCode": challenge.action_code.as_str(),
        "failedAttempts": challenge.failed_attempts,
    });
    if let Some(user) = &challenge.user_id {
        data["userId"] = json!(user.as_str());
    }
    if let Some(action) = &challenge.action {
        data["idempotencyKey"] = json!(action.idempotency_key.as_str());
    }
    data
}

/// A UUID-shaped id (version 8, RFC 9562's custom version) of the SHA-256 of the tenant, the
/// event type and what identifies the change: the same change always gets the same id.
pub fn derived_id(tenant: &TenantId, kind: &str, identity: &[&str]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in std::iter::once(tenant.as_str())
        .chain(std::iter::once(kind))
        .chain(identity.iter().copied())
    {
        // Length-prefixed, so no two different lists of parts hash the same bytes.
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let digest = context.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    // The `uuid` crate sets the version and variant bits and formats it.
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The envelope of `event` as JSON bytes (spec 2.11).
pub fn body(event: &Event) -> Vec<u8> {
    let envelope = Envelope {
        version: 1,
        id: event.id.clone(),
        source: "https://authsignal.com",
        time: event.time.to_iso8601(),
        tenant_id: event.tenant_id.to_string(),
        kind: event.kind,
        data: &event.data,
    };
    // A `Value` and strings: serialising cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Sends `event` to `endpoint`, signed at `now` (the verifiers refuse signatures older than five
/// minutes, so a redelivery is signed again); `Err` says why it was not accepted.
pub async fn deliver(
    sender: &dyn WebhookSender,
    endpoint: &WebhookEndpoint,
    event: &Event,
    now: Timestamp,
    timeout: Duration,
) -> Result<(), String> {
    let body = body(event);
    let signature = signature_header(&endpoint.secret, now, &body);
    sender.send(&endpoint.url, &signature, body, timeout).await
}

/// The wait before retry number `attempts` (1 = the first retry): `base` doubled each time, at
/// most `max`.
pub fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        ActionCode, ActionKey, ActionOrigin, CredentialId, IdempotencyKey, Namespace, TrackContext,
        UserId,
    };

    pub(super) fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn credential() -> Credential {
        Credential {
            id: CredentialId::parse("0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90").unwrap(),
            tenant_id: tenant(),
            user_id: UserId::parse("alice").unwrap(),
            namespace: Namespace::InApp,
            public_key: "MFkw".into(),
            key_fingerprint: "f0".into(),
            device_name: Some("Pixel 9".into()),
            device_platform: Some("android".into()),
            push_token: None,
            created_at: Timestamp::from_unix_seconds(1_790_000_000),
            last_verified_at: None,
            expires_at: None,
        }
    }

    pub(super) fn action(state: ActionState, at: i64) -> Action {
        Action {
            tenant_id: tenant(),
            key: ActionKey {
                user_id: UserId::parse("alice").unwrap(),
                action_code: ActionCode::parse("signIn").unwrap(),
                idempotency_key: IdempotencyKey::parse("k1").unwrap(),
            },
            state,
            created_at: Timestamp::from_unix_seconds(1_790_000_000),
            state_updated_at: Timestamp::from_unix_seconds(at),
            verification_method: None,
            verified_by_authenticator_id: None,
            enrolled_passkey_id: None,
            context: TrackContext::default(),
            rule_ids: Vec::new(),
            rules: Vec::new(),
            origin: ActionOrigin::Track,
            expires_at: Timestamp::from_unix_seconds(1_800_000_000),
        }
    }

    fn passkey() -> PasskeyRecord {
        PasskeyRecord {
            id: CredentialId::parse("5b1d9c3e-7a2f-4e8d-b6c0-1f9e3a7d5c24").unwrap(),
            tenant_id: tenant(),
            user_id: UserId::parse("alice").unwrap(),
            credential_id: "q2Vx8f0aLwJ3".into(),
            user_handle: "YWxpY2U".into(),
            credential: json!({}),
            counter: 0,
            name: Some("MacBook".into()),
            aaguid: None,
            backed_up: true,
            created_at: Timestamp::from_unix_seconds(1_790_000_000),
            last_verified_at: None,
        }
    }

    fn change(record: Record) -> Change {
        Change {
            tenant_id: tenant(),
            record,
            at: Timestamp::from_unix_seconds(1_790_000_100),
            expired: false,
        }
    }

    #[test]
    fn a_credential_added_and_removed_make_authenticator_events_with_stable_ids() {
        let added = events_of(&change(Record::Credential(None, Some(credential()))), 5);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].kind, "authenticator.created");
        assert_eq!(
            added[0].data["userAuthenticatorId"],
            "0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90"
        );
        assert_eq!(added[0].data["verificationMethod"], "DEVICE");
        assert_eq!(added[0].data["createdAt"], "2026-09-21T14:13:20.000Z");
        let again = events_of(&change(Record::Credential(None, Some(credential()))), 5);
        assert_eq!(added[0].id, again[0].id, "the same change, the same id");

        let removed = events_of(&change(Record::Credential(Some(credential()), None)), 5);
        assert_eq!(removed[0].kind, "authenticator.deleted");
        assert_eq!(removed[0].data["deletedAt"], "2026-09-21T14:15:00.000Z");
        assert_ne!(removed[0].id, added[0].id);

        let mut expired = change(Record::Credential(Some(credential()), None));
        expired.expired = true;
        assert!(events_of(&expired, 5).is_empty(), "expiry is no removal");

        let mut used = credential();
        used.last_verified_at = Some(Timestamp::from_unix_seconds(1_790_000_050));
        let update = change(Record::Credential(Some(credential()), Some(used)));
        assert!(events_of(&update, 5).is_empty());
    }

    /// spec 3.5: a passkey is an authenticator, announced under its Server API id with
    /// `PASSKEY`; a sign-in (counter, last use) is no event.
    #[test]
    fn a_passkey_added_and_removed_make_authenticator_events_and_a_sign_in_none() {
        let added = events_of(&change(Record::Passkey(None, Some(passkey()))), 5);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].kind, "authenticator.created");
        let data = &added[0].data;
        assert_eq!(data["userId"], "alice");
        assert_eq!(
            data["userAuthenticatorId"],
            "5b1d9c3e-7a2f-4e8d-b6c0-1f9e3a7d5c24"
        );
        assert_eq!(data["verificationMethod"], "PASSKEY");
        assert_eq!(data["createdAt"], "2026-09-21T14:13:20.000Z");
        assert_eq!(data["displayName"], "MacBook");
        assert_eq!(data["webauthnCredential"]["credentialId"], "q2Vx8f0aLwJ3");
        assert_eq!(
            data["webauthnCredential"]["credentialDeviceType"],
            "multiDevice"
        );
        assert!(data.get("deletedAt").is_none());
        assert_eq!(
            added[0].id,
            derived_id(
                &tenant(),
                "authenticator.created",
                &["5b1d9c3e-7a2f-4e8d-b6c0-1f9e3a7d5c24"]
            ),
            "the derivation of every authenticator event"
        );

        let removed = events_of(&change(Record::Passkey(Some(passkey()), None)), 5);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].kind, "authenticator.deleted");
        assert_eq!(removed[0].data["verificationMethod"], "PASSKEY");
        assert_eq!(removed[0].data["deletedAt"], "2026-09-21T14:15:00.000Z");
        assert_ne!(removed[0].id, added[0].id);

        let mut signed_in = passkey();
        signed_in.counter = 7;
        signed_in.last_verified_at = Some(Timestamp::from_unix_seconds(1_790_000_050));
        let sign_in = change(Record::Passkey(Some(passkey()), Some(signed_in)));
        assert!(events_of(&sign_in, 5).is_empty(), "a sign-in is no event");

        let mut unnamed = passkey();
        unnamed.name = None;
        let data = &events_of(&change(Record::Passkey(None, Some(unnamed))), 5)[0].data;
        assert!(data.get("displayName").is_none());
        assert!(data["webauthnCredential"].get("name").is_none());
    }

    #[test]
    fn an_action_makes_an_event_when_created_and_when_its_state_changes() {
        let created = events_of(
            &change(Record::Action(
                None,
                Some(action(ActionState::ChallengeRequired, 1_790_000_000)),
            )),
            5,
        );
        assert_eq!(created[0].kind, "action.state_changed");
        assert_eq!(created[0].data["state"], "CHALLENGE_REQUIRED");
        assert!(created[0].data.get("previousState").is_none());

        let mut succeeded = action(ActionState::ChallengeSucceeded, 1_790_000_060);
        succeeded.verification_method = Some(VerificationMethod::Device);
        succeeded.verified_by_authenticator_id =
            Some(CredentialId::parse("0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90").unwrap());
        let changed = events_of(
            &change(Record::Action(
                Some(action(ActionState::ChallengeRequired, 1_790_000_000)),
                Some(succeeded.clone()),
            )),
            5,
        );
        assert_eq!(changed[0].data["state"], "CHALLENGE_SUCCEEDED");
        assert_eq!(changed[0].data["previousState"], "CHALLENGE_REQUIRED");
        assert_eq!(changed[0].data["verificationMethod"], "DEVICE");
        assert_eq!(
            changed[0].data["userAuthenticatorId"],
            "0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90"
        );
        assert_ne!(changed[0].id, created[0].id);

        let same_state = change(Record::Action(Some(succeeded.clone()), Some(succeeded)));
        assert!(events_of(&same_state, 5).is_empty());
    }

    #[test]
    fn a_challenge_mark_makes_one_event_when_it_reaches_the_limit() {
        let mark = |failed| ChallengeMark {
            consumed: false,
            failed_attempts: failed,
            expires_at: Timestamp::from_unix_seconds(1_790_000_300),
        };
        let at = |old: Option<u32>, new: u32| {
            events_of(
                &change(Record::ChallengeMark {
                    fingerprint: "ab12".into(),
                    old: old.map(mark),
                    new: Some(mark(new)),
                }),
                3,
            )
        };
        assert!(at(None, 1).is_empty());
        assert!(at(Some(1), 2).is_empty());
        let reached = at(Some(2), 3);
        assert_eq!(reached[0].kind, "challenge.attempts_exceeded");
        assert_eq!(reached[0].data["challengeType"], "IN_APP");
        assert_eq!(reached[0].data["failedAttempts"], 3);
        assert!(at(Some(3), 3).is_empty(), "once, not at every later write");
    }

    /// Push and QR-code challenges count their failed signatures on themselves (DESIGN 6):
    /// the write that reaches the limit makes the event, once, whichever kind.
    #[test]
    fn a_push_or_qr_code_challenge_makes_one_event_when_it_reaches_the_limit() {
        let user = crate::domain::UserId::parse("alice").unwrap();
        for (kind, name) in [
            (ApprovalKind::Push, "PUSH"),
            (ApprovalKind::QrCode, "QR_CODE"),
        ] {
            let challenge = crate::store::samples::approval(&tenant(), Some(&user), kind);
            let with = |failed| ApprovalChallenge {
                failed_attempts: failed,
                ..challenge.clone()
            };
            let at = |old: u32, new: u32| {
                events_of(
                    &change(Record::Approval(Some(with(old)), Some(with(new)))),
                    3,
                )
            };
            assert!(at(1, 2).is_empty(), "{name}");
            let reached = at(2, 3);
            assert_eq!(reached.len(), 1, "{name}");
            assert_eq!(reached[0].kind, "challenge.attempts_exceeded");
            assert_eq!(reached[0].data["challengeType"], name);
            assert_eq!(reached[0].data["failedAttempts"], 3);
            assert_eq!(reached[0].data["challengeId"], challenge.id.as_str());
            assert_eq!(reached[0].data["userId"], "alice");
            assert!(
                at(3, 3).is_empty(),
                "{name}: once, not at every later write"
            );
            // Another change of the same challenge (approved, say) makes no such event.
            let approved = ApprovalChallenge {
                state: crate::domain::ApprovalState::Approved,
                ..with(3)
            };
            assert!(
                events_of(&change(Record::Approval(Some(with(3)), Some(approved))), 3).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn the_body_is_the_spec_envelope_and_ids_are_uuid_shaped() {
        let event = &events_of(&change(Record::Credential(None, Some(credential()))), 5)[0];
        let json: Value = serde_json::from_slice(&body(event)).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["source"], "https://authsignal.com");
        assert_eq!(json["tenantId"], "acme");
        assert_eq!(json["type"], "authenticator.created");
        assert_eq!(json["id"], event.id.as_str());
        let id = event.id.as_str();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version 8: {id}");
        assert_ne!(
            derived_id(&tenant(), "a", &["bc"]),
            derived_id(&tenant(), "ab", &["c"])
        );
    }

    /// Known answer, computed apart (Python's `hashlib` over the length-prefixed parts, the
    /// version and variant bits set by hand): ids must not change across versions, since
    /// receivers de-duplicate on them and a redelivery after an upgrade carries the new one.
    #[test]
    fn a_derived_id_is_the_known_answer() {
        assert_eq!(
            derived_id(
                &tenant(),
                "authenticator.created",
                &["0f7c2a9e-8d4b-4c1e-9a35-2b6f1d7e8c90"]
            ),
            "656eaba7-e5da-82c6-bdba-54da83efa945"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        assert_eq!(backoff(1, base, max), Duration::from_secs(1));
        assert_eq!(backoff(2, base, max), Duration::from_secs(2));
        assert_eq!(backoff(5, base, max), Duration::from_secs(16));
        assert_eq!(backoff(40, base, max), max);
    }
}
