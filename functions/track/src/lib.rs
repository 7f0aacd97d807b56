//! The `track` function: track, get, update and query actions, the users admin and query users,
//! and the sessions with their JWKS ([`sessions`]) of the Server API (spec 2.3, 2.5, 2.6, 2.8),
//! and the rules configs that decide track (spec 7; our extension routes under
//! `/v1/action-configs`). Every route but the JWKS (public keys) takes the tenant's secret key
//! (spec 2.1).
//!
//! Each handler decodes the request, calls one [`shared::App`] use case and encodes the result.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::clock::Timestamp;
use shared::domain::policy::{ActionConfig, ConfigKey};
use shared::domain::{
    Action, ActionCode, ActionKey, ActionState, IdempotencyKey, RedirectUrl, RuleRef, TrackContext,
    UserId, UserProfile, VerificationMethod,
};
use shared::error::{Error, Result};
use shared::http::{
    EmptyObject, JsonBody, JsonResponse, PathParams, QueryParams, SecretKeyAuth, SharedApp,
    required,
};
use shared::usecase::track::{ActionQuery, TrackCommand};
use shared::usecase::users::{UserPatch, UserView};

// The routes this function serves: the source of truth for the Lambda's API events
// (`ROUTES`) and for what it serves (`router`).
use shared::http::cors::preflight;
mod query_users;
mod sessions;
pub mod ui;

shared::routes! {
    POST "/v1/users/{userId}/actions/{action}" => track,
    // Query users (spec 2.6, issue #20): through lookup entries, never a scan.
    GET "/v1/users" => query_users::query_users,
    GET "/v1/users/{userId}/actions/{action}/{idempotencyKey}" => get_action,
    PATCH "/v1/users/{userId}/actions/{action}/{idempotencyKey}" => update_action,
    GET "/v1/users/{userId}/actions" => query_actions,
    GET "/v1/users/{userId}" => get_user,
    PATCH "/v1/users/{userId}" => update_user,
    POST "/v1/users/{userId}" => update_user,
    DELETE "/v1/users/{userId}" => delete_user,
    GET "/v1/action-configs" => list_action_configs,
    GET "/v1/action-configs/{actionCode}" => get_action_config,
    PUT "/v1/action-configs/{actionCode}" => put_action_config,
    DELETE "/v1/action-configs/{actionCode}" => delete_action_config,

    // Each path's CORS preflight: answered on the Client API, refused on the Server API.
    OPTIONS "/v1/users/{userId}/actions/{action}" => preflight,
    OPTIONS "/v1/users/{userId}/actions/{action}/{idempotencyKey}" => preflight,
    OPTIONS "/v1/users/{userId}/actions" => preflight,
    OPTIONS "/v1/users/{userId}" => preflight,
    OPTIONS "/v1/action-configs" => preflight,
    OPTIONS "/v1/action-configs/{actionCode}" => preflight,
    OPTIONS "/v1/sessions" => preflight,
    OPTIONS "/v1/sessions/validate" => preflight,
    OPTIONS "/v1/sessions/refresh" => preflight,
    OPTIONS "/v1/sessions/revoke" => preflight,
    OPTIONS "/v1/sessions/user/revoke" => preflight,
    OPTIONS "/v1/tenants/{tenantId}/.well-known/jwks.json" => preflight,
    OPTIONS "/v1/users" => preflight,
    // Sessions (spec 2.8, issue #20), made from a token `/v1/validate` accepts. Here and not in
    // `validate`, which only reads: these write, with the actions `track` is granted already.
    POST "/v1/sessions" => sessions::create_session,
    POST "/v1/sessions/validate" => sessions::validate_session,
    POST "/v1/sessions/refresh" => sessions::refresh_session,
    POST "/v1/sessions/revoke" => sessions::revoke_session,
    POST "/v1/sessions/user/revoke" => sessions::revoke_user_sessions,
    GET "/v1/tenants/{tenantId}/.well-known/jwks.json" => sessions::jwks,
    // The pre-built UI that track's `url` points at (issue #16): a page, its own script and
    // stylesheet, and its QR-code image. Not the Client API: no CORS, so preflights are refused.
    GET "/v1/ui" => ui::page,
    GET "/v1/ui/app.js" => ui::script,
    GET "/v1/ui/app.css" => ui::stylesheet,
    GET "/v1/ui/qr-code.svg" => ui::qr_code,
    OPTIONS "/v1/ui" => preflight,
    OPTIONS "/v1/ui/app.js" => preflight,
    OPTIONS "/v1/ui/app.css" => preflight,
    OPTIONS "/v1/ui/qr-code.svg" => preflight,
}

// ---------------------------------------------------------------- track (spec 2.3)

/// TrackAttributes. Only what the service uses is declared; unknown fields (`locale`,
/// `crypto`, ...) are accepted and ignored (spec 1.2).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TrackBody {
    idempotency_key: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    device_id: Option<String>,
    scope: Option<String>,
    username: Option<String>,
    email: Option<String>,
    phone_number: Option<String>,
    /// An object (spec 2.3, rules read `custom.*`); any other JSON is refused, not dropped.
    #[serde(default, deserialize_with = "shared::http::custom_object")]
    custom: Option<serde_json::Map<String, Value>>,
    /// Where the pre-built UI returns with the token (spec 2.3 trusted-device note).
    redirect_url: Option<String>,
    /// Show the user's authenticators after the challenge (spec 2.3, the pre-built UI's
    /// settings screen).
    redirect_to_settings: Option<bool>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TrackResponse {
    /// The pre-built UI for this action (spec 2.3 trusted-device note, issue #16).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    state: ActionState,
    idempotency_key: String,
    token: String,
    is_enrolled: bool,
    enrolled_verification_methods: Vec<VerificationMethod>,
    allowed_verification_methods: Vec<VerificationMethod>,
    rule_ids: Vec<String>,
}

async fn track(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    headers: HeaderMap,
    PathParams((user_id, action)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<TrackBody>,
) -> Result<JsonResponse<TrackResponse>> {
    let command = TrackCommand {
        user_id: UserId::parse(user_id)?,
        action_code: ActionCode::parse(action)?,
        idempotency_key: body
            .idempotency_key
            .map(IdempotencyKey::parse)
            .transpose()?,
        context: TrackContext {
            ip_address: body.ip_address,
            user_agent: body.user_agent,
            device_id: body.device_id,
            custom: body.custom.map(Value::Object),
            scope: body.scope,
        },
        username: body.username,
        email: body.email,
        phone_number: body.phone_number,
        redirect_url: body
            .redirect_url
            .as_deref()
            .map(RedirectUrl::parse)
            .transpose()?,
        redirect_to_settings: body.redirect_to_settings.unwrap_or(false),
    };
    let result = app.track(&tenant, command).await?;
    // Every state gets the page, as Authsignal's track does: BLOCK and review show why there.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let url = app
        .settings()
        .public_url
        .base(host)
        .map(|base| ui::page_url(&base, &result.token));
    Ok(JsonResponse(TrackResponse {
        url,
        state: result.action.state,
        idempotency_key: result.action.key.idempotency_key.to_string(),
        token: result.token,
        is_enrolled: result.is_enrolled,
        // Only device methods exist here, so a user may use every method they enrolled.
        allowed_verification_methods: result.enrolled_methods.clone(),
        enrolled_verification_methods: result.enrolled_methods,
        rule_ids: result.action.rule_ids,
    }))
}

// ---------------------------------------------------------------- actions (spec 2.5)

/// One action as get and update return it. `rules` and `output` are always present: the
/// Python SDK's tests expect `output` to be non-null.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ActionView {
    user_id: String,
    action_code: String,
    idempotency_key: String,
    state: ActionState,
    state_updated_at: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_method: Option<VerificationMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_by_authenticator_id: Option<String>,
    rule_ids: Vec<String>,
    rules: Vec<RuleRef>,
    output: Value,
}

impl From<Action> for ActionView {
    fn from(action: Action) -> Self {
        ActionView {
            user_id: action.key.user_id.to_string(),
            action_code: action.key.action_code.to_string(),
            idempotency_key: action.key.idempotency_key.to_string(),
            state: action.state,
            state_updated_at: action.state_updated_at.to_iso8601(),
            created_at: action.created_at.to_iso8601(),
            verification_method: action.verification_method,
            verified_by_authenticator_id: action.verified_by_authenticator_id.map(String::from),
            rule_ids: action.rule_ids,
            rules: action.rules,
            // The rules-engine output (spec 2.5; the docs show `{custom: {}}`): the custom data
            // the rules saw. Always an object: the Python SDK's tests expect it non-null.
            output: serde_json::json!({
                "custom": match action.context.custom {
                    Some(custom @ Value::Object(_)) => custom,
                    _ => Value::Object(Default::default()),
                }
            }),
        }
    }
}

fn action_key(user_id: String, action: String, idempotency_key: String) -> Result<ActionKey> {
    Ok(ActionKey {
        user_id: UserId::parse(user_id)?,
        action_code: ActionCode::parse(action)?,
        idempotency_key: IdempotencyKey::parse(idempotency_key)?,
    })
}

async fn get_action(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams((user_id, action, key)): PathParams<(String, String, String)>,
) -> Result<JsonResponse<ActionView>> {
    let action = app
        .get_action(&tenant, &action_key(user_id, action, key)?)
        .await?;
    Ok(JsonResponse(ActionView::from(action)))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
struct UpdateActionBody {
    state: Option<ActionState>,
}

async fn update_action(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams((user_id, action, key)): PathParams<(String, String, String)>,
    JsonBody(body): JsonBody<UpdateActionBody>,
) -> Result<JsonResponse<ActionView>> {
    let key = action_key(user_id, action, key)?;
    let state = required(body.state, "state")?;
    let action = app.update_action_state(&tenant, &key, state).await?;
    Ok(JsonResponse(ActionView::from(action)))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ActionQueryParams {
    from_date: Option<String>,
    codes: Option<String>,
    state: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ActionSummary {
    action_code: String,
    idempotency_key: String,
    created_at: String,
    updated_at: String,
    state: ActionState,
    state_updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_method: Option<VerificationMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_by_authenticator_id: Option<String>,
}

async fn query_actions(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(user_id): PathParams<String>,
    QueryParams(params): QueryParams<ActionQueryParams>,
) -> Result<JsonResponse<Vec<ActionSummary>>> {
    let query = ActionQuery {
        from: params
            .from_date
            .map(|text| {
                Timestamp::parse_iso8601(&text).ok_or_else(|| {
                    Error::invalid_request("fromDate must be an ISO-8601 timestamp.")
                })
            })
            .transpose()?,
        codes: params
            .codes
            .map(|codes| {
                codes
                    .split(',')
                    .map(|c| ActionCode::parse(c.trim()))
                    .collect()
            })
            .transpose()?,
        state: params
            .state
            .map(|s| {
                serde_json::from_value(Value::String(s))
                    .map_err(|_| Error::invalid_request("state is not a UserActionState."))
            })
            .transpose()?,
    };
    let actions = app
        .query_actions(&tenant, &UserId::parse(user_id)?, query)
        .await?;
    let summaries: Vec<ActionSummary> = actions
        .into_iter()
        .map(|a| ActionSummary {
            action_code: a.key.action_code.to_string(),
            idempotency_key: a.key.idempotency_key.to_string(),
            created_at: a.created_at.to_iso8601(),
            updated_at: a.state_updated_at.to_iso8601(),
            state: a.state,
            state_updated_at: a.state_updated_at.to_iso8601(),
            verification_method: a.verification_method,
            verified_by_authenticator_id: a.verified_by_authenticator_id.map(String::from),
        })
        .collect();
    Ok(JsonResponse(summaries))
}

// ---------------------------------------------------------------- users (spec 2.6)

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UserAttributes {
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
    custom: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<String>,
}

impl UserAttributes {
    fn new(user_id: &UserId, profile: UserProfile) -> Self {
        UserAttributes {
            user_id: user_id.to_string(),
            email: profile.email,
            email_verified: profile.email_verified,
            phone_number: profile.phone_number,
            phone_number_verified: profile.phone_number_verified,
            username: profile.username,
            display_name: profile.display_name,
            custom: profile.custom,
            locale: profile.locale,
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UserResponse {
    is_enrolled: bool,
    enrolled_verification_methods: Vec<VerificationMethod>,
    allowed_verification_methods: Vec<VerificationMethod>,
    #[serde(flatten)]
    attributes: UserAttributes,
}

async fn get_user(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(user_id): PathParams<String>,
) -> Result<JsonResponse<UserResponse>> {
    let user_id = UserId::parse(user_id)?;
    let view: UserView = app.get_user(&tenant, &user_id).await?;
    Ok(JsonResponse(UserResponse {
        is_enrolled: view.is_enrolled(),
        allowed_verification_methods: view.enrolled_methods.clone(),
        enrolled_verification_methods: view.enrolled_methods,
        attributes: UserAttributes::new(&user_id, view.profile),
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UpdateUserBody {
    email: Option<String>,
    email_verified: Option<bool>,
    phone_number: Option<String>,
    phone_number_verified: Option<bool>,
    username: Option<String>,
    display_name: Option<String>,
    /// An object (spec 2.6), as track's: any other JSON is refused, not stored.
    #[serde(default, deserialize_with = "shared::http::custom_object")]
    custom: Option<serde_json::Map<String, Value>>,
    locale: Option<String>,
}

/// PATCH and POST alike: the Ruby and Java SDKs use POST (spec 2.2).
async fn update_user(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(user_id): PathParams<String>,
    JsonBody(body): JsonBody<UpdateUserBody>,
) -> Result<JsonResponse<UserAttributes>> {
    let user_id = UserId::parse(user_id)?;
    let patch = UserPatch {
        email: body.email,
        email_verified: body.email_verified,
        phone_number: body.phone_number,
        phone_number_verified: body.phone_number_verified,
        username: body.username,
        display_name: body.display_name,
        custom: body.custom.map(Value::Object),
        locale: body.locale,
    };
    let profile = app.update_user(&tenant, &user_id, patch).await?;
    Ok(JsonResponse(UserAttributes::new(&user_id, profile)))
}

async fn delete_user(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(user_id): PathParams<String>,
) -> Result<JsonResponse<EmptyObject>> {
    app.delete_user(&tenant, &UserId::parse(user_id)?).await?;
    Ok(JsonResponse(EmptyObject {}))
}

// ---------------------------------------------------------------- action configs (spec 7, ours)

async fn list_action_configs(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
) -> Result<JsonResponse<Vec<ActionConfig>>> {
    Ok(JsonResponse(app.list_action_configs(&tenant).await?))
}

async fn get_action_config(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(code): PathParams<String>,
) -> Result<JsonResponse<ActionConfig>> {
    let key = ConfigKey::parse(&code)?;
    Ok(JsonResponse(app.get_action_config(&tenant, &key).await?))
}

/// The body is the config; its `actionCode` may be left out (the path's is used).
async fn put_action_config(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(code): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<JsonResponse<ActionConfig>> {
    let key = ConfigKey::parse(&code)?;
    Ok(JsonResponse(
        app.put_action_config(&tenant, Some(&key), body).await?,
    ))
}

async fn delete_action_config(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(code): PathParams<String>,
) -> Result<JsonResponse<EmptyObject>> {
    let key = ConfigKey::parse(&code)?;
    app.delete_action_config(&tenant, &key).await?;
    Ok(JsonResponse(EmptyObject {}))
}
