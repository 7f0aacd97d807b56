//! The server-side challenge routes of issue #20 (spec 2.8): `POST /v1/claim` for push and
//! QR-code challenges, and `POST /v1/challenge` / `POST /v1/verify`, the OTP methods (SMS,
//! EMAIL_OTP, WHATSAPP) this server does not have: they answer `400
//! verification_method_not_supported` in the error shape, never a bare 404.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::domain::{ApprovalId, UserId, VerificationMethod};
use shared::error::{Error, Result};
use shared::http::{JsonBody, JsonResponse, SecretKeyAuth, SharedApp, required};
use std::convert::Infallible;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ServerClaimBody")]
pub(crate) struct ClaimBody {
    challenge_id: Option<String>,
    user_id: Option<String>,
    /// Accepted and ignored: only an approved challenge has a token to give.
    #[allow(
        dead_code,
        reason = "read so that a wrong type is refused, as the SDK types it"
    )]
    skip_verification_check: Option<bool>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ServerClaimResponse")]
pub(crate) struct ClaimResponse {
    token: String,
    verification_method: VerificationMethod,
}

pub(crate) async fn claim_challenge(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<ClaimBody>,
) -> Result<JsonResponse<ClaimResponse>> {
    let id = ApprovalId::parse(required(body.challenge_id, "challengeId")?)
        .map_err(|_| Error::ChallengeNotFound)?;
    let user = UserId::parse(required(body.user_id, "userId")?)?;
    let claimed = app.server_claim_challenge(&tenant, &id, &user).await?;
    Ok(JsonResponse(ClaimResponse {
        token: claimed.token,
        verification_method: claimed.verification_method,
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OtpChallengeBody {
    verification_method: Option<String>,
}

/// `POST /v1/challenge`: no OTP method exists here, whatever the body names.
pub(crate) async fn start_otp_challenge(
    SecretKeyAuth(_tenant): SecretKeyAuth,
    JsonBody(body): JsonBody<OtpChallengeBody>,
) -> Result<Infallible> {
    let method = body.verification_method.unwrap_or_default();
    Err(Error::UnsupportedVerificationMethod(
        format!(
            "The verification method {method:?} is not supported by trusted-device: it has no SMS, \
             EMAIL_OTP or WHATSAPP one-time codes. Use a device credential (in-app, push or QR code)."
        )
        .into(),
    ))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OtpVerifyBody {
    #[allow(
        dead_code,
        reason = "read so that a wrong type is refused, as the SDK types it"
    )]
    challenge_id: Option<String>,
    #[allow(
        dead_code,
        reason = "read so that a wrong type is refused, as the SDK types it"
    )]
    verification_code: Option<String>,
}

/// `POST /v1/verify`: no OTP challenge can exist here to verify a code against.
pub(crate) async fn verify_otp(
    SecretKeyAuth(_tenant): SecretKeyAuth,
    JsonBody(_body): JsonBody<OtpVerifyBody>,
) -> Result<Infallible> {
    Err(Error::UnsupportedVerificationMethod(
        "OTP verification (SMS, EMAIL_OTP, WHATSAPP) is not supported by trusted-device: no OTP \
         challenge exists here."
            .into(),
    ))
}
