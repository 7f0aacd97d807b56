//! Passkeys (WebAuthn, spec 3.5; issue #15): a tenant's relying party, the registered
//! passkeys, and the ceremonies in progress.
//!
//! The WebAuthn checks themselves are kanidm's `webauthn-rs-core`; what this module adds is what
//! the service stores and the precise reasons a ceremony is refused.

use super::ids::{CredentialId, TenantId, UserId};
use super::model::{ActionKey, ChallengeTarget};
use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};

/// How long a passkey ceremony (options, then the browser's answer) may take. The browser
/// is told the same as its `timeout`.
pub const PASSKEY_CEREMONY_SECONDS: i64 = 300;

/// The action code of a passkey sign-in that names no action and has no token (the SDK's
/// `passkey.signIn()` without arguments, and its autofill mode).
pub const DEFAULT_PASSKEY_ACTION_CODE: &str = "signInWithPasskey";

/// A tenant's WebAuthn relying party (issue #15), set with `trusted-device tenant configure
/// --passkey-rp-id ...`. Without one, the passkey routes answer `passkeys_not_configured`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyConfig {
    /// The RP id: a registrable domain (`example.com`, or `localhost` in development).
    pub rp_id: String,
    pub rp_name: String,
    /// The exact origins (`https://app.example.com`) a ceremony's clientData may name.
    pub origins: Vec<String>,
    #[serde(default)]
    pub user_verification: UserVerification,
    /// Whether registration needs an attestation that chains to one of `attestation_cas`.
    #[serde(default)]
    pub require_attestation: bool,
    /// PEM certificates of the authenticator makers trusted when `require_attestation` is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestation_cas: Vec<String>,
}

/// The tenant's user-verification policy for registration and sign-in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    /// The authenticator must verify the user (PIN, biometrics): a passkey is then a full
    /// second factor on its own. The default.
    #[default]
    Required,
    /// Asked for; a presence-only assertion is still accepted.
    Preferred,
}

impl UserVerification {
    pub fn parse(text: &str) -> Option<UserVerification> {
        match text {
            "required" => Some(UserVerification::Required),
            "preferred" => Some(UserVerification::Preferred),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserVerification::Required => "required",
            UserVerification::Preferred => "preferred",
        }
    }
}

/// A registered passkey. Found by its credential id (the authenticator's, base64url) so that a
/// discoverable sign-in, which names no user, finds it in one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyRecord {
    /// The authenticator id the Server API shows (`userAuthenticatorId`).
    pub id: CredentialId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// The WebAuthn credential id, base64url without padding: the lookup key.
    pub credential_id: String,
    /// The user handle given to the authenticator at registration (base64url).
    pub user_handle: String,
    /// The credential as `webauthn-rs-core` keeps it (public key, counter, flags), JSON.
    pub credential: serde_json::Value,
    /// The last signature counter seen (0: the authenticator keeps none).
    pub counter: u32,
    pub name: Option<String>,
    pub aaguid: Option<String>,
    pub backed_up: bool,
    pub created_at: Timestamp,
    pub last_verified_at: Option<Timestamp>,
}

/// What a ceremony is for, fixed when its options are issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CeremonyPurpose {
    /// Registration of a passkey for the token's user and action.
    Registration {
        action: ActionKey,
        /// The token's scope allowed a further authenticator (`add:authenticators`).
        scoped: bool,
        name: Option<String>,
    },
    /// Sign-in: the target is as for an in-app challenge (a tracked action, a new action
    /// with a code, or a new action with the default code); `user` is set when the options
    /// listed that user's passkeys (a token), unset for a discoverable sign-in.
    Authentication {
        target: ChallengeTarget,
        user: Option<UserId>,
    },
}

/// A WebAuthn ceremony in progress: the library's state, kept in the store until its expiry,
/// used once (a conditional write marks it consumed in the same step as its effect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ceremony {
    /// The `challengeId` the SDK sends back: 32 random bytes, base64url.
    pub id: String,
    pub tenant_id: TenantId,
    pub purpose: CeremonyPurpose,
    /// `webauthn-rs-core`'s `RegistrationState` or `AuthenticationState`, JSON.
    pub state: serde_json::Value,
    pub consumed: bool,
    pub expires_at: Timestamp,
}

/// Why the WebAuthn checks refused a ceremony: one precise reason per failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyCheck {
    /// The clientData `origin` is not one of the tenant's origins.
    Origin,
    /// The authenticator data's RP id hash is not the tenant's RP id.
    RpId,
    /// The clientData `challenge` is not this ceremony's.
    Challenge,
    /// The clientData `type` is not `webauthn.create` / `webauthn.get`.
    ClientDataType,
    /// The authenticator did not report user presence.
    UserPresence,
    /// The tenant requires user verification and the authenticator did not verify the user.
    UserVerification,
    /// A signature does not verify: the assertion's with the registered public key, or the
    /// attestation's at registration.
    Signature,
    /// The signature counter did not increase: a possible cloned authenticator.
    CounterRegression,
    /// The attestation is missing or does not chain to a trusted maker.
    Attestation,
    /// The credential is not one the ceremony allows, or its user handle is another user's.
    CredentialNotAllowed,
    /// The response does not parse (clientData JSON, CBOR, COSE key).
    Malformed,
}

impl PasskeyCheck {
    pub fn code(self) -> &'static str {
        match self {
            PasskeyCheck::Origin => "invalid_origin",
            PasskeyCheck::RpId => "invalid_rp_id",
            PasskeyCheck::Challenge => "challenge_mismatch",
            PasskeyCheck::ClientDataType => "invalid_client_data",
            PasskeyCheck::UserPresence => "user_not_present",
            PasskeyCheck::UserVerification => "user_verification_required",
            PasskeyCheck::Signature => "invalid_signature",
            PasskeyCheck::CounterRegression => "possible_cloned_authenticator",
            PasskeyCheck::Attestation => "untrusted_attestation",
            PasskeyCheck::CredentialNotAllowed => "credential_not_allowed",
            PasskeyCheck::Malformed => "invalid_credential_response",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            PasskeyCheck::Origin => {
                "The origin in clientDataJSON is not one of the tenant's passkey origins."
            }
            PasskeyCheck::RpId => "The authenticator data is for another relying party id.",
            PasskeyCheck::Challenge => "The clientDataJSON challenge is not this ceremony's.",
            PasskeyCheck::ClientDataType => "The clientDataJSON type is not the expected one.",
            PasskeyCheck::UserPresence => "The authenticator did not report user presence.",
            PasskeyCheck::UserVerification => {
                "The tenant requires user verification and the authenticator did not verify the user."
            }
            PasskeyCheck::Signature => {
                "A signature in the response does not verify: the assertion's with the registered passkey, or the attestation's at registration."
            }
            PasskeyCheck::CounterRegression => {
                "The authenticator's signature counter went backwards: it may be cloned; the passkey is refused."
            }
            PasskeyCheck::Attestation => {
                "The tenant requires an attestation from a trusted authenticator maker."
            }
            PasskeyCheck::CredentialNotAllowed => {
                "This passkey is not allowed for this ceremony or user."
            }
            PasskeyCheck::Malformed => "The credential response does not parse.",
        }
    }
}
