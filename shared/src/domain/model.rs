//! The records the service keeps, and the enums that appear on the wire.

use super::ids::{ActionCode, ChallengeId, CredentialId, IdempotencyKey, TenantId, UserId};
use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};

/// `UserActionState` (spec 2.9), identical in every SDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionState {
    Allow,
    Block,
    ChallengeRequired,
    ChallengeSucceeded,
    ChallengeFailed,
    ReviewRequired,
    ReviewSucceeded,
    ReviewFailed,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Allow => "ALLOW",
            ActionState::Block => "BLOCK",
            ActionState::ChallengeRequired => "CHALLENGE_REQUIRED",
            ActionState::ChallengeSucceeded => "CHALLENGE_SUCCEEDED",
            ActionState::ChallengeFailed => "CHALLENGE_FAILED",
            ActionState::ReviewRequired => "REVIEW_REQUIRED",
            ActionState::ReviewSucceeded => "REVIEW_SUCCEEDED",
            ActionState::ReviewFailed => "REVIEW_FAILED",
        }
    }

    /// The states a device signature may move to `CHALLENGE_SUCCEEDED`.
    ///
    /// `ALLOW` may be stepped up (a stronger proof than needed); a completed challenge may be
    /// repeated. `BLOCK` and the review states are decisions a signature must never override.
    pub const CHALLENGEABLE: [ActionState; 3] = [
        ActionState::Allow,
        ActionState::ChallengeRequired,
        ActionState::ChallengeSucceeded,
    ];

    pub fn is_challengeable(self) -> bool {
        Self::CHALLENGEABLE.contains(&self)
    }

    /// Whether a token of an action in this state may add a device credential: not when the
    /// backend blocked it, sent it to review or saw it fail.
    pub fn allows_enrolment(self) -> bool {
        !matches!(
            self,
            ActionState::Block
                | ActionState::ReviewRequired
                | ActionState::ReviewFailed
                | ActionState::ChallengeFailed
        )
    }
}

/// The scope a token needs to add a user's second or later credential (spec 2.9, 3.4.1).
pub const ADD_AUTHENTICATORS_SCOPE: &str = "add:authenticators";

/// A rule or default outcome (spec 7), mapped to the state a track returns (spec 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Allow,
    Challenge,
    Review,
    Block,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "ALLOW",
            Outcome::Challenge => "CHALLENGE",
            Outcome::Review => "REVIEW",
            Outcome::Block => "BLOCK",
        }
    }

    pub fn state(self) -> ActionState {
        match self {
            Outcome::Allow => ActionState::Allow,
            Outcome::Challenge => ActionState::ChallengeRequired,
            Outcome::Review => ActionState::ReviewRequired,
            Outcome::Block => ActionState::Block,
        }
    }
}

/// The verification methods this service reports (spec 2.9).
///
/// In-app, QR-code and legacy device credentials are all reported as `DEVICE`: the .NET SDK
/// parses this enum strictly and rejects `IN_APP` and `QR_CODE` (spec 2.9, 8.8), while every SDK
/// accepts `DEVICE`, the value Authsignal's docs show for trusted devices.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerificationMethod {
    Device,
    Passkey,
    Push,
}

/// The namespace of a device credential: its URL segment (spec 3.2). Each namespace has its
/// own key pair on the device; one public key may appear in several namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Namespace {
    Push,
    QrCode,
    InApp,
    Device,
}

impl Namespace {
    pub const ALL: [Namespace; 4] = [
        Namespace::Push,
        Namespace::QrCode,
        Namespace::InApp,
        Namespace::Device,
    ];

    pub fn parse_segment(segment: &str) -> Option<Namespace> {
        Self::ALL.into_iter().find(|ns| ns.segment() == segment)
    }

    pub fn segment(self) -> &'static str {
        match self {
            Namespace::Push => "push",
            Namespace::QrCode => "qr-code",
            Namespace::InApp => "in-app",
            Namespace::Device => "device",
        }
    }

    pub fn verification_method(self) -> VerificationMethod {
        match self {
            Namespace::Push => VerificationMethod::Push,
            Namespace::QrCode | Namespace::InApp | Namespace::Device => VerificationMethod::Device,
        }
    }
}

/// What track must know of a user's authenticators: how many of each verification method.
/// Stored as a summary next to them (DynamoDB: the `ENROLMENT` item, moved in the same
/// transaction as every add and removal), so track reads it with the rules configs in one
/// request instead of querying every credential (DESIGN 4, docs/dynamodb.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enrolment {
    /// Device credentials (`in-app`, `qr-code`, `device` namespaces).
    pub device: usize,
    pub push: usize,
    pub passkey: usize,
}

impl Enrolment {
    /// The summary of credentials and passkeys read one by one.
    pub fn of(credentials: &[Credential], passkeys: usize) -> Enrolment {
        let mut enrolment = Enrolment {
            passkey: passkeys,
            ..Enrolment::default()
        };
        for credential in credentials {
            match credential.namespace.verification_method() {
                VerificationMethod::Push => enrolment.push += 1,
                VerificationMethod::Device | VerificationMethod::Passkey => enrolment.device += 1,
            }
        }
        enrolment
    }

    pub fn total(&self) -> usize {
        self.device + self.push + self.passkey
    }

    pub fn is_enrolled(&self) -> bool {
        self.total() > 0
    }

    /// The methods the user can verify with, in order, each once.
    pub fn methods(&self) -> Vec<VerificationMethod> {
        let mut methods: Vec<VerificationMethod> = [
            (VerificationMethod::Device, self.device),
            (VerificationMethod::Passkey, self.passkey),
            (VerificationMethod::Push, self.push),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(method, _)| method)
        .collect();
        methods.sort();
        methods
    }
}

/// A registered device public key (spec 6.1 step 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: CredentialId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub namespace: Namespace,
    /// Canonical standard base64 of the SPKI DER (spec 4.2).
    pub public_key: String,
    /// Hex SHA-256 of the SPKI DER: the lookup key.
    pub key_fingerprint: String,
    pub device_name: Option<String>,
    pub device_platform: Option<String>,
    pub push_token: Option<String>,
    pub created_at: Timestamp,
    pub last_verified_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

/// The attributes of a track request that later steps show or decide on (spec 2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackContext {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    pub custom: Option<serde_json::Value>,
    pub scope: Option<String>,
}

/// Identifies one tracked action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionKey {
    pub user_id: UserId,
    pub action_code: ActionCode,
    pub idempotency_key: IdempotencyKey,
}

/// A tracked action and its one state history (DESIGN 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub tenant_id: TenantId,
    pub key: ActionKey,
    pub state: ActionState,
    pub created_at: Timestamp,
    pub state_updated_at: Timestamp,
    pub verification_method: Option<VerificationMethod>,
    pub verified_by_authenticator_id: Option<CredentialId>,
    pub context: TrackContext,
    /// The ids of the rules that decided the state (at most one: the first match wins).
    pub rule_ids: Vec<String>,
    /// Those rules as get action shows them (spec 2.5), kept with the action so that a later
    /// change to the config does not rewrite history.
    #[serde(default)]
    pub rules: Vec<RuleRef>,
    /// Who created the action: only a backend's track can authorise enrolment (see
    /// `usecase::credentials`).
    #[serde(default)]
    pub origin: ActionOrigin,
    /// The passkey this action's token registered (spec 3.5): one registration per action,
    /// and an action completed by its own registration is not "challenged" for the scope
    /// rule of later enrolments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_passkey_id: Option<CredentialId>,
    /// When the record may be deleted (DynamoDB TTL); reads treat it as gone after this.
    pub expires_at: Timestamp,
}

/// A rule that decided an action, as get action returns it (spec 2.5:
/// `rules: [{ruleId, name, description}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleRef {
    pub rule_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Action {
    /// Whether a challenge completed this backend-tracked action, which lets its token add
    /// an authenticator to a user who has one (`usecase::credentials`). Not when the action
    /// was completed by the passkey its own token registered (spec 3.5): registering is not
    /// proving an existing authenticator.
    pub fn challenged_after_track(&self) -> bool {
        let completed_by_own_registration = self.enrolled_passkey_id.is_some()
            && self.enrolled_passkey_id == self.verified_by_authenticator_id;
        self.state == ActionState::ChallengeSucceeded
            && self.origin == ActionOrigin::Track
            && !completed_by_own_registration
    }
}

/// Where an action came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionOrigin {
    /// The backend tracked it with its secret key (spec 2.3).
    #[default]
    Track,
    /// A device verify without a track created it (spec 3.4.4): it proves a key was used, and
    /// nothing more.
    DeviceVerification,
}

/// The single-use record of a challenge, written on the first failed signature or on success
/// (DESIGN 4). A challenge with no mark is unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeMark {
    pub consumed: bool,
    pub failed_attempts: u32,
    /// The challenge's own expiry: the mark is useless after it (DynamoDB TTL).
    pub expires_at: Timestamp,
}

/// What a challenge will complete, fixed when it is started (spec 3.4.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeTarget {
    /// Started with a Bearer token: it completes that tracked action only.
    TrackedAction(ActionKey),
    /// Started with tenant Basic and `{action}`: verify creates an action with this code for
    /// the user who owns the signing key.
    NewAction(ActionCode),
    /// Started with tenant Basic and no action: the target comes from the verify call's Bearer
    /// token, or a new action with the default code is created.
    Unbound,
    /// For a push credential's update (spec 3.4.5 `push/sign`): it completes no action, and
    /// a verify refuses it, as the update refuses every other challenge. Bound to the key it
    /// was asked for (hex SHA-256 of its SPKI, [`crate::signature::PublicKey::fingerprint`]),
    /// so another key cannot use it up (spec 4.4 notes: bind challenges to the credential).
    PushCredentialUpdate { key_fingerprint: String },
}

/// A one-time challenge for a device signature. It is not stored: everything here is sealed
/// into its id (see [`crate::token::TenantKeys::seal_challenge`]); only its single-use
/// [`ChallengeMark`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub tenant_id: TenantId,
    pub id: ChallengeId,
    pub target: ChallengeTarget,
    /// Attestation nonce, issued with Bearer auth (spec 3.4.1).
    pub nonce: Option<String>,
    pub expires_at: Timestamp,
    /// When it was issued, and the issuing process's sequence number: see [`ChallengeOrder`].
    pub issued_at: Timestamp,
    pub sequence: u64,
}

/// Where an in-app challenge stands among its user's: by the time it was issued, then by the
/// issuing process's sequence number (challenges issued in the same millisecond), then by
/// the id's fingerprint (the same millisecond on two instances). Compared as strings, by the
/// stores and by DynamoDB's `<` alike.
///
/// A user's in-app challenges are used in this order: a verify is refused if a challenge of
/// the same user at this place (a replay) or after it (a newer one) was used. That is what
/// makes a sealed challenge single-use without a record of its own (docs/dynamodb.md, "The
/// verify transaction"); the price is that of two challenges a user holds at once, the older
/// cannot be used after the newer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChallengeOrder(String);

impl ChallengeOrder {
    pub fn of(challenge: &Challenge) -> ChallengeOrder {
        ChallengeOrder::at(challenge.issued_at, challenge.sequence, &challenge.id)
    }

    /// Zero-padded, so that string order is numeric order for any time after 1970. 64 bits of
    /// the fingerprint tell apart two challenges of one millisecond and sequence number.
    pub fn at(issued_at: Timestamp, sequence: u64, id: &ChallengeId) -> ChallengeOrder {
        let fingerprint = id.fingerprint();
        ChallengeOrder(format!(
            "{:016}.{sequence:020}.{}",
            issued_at.0.max(0),
            &fingerprint[..16]
        ))
    }

    /// An order read back from a store.
    pub fn from_stored(stored: String) -> ChallengeOrder {
        ChallengeOrder(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The user attributes of spec 2.6.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub custom: Option<serde_json::Value>,
    pub locale: Option<String>,
}

/// A tenant as stored. Secrets are stored as SHA-256 hashes only; token signing keys are kept
/// (they must be, to sign) and never leave the server.
/// How many revoked secrets a tenant remembers ([`TenantRecord::revoked_secret_key_hashes`]).
pub const MAX_REVOKED_SECRETS: usize = 16;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    /// Hex SHA-256 of each API secret key that is accepted, newest first: one, or two during
    /// a rotation (DESIGN 5).
    pub secret_key_hashes: Vec<String>,
    /// When each secret (by its hash) was made; a secret from before rotation existed has
    /// none (the tenant's `created_at` stands in).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub secret_key_created_at: std::collections::BTreeMap<String, Timestamp>,
    /// Hex SHA-256 of secrets revoked with `tenant revoke-secret`, newest first (at most
    /// [`MAX_REVOKED_SECRETS`]): a server restarted with one in its environment refuses to
    /// start rather than accept it again (DESIGN 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_secret_key_hashes: Vec<String>,
    /// Token signing keys, newest first; the first signs, all that are not retired verify
    /// (DESIGN 5).
    pub signing_keys: Vec<SigningKeyRecord>,
    pub created_at: Timestamp,
    /// Bumped by every change: a change is written only over the revision it was made from,
    /// so two concurrent rotations cannot lose a key (DESIGN 5).
    #[serde(default)]
    pub revision: u64,
    /// Where `push.created` is delivered (spec 2.11); none: apps find challenges by polling.
    #[serde(default)]
    pub push_webhook: Option<WebhookEndpoint>,
    /// Whether approving or rejecting a push or QR challenge needs a `decisionSignature`
    /// (ours, DESIGN 6).
    #[serde(default)]
    pub require_decision_signature: bool,
    /// The web origins whose pages may call the Client API from a browser (CORS, DESIGN 9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<super::AllowedOrigin>,
    /// The WebAuthn relying party of the tenant's passkeys (issue #15); none: no passkeys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<super::passkey::PasskeyConfig>,
    /// Where the tenant's events go (`authenticator.created`, ..., issue #19, DESIGN 10); none:
    /// no events are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_webhook: Option<WebhookEndpoint>,
    /// The pre-built UI's name, logo and colour (issue #16); none: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<super::ui::UiBranding>,
}

/// A webhook URL and the secret its `X-Signature-V2` is made with (spec 2.11).
///
/// The secret is its own, not the API secret: API secrets are stored only as hashes and
/// cannot sign anything. It is kept in the clear because it must be, like the token keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for TenantRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantRecord")
            .field("id", &self.id)
            .field("secret_key_hashes", &self.secret_key_hashes.len())
            .field("signing_keys", &self.signing_keys.len())
            .finish()
    }
}

/// One HS256 signing key; `kid` goes into the JWT header (DESIGN 3, key rotation). It also
/// derives the key that seals challenge ids.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// Standard base64 of 32 random bytes.
    pub secret: String,
    /// When it was made; none for keys made before rotation existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Set when a newer key replaces it: the rotation time plus the longest lifetime of
    /// anything it signed. From then on it verifies nothing and the next rotation drops it
    /// (DESIGN 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<Timestamp>,
}

impl SigningKeyRecord {
    /// Whether it still verifies at `now`.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.retire_at.is_none_or(|retire| now < retire)
    }
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}
