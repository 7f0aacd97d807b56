//! What the pre-built UI shows for a track token (issue #16, DESIGN 9): the action's state and
//! the methods its user can complete it with. The page then runs each method through the
//! Client API's own routes (push, QR code, passkey): no flow is implemented twice.

use super::tenants::Tenant;
use super::users::RemovedAuthenticator;
use crate::App;
use crate::domain::{
    Action, ActionCode, ActionState, Credential, CredentialId, Namespace, PasskeyRecord,
};
use crate::error::{Error, Result};
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
    /// Track's `redirectToSettings`, from the signed token: after the challenge (or at once,
    /// for an action no challenge is needed for) the page shows the settings screen.
    pub settings: bool,
    /// The settings screen may offer to add a passkey: registration's own rule, as it will
    /// stand once the challenge is done (a challenge lifts the first-authenticator limit).
    pub settings_add_passkey: bool,
    /// The token may remove authenticators now: its action was completed by a challenge
    /// ([`App::remove_authenticator_in_settings`]).
    pub may_remove: bool,
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
        // Registration's refusals (used token, a state that forbids it) mean "no offer".
        let rule = passkeys_enabled
            .then(|| super::passkeys::enrolment_rule_of(&action, token).ok())
            .flatten();
        let may_add_passkey = rule.is_some_and(|first_only| !first_only || !has_any);
        // After a challenge the limit is gone (`enrolment_rule`), so the settings screen shown
        // after one may offer a passkey whenever registration is open at all.
        let settings_add_passkey = match action.state {
            ActionState::ChallengeRequired => rule.is_some(),
            _ => may_add_passkey,
        };
        let may_remove = removal_refusal(token, &action, &credentials, &passkeys).is_none();
        Ok(UiPage {
            action_code: action.key.action_code,
            state: action.state,
            push_devices,
            qr_devices,
            passkeys: passkeys.len(),
            passkeys_enabled,
            may_add_passkey,
            redirect_url: token.redirect_url.clone(),
            settings: token.redirect_to_settings,
            settings_add_passkey: token.redirect_to_settings && settings_add_passkey,
            may_remove,
        })
    }

    /// The token's user's authenticators (spec 3.5 `GET /client/user-authenticators`, the
    /// default `read:authenticators` scope of spec 2.9): what the settings screen lists. Any
    /// token that verifies reads its own user's list, and only that.
    pub async fn token_user_authenticators(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
    ) -> Result<(Vec<Credential>, Vec<PasskeyRecord>)> {
        self.store
            .list_user_authenticators(&tenant.id, &token.action.user_id)
            .await
    }

    /// Removes one of the token's user's authenticators from the pre-built UI's settings
    /// screen (issue #16, docs/security.md "The pre-built UI"). Allowed only for a token the
    /// backend tracked with `redirectToSettings` whose action a challenge then completed (the
    /// user proved possession of an authenticator they had; registering a new passkey is not
    /// such proof). The removal itself is the Server API's delete (the same conditional write
    /// and events), keyed by the token's user: another user's id is not found.
    pub async fn remove_authenticator_in_settings(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
        id: &CredentialId,
    ) -> Result<RemovedAuthenticator> {
        // Refused before any read when the backend did not ask for settings.
        if !token.redirect_to_settings {
            return Err(Error::SettingsNotRequested);
        }
        let action = self.get_action(tenant, &token.action).await?;
        let (credentials, passkeys) = self.token_user_authenticators(tenant, token).await?;
        if let Some(refusal) = removal_refusal(token, &action, &credentials, &passkeys) {
            return Err(refusal);
        }
        self.delete_authenticator(tenant, &token.action.user_id, id)
            .await
    }
}

/// Why `token` may not remove an authenticator in settings now, if it may not: the one rule
/// the page's `mayRemove` and the removal itself both follow (docs/security.md).
fn removal_refusal(
    token: &VerifiedToken,
    action: &Action,
    credentials: &[Credential],
    passkeys: &[PasskeyRecord],
) -> Option<Error> {
    if !token.redirect_to_settings {
        Some(Error::SettingsNotRequested)
    } else if !action.challenged_after_track()
        || !completed_since(action, token)
        || !proved_with_an_older_authenticator(action, credentials, passkeys)
    {
        Some(Error::RemovalNeedsChallenge)
    } else {
        None
    }
}

/// Whether `action` was completed after `token` was issued. A track again with the action's
/// idempotency key returns the action as it is, with a new token: one asking for settings
/// after the action already succeeded must not inherit that old proof (the challenge was not
/// for it). To the millisecond (a settings token carries its issue time so); the same
/// millisecond counts, as a clock that has not moved between track and challenge allows.
fn completed_since(action: &Action, token: &VerifiedToken) -> bool {
    action.state_updated_at >= token.issued_at
}

/// Whether the authenticator that completed `action` is one the user had before the action was
/// tracked: the proof a removal in settings needs. One added since (through another token)
/// proves nothing about who holds the older ones; one removed since can no longer vouch.
fn proved_with_an_older_authenticator(
    action: &Action,
    credentials: &[Credential],
    passkeys: &[PasskeyRecord],
) -> bool {
    action
        .verified_by_authenticator_id
        .as_ref()
        .is_some_and(|verifier| {
            credentials
                .iter()
                .any(|c| &c.id == verifier && c.created_at < action.created_at)
                || passkeys
                    .iter()
                    .any(|p| &p.id == verifier && p.created_at < action.created_at)
        })
}
