//! The domain error: every failed check a use case can report, free of HTTP.
//!
//! Each variant is one precise failed check. What goes on the wire for it (status, code,
//! description, spec 1.3) is decided once, in [`crate::http::error`], which also adds the
//! failures only a transport can have (no route, a body too large, a slow body, ...).

use std::borrow::Cow;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    // --- Authentication (spec 2.1, 3.1) ---
    #[error("missing or unknown API secret key, or unknown tenant")]
    Unauthorized,
    #[error("the bearer token is malformed, forged or for another tenant")]
    InvalidToken,
    #[error("the bearer token has expired")]
    ExpiredToken,
    #[error("the token lacks the scope {0}")]
    InsufficientScope(&'static str),
    /// A browser page of an origin the tenant does not allow made a state-changing Client API
    /// call (CORS, DESIGN 9).
    #[error(
        "this page's origin is not among the tenant's allowed origins (trusted-device tenant configure --allowed-origin)"
    )]
    OriginNotAllowed,

    // --- Input (spec 1.2) ---
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),

    // --- Device credentials (spec 3.4.1 to 3.4.3, 4) ---
    #[error("no credential is registered for this public key")]
    InvalidCredential,
    #[error("this public key is already registered to another user")]
    CredentialConflict,
    #[error("the signature does not verify with the registered public key")]
    InvalidSignature,
    #[error("this removal signature has already been used")]
    SignatureAlreadyUsed,
    #[error("the credential belongs to a different user than the token")]
    UserMismatch,
    #[error("authenticator not found")]
    AuthenticatorNotFound,
    /// The pre-built UI removes an authenticator only for a token tracked with
    /// `redirectToSettings` (issue #16, docs/security.md).
    #[error(
        "this token was not tracked with redirectToSettings; only the settings screen of the pre-built UI removes authenticators"
    )]
    SettingsNotRequested,
    /// ... and only once a challenge completed the token's action (the user proved possession
    /// of an authenticator they already had).
    #[error(
        "the token's action has not been completed by a challenge; confirm it with an existing authenticator before removing one"
    )]
    RemovalNeedsChallenge,

    // --- Passkeys (spec 3.5, issue #15) ---
    #[error(
        "passkeys are not configured for this tenant (trusted-device tenant configure --passkey-rp-id)"
    )]
    PasskeysNotConfigured,
    #[error("{}", .0.description())]
    PasskeyRejected(crate::domain::PasskeyCheck),
    #[error("no passkey is registered with this credential id")]
    PasskeyNotRegistered,
    #[error("the user has no passkey")]
    NoPasskey,

    // --- Challenges (spec 3.4.4, DESIGN 6) ---
    #[error("challenge not found")]
    ChallengeNotFound,
    #[error("the challenge has expired")]
    ChallengeExpired,
    #[error("the challenge has already been used")]
    ChallengeAlreadyUsed,
    /// A user's in-app challenges are used in the order they were issued
    /// ([`crate::domain::ChallengeOrder`]), and only those issued since the credential was
    /// registered.
    #[error(
        "the challenge was issued before one this user has used, or before this credential was registered; request a new challenge"
    )]
    ChallengeSuperseded,
    #[error("the challenge was started for a different action or user")]
    ChallengeMismatch,
    #[error("another device has claimed this challenge")]
    ChallengeClaimedByAnotherDevice,
    #[error("the challenge must be claimed before it can be answered")]
    ChallengeNotClaimed,
    #[error(
        "the verification code does not match the code shown at sign-in; the challenge is rejected"
    )]
    InvalidVerificationCode,
    #[error("this tenant requires a decisionSignature over challengeId|approved|verificationCode")]
    DecisionSignatureRequired,
    #[error("the device code does not match this challenge")]
    InvalidDeviceCode,
    /// A rate limit or a throttle (DESIGN 6): answered `429` with `Retry-After`.
    #[error("{}", .0.reason)]
    TooManyRequests(Throttled),
    #[error("the user has no push credential to send the challenge to")]
    NoPushCredential,
    #[error("the push.created webhook did not accept the challenge: {0}")]
    WebhookFailed(Cow<'static, str>),
    /// A device answered a push or QR code with a credential of a namespace that has no
    /// approvals (`in_app`): spec 3.3 has no such route, so it is answered as one.
    #[error("the credential's namespace has no push or QR-code approvals")]
    NoApprovalsInNamespace,

    // --- Actions (spec 2.3 to 2.5) ---
    #[error("action not found")]
    ActionNotFound,
    #[error("the action is in state {0} and cannot be completed by a challenge")]
    ActionNotChallengeable(&'static str),
    #[error("the token's action is in state {0}, which does not allow adding a device")]
    ActionForbidsEnrolment(&'static str),

    // --- Action configs and rules (spec 7; our extension routes) ---
    #[error("{0}")]
    InvalidActionConfig(Cow<'static, str>),
    #[error("no config for this action code")]
    ActionConfigNotFound,

    // --- Sessions (spec 2.8, issue #20) ---
    #[error(
        "sessions are not configured for this tenant (trusted-device tenant configure --session-client-id)"
    )]
    SessionsNotConfigured,
    #[error("this clientId is not one of the tenant's session client ids")]
    UnknownClientId,
    #[error("this challenge token has already been used to create a session")]
    TokenAlreadyUsed,
    /// spec 3.5: a token registers one passkey for its action.
    #[error("this token has already been used to register a passkey; track a new action")]
    PasskeyTokenAlreadyUsed,
    #[error("the token's challenge has not succeeded")]
    ChallengeNotSucceeded,
    #[error("the access token was not issued for one of the given clientIds")]
    ClientIdMismatch,
    #[error("the refresh token is malformed, unknown or for another tenant")]
    InvalidRefreshToken,
    #[error("the refresh token has expired")]
    ExpiredRefreshToken,
    #[error("the refresh token was already used; its session is now revoked")]
    RefreshTokenReused,
    #[error("the session has been revoked or has ended")]
    SessionRevoked,

    // --- Methods this server does not have (spec 2.8, issue #20) ---
    #[error("{0}")]
    UnsupportedVerificationMethod(Cow<'static, str>),

    // --- Infrastructure: never carry internals to the caller ---
    #[error("the data store is unavailable")]
    StoreUnavailable,
    #[error("internal error")]
    Internal,
}

/// Why a request was refused with `429`, and when to try again (the `Retry-After` header,
/// whole seconds, at least 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub reason: &'static str,
    pub retry_after_seconds: u64,
}

impl Throttled {
    pub const PUSH_STARTS: &'static str =
        "too many push challenges were started for this user recently; try again later";
    pub const ANONYMOUS_STARTS: &'static str = "too many QR codes or passkey sign-ins were started without a token from this address or for this tenant; try again later";
    pub const FAILED_SIGNATURES: &'static str =
        "too many signatures failed to verify; try again later with a valid signature";
    pub const DEVICE_ACTIONS: &'static str =
        "this device created too many actions without a token recently; try again later";

    pub fn new(reason: &'static str, retry_after_seconds: i64) -> Self {
        Throttled {
            reason,
            retry_after_seconds: u64::try_from(retry_after_seconds.max(1)).unwrap_or(1),
        }
    }
}

impl Error {
    /// `429 too_many_requests` with a `Retry-After` of `retry_after_seconds` (at least 1).
    pub fn throttled(reason: &'static str, retry_after_seconds: i64) -> Self {
        Error::TooManyRequests(Throttled::new(reason, retry_after_seconds))
    }

    /// The `Retry-After` header's seconds, for a `429`.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Error::TooManyRequests(throttled) => Some(throttled.retry_after_seconds),
            _ => None,
        }
    }

    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidRequest(message.into())
    }

    pub fn invalid_action_config(message: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidActionConfig(message.into())
    }
}
