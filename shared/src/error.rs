//! One error type for every failure a caller can see, and its one mapping to HTTP.
//!
//! Each variant is one precise failed check. [`Error::status`], [`Error::code`] and
//! [`Error::description`] are the only place that decides what goes on the wire; handlers
//! never build error bodies themselves. The body always carries `error`, `errorCode` and
//! `errorDescription` with the same snake_case code in the first two, because the official SDKs
//! disagree on which key they read (spec 1.3).

use axum::http::StatusCode;
use std::borrow::Cow;

/// The exact 401 text the official SDKs' own tests assert against (spec 1.3).
pub const UNAUTHORIZED_DESCRIPTION: &str = "The request is unauthorized. Check that your API key and region base URL are correctly configured.";

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

    // --- Input (spec 1.2) ---
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("the request line and headers are larger than {0} bytes, or more than 100 headers")]
    HeaderFieldsTooLarge(usize),
    #[error("the request target is too long")]
    UriTooLong,

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

    // --- Challenges (spec 3.4.4, DESIGN 6) ---
    #[error("challenge not found")]
    ChallengeNotFound,
    #[error("the challenge has expired")]
    ChallengeExpired,
    #[error("the challenge has already been used")]
    ChallengeAlreadyUsed,
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

    // --- Routing ---
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed on this path")]
    MethodNotAllowed,

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
    pub const ANONYMOUS_STARTS: &'static str = "too many QR codes were started without a token from this address or for this tenant; try again later";
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

    pub fn status(&self) -> StatusCode {
        use Error::*;
        match self {
            Unauthorized | InvalidToken | ExpiredToken => StatusCode::UNAUTHORIZED,
            InsufficientScope(_) | UserMismatch | ActionForbidsEnrolment(_) => {
                StatusCode::FORBIDDEN
            }
            InvalidRequest(_)
            | BodyUnreadable
            | InvalidActionConfig(_)
            | InvalidCredential
            | InvalidSignature
            | ChallengeExpired
            | ChallengeMismatch
            | InvalidVerificationCode
            | DecisionSignatureRequired => StatusCode::BAD_REQUEST,
            InvalidDeviceCode | ChallengeClaimedByAnotherDevice => StatusCode::FORBIDDEN,
            TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            WebhookFailed(_) => StatusCode::BAD_GATEWAY,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            HeaderFieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            CredentialConflict
            | SignatureAlreadyUsed
            | ChallengeAlreadyUsed
            | ActionNotChallengeable(_)
            | ChallengeNotClaimed => StatusCode::CONFLICT,
            AuthenticatorNotFound
            | ChallengeNotFound
            | ActionNotFound
            | ActionConfigNotFound
            | RouteNotFound
            | NoPushCredential => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The snake_case code in `error` and `errorCode`.
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            Unauthorized => "unauthorized",
            InvalidToken => "invalid_token",
            ExpiredToken => "expired_token",
            InsufficientScope(_) => "insufficient_scope",
            InvalidRequest(_) => "invalid_request",
            PayloadTooLarge(_) => "payload_too_large",
            // A body that broke off (a client gone mid-body, bad chunked encoding): the
            // request is malformed, whatever it was going to say.
            BodyUnreadable => "invalid_request",
            RequestTimeout(_) => "request_timeout",
            HeaderFieldsTooLarge(_) => "request_header_fields_too_large",
            UriTooLong => "uri_too_long",
            InvalidCredential => "invalid_credential",
            CredentialConflict => "credential_conflict",
            InvalidSignature => "invalid_signature",
            SignatureAlreadyUsed => "signature_already_used",
            UserMismatch => "user_mismatch",
            AuthenticatorNotFound => "authenticator_not_found",
            ChallengeNotFound => "challenge_not_found",
            ChallengeExpired => "challenge_expired",
            ChallengeAlreadyUsed => "challenge_already_used",
            ChallengeMismatch => "challenge_mismatch",
            ChallengeClaimedByAnotherDevice => "challenge_claimed_by_another_device",
            ChallengeNotClaimed => "challenge_not_claimed",
            InvalidVerificationCode => "invalid_verification_code",
            DecisionSignatureRequired => "decision_signature_required",
            InvalidDeviceCode => "invalid_device_code",
            TooManyRequests(_) => "too_many_requests",
            NoPushCredential => "authenticator_not_found",
            WebhookFailed(_) => "webhook_failed",
            ActionNotFound => "action_not_found",
            ActionNotChallengeable(_) => "invalid_action_state",
            ActionForbidsEnrolment(_) => "action_not_allowed",
            InvalidActionConfig(_) => "invalid_action_config",
            ActionConfigNotFound => "action_config_not_found",
            RouteNotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            StoreUnavailable => "service_unavailable",
            Internal => "internal_error",
        }
    }

    /// The human-readable `errorDescription`.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Error::Unauthorized => Cow::Borrowed(UNAUTHORIZED_DESCRIPTION),
            Error::InvalidRequest(message) | Error::InvalidActionConfig(message) => message.clone(),
            Error::InvalidCredential => Cow::Borrowed(
                "The credential exists on the device but is not registered on the server.",
            ),
            other => Cow::Owned(capitalize(&other.to_string())),
        }
    }

    /// The JSON body of spec 1.3.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.code(),
            "errorCode": self.code(),
            "errorDescription": self.description(),
        })
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_has_the_exact_sdk_tested_text() {
        let body = Error::Unauthorized.body();
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(body["errorCode"], "unauthorized");
        assert_eq!(
            body["errorDescription"],
            "The request is unauthorized. Check that your API key and region base URL are correctly configured."
        );
        assert_eq!(Error::Unauthorized.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn every_client_facing_error_is_4xx_and_infrastructure_is_5xx() {
        let client = [
            Error::InvalidToken,
            Error::ExpiredToken,
            Error::InsufficientScope("add:authenticators"),
            Error::invalid_request("x"),
            Error::PayloadTooLarge(1),
            Error::BodyUnreadable,
            Error::RequestTimeout(std::time::Duration::from_secs(30)),
            Error::HeaderFieldsTooLarge(16384),
            Error::UriTooLong,
            Error::InvalidCredential,
            Error::CredentialConflict,
            Error::InvalidSignature,
            Error::SignatureAlreadyUsed,
            Error::UserMismatch,
            Error::AuthenticatorNotFound,
            Error::ChallengeNotFound,
            Error::ChallengeExpired,
            Error::ChallengeAlreadyUsed,
            Error::ChallengeMismatch,
            Error::ChallengeClaimedByAnotherDevice,
            Error::ChallengeNotClaimed,
            Error::InvalidVerificationCode,
            Error::DecisionSignatureRequired,
            Error::InvalidDeviceCode,
            Error::TooManyRequests(Throttled::new(Throttled::PUSH_STARTS, 1)),
            Error::NoPushCredential,
            Error::ActionNotFound,
            Error::ActionNotChallengeable("BLOCK"),
            Error::ActionForbidsEnrolment("BLOCK"),
            Error::invalid_action_config("rule #0: x"),
            Error::ActionConfigNotFound,
            Error::RouteNotFound,
            Error::MethodNotAllowed,
        ];
        for error in client {
            assert!(error.status().is_client_error(), "{error:?}");
            let body = error.body();
            assert_eq!(body["error"], body["errorCode"]);
            assert!(!body["errorDescription"].as_str().unwrap().is_empty());
        }
        assert_eq!(
            Error::StoreUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(Error::Internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            Error::WebhookFailed("status 500".into()).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
