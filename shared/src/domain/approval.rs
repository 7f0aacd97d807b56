//! Push and QR-code approval challenges (spec 3.4.5 to 3.4.7, 6.3, 6.4; DESIGN 6).
//!
//! Unlike the in-app challenge, whose id is sealed and stateless, an approval challenge is
//! stored: a browser or kiosk polls it, a phone finds it (push) or claims it (QR), and its id
//! reaches other devices, so the id is an opaque random reference that reveals nothing.
//!
//! ```text
//! push:    Pending ──approve──▶ Approved ──first poll──▶ token delivered
//!             └─────reject───▶ Rejected
//! QR code: Pending ──claim──▶ Claimed ──approve──▶ Approved ──first poll──▶ token delivered
//!                                └──────reject──▶ Rejected
//! ```
//!
//! Every move is a compare-and-swap on [`ApprovalChallenge::version`] in the store, so of two
//! concurrent answers exactly one wins.

use super::ids::{ActionCode, CredentialId, TenantId, UserId};
use super::model::{ActionKey, TrackContext};
use crate::clock::Timestamp;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An approval challenge id: 96 lowercase hex characters (384 random bits), the format of
/// Authsignal's push challenge ids (spec 2.11). It is a reference, not a capability: every
/// use also needs a device signature (push, QR), a track token (push poll) or the device
/// code (QR poll).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApprovalId(String);

impl ApprovalId {
    pub const LEN: usize = 96;

    pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        if value.len() == Self::LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(ApprovalId(value))
        } else {
            Err(Error::ChallengeNotFound)
        }
    }

    pub fn from_random(bytes: [u8; 48]) -> Self {
        ApprovalId(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ApprovalId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(value)
    }
}

impl From<ApprovalId> for String {
    fn from(value: ApprovalId) -> String {
        value.0
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ids are references, but there is no reason to print them whole.
impl fmt::Debug for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApprovalId({}…)", &self.0[..8])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalKind {
    Push,
    QrCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalState {
    /// Waiting for the phone: a push to be answered, a QR code to be claimed.
    Pending,
    /// A phone claimed the QR code; only it may answer.
    Claimed,
    Approved,
    Rejected,
}

impl ApprovalState {
    /// Whether the challenge has ended (`isConsumed` in the poll responses, spec 3.4.6).
    pub fn is_final(self) -> bool {
        matches!(self, ApprovalState::Approved | ApprovalState::Rejected)
    }
}

/// Where a challenge is stored: a user's one push slot, or a QR code by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalSlot {
    /// A user's pending push: one per user, a new start replaces it (DESIGN 6).
    Push(UserId),
    QrCode(ApprovalId),
}

/// A stored push or QR-code challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalChallenge {
    pub id: ApprovalId,
    pub tenant_id: TenantId,
    pub kind: ApprovalKind,
    pub state: ApprovalState,
    pub action_code: ActionCode,
    /// The tracked action an approval completes: push always; a QR code started with a
    /// token. An anonymous QR code gets one, created for the claimer, when it is approved.
    pub action: Option<ActionKey>,
    /// Whose device may answer: fixed at start for push and token-started QR codes, set by
    /// the claim for anonymous QR codes.
    pub user_id: Option<UserId>,
    /// Push: the credentials the challenge was sent to; only they may answer (spec 3.4.6).
    #[serde(default)]
    pub target_credentials: Vec<CredentialId>,
    /// The credential that claimed (QR) or answered (push).
    pub answered_by: Option<CredentialId>,
    /// QR: hex SHA-256 of the device code the kiosk must present to poll.
    pub device_code_hash: Option<String>,
    /// Number matching: the code the browser shows and the approver must type (ours).
    pub verification_code: Option<String>,
    /// The initiator's context, shown to the approver (spec 3.4.5, 3.4.7).
    pub context: TrackContext,
    /// Failed device signatures so far; at the tenant's limit the challenge is rejected.
    #[serde(default)]
    pub failed_attempts: u32,
    /// Whether the poller has received the access token: it is handed out once.
    #[serde(default)]
    pub token_delivered: bool,
    /// Push only: when this user's recent push starts happened (rate limit, DESIGN 6).
    #[serde(default)]
    pub recent_starts: Vec<Timestamp>,
    pub created_at: Timestamp,
    pub state_updated_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the record may be deleted (DynamoDB TTL, the embedded sweep). A push slot outlives
    /// its challenge: it carries `recent_starts`, which the rate limit counts over a window
    /// longer than a push lives.
    pub retain_until: Timestamp,
    /// Bumped by every change; the store writes only over the version it was read at.
    pub version: u64,
    /// QR codes created over the WebSocket (spec 3.8): the connection that created it, which
    /// claims and answers are pushed to (`usecase::qr_socket`). Stored with the challenge, so
    /// a claim or an answer finds it in the read it makes anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<crate::websocket::ConnectionId>,
}

impl ApprovalChallenge {
    pub fn slot(&self) -> ApprovalSlot {
        match (self.kind, &self.user_id) {
            (ApprovalKind::Push, Some(user)) => ApprovalSlot::Push(user.clone()),
            _ => ApprovalSlot::QrCode(self.id.clone()),
        }
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// The next version of this challenge, in `state` from `now`.
    pub fn moved_to(&self, state: ApprovalState, now: Timestamp) -> ApprovalChallenge {
        ApprovalChallenge {
            state,
            state_updated_at: now,
            version: self.version + 1,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_ids_are_96_lowercase_hex() {
        let id = ApprovalId::from_random([0xab; 48]);
        assert_eq!(id.as_str().len(), 96);
        assert_eq!(ApprovalId::parse(id.as_str()).unwrap(), id);
        assert!(ApprovalId::parse("ab".repeat(47)).is_err());
        assert!(ApprovalId::parse("AB".repeat(48)).is_err());
        assert!(ApprovalId::parse("zz".repeat(48)).is_err());
        assert!(!format!("{id:?}").contains(id.as_str()));
    }
}
