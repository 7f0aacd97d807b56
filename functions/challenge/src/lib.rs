//! The `challenge` function: start a challenge and verify a device signature over it
//! (spec 3.3 #4 and #5, 3.4.4). Push and QR-code challenges join it later.
//!
//! Each handler decodes the request, calls one [`shared::App`] use case and encodes the result.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use shared::domain::{ActionCode, ChallengeId, Namespace};
use shared::error::{Error, Result};
use shared::http::{ClientAuth, JsonBody, SharedApp, ok, required};
use shared::signature::PublicKey;
use shared::usecase::challenges::{ChallengeStarter, VerifyCommand};

/// The routes this function serves, as `(method, path)`.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/client/challenge"),
    ("POST", "/v1/client/verify/in-app"),
    ("POST", "/v1/client/verify/device"),
];

pub fn router(app: SharedApp) -> Router {
    Router::new()
        .route("/v1/client/challenge", post(start_challenge))
        .route("/v1/client/verify/in-app", post(verify_in_app))
        // The legacy `device` namespace of mid-2025 SDKs (spec 3.4.8).
        .route("/v1/client/verify/device", post(verify_device))
        .with_state(app)
}

// ---------------------------------------------------------------- start (spec 3.3 #4)

#[derive(Debug, Default, Deserialize)]
struct StartChallengeBody {
    action: Option<String>,
}

#[derive(Serialize)]
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
) -> Result<Response> {
    let action = body.action.map(ActionCode::parse).transpose()?;
    let starter = match &auth {
        ClientAuth::Bearer(bearer) => ChallengeStarter::Token(bearer.token.clone()),
        ClientAuth::Tenant(_) => ChallengeStarter::Tenant,
    };
    let challenge = app.start_challenge(auth.tenant(), starter, action).await?;
    Ok(ok(&StartChallengeResponse {
        challenge_id: challenge.id.into(),
        nonce: challenge.nonce,
    }))
}

// ---------------------------------------------------------------- verify (spec 3.3 #5)

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyBody {
    challenge_id: Option<String>,
    public_key: Option<String>,
    signature: Option<String>,
}

/// iOS and Android require `token`, `userId` and `userAuthenticatorId` (spec 3.4.4).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyResponse {
    token: String,
    user_id: String,
    user_authenticator_id: String,
}

async fn verify_in_app(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<Response> {
    verify(Namespace::InApp, auth, app, body).await
}

async fn verify_device(
    auth: ClientAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<Response> {
    verify(Namespace::Device, auth, app, body).await
}

async fn verify(
    namespace: Namespace,
    auth: ClientAuth,
    app: SharedApp,
    body: VerifyBody,
) -> Result<Response> {
    let command = VerifyCommand {
        namespace,
        challenge_id: ChallengeId::parse(required(body.challenge_id, "challengeId")?)
            .map_err(|_| Error::ChallengeNotFound)?,
        public_key: PublicKey::from_base64(&required(body.public_key, "publicKey")?)?,
        signature: required(body.signature, "signature")?,
    };
    let result = app
        .verify_challenge(auth.tenant(), auth.token(), command)
        .await?;
    Ok(ok(&VerifyResponse {
        token: result.token,
        user_id: result.credential.user_id.into(),
        user_authenticator_id: result.credential.id.into(),
    }))
}
