//! Users found by an attribute value (query users, spec 2.6, issue #20): lookup entries
//! written with the user's profile in the same atomic step, so that no query scans users.

use crate::domain::{TenantId, UserId, UserProfile};
use crate::error::Result;
use async_trait::async_trait;

/// The attributes users are found by, and the value each indexes (email in lower case).
pub fn lookup_values(profile: &UserProfile) -> Vec<(&'static str, String)> {
    let mut values = Vec::new();
    if let Some(email) = profile.email.as_deref().filter(|v| !v.is_empty()) {
        values.push((EMAIL, email.to_lowercase()));
    }
    if let Some(phone) = profile.phone_number.as_deref().filter(|v| !v.is_empty()) {
        values.push((PHONE_NUMBER, phone.to_owned()));
    }
    if let Some(username) = profile.username.as_deref().filter(|v| !v.is_empty()) {
        values.push((USERNAME, username.to_owned()));
    }
    values
}

pub const EMAIL: &str = "email";
pub const PHONE_NUMBER: &str = "phoneNumber";
pub const USERNAME: &str = "username";

/// One page of users.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserPage {
    pub users: Vec<(UserId, UserProfile)>,
    /// Where the next page starts (after this user), when there may be more.
    pub last_evaluated: Option<UserId>,
}

#[async_trait]
pub trait UserLookupStore: Send + Sync {
    /// The users whose `attribute` has `value` (as [`lookup_values`] normalises it), in user
    /// id order, after `after`, at most `limit`.
    async fn query_users(
        &self,
        tenant: &TenantId,
        attribute: &str,
        value: &str,
        limit: usize,
        after: Option<&UserId>,
    ) -> Result<UserPage>;
}
