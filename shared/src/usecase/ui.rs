//! What the pre-built UI shows for a track token (issue #16, DESIGN 9): the action's state and
//! the methods its user can complete it with. The page then runs each method through the
//! Client API's own routes (push, QR code, passkey): no flow is implemented twice.

use super::tenants::Tenant;
use crate::App;
use crate::domain::{ActionCode, ActionState, Namespace};
use crate::error::Result;
use crate::token::VerifiedToken;

/// The page's view of one tracked action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiPage {
    pub action_code: ActionCode,
    pub state: ActionState,
    /// Devices a push can go to (the push start's own filter: push or legacy device keys
    /// that have not expired).
    pub push_devices: usize,
    /// Devices that can claim a QR code.
    pub qr_devices: usize,
    pub passkeys: usize,
    /// The tenant has a relying party, so the page may use WebAuthn.
    pub passkeys_enabled: bool,
    /// This token may add a passkey now (the registration's own rule, `usecase::passkeys`).
    pub may_add_passkey: bool,
    /// Track's `redirectUrl`, from the signed token: the only place the page returns to.
    pub redirect_url: Option<String>,
}

impl App {
    /// The pre-built UI's view of the token's action: one action read and one read of the
    /// user's authenticators.
    pub async fn ui_page(&self, tenant: &Tenant, token: &VerifiedToken) -> Result<UiPage> {
        let now = self.now();
        let action = self.get_action(tenant, &token.action).await?;
        let (credentials, passkeys) = self
            .store
            .list_user_authenticators(&tenant.id, &token.action.user_id)
            .await?;
        let live = || {
            credentials
                .iter()
                .filter(move |c| c.expires_at.is_none_or(|at| at > now))
        };
        let push_devices = live()
            .filter(|c| matches!(c.namespace, Namespace::Push | Namespace::Device))
            .count();
        let qr_devices = live()
            .filter(|c| matches!(c.namespace, Namespace::QrCode | Namespace::Device))
            .count();
        let has_any = !credentials.is_empty() || !passkeys.is_empty();
        let passkeys_enabled = tenant.passkeys.is_some();
        // The same rule registration applies: a first authenticator, or a token allowed more.
        let may_add_passkey = passkeys_enabled
            && match self.enrolment_rule(tenant, token).await {
                Ok((_, first_only)) => !first_only || !has_any,
                Err(_) => false,
            };
        Ok(UiPage {
            action_code: action.key.action_code,
            state: action.state,
            push_devices,
            qr_devices,
            passkeys: passkeys.len(),
            passkeys_enabled,
            may_add_passkey,
            redirect_url: token.redirect_url.clone(),
        })
    }
}
