//! Sessions (spec 2.8, issue #20): `POST /v1/sessions`, `/sessions/validate`,
//! `/sessions/refresh`, `/sessions/revoke`, `/sessions/user/revoke` with the secret key, and the
//! public keys of the access tokens at `GET /v1/tenants/{tenantId}/.well-known/jwks.json`
//! (no auth: public keys).

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use serde::{Deserialize, Serialize};
use shared::domain::{ActionCode, TenantId, UserId, VerificationMethod};
use shared::error::Result;
use shared::http::error::HttpError;
use shared::http::{
    EmptyObject, JsonBody, JsonResponse, PathParams, SecretKeyAuth, SharedApp, required,
};
use shared::usecase::sessions::{CreateSession, SessionTokens};

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateSessionBody {
    client_id: Option<String>,
    token: Option<String>,
    action: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokensResponse {
    access_token: String,
    refresh_token: String,
}

impl From<SessionTokens> for TokensResponse {
    fn from(tokens: SessionTokens) -> Self {
        TokensResponse {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        }
    }
}

pub(crate) async fn create_session(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<CreateSessionBody>,
) -> Result<JsonResponse<TokensResponse>> {
    let command = CreateSession {
        client_id: required(body.client_id, "clientId")?,
        token: required(body.token, "token")?,
        action: body.action.map(ActionCode::parse).transpose()?,
    };
    let tokens = app.create_session(&tenant, command).await?;
    Ok(JsonResponse(TokensResponse::from(tokens)))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValidateSessionBody {
    access_token: Option<String>,
    client_ids: Option<Vec<String>>,
}

/// The user as get user shows its attributes (spec 2.6), with `userId`.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionUser {
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    phone_number_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<serde_json::Value>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValidateSessionResponse {
    user: SessionUser,
    expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_method: Option<VerificationMethod>,
}

pub(crate) async fn validate_session(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<ValidateSessionBody>,
) -> Result<JsonResponse<ValidateSessionResponse>> {
    let token = required(body.access_token, "accessToken")?;
    let valid = app
        .validate_session(&tenant, &token, body.client_ids.as_deref())
        .await?;
    let profile = valid.profile;
    Ok(JsonResponse(ValidateSessionResponse {
        user: SessionUser {
            user_id: valid.user_id.to_string(),
            email: profile.email,
            email_verified: profile.email_verified,
            phone_number: profile.phone_number,
            phone_number_verified: profile.phone_number_verified,
            username: profile.username,
            display_name: profile.display_name,
            custom: profile.custom,
        },
        expires_at: valid.expires_at,
        verification_method: valid.verification_method,
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshSessionBody {
    refresh_token: Option<String>,
}

pub(crate) async fn refresh_session(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<RefreshSessionBody>,
) -> Result<JsonResponse<TokensResponse>> {
    let token = required(body.refresh_token, "refreshToken")?;
    let tokens = app.refresh_session(&tenant, &token).await?;
    Ok(JsonResponse(TokensResponse::from(tokens)))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokeSessionBody {
    access_token: Option<String>,
}

pub(crate) async fn revoke_session(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<RevokeSessionBody>,
) -> Result<JsonResponse<EmptyObject>> {
    let token = required(body.access_token, "accessToken")?;
    app.revoke_session(&tenant, &token).await?;
    Ok(JsonResponse(EmptyObject {}))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokeUserSessionsBody {
    user_id: Option<String>,
}

pub(crate) async fn revoke_user_sessions(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<RevokeUserSessionsBody>,
) -> Result<JsonResponse<EmptyObject>> {
    let user = UserId::parse(required(body.user_id, "userId")?)?;
    app.revoke_user_sessions(&tenant, &user).await?;
    Ok(JsonResponse(EmptyObject {}))
}

/// The JWKS of a tenant's access tokens: public keys only, cacheable for 5 minutes (after a
/// rotation the previous key stays published until its tokens have expired, DESIGN 5; a
/// verifier meeting the new `kid` within those 5 minutes refetches).
/// An unknown tenant, or one without sessions, is the 404 of a path with no route.
pub(crate) async fn jwks(
    State(app): State<SharedApp>,
    PathParams(tenant_id): PathParams<String>,
) -> Result<
    (
        [(HeaderName, HeaderValue); 1],
        JsonResponse<serde_json::Value>,
    ),
    HttpError,
> {
    let tenant = TenantId::parse(tenant_id).map_err(|_| HttpError::RouteNotFound)?;
    let jwks = app
        .session_jwks(&tenant)
        .await?
        .ok_or(HttpError::RouteNotFound)?;
    Ok((
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        JsonResponse(jwks),
    ))
}
