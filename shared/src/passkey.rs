//! The WebAuthn relying party of a tenant: kanidm's `webauthn-rs-core` configured from the
//! tenant's [`PasskeyConfig`], built once when the tenant is loaded (and cached with it).
//!
//! Why the core and not the `webauthn-rs` wrapper: the wrapper fixes user verification to
//! `required` for passkeys; a tenant may choose `preferred` here. Everything else (origin, RP
//! id hash, challenge, flags, signature, counter, attestation) is the library's check; this
//! module only maps its errors to one precise [`PasskeyCheck`] each.
//!
//! Sign counter policy: the library's (`require_valid_counter_value`): an authenticator that
//! keeps a counter must present a larger one each time, otherwise the assertion is refused as
//! [`PasskeyCheck::CounterRegression`] (a possible clone) and the stored counter is kept. A
//! counter of 0 (synced passkeys keep none) is accepted every time.

use crate::domain::{PasskeyCheck, PasskeyConfig, UserVerification};
use crate::error::{Error, Result};
use std::time::Duration;
use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationConveyancePreference, AuthenticationResult, AuthenticationState,
    AuthenticatorAttachment, CreationChallengeResponse, Credential, CredentialID,
    PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState, RequestChallengeResponse,
    UserVerificationPolicy,
};

pub use webauthn_rs_core::proto;

/// A tenant's relying party, ready to run ceremonies.
pub struct RelyingParty {
    core: WebauthnCore,
    pub config: PasskeyConfig,
    cas: Option<AttestationCaList>,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RelyingParty {
    /// Checks the config (an RP id that is a host name, origins that are http(s) URLs whose
    /// host is the RP id or below it, CA certificates that parse) and builds the party.
    pub fn new(config: &PasskeyConfig) -> Result<RelyingParty> {
        validate(config)?;
        let origins = config
            .origins
            .iter()
            .map(|o| Url::parse(o).map_err(|_| Error::invalid_request("Invalid passkey origin.")))
            .collect::<Result<Vec<_>>>()?;
        let core = WebauthnCore::new_unsafe_experts_only(
            &config.rp_name,
            &config.rp_id,
            origins,
            Duration::from_secs(crate::domain::PASSKEY_CEREMONY_SECONDS as u64),
            Some(false),
            Some(false),
        );
        let cas = if config.require_attestation {
            let mut list: Option<AttestationCaList> = None;
            for pem in &config.attestation_cas {
                let one = AttestationCaList::try_from(pem.as_bytes()).map_err(|_| {
                    Error::invalid_request("An attestation CA certificate does not parse as PEM.")
                })?;
                match &mut list {
                    None => list = Some(one),
                    Some(all) => {
                        for ca in one.cas().values() {
                            all.insert(ca.clone()).map_err(|_| Error::Internal)?;
                        }
                    }
                }
            }
            Some(list.ok_or_else(|| {
                Error::invalid_request(
                    "Requiring attestation needs at least one trusted CA certificate (--passkey-attestation-ca).",
                )
            })?)
        } else {
            None
        };
        Ok(RelyingParty {
            core,
            config: config.clone(),
            cas,
        })
    }

    fn policy(&self) -> UserVerificationPolicy {
        match self.config.user_verification {
            UserVerification::Required => UserVerificationPolicy::Required,
            UserVerification::Preferred => UserVerificationPolicy::Preferred,
        }
    }

    /// Registration options for a user, excluding the passkeys it already has.
    pub fn start_registration(
        &self,
        user_handle: &[u8],
        user_name: &str,
        display_name: &str,
        exclude: Vec<CredentialID>,
        attachment: Option<AuthenticatorAttachment>,
    ) -> Result<(CreationChallengeResponse, RegistrationState)> {
        let builder = self
            .core
            .new_challenge_register_builder(user_handle, user_name, display_name)
            .map_err(|_| Error::invalid_request("A username is required."))?
            .attestation(if self.cas.is_some() {
                AttestationConveyancePreference::Direct
            } else {
                AttestationConveyancePreference::None
            })
            .user_verification_policy(self.policy())
            // Discoverable, so that usernameless and autofill sign-in find it.
            .require_resident_key(true)
            .authenticator_attachment(attachment)
            .exclude_credentials((!exclude.is_empty()).then_some(exclude));
        self.core
            .generate_challenge_register(builder)
            .map_err(|_| Error::Internal)
    }

    pub fn finish_registration(
        &self,
        response: &RegisterPublicKeyCredential,
        state: &RegistrationState,
    ) -> Result<Credential> {
        self.core
            .register_credential(response, state, self.cas.as_ref())
            .map_err(rejected)
    }

    /// Sign-in options: `allowed` empty for a discoverable sign-in.
    pub fn start_authentication(
        &self,
        allowed: Vec<Credential>,
    ) -> Result<(RequestChallengeResponse, AuthenticationState)> {
        let builder = self
            .core
            .new_challenge_authenticate_builder(allowed, Some(self.policy()))
            .map_err(|_| Error::Internal)?
            .allow_backup_eligible_upgrade(true);
        self.core
            .generate_challenge_authenticate(builder)
            .map_err(|_| Error::Internal)
    }

    /// Checks an assertion against one stored credential.
    pub fn finish_authentication(
        &self,
        response: &PublicKeyCredential,
        state: &AuthenticationState,
        credential: &Credential,
    ) -> Result<AuthenticationResult> {
        self.core
            .authenticate_single_credential(response, state, credential)
            .map_err(rejected)
    }
}

fn validate(config: &PasskeyConfig) -> Result<()> {
    let rp_id = config.rp_id.as_str();
    let host_like = !rp_id.is_empty()
        && rp_id.len() <= 253
        && rp_id.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && rp_id == rp_id.to_ascii_lowercase();
    if !host_like || rp_id.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(Error::invalid_request(
            "The passkey RP id must be a lower-case domain name (not an IP address).",
        ));
    }
    if config.rp_name.trim().is_empty() {
        return Err(Error::invalid_request(
            "The passkey RP name must not be empty.",
        ));
    }
    if config.origins.is_empty() {
        return Err(Error::invalid_request(
            "At least one passkey origin is required.",
        ));
    }
    for origin in &config.origins {
        let url = Url::parse(origin)
            .map_err(|_| Error::invalid_request(format!("Invalid passkey origin {origin:?}.")))?;
        let host = url.host_str().unwrap_or_default();
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
        let under_rp = host == rp_id || host.ends_with(&format!(".{rp_id}"));
        if !scheme_ok || !under_rp || url.path() != "/" || url.query().is_some() {
            return Err(Error::invalid_request(format!(
                "The passkey origin {origin:?} must be https (http only on localhost), with no path, on the RP id {rp_id} or a subdomain of it."
            )));
        }
    }
    Ok(())
}

/// The one precise reason for a library error.
pub fn rejected(error: WebauthnError) -> Error {
    use WebauthnError as W;
    let check = match error {
        W::InvalidRPOrigin | W::CredentialCrossOrigin => PasskeyCheck::Origin,
        W::InvalidRPIDHash => PasskeyCheck::RpId,
        W::MismatchedChallenge => PasskeyCheck::Challenge,
        W::InvalidClientDataType => PasskeyCheck::ClientDataType,
        W::UserNotPresent => PasskeyCheck::UserPresence,
        W::UserNotVerified => PasskeyCheck::UserVerification,
        W::AuthenticationFailure | W::SignatureInvalid => PasskeyCheck::Signature,
        W::CredentialPossibleCompromise => PasskeyCheck::CounterRegression,
        W::CredentialNotFound | W::CredentialExcludedFromRequest => {
            PasskeyCheck::CredentialNotAllowed
        }
        W::AttestationNotSupported
        | W::AttestationTrustFailure
        | W::AttestationChainNotTrusted(_)
        | W::AttestationNotVerifiable
        | W::AttestationUntrustedAaguid
        | W::MissingAttestationCaList
        | W::AttestationCertificateTrustStoreEmpty
        | W::AttestationStatementSigInvalid => PasskeyCheck::Attestation,
        other => {
            tracing::debug!(error = ?other, "passkey response refused");
            PasskeyCheck::Malformed
        }
    };
    Error::PasskeyRejected(check)
}
