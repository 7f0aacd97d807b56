//! Tracked actions and their state.

use crate::clock::Timestamp;
use crate::domain::{Action, ActionKey, ActionState, Credential, TenantId, UserId};
use crate::error::Result;
use async_trait::async_trait;

#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Creates the action unless one with the same key exists; returns the stored action
    /// either way, so a repeated idempotency key never makes a duplicate.
    async fn create_action(&self, action: &Action) -> Result<Action>;
    async fn get_action(&self, tenant: &TenantId, key: &ActionKey) -> Result<Option<Action>>;
    /// Sets the state of an existing action; `None` if there is no such action.
    async fn set_action_state(
        &self,
        tenant: &TenantId,
        key: &ActionKey,
        state: ActionState,
        now: Timestamp,
    ) -> Result<Option<Action>>;
    /// A user's actions created at or after `since`, newest first.
    async fn list_actions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<Vec<Action>>;
    /// A user's credentials (oldest first), their actions created at or after `since`
    /// (newest first) and their passkeys, in one read: what track needs when a rule reads the
    /// user's history.
    async fn list_user_activity(
        &self,
        tenant: &TenantId,
        user: &UserId,
        since: Timestamp,
    ) -> Result<(
        Vec<Credential>,
        Vec<Action>,
        Vec<crate::domain::PasskeyRecord>,
    )>;
}
