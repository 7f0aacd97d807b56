//! Device credentials: add, look up and remove (spec 3.4.1 to 3.4.3, 4).

use super::tenants::Tenant;
use crate::App;
use crate::domain::{Credential, CredentialId, Namespace};
use crate::error::{Error, Result};
use crate::signature::{PublicKey, removal_window_messages};
use crate::store::{EnrolmentGuard, InsertOutcome, RemovalReceipt};
use crate::token::VerifiedToken;

pub use crate::domain::ADD_AUTHENTICATORS_SCOPE;

/// An add-credential request, parsed (spec 3.4.1).
#[derive(Debug, Clone)]
pub struct AddCredential {
    pub namespace: Namespace,
    pub public_key: PublicKey,
    pub device_name: Option<String>,
    pub device_platform: Option<String>,
    pub push_token: Option<String>,
}

impl App {
    /// Registers a device key for the token's user.
    ///
    /// - The token's action must still exist and not be blocked, under review or failed: a
    ///   backend that blocked an action, or deleted the user, has withdrawn its token.
    /// - The same key again for the same user returns the stored credential (the SDKs re-use
    ///   an existing key, spec 3.4.1); a key registered to another user is refused.
    /// - A user's first credential needs only that token. A later one needs the
    ///   `add:authenticators` scope, or a token whose *tracked* action was completed by a
    ///   challenge (Authsignal's "challenge, then enroll" binding). An action created by a
    ///   device verify without a track does not count: otherwise one device key could enrol
    ///   any number of others with no backend involved.
    pub async fn add_credential(
        &self,
        tenant: &Tenant,
        token: &VerifiedToken,
        command: AddCredential,
    ) -> Result<Credential> {
        let user = &token.action.user_id;
        let action = self.get_action(tenant, &token.action).await?;
        if !action.state.allows_enrolment() {
            return Err(Error::ActionForbidsEnrolment(action.state.as_str()));
        }
        let fingerprint = command.public_key.fingerprint();
        if let Some(existing) = self
            .store
            .get_credential(&tenant.id, command.namespace, &fingerprint)
            .await?
        {
            return same_user_or_conflict(existing, token);
        }

        let credentials = self.store.list_user_credentials(&tenant.id, user).await?;
        let first_credential_only =
            !token.has_scope(ADD_AUTHENTICATORS_SCOPE) && !action.challenged_after_track();
        if first_credential_only && !credentials.is_empty() {
            return Err(Error::InsufficientScope(ADD_AUTHENTICATORS_SCOPE));
        }

        let credential = Credential {
            id: CredentialId::parse(self.random_uuid()?)?,
            tenant_id: tenant.id.clone(),
            user_id: user.clone(),
            namespace: command.namespace,
            public_key: command.public_key.to_base64(),
            key_fingerprint: fingerprint,
            device_name: command.device_name,
            device_platform: command.device_platform,
            push_token: command.push_token,
            created_at: self.now(),
            last_verified_at: None,
            // Spec 3.4.5: push credentials have a server-side expiry the app can reset.
            expires_at: (command.namespace == Namespace::Push).then(|| {
                self.now()
                    .plus_seconds(self.settings.push_credential_lifetime_days * 24 * 3600)
            }),
        };
        // The checks above answer the common cases early; the insert repeats each of them
        // atomically, so a concurrent block, user deletion, other add or other user's add of
        // this key (in any namespace) cannot slip between check and write.
        let guard = EnrolmentGuard {
            action: token.action.clone(),
            first_credential_only,
            now: self.now(),
        };
        match self.store.insert_credential(&credential, &guard).await? {
            InsertOutcome::Inserted => Ok(credential),
            // Lost a race with a concurrent add of the same key.
            InsertOutcome::AlreadyRegistered(existing) => same_user_or_conflict(existing, token),
        }
    }

    /// The credential registered for this key in this namespace; `InvalidCredential` if none
    /// (spec 3.4.2: the device still has a key the server no longer knows).
    pub async fn get_credential(
        &self,
        tenant: &Tenant,
        namespace: Namespace,
        public_key: &PublicKey,
    ) -> Result<Credential> {
        self.store
            .get_credential(&tenant.id, namespace, &public_key.fingerprint())
            .await?
            .ok_or(Error::InvalidCredential)
    }

    /// Removes a credential on proof of its key: a signature over the current time window
    /// (spec 4.4). Each signature is accepted once for the key, in any namespace, so a captured
    /// removal request (or its malleated twin) cannot be replayed against the key registered
    /// again or in another namespace; a fresh signature by the device removes the key's
    /// credential in another namespace (one key may be in several, spec 3.2) or again.
    pub async fn remove_credential(
        &self,
        tenant: &Tenant,
        namespace: Namespace,
        public_key: &PublicKey,
        signature: &str,
    ) -> Result<Credential> {
        // As a signature check needs it: the removal answers only the id.
        let credential = self
            .store
            .get_credential_for_signature(&tenant.id, namespace, &public_key.fingerprint())
            .await?
            .ok_or(Error::InvalidCredential)?;
        let now = self.now();
        let mut window = None;
        for (candidate, message) in removal_window_messages(now.unix_seconds()) {
            match public_key.verify(&message, signature) {
                Ok(()) => {
                    window = Some(candidate);
                    break;
                }
                Err(Error::InvalidSignature) => continue,
                Err(other) => return Err(other),
            }
        }
        let window = window.ok_or(Error::InvalidSignature)?;
        // A window's signature is accepted until one window after it ends.
        let receipt = RemovalReceipt {
            window,
            signature_id: crate::signature::replay_id(signature)?,
            expires_at: crate::clock::Timestamp::from_unix_seconds((window + 2) * 600),
        };
        self.store
            .remove_credential_once(&credential, &receipt)
            .await?;
        Ok(credential)
    }
}

fn same_user_or_conflict(existing: Credential, token: &VerifiedToken) -> Result<Credential> {
    if existing.user_id == token.action.user_id {
        Ok(existing)
    } else {
        Err(Error::CredentialConflict)
    }
}
