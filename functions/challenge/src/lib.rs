//! The `challenge` function: start a challenge and verify a device signature over it
//! (spec 3.3 #4 and #5, 3.4.4); push and QR-code approval, from start to poll (spec 3.3 #6,
//! #7, #10 to #15, 3.4.5 to 3.4.7); and the Server API's get challenge (spec 2.2, 2.8).
//!
//! Each handler decodes the request, calls one [`shared::App`] use case and encodes the result.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use shared::domain::{
    ActionCode, ApprovalChallenge, ApprovalId, ApprovalKind, ChallengeId, CredentialId, Namespace,
    UserId,
};
use shared::error::Error;
use shared::http::error::{HttpError, Result};
use shared::http::{
    BearerAuth, ClientAuth, JsonBody, JsonResponse, PathParams, PeerIp, PublicKeyQuery,
    QueryParams, SecretKeyAuth, SharedApp, TenantAuth, required,
};
use shared::signature::PublicKey;
use shared::usecase::approvals::{
    Answer, PollStatus, QrStarter, SignedChallengeRequest, SignedExtras, StartPush, StartQrCode,
};
use shared::usecase::challenges::{ChallengeStarter, VerifyCommand};
use shared::usecase::limits::Source;

use shared::http::cors::preflight;
mod server;

shared::routes! {
    POST "/v1/client/challenge" => start_challenge,
    // Passkey sign-in (spec 3.5, issue #15), with a token or, discoverable, tenant Basic.
    POST "/v1/client/user-authenticators/passkey/authentication-options" => passkey_authentication_options,
    POST "/v1/client/user-authenticators/passkey/authentication-options/web" => passkey_authentication_options,
    POST "/v1/client/verify/passkey" => verify_passkey,
    POST "/v1/client/verify/in-app" => verify_in_app,
    // The legacy `device` namespace of mid-2025 SDKs (spec 3.4.8).
    POST "/v1/client/verify/device" => verify_device,
    POST "/v1/client/challenge/push" => start_push,
    POST "/v1/client/verify/push" => poll_push,
    POST "/v1/client/challenge/qr-code" => start_qr_code,
    POST "/v1/client/verify/qr-code" => poll_qr_code,
    GET "/v1/client/user-authenticators/{namespace}/challenge" => pending_push,
    POST "/v1/client/user-authenticators/{namespace}/challenge" => answer_challenge,
    POST "/v1/client/user-authenticators/{namespace}/challenge/sign" => push_read_nonce,
    POST "/v1/client/user-authenticators/{namespace}/challenge/claim" => claim_qr_code,
    // Java and .NET send POST, the others GET (spec 2.2).
    GET "/v1/challenges" => get_challenge,
    POST "/v1/challenges" => get_challenge,

    // Each path's CORS preflight: answered on the Client API, refused on the Server API.
    OPTIONS "/v1/client/challenge" => preflight,
    OPTIONS "/v1/client/verify/in-app" => preflight,
    OPTIONS "/v1/client/verify/device" => preflight,
    OPTIONS "/v1/client/challenge/push" => preflight,
    OPTIONS "/v1/client/verify/push" => preflight,
    OPTIONS "/v1/client/challenge/qr-code" => preflight,
    OPTIONS "/v1/client/verify/qr-code" => preflight,
    OPTIONS "/v1/client/user-authenticators/{namespace}/challenge" => preflight,
    OPTIONS "/v1/client/user-authenticators/{namespace}/challenge/sign" => preflight,
    OPTIONS "/v1/client/user-authenticators/{namespace}/challenge/claim" => preflight,
    OPTIONS "/v1/challenges" => preflight,
    OPTIONS "/v1/claim" => preflight,
    OPTIONS "/v1/challenge" => preflight,
    OPTIONS "/v1/verify" => preflight,
    OPTIONS "/v1/client/user-authenticators/passkey/authentication-options" => preflight,
    OPTIONS "/v1/client/user-authenticators/passkey/authentication-options/web" => preflight,
    OPTIONS "/v1/client/verify/passkey" => preflight,
    // Server API, issue #20 (spec 2.8): claim, and the OTP methods answered as unsupported.
    POST "/v1/claim" => server::claim_challenge,
    POST "/v1/challenge" => server::start_otp_challenge,
    POST "/v1/verify" => server::verify_otp,
}

// ---------------------------------------------------------------- start (spec 3.3 #4)

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
struct StartChallengeBody {
    action: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StartChallengeResponse {
    challenge_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

async fn start_challenge(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<StartChallengeBody>,
) -> Result<JsonResponse<StartChallengeResponse>> {
    let action = body.action.map(ActionCode::parse).transpose()?;
    let starter = match &auth {
        ClientAuth::Bearer(bearer) => ChallengeStarter::Token(bearer.token.clone()),
        ClientAuth::Tenant(_) => ChallengeStarter::Tenant,
    };
    let challenge = app.start_challenge(auth.tenant(), starter, action).await?;
    Ok(JsonResponse(StartChallengeResponse {
        challenge_id: challenge.id.into(),
        nonce: challenge.nonce,
    }))
}

// ---------------------------------------------------------------- verify (spec 3.3 #5)

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct VerifyBody {
    challenge_id: Option<String>,
    public_key: Option<String>,
    signature: Option<String>,
}

/// iOS and Android require `token`, `userId` and `userAuthenticatorId` (spec 3.4.4).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct VerifyResponse {
    token: String,
    user_id: String,
    user_authenticator_id: String,
}

async fn verify_in_app(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    PeerIp(source): PeerIp,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<JsonResponse<VerifyResponse>> {
    verify(Namespace::InApp, auth, app, source, body).await
}

async fn verify_device(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    PeerIp(source): PeerIp,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<JsonResponse<VerifyResponse>> {
    verify(Namespace::Device, auth, app, source, body).await
}

async fn verify(
    namespace: Namespace,
    auth: ClientAuth,
    app: SharedApp,
    source: Source,
    body: VerifyBody,
) -> Result<JsonResponse<VerifyResponse>> {
    let command = VerifyCommand {
        namespace,
        challenge_id: ChallengeId::parse(required(body.challenge_id, "challengeId")?)
            .map_err(|_| Error::ChallengeNotFound)?,
        public_key: PublicKey::from_base64(&required(body.public_key, "publicKey")?)?,
        signature: required(body.signature, "signature")?,
        source,
    };
    let result = app
        .verify_challenge(auth.tenant(), auth.token(), command)
        .await?;
    Ok(JsonResponse(VerifyResponse {
        token: result.token,
        user_id: result.credential.user_id.into(),
        user_authenticator_id: result.credential.id.into(),
    }))
}

// ---------------------------------------------------------------- push: browser (spec 3.3 #12, #13)

/// A namespace segment that has approval routes; any other is not a route (spec 3.3).
fn approval_namespace(segment: &str, allowed: &[Namespace]) -> Result<Namespace> {
    Namespace::parse_segment(segment)
        .filter(|ns| allowed.contains(ns))
        .ok_or(HttpError::RouteNotFound)
}

fn approval_id(value: Option<String>) -> Result<ApprovalId> {
    Ok(ApprovalId::parse(required(value, "challengeId")?)?)
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StartPushBody {
    action: Option<String>,
    user_authenticator_id: Option<String>,
    /// Ours: ask for a code for the browser to show (README, "Number matching").
    #[serde(default)]
    number_matching: Option<bool>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct DeliveryResult {
    user_authenticator_id: String,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StartPushResponse {
    challenge_id: String,
    delivery_results: Vec<DeliveryResult>,
    expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_code: Option<String>,
}

async fn start_push(
    BearerAuth { tenant, token }: BearerAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<StartPushBody>,
) -> Result<JsonResponse<StartPushResponse>> {
    let command = StartPush {
        action: body.action.map(ActionCode::parse).transpose()?,
        credential: body
            .user_authenticator_id
            .map(CredentialId::parse)
            .transpose()?,
        number_matching: body.number_matching.unwrap_or(false),
    };
    let started = app.start_push(&tenant, &token, command).await?;
    Ok(JsonResponse(StartPushResponse {
        challenge_id: started.challenge_id.into(),
        delivery_results: started
            .sent_to
            .into_iter()
            .map(|id| DeliveryResult {
                user_authenticator_id: id.into(),
            })
            .collect(),
        expires_at: started.expires_at.unix_seconds(),
        verification_code: started.verification_code,
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PollBody {
    challenge_id: Option<String>,
    device_code: Option<String>,
}

/// The poll responses (spec 3.4.6, 3.4.7); push pollers ignore `isClaimed`.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PollResponse {
    is_claimed: bool,
    is_consumed: bool,
    is_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
}

impl From<PollStatus> for PollResponse {
    fn from(status: PollStatus) -> Self {
        PollResponse {
            is_claimed: status.is_claimed,
            is_consumed: status.is_consumed,
            is_verified: status.is_verified,
            access_token: status.access_token,
        }
    }
}

async fn poll_push(
    BearerAuth { tenant, token }: BearerAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<PollBody>,
) -> Result<JsonResponse<PollResponse>> {
    let id = approval_id(body.challenge_id)?;
    let status = app.poll_push(&tenant, &token, &id).await?;
    Ok(JsonResponse(PollResponse::from(status)))
}

// ---------------------------------------------------------------- QR code: kiosk (spec 3.3 #14, #15)

/// The largest `custom` a QR-code start may carry (ours; the approver sees it).
const MAX_QR_CUSTOM_BYTES: usize = 4096;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StartQrCodeBody {
    action: Option<String>,
    custom: Option<serde_json::Value>,
    /// Ours, as for push.
    number_matching: Option<bool>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StartQrCodeResponse {
    challenge_id: String,
    expires_at: i64,
    device_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_code: Option<String>,
}

async fn start_qr_code(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    PeerIp(ip): PeerIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StartQrCodeBody>,
) -> Result<JsonResponse<StartQrCodeResponse>> {
    if body.custom.as_ref().is_some_and(|c| !c.is_object()) {
        return Err(Error::invalid_request("`custom` must be a JSON object.").into());
    }
    // An anonymous start needs no secret, and each one is stored: keep what it stores small.
    if body
        .custom
        .as_ref()
        .is_some_and(|c| c.to_string().len() > MAX_QR_CUSTOM_BYTES)
    {
        return Err(Error::invalid_request(format!(
            "`custom` must be at most {MAX_QR_CUSTOM_BYTES} bytes of JSON."
        ))
        .into());
    }
    let starter = match &auth {
        ClientAuth::Bearer(bearer) => QrStarter::Token(bearer.token.clone()),
        ClientAuth::Tenant(_) => QrStarter::Tenant,
    };
    let command = StartQrCode {
        action: body.action.map(ActionCode::parse).transpose()?,
        custom: body.custom,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
        ip_address: ip.map(|ip| ip.to_string()),
        source: ip,
        number_matching: body.number_matching.unwrap_or(false),
    };
    let started = app.start_qr_code(auth.tenant(), starter, command).await?;
    Ok(JsonResponse(StartQrCodeResponse {
        challenge_id: started.challenge_id.into(),
        expires_at: started.expires_at.unix_seconds(),
        device_code: started.device_code,
        verification_code: started.verification_code,
    }))
}

async fn poll_qr_code(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<PollBody>,
) -> Result<JsonResponse<PollResponse>> {
    let id = approval_id(body.challenge_id)?;
    let device_code = required(body.device_code, "deviceCode")?;
    let status = app.poll_qr_code(auth.tenant(), &id, &device_code).await?;
    Ok(JsonResponse(PollResponse::from(status)))
}

// ---------------------------------------------------------------- the app (spec 3.3 #6, #7, #10, #11)

#[derive(Serialize, schemars::JsonSchema)]
struct UserCustom {
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<serde_json::Value>,
}

/// Android requires `userAuthenticatorId` in every 200; the challenge fields only when one
/// is pending; the initiator context, the action's key, `custom` and `user` only for a
/// signed read (spec 3.4.5, DESIGN 6).
#[derive(Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PendingPushResponse {
    user_authenticator_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// Ours: number matching is on, so the app should ask for the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_code_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserCustom>,
}

fn user_custom(extras: &SignedExtras) -> UserCustom {
    UserCustom {
        custom: extras.user.as_ref().and_then(|u| u.custom.clone()),
    }
}

async fn pending_push(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PathParams(segment): PathParams<String>,
    QueryParams(query): QueryParams<PublicKeyQuery>,
    headers: HeaderMap,
) -> Result<JsonResponse<PendingPushResponse>> {
    let namespace = approval_namespace(&segment, &[Namespace::Push, Namespace::Device])?;
    let public_key = query.parse()?;
    // The legacy `device` read is unsigned (spec 3.4.8).
    let signature = headers
        .get("x-authsignal-signature")
        .and_then(|v| v.to_str().ok())
        .filter(|_| namespace == Namespace::Push);
    let pending = app
        .pending_push(&tenant, namespace, &public_key, signature)
        .await?;
    let mut response = PendingPushResponse {
        user_authenticator_id: pending.credential.id.into(),
        ..PendingPushResponse::default()
    };
    if let Some(challenge) = pending.challenge {
        // What anyone who knows the public key may see (docs/api.md "What an unsigned push
        // read reveals"): enough for the SDKs to show and answer the push. The public key is
        // not a secret, so who is signing in, from where, and the action's key are only for
        // a read signed by the device (spec 3.4.5); the SDKs decode all of them as optional.
        response.challenge_id = Some(challenge.id.to_string());
        response.action_code = Some(challenge.action_code.to_string());
        response.verification_code_required = challenge.verification_code.is_some().then_some(true);
        if namespace == Namespace::Push {
            response.expires_at = Some(challenge.expires_at.unix_seconds());
        }
        if let Some(extras) = &pending.signed {
            let action = challenge.action.as_ref();
            response.user_id = action.map(|a| a.user_id.to_string());
            response.idempotency_key = action.map(|a| a.idempotency_key.to_string());
            response.device_id = challenge.context.device_id.clone();
            response.user_agent = challenge.context.user_agent.clone();
            response.ip_address = challenge.context.ip_address.clone();
            response.custom = challenge.context.custom.clone();
            response.user = Some(user_custom(extras));
        }
    }
    Ok(JsonResponse(response))
}

#[derive(Serialize, schemars::JsonSchema)]
struct NonceResponse {
    message: String,
}

async fn push_read_nonce(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PathParams(segment): PathParams<String>,
    QueryParams(query): QueryParams<PublicKeyQuery>,
) -> Result<JsonResponse<NonceResponse>> {
    approval_namespace(&segment, &[Namespace::Push])?;
    let message = app.push_read_nonce(&tenant, &query.parse()?).await?;
    Ok(JsonResponse(NonceResponse { message }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AnswerBody {
    challenge_id: Option<String>,
    public_key: Option<String>,
    signature: Option<String>,
    approved: Option<bool>,
    verification_code: Option<String>,
    /// Ours: a signature over `challengeId|approved|verificationCode` (README).
    decision_signature: Option<String>,
}

/// iOS requires `isVerified` (spec 3.4.5).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AnswerResponse {
    is_verified: bool,
}

fn signed_request(
    namespace: Namespace,
    challenge_id: Option<String>,
    public_key: Option<String>,
    signature: Option<String>,
    source: Source,
) -> Result<SignedChallengeRequest> {
    Ok(SignedChallengeRequest {
        namespace,
        challenge_id: approval_id(challenge_id)?,
        public_key: PublicKey::from_base64(&required(public_key, "publicKey")?)?,
        signature: required(signature, "signature")?,
        source,
    })
}

async fn answer_challenge(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PeerIp(source): PeerIp,
    PathParams(segment): PathParams<String>,
    JsonBody(body): JsonBody<AnswerBody>,
) -> Result<JsonResponse<AnswerResponse>> {
    let namespace = approval_namespace(
        &segment,
        &[Namespace::Push, Namespace::QrCode, Namespace::Device],
    )?;
    let answer = Answer {
        request: signed_request(
            namespace,
            body.challenge_id,
            body.public_key,
            body.signature,
            source,
        )?,
        approved: required(body.approved, "approved")?,
        verification_code: body.verification_code,
        decision_signature: body.decision_signature,
    };
    let is_verified = app.answer_challenge(&tenant, answer).await?;
    Ok(JsonResponse(AnswerResponse { is_verified }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ClaimBody {
    challenge_id: Option<String>,
    public_key: Option<String>,
    signature: Option<String>,
}

/// Both platforms require `success` (spec 3.4.7).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ClaimResponse {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    action_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<serde_json::Value>,
    user: UserCustom,
    /// Ours: number matching is on, so the app should ask for the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_code_required: Option<bool>,
}

async fn claim_qr_code(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PeerIp(source): PeerIp,
    PathParams(segment): PathParams<String>,
    JsonBody(body): JsonBody<ClaimBody>,
) -> Result<JsonResponse<ClaimResponse>> {
    let namespace = approval_namespace(&segment, &[Namespace::QrCode, Namespace::Device])?;
    let request = signed_request(
        namespace,
        body.challenge_id,
        body.public_key,
        body.signature,
        source,
    )?;
    let (challenge, extras) = app.claim_qr_code(&tenant, request).await?;
    Ok(JsonResponse(ClaimResponse {
        success: true,
        ip_address: challenge.context.ip_address.clone(),
        user_agent: challenge.context.user_agent.clone(),
        action_code: challenge.action_code.to_string(),
        idempotency_key: challenge
            .action
            .as_ref()
            .map(|a| a.idempotency_key.to_string()),
        custom: challenge.context.custom.clone(),
        user: user_custom(&extras),
        verification_code_required: challenge.verification_code.is_some().then_some(true),
    }))
}

// ---------------------------------------------------------------- server: get challenge (spec 2.2, 2.8)

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct GetChallengeQuery {
    challenge_id: Option<String>,
    user_id: Option<String>,
}

/// Spec 2.8's shape, with our approval state added.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct GetChallengeResponse {
    challenge_id: String,
    expires_at: i64,
    verification_method: &'static str,
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    state: shared::domain::ApprovalState,
}

impl From<ApprovalChallenge> for GetChallengeResponse {
    fn from(c: ApprovalChallenge) -> Self {
        GetChallengeResponse {
            challenge_id: c.id.to_string(),
            expires_at: c.expires_at.unix_seconds(),
            verification_method: match c.kind {
                ApprovalKind::Push => "PUSH",
                // DEVICE, not QR_CODE: .NET parses the enum strictly (spec 2.9, 8.8).
                ApprovalKind::QrCode => "DEVICE",
            },
            action: c.action_code.to_string(),
            user_id: c.user_id.map(Into::into),
            state: c.state,
        }
    }
}

/// Java appends the query without `?` and .NET posts a JSON body too (spec 2.2): the body's
/// fields are read when the query lacks them.
async fn get_challenge(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    QueryParams(query): QueryParams<GetChallengeQuery>,
    JsonBody(body): JsonBody<GetChallengeQuery>,
) -> Result<JsonResponse<GetChallengeResponse>> {
    let id = approval_id(query.challenge_id.or(body.challenge_id))?;
    let user = query
        .user_id
        .or(body.user_id)
        .map(UserId::parse)
        .transpose()?;
    let challenge = app
        .get_approval_challenge(&tenant, &id, user.as_ref())
        .await?;
    Ok(JsonResponse(GetChallengeResponse::from(challenge)))
}

// ---------------------------------------------------------------- passkeys (spec 3.5, issue #15)

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AuthenticationOptionsBody {
    /// From `POST /client/challenge {action}` (the SDK's `signIn({action})`).
    challenge_id: Option<String>,
}

/// `AuthenticationOptsResponse` of `@authsignal/browser`: `options` is what SimpleWebAuthn's
/// `startAuthentication({optionsJSON})` takes.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PasskeyCeremonyResponse {
    challenge_id: String,
    options: serde_json::Value,
}

async fn passkey_authentication_options(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    PeerIp(source): PeerIp,
    JsonBody(body): JsonBody<AuthenticationOptionsBody>,
) -> Result<JsonResponse<PasskeyCeremonyResponse>> {
    let challenge_id = body
        .challenge_id
        .map(|id| ChallengeId::parse(id).map_err(|_| Error::ChallengeNotFound))
        .transpose()?;
    let start = app
        .passkey_authentication_options(auth.tenant(), auth.token(), challenge_id.as_ref(), source)
        .await?;
    Ok(JsonResponse(PasskeyCeremonyResponse {
        challenge_id: start.challenge_id,
        options: start.options,
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct VerifyPasskeyBody {
    authentication_credential: Option<serde_json::Value>,
    challenge_id: Option<String>,
    // `deviceId` (the SDK's anonymous id) is accepted and not used.
}

/// `VerifyResponse` of `@authsignal/browser`; the SDK renames `accessToken` to `token`.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct VerifyPasskeyResponse {
    is_verified: bool,
    access_token: String,
    user_id: String,
    user_authenticator_id: String,
}

async fn verify_passkey(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<VerifyPasskeyBody>,
) -> Result<JsonResponse<VerifyPasskeyResponse>> {
    let challenge_id = required(body.challenge_id, "challengeId")?;
    let response = serde_json::from_value(required(
        body.authentication_credential,
        "authenticationCredential",
    )?)
    .map_err(|_| Error::PasskeyRejected(shared::domain::PasskeyCheck::Malformed))?;
    let result = app
        .verify_passkey(auth.tenant(), auth.token(), &challenge_id, &response)
        .await?;
    Ok(JsonResponse(VerifyPasskeyResponse {
        is_verified: true,
        access_token: result.token,
        user_id: result.passkey.user_id.to_string(),
        user_authenticator_id: result.passkey.id.to_string(),
    }))
}
