//! The one mapping from failures to HTTP: status, `errorCode` and `errorDescription`.
//!
//! [`HttpError`] is the domain [`Error`] a use case returned, or a failure only the transport
//! can have (no route, a method not allowed, a body too large, broken off or too slow, a head
//! too large, a target too long). [`HttpError::status`], [`HttpError::code`] and
//! [`HttpError::description`] are the only place that decides what goes on the wire; handlers
//! never build error bodies themselves. The body always carries `error`, `errorCode` and
//! `errorDescription` with the same snake_case code in the first two, because the official SDKs
//! disagree on which key they read (spec 1.3).

use crate::error::Error;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::time::Duration;

/// The exact 401 text the official SDKs' own tests assert against (spec 1.3).
pub const UNAUTHORIZED_DESCRIPTION: &str = "The request is unauthorized. Check that your API key and region base URL are correctly configured.";

/// What handlers and extractors return: `?` turns a domain [`Error`] into one.
pub type Result<T, E = HttpError> = std::result::Result<T, E>;

/// A failure as the HTTP layer answers it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// What a use case (or a parser of the domain) refused.
    #[error(transparent)]
    Domain(#[from] Error),

    // --- Routing ---
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// A CORS preflight this path does not answer (the Server API), or that asks for a method
    /// or header the Client API does not take, or comes from no valid origin (DESIGN 9).
    #[error("{0}")]
    PreflightRefused(&'static str),

    // --- Transport (spec 1.2) ---
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(Duration),
    #[error("the request line and headers are larger than {0} bytes, or more than 100 headers")]
    HeaderFieldsTooLarge(usize),
    #[error("the request target is too long")]
    UriTooLong,
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Domain(error) => domain_status(error),
            HttpError::RouteNotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::PreflightRefused(_) => StatusCode::FORBIDDEN,
            HttpError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BodyUnreadable => StatusCode::BAD_REQUEST,
            HttpError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::HeaderFieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HttpError::UriTooLong => StatusCode::URI_TOO_LONG,
        }
    }

    /// The snake_case code in `error` and `errorCode`.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::Domain(error) => domain_code(error),
            HttpError::RouteNotFound => "not_found",
            HttpError::MethodNotAllowed => "method_not_allowed",
            HttpError::PreflightRefused(_) => "cors_not_allowed",
            HttpError::PayloadTooLarge(_) => "payload_too_large",
            // A body that broke off (a client gone mid-body, bad chunked encoding): the
            // request is malformed, whatever it was going to say.
            HttpError::BodyUnreadable => "invalid_request",
            HttpError::RequestTimeout(_) => "request_timeout",
            HttpError::HeaderFieldsTooLarge(_) => "request_header_fields_too_large",
            HttpError::UriTooLong => "uri_too_long",
        }
    }

    /// The human-readable `errorDescription`.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            HttpError::Domain(error) => domain_description(error),
            other => Cow::Owned(capitalize(&other.to_string())),
        }
    }

    /// The `Retry-After` header's seconds, for a `429`.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            HttpError::Domain(error) => error.retry_after_seconds(),
            _ => None,
        }
    }

    /// The JSON body of spec 1.3.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(ErrorBody {
            error: self.code(),
            error_code: self.code(),
            error_description: self.description(),
        })
        .unwrap_or_else(|_| serde_json::json!({}))
    }
}

/// Every error's JSON body (spec 1.3): `error` and `errorCode` carry the same snake_case code,
/// because the official SDKs disagree on which key they read. A type (not a `json!`) so that the
/// OpenAPI document's error schema is this one ([`crate::openapi`]).
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The snake_case error code, e.g. `invalid_request`.
    pub error: &'static str,
    /// The same code as `error`.
    pub error_code: &'static str,
    /// What went wrong, for a human.
    pub error_description: Cow<'static, str>,
}

/// A public key that does not parse is the domain's `invalid_request` (spec 3.4.1).
impl From<crate::signature::PublicKeyError> for HttpError {
    fn from(error: crate::signature::PublicKeyError) -> Self {
        HttpError::Domain(error.into())
    }
}

/// A domain error's `errorCode` and `errorDescription`, for callers that show it outside a
/// response: the CLI prints the same text the API would answer, tests check the code.
pub trait Describe {
    fn code(&self) -> &'static str;
    fn description(&self) -> Cow<'static, str>;
}

impl Describe for Error {
    fn code(&self) -> &'static str {
        domain_code(self)
    }

    fn description(&self) -> Cow<'static, str> {
        domain_description(self)
    }
}

fn domain_status(error: &Error) -> StatusCode {
    use Error::*;
    match error {
        Unauthorized | InvalidToken | ExpiredToken => StatusCode::UNAUTHORIZED,
        InsufficientScope(_)
        | UserMismatch
        | ActionForbidsEnrolment(_)
        | OriginNotAllowed
        | SettingsNotRequested
        | RemovalNeedsChallenge => StatusCode::FORBIDDEN,
        InvalidRequest(_)
        | InvalidActionConfig(_)
        | InvalidCredential
        | InvalidSignature
        | ChallengeExpired
        | ChallengeMismatch
        | InvalidVerificationCode
        | DecisionSignatureRequired
        | SessionsNotConfigured
        | UnknownClientId
        | TokenAlreadyUsed
        | ChallengeNotSucceeded
        | UnsupportedVerificationMethod(_)
        | PasskeysNotConfigured
        | PasskeyRejected(_)
        | PasskeyNotRegistered => StatusCode::BAD_REQUEST,
        ClientIdMismatch | InvalidRefreshToken | ExpiredRefreshToken | RefreshTokenReused
        | SessionRevoked => StatusCode::UNAUTHORIZED,
        InvalidDeviceCode | ChallengeClaimedByAnotherDevice => StatusCode::FORBIDDEN,
        TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
        WebhookFailed(_) => StatusCode::BAD_GATEWAY,
        CredentialConflict
        | SignatureAlreadyUsed
        | ChallengeAlreadyUsed
        | ChallengeSuperseded
        | PasskeyTokenAlreadyUsed
        | ActionNotChallengeable(_)
        | ChallengeNotClaimed => StatusCode::CONFLICT,
        AuthenticatorNotFound
        | ChallengeNotFound
        | ActionNotFound
        | ActionConfigNotFound
        | NoPushCredential
        | NoPasskey => StatusCode::NOT_FOUND,
        // Spec 3.3: `in_app` has no approval routes; answered as the route it is not.
        NoApprovalsInNamespace => HttpError::RouteNotFound.status(),
        StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn domain_code(error: &Error) -> &'static str {
    use Error::*;
    match error {
        Unauthorized => "unauthorized",
        InvalidToken => "invalid_token",
        ExpiredToken => "expired_token",
        InsufficientScope(_) => "insufficient_scope",
        OriginNotAllowed => "origin_not_allowed",
        InvalidRequest(_) => "invalid_request",
        InvalidCredential => "invalid_credential",
        CredentialConflict => "credential_conflict",
        InvalidSignature => "invalid_signature",
        SignatureAlreadyUsed => "signature_already_used",
        UserMismatch => "user_mismatch",
        AuthenticatorNotFound => "authenticator_not_found",
        SettingsNotRequested => "settings_not_requested",
        RemovalNeedsChallenge => "challenge_required",
        ChallengeNotFound => "challenge_not_found",
        ChallengeExpired => "challenge_expired",
        ChallengeAlreadyUsed => "challenge_already_used",
        ChallengeSuperseded => "challenge_superseded",
        ChallengeMismatch => "challenge_mismatch",
        ChallengeClaimedByAnotherDevice => "challenge_claimed_by_another_device",
        ChallengeNotClaimed => "challenge_not_claimed",
        InvalidVerificationCode => "invalid_verification_code",
        DecisionSignatureRequired => "decision_signature_required",
        InvalidDeviceCode => "invalid_device_code",
        TooManyRequests(_) => "too_many_requests",
        NoPushCredential => "authenticator_not_found",
        PasskeysNotConfigured => "passkeys_not_configured",
        PasskeyRejected(check) => check.code(),
        PasskeyNotRegistered => "invalid_credential",
        NoPasskey => "authenticator_not_found",
        WebhookFailed(_) => "webhook_failed",
        NoApprovalsInNamespace => HttpError::RouteNotFound.code(),
        ActionNotFound => "action_not_found",
        ActionNotChallengeable(_) => "invalid_action_state",
        ActionForbidsEnrolment(_) => "action_not_allowed",
        InvalidActionConfig(_) => "invalid_action_config",
        ActionConfigNotFound => "action_config_not_found",
        SessionsNotConfigured => "sessions_not_configured",
        UnknownClientId => "invalid_client_id",
        TokenAlreadyUsed | PasskeyTokenAlreadyUsed => "token_already_used",
        ChallengeNotSucceeded => "challenge_not_succeeded",
        ClientIdMismatch => "client_id_mismatch",
        InvalidRefreshToken => "invalid_refresh_token",
        ExpiredRefreshToken => "expired_refresh_token",
        RefreshTokenReused => "refresh_token_reused",
        SessionRevoked => "session_revoked",
        UnsupportedVerificationMethod(_) => "verification_method_not_supported",
        StoreUnavailable => "service_unavailable",
        Internal => "internal_error",
    }
}

fn domain_description(error: &Error) -> Cow<'static, str> {
    match error {
        Error::Unauthorized => Cow::Borrowed(UNAUTHORIZED_DESCRIPTION),
        Error::InvalidRequest(message)
        | Error::InvalidActionConfig(message)
        | Error::UnsupportedVerificationMethod(message) => message.clone(),
        Error::InvalidCredential => Cow::Borrowed(
            "The credential exists on the device but is not registered on the server.",
        ),
        Error::NoApprovalsInNamespace => HttpError::RouteNotFound.description(),
        Error::PasskeyRejected(check) => Cow::Borrowed(check.description()),
        other => Cow::Owned(capitalize(&other.to_string())),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// The error code of a response, for the request log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoggedErrorCode(pub(crate) &'static str);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = super::json(self.status(), &self.body());
        // RFC 9110 10.2.3: a 429 says when to come back (DESIGN 6 rate limits and throttles).
        if let Some(seconds) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
            .extensions_mut()
            .insert(LoggedErrorCode(self.code()));
        // Counted where the code is decided, once per error answered (DESIGN 11).
        let domain = match &self {
            HttpError::Domain(error) => Some(error),
            _ => None,
        };
        crate::metric::error_response(self.code(), domain);
        response
    }
}

/// A handler may return the domain error itself: it is answered as [`HttpError::Domain`].
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        HttpError::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Throttled;

    #[test]
    fn unauthorized_has_the_exact_sdk_tested_text() {
        let error = HttpError::from(Error::Unauthorized);
        let body = error.body();
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(body["errorCode"], "unauthorized");
        assert_eq!(
            body["errorDescription"],
            "The request is unauthorized. Check that your API key and region base URL are correctly configured."
        );
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn every_client_facing_error_is_4xx_and_infrastructure_is_5xx() {
        let client = [
            Error::InvalidToken.into(),
            Error::ExpiredToken.into(),
            Error::InsufficientScope("add:authenticators").into(),
            Error::invalid_request("x").into(),
            HttpError::PayloadTooLarge(1),
            HttpError::BodyUnreadable,
            HttpError::RequestTimeout(std::time::Duration::from_secs(30)),
            HttpError::HeaderFieldsTooLarge(16384),
            HttpError::UriTooLong,
            Error::InvalidCredential.into(),
            Error::CredentialConflict.into(),
            Error::InvalidSignature.into(),
            Error::SignatureAlreadyUsed.into(),
            Error::UserMismatch.into(),
            Error::AuthenticatorNotFound.into(),
            Error::ChallengeNotFound.into(),
            Error::ChallengeExpired.into(),
            Error::ChallengeAlreadyUsed.into(),
            Error::ChallengeSuperseded.into(),
            Error::ChallengeMismatch.into(),
            Error::ChallengeClaimedByAnotherDevice.into(),
            Error::ChallengeNotClaimed.into(),
            Error::InvalidVerificationCode.into(),
            Error::DecisionSignatureRequired.into(),
            Error::InvalidDeviceCode.into(),
            Error::TooManyRequests(Throttled::new(Throttled::PUSH_STARTS, 1)).into(),
            Error::NoPushCredential.into(),
            Error::NoApprovalsInNamespace.into(),
            Error::ActionNotFound.into(),
            Error::ActionNotChallengeable("BLOCK").into(),
            Error::ActionForbidsEnrolment("BLOCK").into(),
            Error::invalid_action_config("rule #0: x").into(),
            Error::ActionConfigNotFound.into(),
            Error::SessionsNotConfigured.into(),
            Error::UnknownClientId.into(),
            Error::TokenAlreadyUsed.into(),
            Error::PasskeyTokenAlreadyUsed.into(),
            Error::ChallengeNotSucceeded.into(),
            Error::ClientIdMismatch.into(),
            Error::InvalidRefreshToken.into(),
            Error::ExpiredRefreshToken.into(),
            Error::RefreshTokenReused.into(),
            Error::SessionRevoked.into(),
            Error::UnsupportedVerificationMethod("x".into()).into(),
            HttpError::RouteNotFound,
            HttpError::MethodNotAllowed,
            HttpError::PreflightRefused("x"),
            Error::OriginNotAllowed.into(),
        ];
        for error in client {
            assert!(error.status().is_client_error(), "{error:?}");
            let body = error.body();
            assert_eq!(body["error"], body["errorCode"]);
            assert!(!body["errorDescription"].as_str().unwrap().is_empty());
        }
        assert_eq!(
            HttpError::from(Error::StoreUnavailable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            HttpError::from(Error::Internal).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            HttpError::from(Error::WebhookFailed("status 500".into())).status(),
            StatusCode::BAD_GATEWAY
        );
    }

    /// An `in_app` credential answering a push or QR code gets exactly the answer of a path
    /// with no route (spec 3.3), as it did when the use case returned that routing error.
    #[test]
    fn a_namespace_without_approvals_is_answered_as_no_route() {
        let domain = HttpError::from(Error::NoApprovalsInNamespace);
        assert_eq!(domain.status(), HttpError::RouteNotFound.status());
        assert_eq!(domain.body(), HttpError::RouteNotFound.body());
        assert_eq!(domain.body()["errorDescription"], "No route for this path.");
    }

    /// `POST /v1/validate` answers a token it cannot use with a 200 and an `error` code
    /// (spec 2.4): the use case names those codes itself; they are the codes of the errors.
    #[test]
    fn the_validate_codes_are_the_error_codes() {
        use crate::usecase::validate::{UnusableToken, unusable_code};
        for reason in UnusableToken::ALL {
            assert_eq!(
                unusable_code(reason),
                HttpError::from(reason.error()).code()
            );
        }
    }
}
