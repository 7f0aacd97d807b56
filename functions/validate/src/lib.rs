//! The `validate` function: `POST /v1/validate`, the backend's question "did this token's
//! challenge succeed?" (spec 2.4). It only reads; the sessions made from such a token write,
//! so they are served by `track` (issue #20).
//!
//! The handler decodes the request, calls [`shared::App::validate`] and encodes the result.

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use shared::domain::{ActionCode, ActionState, UserId, VerificationMethod};
use shared::error::Result;
use shared::http::{JsonBody, JsonResponse, SecretKeyAuth, SharedApp, required};
use shared::openapi::{DocumentResponse, ServedDocument};
use shared::usecase::validate::{ValidateCommand, Validation};

use shared::http::cors::preflight;

shared::routes! {
    POST "/v1/validate" => validate,
    // The OpenAPI 3.1 document of every route (issue #19): no auth, cacheable. Here because
    // this is the smallest function, and the document is a file it carries.
    GET "/v1/openapi.json" => openapi_document,

    // Each path's CORS preflight: answered on the Client API, refused on the Server API.
    OPTIONS "/v1/validate" => preflight,
    OPTIONS "/v1/openapi.json" => preflight,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ValidateBody {
    token: Option<String>,
    user_id: Option<String>,
    action: Option<String>,
}

/// Both `action` and `actionCode` are sent: Java and .NET read `actionCode`, Node renames it,
/// Python reads `action` (spec 2.4).
#[derive(Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ValidateResponse {
    is_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<ActionState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_method: Option<VerificationMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

async fn validate(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<ValidateBody>,
) -> Result<JsonResponse<ValidateResponse>> {
    let command = ValidateCommand {
        token: required(body.token, "token")?,
        user_id: body.user_id.map(UserId::parse).transpose()?,
        action: body.action.map(ActionCode::parse).transpose()?,
    };
    let response = match app.validate(&tenant, command).await? {
        Validation::Resolved {
            action,
            is_valid,
            error,
        } => ValidateResponse {
            is_valid,
            state: Some(action.state),
            state_updated_at: Some(action.state_updated_at.to_iso8601()),
            user_id: Some(action.key.user_id.to_string()),
            action: Some(action.key.action_code.to_string()),
            action_code: Some(action.key.action_code.to_string()),
            idempotency_key: Some(action.key.idempotency_key.to_string()),
            verification_method: action.verification_method,
            error,
        },
        Validation::Unusable { error } => ValidateResponse {
            is_valid: false,
            error: Some(error),
            ..Default::default()
        },
    };
    Ok(JsonResponse(response))
}

// ---------------------------------------------------------------- the OpenAPI document (issue #19)

/// `docs/openapi.json`, which `trusted-device openapi` generates from the route tables and a
/// test keeps equal to what it generates (`infra/tests/integration/openapi.rs`).
static OPENAPI_DOCUMENT: std::sync::LazyLock<ServedDocument> =
    std::sync::LazyLock::new(|| ServedDocument::new(include_str!("../../../docs/openapi.json")));

async fn openapi_document(headers: HeaderMap) -> DocumentResponse {
    DocumentResponse::new(&OPENAPI_DOCUMENT, &headers)
}
