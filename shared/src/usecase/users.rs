//! Users and the authenticators admin of the Server API (spec 2.6, 2.7).

use super::tenants::Tenant;
use crate::App;
use crate::domain::{
    Credential, CredentialId, Enrolment, PasskeyRecord, UserId, UserProfile, VerificationMethod,
};
use crate::error::{Error, Result};

/// The longest `email`, `phoneNumber` or `username` stored or queried (an email address's
/// longest form, RFC 5321's 64 + 1 + 255).
pub const MAX_LOOKUP_VALUE_LENGTH: usize = 320;

/// A user as `GET /users/{userId}` shows it. Unknown users are not an error: they read back
/// empty and not enrolled (spec 2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub profile: UserProfile,
    pub enrolled_methods: Vec<VerificationMethod>,
}

impl UserView {
    pub fn is_enrolled(&self) -> bool {
        !self.enrolled_methods.is_empty()
    }
}

/// The attributes an update sets; `None` leaves an attribute as it is (spec 1.2: missing and
/// `null` are the same).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub phone_number: Option<String>,
    pub phone_number_verified: Option<bool>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub custom: Option<serde_json::Value>,
    pub locale: Option<String>,
}

/// What `delete_authenticator` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "one value per request")]
pub enum RemovedAuthenticator {
    Device(Credential),
    Passkey(PasskeyRecord),
}

impl RemovedAuthenticator {
    /// The removed authenticator's id.
    pub fn id(&self) -> &CredentialId {
        match self {
            RemovedAuthenticator::Device(credential) => &credential.id,
            RemovedAuthenticator::Passkey(passkey) => &passkey.id,
        }
    }
}

impl App {
    pub async fn get_user(&self, tenant: &Tenant, user: &UserId) -> Result<UserView> {
        let profile = self
            .store
            .get_user(&tenant.id, user)
            .await?
            .unwrap_or_default();
        let credentials = self.store.list_user_credentials(&tenant.id, user).await?;
        let passkeys = self.store.list_user_passkeys(&tenant.id, user).await?;
        Ok(UserView {
            profile,
            enrolled_methods: Enrolment::of(&credentials, passkeys.len()).methods(),
        })
    }

    /// Applies `patch` to the user's attributes (creating the user) and returns them.
    pub async fn update_user(
        &self,
        tenant: &Tenant,
        user: &UserId,
        patch: UserPatch,
    ) -> Result<UserProfile> {
        // These are looked up by value (query users, spec 2.6), so they go into store keys:
        // the same bound as the query's, checked before anything is written.
        for (name, value) in [
            ("email", &patch.email),
            ("phoneNumber", &patch.phone_number),
            ("username", &patch.username),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.len() > MAX_LOOKUP_VALUE_LENGTH)
            {
                return Err(Error::invalid_request(format!(
                    "`{name}` must be at most {MAX_LOOKUP_VALUE_LENGTH} characters."
                )));
            }
        }
        let mut profile = self
            .store
            .get_user(&tenant.id, user)
            .await?
            .unwrap_or_default();
        macro_rules! apply {
            ($($field:ident),*) => { $( if let Some(value) = patch.$field { profile.$field = Some(value); } )* };
        }
        apply!(email, phone_number, username, display_name, custom, locale);
        if let Some(verified) = patch.email_verified {
            profile.email_verified = verified;
        }
        if let Some(verified) = patch.phone_number_verified {
            profile.phone_number_verified = verified;
        }
        self.store.put_user(&tenant.id, user, &profile).await?;
        Ok(profile)
    }

    /// Deletes the user's attributes, credentials and actions.
    pub async fn delete_user(&self, tenant: &Tenant, user: &UserId) -> Result<()> {
        self.store.delete_user(&tenant.id, user).await
    }

    pub async fn list_authenticators(
        &self,
        tenant: &Tenant,
        user: &UserId,
    ) -> Result<Vec<Credential>> {
        self.store.list_user_credentials(&tenant.id, user).await
    }

    /// The user's passkeys (the Server API lists them with the device credentials, spec 2.7).
    pub async fn list_passkeys(
        &self,
        tenant: &Tenant,
        user: &UserId,
    ) -> Result<Vec<PasskeyRecord>> {
        self.store.list_user_passkeys(&tenant.id, user).await
    }

    /// Deletes a device credential or a passkey by its authenticator id.
    pub async fn delete_authenticator(
        &self,
        tenant: &Tenant,
        user: &UserId,
        id: &CredentialId,
    ) -> Result<RemovedAuthenticator> {
        if let Some(credential) = self.store.delete_credential(&tenant.id, user, id).await? {
            return Ok(RemovedAuthenticator::Device(credential));
        }
        self.store
            .delete_passkey(&tenant.id, user, id)
            .await?
            .map(RemovedAuthenticator::Passkey)
            .ok_or(Error::AuthenticatorNotFound)
    }
}
