//! `GET /v1/users?email=&phoneNumber=&username=&token=&limit=&lastEvaluatedUserId=` (spec 2.6,
//! issue #20).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::domain::UserId;
use shared::error::{Error, Result};
use shared::http::{JsonResponse, QueryParams, SecretKeyAuth, SharedApp};
use shared::usecase::query_users::UserQuery;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryUsersParams {
    email: Option<String>,
    phone_number: Option<String>,
    username: Option<String>,
    token: Option<String>,
    limit: Option<String>,
    last_evaluated_user_id: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueriedUser {
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    phone_number_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryUsersResponse {
    users: Vec<QueriedUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_evaluated_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_payload: Option<serde_json::Value>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

pub(crate) async fn query_users(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    QueryParams(params): QueryParams<QueryUsersParams>,
) -> Result<JsonResponse<QueryUsersResponse>> {
    let limit = match non_empty(params.limit) {
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| Error::invalid_request("`limit` must be a whole number."))?,
        ),
        None => None,
    };
    let query = UserQuery {
        email: non_empty(params.email),
        phone_number: non_empty(params.phone_number),
        username: non_empty(params.username),
        token: non_empty(params.token),
        limit,
        last_evaluated_user_id: non_empty(params.last_evaluated_user_id)
            .map(UserId::parse)
            .transpose()?,
    };
    let result = app.query_users(&tenant, query).await?;
    Ok(JsonResponse(QueryUsersResponse {
        users: result
            .page
            .users
            .into_iter()
            .map(|(user, profile)| QueriedUser {
                user_id: user.to_string(),
                email: profile.email,
                email_verified: profile.email_verified,
                phone_number: profile.phone_number,
                phone_number_verified: profile.phone_number_verified,
                username: profile.username,
            })
            .collect(),
        last_evaluated_user_id: result.page.last_evaluated.map(|u| u.to_string()),
        token_payload: result.token_payload,
    }))
}
