//! Passkeys (`usecase::passkeys`, issue #15): the ceremonies through the use cases, with the
//! software authenticator of `testkit::soft_passkey`.

use crate::prelude::*;
use serde_json::Value;
use shared::passkey::proto::{PublicKeyCredential, RegisterPublicKeyCredential};
use shared::store::PasskeyStore;
use shared::usecase::passkeys::RegistrationOptions;
use shared::usecase::tenants::{Tenant, TenantSettingsChange};
use std::sync::Arc;
use testkit::soft_passkey::SoftPasskey;
use testkit::usecase::Kit;

const ORIGIN: &str = "https://app.example.com";
const RP_ID: &str = "example.com";

fn config(user_verification: UserVerification) -> PasskeyConfig {
    PasskeyConfig {
        rp_id: RP_ID.into(),
        rp_name: "Example".into(),
        origins: vec![ORIGIN.into()],
        user_verification,
        require_attestation: false,
        attestation_cas: Vec::new(),
    }
}

async fn configure(kit: &Kit, config: Option<PasskeyConfig>) -> shared::error::Result<Arc<Tenant>> {
    kit.app
        .configure_tenant(
            &kit.tenant.id,
            TenantSettingsChange {
                passkey: Some(config),
                ..TenantSettingsChange::default()
            },
        )
        .await?;
    Ok(kit.app.tenant_by_id(&kit.tenant.id).await.unwrap())
}

/// A kit whose tenant has passkeys, and Alice's passkey registered with a track token.
async fn alice_enrolled(uv: UserVerification) -> (Kit, Arc<Tenant>, SoftPasskey) {
    alice_enrolled_with(uv, true).await
}

async fn alice_enrolled_with(
    uv: UserVerification,
    verifies_user: bool,
) -> (Kit, Arc<Tenant>, SoftPasskey) {
    let kit = Kit::new().await;
    let tenant = configure(&kit, Some(config(uv))).await.unwrap();
    let token = kit.track_token("alice", "signUp", None).await;
    let start = kit
        .app
        .passkey_registration_options(&tenant, &token, RegistrationOptions::default())
        .await
        .unwrap();
    assert_eq!(start.options["rp"]["id"], RP_ID);
    assert_eq!(start.options["attestation"], "none");
    let mut passkey = SoftPasskey::new(ORIGIN, RP_ID);
    passkey.user_verified = verifies_user;
    let response: RegisterPublicKeyCredential =
        serde_json::from_value(passkey.create(&start.options)).unwrap();
    let record = kit
        .app
        .add_passkey(&tenant, &token, &start.challenge_id, &response)
        .await
        .unwrap()
        .passkey;
    assert_eq!(record.user_id, kit.user("alice"));
    assert_eq!(record.credential_id, passkey.id());
    (kit, tenant, passkey)
}

/// Registration options then a registration with `token`, on a fresh software passkey.
async fn register(
    kit: &Kit,
    tenant: &Tenant,
    token: &shared::token::VerifiedToken,
) -> shared::error::Result<shared::usecase::passkeys::PasskeyRegistration> {
    let start = kit
        .app
        .passkey_registration_options(tenant, token, RegistrationOptions::default())
        .await?;
    let mut passkey = SoftPasskey::new(ORIGIN, RP_ID);
    let response: RegisterPublicKeyCredential =
        serde_json::from_value(passkey.create(&start.options)).unwrap();
    kit.app
        .add_passkey(tenant, token, &start.challenge_id, &response)
        .await
}

fn assertion(value: Value) -> PublicKeyCredential {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_passkey_completes_the_tracked_action_with_method_passkey() {
    let (kit, tenant, mut passkey) = alice_enrolled(UserVerification::Required).await;
    let tracked = kit.track("alice", "withdraw", None).await;
    assert_eq!(tracked.enrolled_methods, vec![VerificationMethod::Passkey]);
    assert!(tracked.is_enrolled);
    assert_eq!(tracked.action.state, ActionState::ChallengeRequired);

    let token = kit.track_token("alice", "withdraw", None).await;
    let start = kit
        .app
        .passkey_authentication_options(&tenant, Some(&token), None, None)
        .await
        .unwrap();
    let result = kit
        .app
        .verify_passkey(
            &tenant,
            Some(&token),
            &start.challenge_id,
            &assertion(passkey.get(&start.options)),
        )
        .await
        .unwrap();
    let action = kit.app.get_action(&tenant, &result.action).await.unwrap();
    assert_eq!(action.state, ActionState::ChallengeSucceeded);
    assert_eq!(
        action.verification_method,
        Some(VerificationMethod::Passkey)
    );
    assert_eq!(result.passkey.counter, 1);

    let user = kit.app.get_user(&tenant, &kit.user("alice")).await.unwrap();
    assert_eq!(user.enrolled_methods, vec![VerificationMethod::Passkey]);
}

#[tokio::test]
async fn user_verification_follows_the_tenant_policy() {
    // Required: a presence-only assertion is refused, with its own reason.
    let (kit, tenant, mut passkey) = alice_enrolled(UserVerification::Required).await;
    passkey.user_verified = false;
    let start = kit
        .app
        .passkey_authentication_options(&tenant, None, None, None)
        .await
        .unwrap();
    assert_eq!(start.options["userVerification"], "required");
    assert_eq!(
        kit.app
            .verify_passkey(
                &tenant,
                None,
                &start.challenge_id,
                &assertion(passkey.get(&start.options))
            )
            .await
            .unwrap_err(),
        Error::PasskeyRejected(PasskeyCheck::UserVerification)
    );

    // Preferred: a passkey registered without user verification signs in without it. (One
    // registered with it must keep verifying: the library refuses that downgrade.)
    let (kit, tenant, mut passkey) = alice_enrolled_with(UserVerification::Preferred, false).await;
    let start = kit
        .app
        .passkey_authentication_options(&tenant, None, None, None)
        .await
        .unwrap();
    assert_eq!(start.options["userVerification"], "preferred");
    let result = kit
        .app
        .verify_passkey(
            &tenant,
            None,
            &start.challenge_id,
            &assertion(passkey.get(&start.options)),
        )
        .await
        .unwrap();
    assert_eq!(
        result.action.action_code.as_str(),
        DEFAULT_PASSKEY_ACTION_CODE
    );
}

#[tokio::test]
async fn a_relying_party_that_cannot_work_is_refused_when_configured() {
    let kit = Kit::new().await;
    let bad = [
        PasskeyConfig {
            rp_id: "127.0.0.1".into(),
            ..config(UserVerification::Required)
        },
        PasskeyConfig {
            rp_id: "Example.com".into(),
            ..config(UserVerification::Required)
        },
        PasskeyConfig {
            origins: vec![],
            ..config(UserVerification::Required)
        },
        PasskeyConfig {
            origins: vec!["https://evil.com".into()],
            ..config(UserVerification::Required)
        },
        PasskeyConfig {
            origins: vec!["http://app.example.com".into()],
            ..config(UserVerification::Required)
        },
        PasskeyConfig {
            origins: vec!["https://app.example.com/login".into()],
            ..config(UserVerification::Required)
        },
        PasskeyConfig {
            require_attestation: true,
            ..config(UserVerification::Required)
        },
        PasskeyConfig {
            require_attestation: true,
            attestation_cas: vec!["not a certificate".into()],
            ..config(UserVerification::Required)
        },
    ];
    for config in bad {
        assert!(
            matches!(
                configure(&kit, Some(config.clone())).await,
                Err(Error::InvalidRequest(_))
            ),
            "{config:?}"
        );
    }
    // Subdomain origins and localhost over http are fine.
    configure(
        &kit,
        Some(PasskeyConfig {
            origins: vec![
                "https://example.com".into(),
                "https://login.example.com:8443".into(),
            ],
            ..config(UserVerification::Required)
        }),
    )
    .await
    .unwrap();
    configure(
        &kit,
        Some(PasskeyConfig {
            rp_id: "localhost".into(),
            origins: vec!["http://localhost:3000".into()],
            ..config(UserVerification::Required)
        }),
    )
    .await
    .unwrap();
    // Off again.
    let tenant = configure(&kit, None).await.unwrap();
    let token = kit.track_token("alice", "signUp", None).await;
    assert_eq!(
        kit.app
            .passkey_registration_options(&tenant, &token, RegistrationOptions::default())
            .await
            .unwrap_err(),
        Error::PasskeysNotConfigured
    );
}

#[tokio::test]
async fn a_passkey_is_removed_through_the_authenticators_admin() {
    let (kit, tenant, mut passkey) = alice_enrolled(UserVerification::Required).await;
    let alice = kit.user("alice");
    let listed = kit.app.list_passkeys(&tenant, &alice).await.unwrap();
    assert_eq!(listed.len(), 1);
    kit.app
        .delete_authenticator(&tenant, &alice, &listed[0].id)
        .await
        .unwrap();
    assert!(!kit.track("alice", "withdraw", None).await.is_enrolled);
    let start = kit
        .app
        .passkey_authentication_options(&tenant, None, None, None)
        .await
        .unwrap();
    assert_eq!(
        kit.app
            .verify_passkey(
                &tenant,
                None,
                &start.challenge_id,
                &assertion(passkey.get(&start.options))
            )
            .await
            .unwrap_err(),
        Error::PasskeyNotRegistered
    );
}

/// `/v1/validate`'s verdict on `token`: (isValid, state, method, action code).
async fn validated(
    kit: &Kit,
    tenant: &Tenant,
    token: &str,
) -> (bool, ActionState, Option<VerificationMethod>, String) {
    use shared::usecase::validate::{ValidateCommand, Validation};
    match kit
        .app
        .validate(
            tenant,
            ValidateCommand {
                token: token.to_owned(),
                user_id: None,
                action: None,
            },
        )
        .await
        .unwrap()
    {
        Validation::Resolved {
            action, is_valid, ..
        } => (
            is_valid,
            action.state,
            action.verification_method,
            action.key.action_code.to_string(),
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn registration_completes_the_tokens_action_once_and_answers_a_token_validate_accepts() {
    let kit = Kit::new().await;
    let tenant = configure(&kit, Some(config(UserVerification::Required)))
        .await
        .unwrap();
    let token = kit
        .track_token("alice", "addPasskey", Some("add:authenticators"))
        .await;
    let registered = register(&kit, &tenant, &token).await.unwrap();
    let access_token = registered
        .token
        .expect("the registration completed the action");
    assert_eq!(
        validated(&kit, &tenant, &access_token).await,
        (
            true,
            ActionState::ChallengeSucceeded,
            Some(VerificationMethod::Passkey),
            "addPasskey".to_owned()
        )
    );
    let action = kit.app.get_action(&tenant, &token.action).await.unwrap();
    assert_eq!(
        action.verified_by_authenticator_id,
        Some(registered.passkey.id.clone())
    );

    // spec 3.5: the same token again, even with add:authenticators, registers nothing more.
    let again = register(&kit, &tenant, &token).await.unwrap_err();
    assert!(matches!(again, Error::PasskeyTokenAlreadyUsed), "{again:?}");
    assert_eq!(
        kit.store
            .list_user_passkeys(&tenant.id, &kit.user("alice"))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_action_completed_by_its_own_registration_does_not_let_its_token_add_more() {
    let kit = Kit::new().await;
    let tenant = configure(&kit, Some(config(UserVerification::Required)))
        .await
        .unwrap();
    // A plain track token: a first authenticator only.
    let token = kit.track_token("bob", "signUp", None).await;
    assert!(
        register(&kit, &tenant, &token)
            .await
            .unwrap()
            .token
            .is_some()
    );
    // Its action is now CHALLENGE_SUCCEEDED, but by its own registration: not a challenge
    // that would let the token add a device credential to a user who has a passkey.
    let device = testkit::usecase::Device::new(Namespace::InApp);
    let refused = kit
        .app
        .add_credential(&tenant, &token, device.add_command())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::InsufficientScope(_)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_action_a_challenge_completed_keeps_its_method_and_registration_issues_no_token() {
    let kit = Kit::new().await;
    let tenant = configure(&kit, Some(config(UserVerification::Required)))
        .await
        .unwrap();
    let device = kit.enroll("carol").await;
    let tracked = kit.track_token("carol", "addPasskey", None).await;
    let verified = kit.verify_with(&device, &tracked).await.unwrap();
    let registered = register(&kit, &tenant, &tracked).await.unwrap();
    assert_eq!(registered.token, None);
    let (is_valid, state, method, _) = validated(&kit, &tenant, &verified.token).await;
    assert!(is_valid);
    assert_eq!(state, ActionState::ChallengeSucceeded);
    assert_ne!(method, Some(VerificationMethod::Passkey));
    let again = register(&kit, &tenant, &tracked).await.unwrap_err();
    assert!(matches!(again, Error::PasskeyTokenAlreadyUsed), "{again:?}");
}

/// A registration for a new tracked user, attested by `ca` (`packed`, x5c) or not (`none`).
async fn register_attested(
    kit: &Kit,
    tenant: &Tenant,
    user: &str,
    ca: Option<&testkit::soft_passkey::AttestationCa>,
) -> shared::error::Result<shared::usecase::passkeys::PasskeyRegistration> {
    let token = kit.track_token(user, "signUp", None).await;
    let start = kit
        .app
        .passkey_registration_options(tenant, &token, RegistrationOptions::default())
        .await?;
    // A trusted attestation is asked for (spec 3.5: attestation per tenant).
    assert_eq!(start.options["attestation"], "direct");
    let mut passkey = SoftPasskey::new(ORIGIN, RP_ID);
    let created = match ca {
        Some(ca) => passkey.create_attested(&start.options, ca),
        None => passkey.create(&start.options),
    };
    let response: RegisterPublicKeyCredential = serde_json::from_value(created).unwrap();
    kit.app
        .add_passkey(tenant, &token, &start.challenge_id, &response)
        .await
}

#[tokio::test]
async fn a_tenant_that_requires_attestation_accepts_its_trusted_ca_and_refuses_others_and_none() {
    use testkit::soft_passkey::AttestationCa;
    let kit = Kit::new().await;
    let trusted = AttestationCa::new("Trusted Vendor Root");
    let tenant = configure(
        &kit,
        Some(PasskeyConfig {
            require_attestation: true,
            attestation_cas: vec![trusted.pem.clone()],
            ..config(UserVerification::Required)
        }),
    )
    .await
    .unwrap();
    // `packed` with an attestation certificate the trusted CA issued: accepted.
    let accepted = register_attested(&kit, &tenant, "alice", Some(&trusted))
        .await
        .unwrap();
    assert!(accepted.token.is_some());
    // Another vendor's chain: refused with its own code.
    let other = AttestationCa::new("Unknown Vendor Root");
    let untrusted = register_attested(&kit, &tenant, "bob", Some(&other))
        .await
        .unwrap_err();
    assert_eq!(untrusted, Error::PasskeyRejected(PasskeyCheck::Attestation));
    assert_eq!(PasskeyCheck::Attestation.code(), "untrusted_attestation");
    // No attestation (`none`): refused the same way.
    let none = register_attested(&kit, &tenant, "carol", None)
        .await
        .unwrap_err();
    assert_eq!(none, Error::PasskeyRejected(PasskeyCheck::Attestation));
    for refused in ["bob", "carol"] {
        assert!(
            kit.store
                .list_user_passkeys(&tenant.id, &kit.user(refused))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
