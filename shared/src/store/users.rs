//! User attributes.

use crate::domain::{TenantId, UserId, UserProfile};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn get_user(&self, tenant: &TenantId, user: &UserId) -> Result<Option<UserProfile>>;
    async fn put_user(&self, tenant: &TenantId, user: &UserId, profile: &UserProfile)
    -> Result<()>;
    /// Deletes the user's attributes, credentials and actions.
    async fn delete_user(&self, tenant: &TenantId, user: &UserId) -> Result<()>;
}
