//! The Server API's authenticator enrolments this server does not have (spec 2.7): an
//! authenticator verified elsewhere (`POST /v1/users/{userId}/authenticators`: SMS, email,
//! TOTP) and the .NET SDK's batch enrolment of passkeys (`POST /v1/users/authenticators`).
//! They answer `400 verification_method_not_supported` in the error shape, as the OTP routes
//! do, never a bare 404 or 405, and never an update of a user named `authenticators`.

use serde::Deserialize;
use shared::error::{Error, Result};
use shared::http::{JsonBody, PathParams, SecretKeyAuth};
use std::convert::Infallible;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnrollVerifiedBody {
    verification_method: Option<String>,
}

/// `POST /v1/users/{userId}/authenticators`: only device credentials (added by the device with
/// a track token) and passkeys exist here.
pub(crate) async fn enroll_verified_authenticator(
    SecretKeyAuth(_tenant): SecretKeyAuth,
    PathParams(_user_id): PathParams<String>,
    JsonBody(body): JsonBody<EnrollVerifiedBody>,
) -> Result<Infallible> {
    let method = body.verification_method.unwrap_or_default();
    Err(Error::UnsupportedVerificationMethod(
        format!(
            "Enrolling a verified {method:?} authenticator is not supported by trusted-device: it \
             has no SMS, email or TOTP authenticators. A device adds its own credential with a \
             track token (spec 3.4.1); passkeys are registered in the browser."
        )
        .into(),
    ))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchEnrollBody {
    #[allow(
        dead_code,
        reason = "read so that a wrong type is refused, as the SDK types it"
    )]
    authenticators: Option<Vec<serde_json::Value>>,
}

/// `POST /v1/users/authenticators`: passkeys are registered through a WebAuthn ceremony here,
/// never imported.
pub(crate) async fn batch_enroll_authenticators(
    SecretKeyAuth(_tenant): SecretKeyAuth,
    JsonBody(_body): JsonBody<BatchEnrollBody>,
) -> Result<Infallible> {
    Err(Error::UnsupportedVerificationMethod(
        "Batch enrolment of passkeys is not supported by trusted-device: a passkey is registered \
         through a WebAuthn ceremony in the browser (spec 3.5)."
            .into(),
    ))
}
