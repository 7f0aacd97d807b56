//! Query users (spec 2.6, issue #20): by email, phone number, username or a client token,
//! one page at a time (`lastEvaluatedUserId`), through lookup entries: never a scan.

use super::tenants::Tenant;
use crate::App;
use crate::domain::{UserId, UserProfile};
use crate::error::{Error, Result};
use crate::store::user_lookups::{EMAIL, PHONE_NUMBER, USERNAME, UserPage};

/// The default and largest page.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub username: Option<String>,
    /// A token this tenant issued: its user, and its payload back.
    pub token: Option<String>,
    pub limit: Option<usize>,
    pub last_evaluated_user_id: Option<UserId>,
}

#[derive(Debug, Clone, Default)]
pub struct UserQueryResult {
    pub page: UserPage,
    pub token_payload: Option<serde_json::Value>,
}

fn matches(profile: &UserProfile, query: &UserQuery) -> bool {
    query
        .email
        .as_ref()
        .is_none_or(|e| profile.email.as_deref().map(str::to_lowercase) == Some(e.to_lowercase()))
        && query
            .phone_number
            .as_ref()
            .is_none_or(|p| profile.phone_number.as_ref() == Some(p))
        && query
            .username
            .as_ref()
            .is_none_or(|u| profile.username.as_ref() == Some(u))
}

impl App {
    pub async fn query_users(&self, tenant: &Tenant, query: UserQuery) -> Result<UserQueryResult> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::invalid_request(format!(
                "`limit` must be 1 to {MAX_LIMIT}."
            )));
        }
        if let Some(token) = &query.token {
            let verified = tenant.keys.verify(token, self.now())?;
            // The signature verified: the payload is the tenant's own.
            let payload = token
                .split('.')
                .nth(1)
                .and_then(crate::encoding::decode_lenient)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let user = verified.action.user_id;
            let profile = self
                .store
                .get_user(&tenant.id, &user)
                .await?
                .unwrap_or_default();
            let users = if matches(&profile, &query) {
                vec![(user, profile)]
            } else {
                Vec::new()
            };
            return Ok(UserQueryResult {
                page: UserPage {
                    users,
                    last_evaluated: None,
                },
                token_payload: payload,
            });
        }
        let (attribute, value) = if let Some(email) = &query.email {
            (EMAIL, email.to_lowercase())
        } else if let Some(phone) = &query.phone_number {
            (PHONE_NUMBER, phone.clone())
        } else if let Some(username) = &query.username {
            (USERNAME, username.clone())
        } else {
            return Err(Error::invalid_request(
                "Query users needs `email`, `phoneNumber`, `username` or `token`: listing every \
                 user is not supported.",
            ));
        };
        if value.is_empty() || value.len() > super::users::MAX_LOOKUP_VALUE_LENGTH {
            return Err(Error::invalid_request(format!(
                "`{attribute}` must be 1 to {} characters.",
                super::users::MAX_LOOKUP_VALUE_LENGTH
            )));
        }
        let mut page = self
            .store
            .query_users(
                &tenant.id,
                attribute,
                &value,
                limit,
                query.last_evaluated_user_id.as_ref(),
            )
            .await?;
        // Further filters narrow the page (which may then be short; the cursor still holds).
        page.users.retain(|(_, profile)| matches(profile, &query));
        Ok(UserQueryResult {
            page,
            token_payload: None,
        })
    }
}
