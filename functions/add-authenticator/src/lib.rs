//! The `add-authenticator` function: device credentials on the Client API (add, look up,
//! remove; spec 3.4.1 to 3.4.3) and the authenticators admin of the Server API (spec 2.7).
//!
//! Each handler decodes the request, calls one [`shared::App`] use case and encodes the result.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::domain::{
    ChallengeId, Credential, CredentialId, Namespace, PasskeyCheck, PasskeyRecord, UserId,
    VerificationMethod,
};
use shared::error::Error;
use shared::http::error::{HttpError, Result};
use shared::http::{
    BearerAuth, EmptyObject, JsonBody, JsonResponse, PathParams, PeerIp, PublicKeyQuery,
    QueryParams, SecretKeyAuth, SharedApp, TenantAuth, required,
};
use shared::signature::PublicKey;
use shared::usecase::approvals::UpdatePushCredential;
use shared::usecase::credentials::AddCredential;

use shared::http::cors::preflight;
mod unsupported;

shared::routes! {
    // Passkeys (spec 3.5, issue #15): the browser SDK's registration and lookup. Static
    // segments, so `passkey` is never taken for a device namespace.
    POST "/v1/client/user-authenticators/passkey/registration-options" => passkey_registration_options,
    POST "/v1/client/user-authenticators/passkey/registration-options/web" => passkey_registration_options,
    POST "/v1/client/user-authenticators/passkey" => add_passkey,
    GET "/v1/client/user-authenticators/passkey" => find_passkey,
    POST "/v1/client/user-authenticators/{namespace}" => add_credential,
    GET "/v1/client/user-authenticators/{namespace}" => get_credential,
    POST "/v1/client/user-authenticators/{namespace}/remove" => remove_credential,
    PATCH "/v1/client/user-authenticators/{namespace}" => update_push_credential,
    POST "/v1/client/user-authenticators/{namespace}/sign" => push_update_challenge,
    GET "/v1/users/{userId}/authenticators" => list_authenticators,
    // Enrolling an authenticator verified elsewhere (SMS, email; spec 2.7) and the .NET SDK's
    // batch enrolment of passkeys: not supported, said in the error shape. The static path
    // keeps `authenticators` from being taken for a user id by `POST /v1/users/{userId}`.
    POST "/v1/users/{userId}/authenticators" => unsupported::enroll_verified_authenticator,
    POST "/v1/users/authenticators" => unsupported::batch_enroll_authenticators,
    DELETE "/v1/users/{userId}/authenticators/{userAuthenticatorId}" => delete_authenticator,
    // The token's own user's authenticators (spec 3.5, Bearer): the pre-built UI's settings
    // screen lists them (issue #16).
    GET "/v1/client/user-authenticators" => list_token_user_authenticators,
    // Ours: the settings screen's removal (issue #16). The Client API has no removal by id
    // with a token (spec 3.3 #3 is the device's own signed removal), so it is under `/v1/ui`:
    // not the Client API, so no browser of another origin may call it (its preflight is
    // refused, DESIGN 9).
    DELETE "/v1/ui/authenticators/{userAuthenticatorId}" => remove_authenticator_in_settings,

    // Each path's CORS preflight: answered on the Client API, refused on the Server API.
    OPTIONS "/v1/client/user-authenticators/{namespace}" => preflight,
    OPTIONS "/v1/client/user-authenticators/{namespace}/remove" => preflight,
    OPTIONS "/v1/client/user-authenticators/{namespace}/sign" => preflight,
    OPTIONS "/v1/users/{userId}/authenticators" => preflight,
    OPTIONS "/v1/users/authenticators" => preflight,
    OPTIONS "/v1/users/{userId}/authenticators/{userAuthenticatorId}" => preflight,
    OPTIONS "/v1/client/user-authenticators/passkey/registration-options" => preflight,
    OPTIONS "/v1/client/user-authenticators/passkey/registration-options/web" => preflight,
    OPTIONS "/v1/client/user-authenticators/passkey" => preflight,
    OPTIONS "/v1/client/user-authenticators" => preflight,
    OPTIONS "/v1/ui/authenticators/{userAuthenticatorId}" => preflight,
}

/// A namespace segment (spec 3.2); any other segment is not a route.
fn namespace(segment: &str) -> Result<Namespace> {
    Namespace::parse_segment(segment).ok_or(HttpError::RouteNotFound)
}

/// A credential as the mobile SDKs decode it: `userAuthenticatorId`, `userId` and
/// `verifiedAt` are required by both iOS and Android (spec 3.4.1, 3.7).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CredentialResponse {
    user_authenticator_id: String,
    user_id: String,
    verified_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_verified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

impl From<Credential> for CredentialResponse {
    fn from(c: Credential) -> Self {
        CredentialResponse {
            user_authenticator_id: c.id.into(),
            user_id: c.user_id.into(),
            verified_at: c.created_at.to_iso8601(),
            last_verified_at: c.last_verified_at.map(|t| t.to_iso8601()),
            expires_at: c.expires_at.map(|t| t.to_iso8601()),
        }
    }
}

// ---------------------------------------------------------------- add (spec 3.4.1)

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AddCredentialBody {
    public_key: Option<String>,
    device_name: Option<String>,
    device_platform: Option<String>,
    push_token: Option<String>,
    // `performAttestation` is accepted and not verified yet (spec 4.5 allows ignoring it).
}

async fn add_credential(
    BearerAuth { tenant, token }: BearerAuth,
    State(app): State<SharedApp>,
    PathParams(segment): PathParams<String>,
    JsonBody(body): JsonBody<AddCredentialBody>,
) -> Result<JsonResponse<CredentialResponse>> {
    let namespace = namespace(&segment)?;
    let command = AddCredential {
        namespace,
        public_key: PublicKey::from_base64(&required(body.public_key, "publicKey")?)?,
        device_name: body.device_name,
        device_platform: body.device_platform,
        push_token: body.push_token.filter(|_| namespace == Namespace::Push),
    };
    let credential = app.add_credential(&tenant, &token, command).await?;
    Ok(JsonResponse(CredentialResponse::from(credential)))
}

// ---------------------------------------------------------------- get (spec 3.4.2)

async fn get_credential(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PathParams(segment): PathParams<String>,
    QueryParams(query): QueryParams<PublicKeyQuery>,
) -> Result<JsonResponse<CredentialResponse>> {
    let namespace = namespace(&segment)?;
    let public_key = query.parse()?;
    let credential = app.get_credential(&tenant, namespace, &public_key).await?;
    Ok(JsonResponse(CredentialResponse::from(credential)))
}

// ---------------------------------------------------------------- remove (spec 3.4.3)

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RemoveCredentialBody {
    public_key: Option<String>,
    signature: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RemoveCredentialResponse {
    removed_authenticator_id: String,
}

async fn remove_credential(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PathParams(segment): PathParams<String>,
    JsonBody(body): JsonBody<RemoveCredentialBody>,
) -> Result<JsonResponse<RemoveCredentialResponse>> {
    let namespace = namespace(&segment)?;
    let public_key = PublicKey::from_base64(&required(body.public_key, "publicKey")?)?;
    let signature = required(body.signature, "signature")?;
    let removed = app
        .remove_credential(&tenant, namespace, &public_key, &signature)
        .await?;
    Ok(JsonResponse(RemoveCredentialResponse {
        removed_authenticator_id: removed.id.into(),
    }))
}

// ---------------------------------------------------------------- push update (spec 3.4.5)

/// Only the `push` namespace has these two routes (spec 3.3 #8, #9).
fn push_only(segment: &str) -> Result<()> {
    match namespace(segment)? {
        Namespace::Push => Ok(()),
        _ => Err(HttpError::RouteNotFound),
    }
}

/// Both platforms treat both fields as optional; we always send both.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SigningMessageResponse {
    challenge_id: String,
    message: String,
}

async fn push_update_challenge(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PathParams(segment): PathParams<String>,
    QueryParams(query): QueryParams<PublicKeyQuery>,
) -> Result<JsonResponse<SigningMessageResponse>> {
    push_only(&segment)?;
    let challenge_id = app.push_update_challenge(&tenant, &query.parse()?).await?;
    // The message to sign is the challenge id itself, as for every other challenge.
    Ok(JsonResponse(SigningMessageResponse {
        challenge_id: challenge_id.to_string(),
        message: challenge_id.into(),
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UpdatePushBody {
    challenge_id: Option<String>,
    public_key: Option<String>,
    signature: Option<String>,
    push_token: Option<String>,
    reset_expiry: Option<bool>,
}

/// iOS requires `userAuthenticatorId`, `userId` and `lastVerifiedAt` (spec 3.7).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UpdatePushResponse {
    user_authenticator_id: String,
    user_id: String,
    last_verified_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    push_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

async fn update_push_credential(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    PeerIp(source): PeerIp,
    PathParams(segment): PathParams<String>,
    JsonBody(body): JsonBody<UpdatePushBody>,
) -> Result<JsonResponse<UpdatePushResponse>> {
    push_only(&segment)?;
    let command = UpdatePushCredential {
        challenge_id: ChallengeId::parse(required(body.challenge_id, "challengeId")?)
            .map_err(|_| Error::ChallengeNotFound)?,
        public_key: PublicKey::from_base64(&required(body.public_key, "publicKey")?)?,
        signature: required(body.signature, "signature")?,
        push_token: body.push_token,
        reset_expiry: body.reset_expiry.unwrap_or(false),
        source,
    };
    let credential = app.update_push_credential(&tenant, command).await?;
    Ok(JsonResponse(UpdatePushResponse {
        user_authenticator_id: credential.id.into(),
        user_id: credential.user_id.into(),
        last_verified_at: credential
            .last_verified_at
            .unwrap_or(credential.created_at)
            .to_iso8601(),
        push_token: credential.push_token,
        expires_at: credential.expires_at.map(|t| t.to_iso8601()),
    }))
}

// ---------------------------------------------------------------- admin (spec 2.7)

/// A UserAuthenticator as the server SDKs type it.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AuthenticatorView {
    user_id: String,
    user_authenticator_id: String,
    verification_method: VerificationMethod,
    created_at: String,
    verified_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_verified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webauthn_credential: Option<WebauthnCredentialView>,
}

/// The passkey detail of an authenticator (spec 2.7 `webauthnCredential`).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WebauthnCredentialView {
    credential_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    credential_backed_up: bool,
    credential_device_type: &'static str,
}

impl From<PasskeyRecord> for AuthenticatorView {
    fn from(p: PasskeyRecord) -> Self {
        AuthenticatorView {
            verification_method: VerificationMethod::Passkey,
            created_at: p.created_at.to_iso8601(),
            verified_at: p.created_at.to_iso8601(),
            last_verified_at: p.last_verified_at.map(|t| t.to_iso8601()),
            display_name: p.name.clone(),
            device_platform: None,
            webauthn_credential: Some(WebauthnCredentialView {
                credential_id: p.credential_id,
                name: p.name,
                credential_backed_up: p.backed_up,
                credential_device_type: if p.backed_up {
                    "multiDevice"
                } else {
                    "singleDevice"
                },
            }),
            user_id: p.user_id.into(),
            user_authenticator_id: p.id.into(),
        }
    }
}

async fn list_authenticators(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams(user_id): PathParams<String>,
) -> Result<JsonResponse<Vec<AuthenticatorView>>> {
    let user = UserId::parse(user_id)?;
    let credentials = app.list_authenticators(&tenant, &user).await?;
    let passkeys = app.list_passkeys(&tenant, &user).await?;
    Ok(JsonResponse(authenticator_views(credentials, passkeys)))
}

/// Device credentials, then passkeys, as UserAuthenticators (spec 2.7).
fn authenticator_views(
    credentials: Vec<Credential>,
    passkeys: Vec<PasskeyRecord>,
) -> Vec<AuthenticatorView> {
    let mut views: Vec<AuthenticatorView> = credentials
        .into_iter()
        .map(|c| AuthenticatorView {
            verification_method: c.namespace.verification_method(),
            created_at: c.created_at.to_iso8601(),
            verified_at: c.created_at.to_iso8601(),
            last_verified_at: c.last_verified_at.map(|t| t.to_iso8601()),
            display_name: c.device_name,
            // The SDKs enrol with "ios" or "android" (spec 3.4.1); an authenticator's
            // `devicePlatform` is the browser SDK's enum, `IOS | ANDROID | WEB` (spec 2.7).
            device_platform: c.device_platform.map(|p| p.to_ascii_uppercase()),
            webauthn_credential: None,
            user_id: c.user_id.into(),
            user_authenticator_id: c.id.into(),
        })
        .collect();
    views.extend(passkeys.into_iter().map(AuthenticatorView::from));
    views
}

/// `GET /v1/client/user-authenticators` (spec 3.5): the token's user's authenticators, in the
/// Server API's UserAuthenticator shape (spec 2.7; the SDK sources show no other).
async fn list_token_user_authenticators(
    BearerAuth { tenant, token }: BearerAuth,
    State(app): State<SharedApp>,
) -> Result<JsonResponse<Vec<AuthenticatorView>>> {
    let (credentials, passkeys) = app.token_user_authenticators(&tenant, &token).await?;
    Ok(JsonResponse(authenticator_views(credentials, passkeys)))
}

/// `DELETE /v1/ui/authenticators/{userAuthenticatorId}` (issue #16): the settings screen's
/// removal, with the track token (`redirectToSettings`, action completed by a challenge).
async fn remove_authenticator_in_settings(
    BearerAuth { tenant, token }: BearerAuth,
    State(app): State<SharedApp>,
    PathParams(id): PathParams<String>,
) -> Result<JsonResponse<RemoveCredentialResponse>> {
    let id = CredentialId::parse(id).map_err(|_| Error::AuthenticatorNotFound)?;
    let removed = app
        .remove_authenticator_in_settings(&tenant, &token, &id)
        .await?;
    Ok(JsonResponse(RemoveCredentialResponse {
        removed_authenticator_id: removed.id().to_string(),
    }))
}

async fn delete_authenticator(
    SecretKeyAuth(tenant): SecretKeyAuth,
    State(app): State<SharedApp>,
    PathParams((user_id, id)): PathParams<(String, String)>,
) -> Result<JsonResponse<EmptyObject>> {
    let id = CredentialId::parse(id).map_err(|_| Error::AuthenticatorNotFound)?;
    app.delete_authenticator(&tenant, &UserId::parse(user_id)?, &id)
        .await?;
    Ok(JsonResponse(EmptyObject {}))
}

// ---------------------------------------------------------------- passkeys (spec 3.5, issue #15)

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RegistrationOptionsBody {
    username: Option<String>,
    display_name: Option<String>,
    authenticator_attachment: Option<String>,
}

/// `RegistrationOptsResponse` of `@authsignal/browser`: `options` is what SimpleWebAuthn's
/// `startRegistration({optionsJSON})` takes.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CeremonyResponse {
    challenge_id: String,
    options: serde_json::Value,
}

async fn passkey_registration_options(
    BearerAuth { tenant, token }: BearerAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<RegistrationOptionsBody>,
) -> Result<JsonResponse<CeremonyResponse>> {
    let start = app
        .passkey_registration_options(
            &tenant,
            &token,
            shared::usecase::passkeys::RegistrationOptions {
                username: body.username,
                display_name: body.display_name,
                attachment: body.authenticator_attachment,
            },
        )
        .await?;
    Ok(JsonResponse(CeremonyResponse {
        challenge_id: start.challenge_id,
        options: start.options,
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AddPasskeyBody {
    registration_credential: Option<serde_json::Value>,
    challenge_id: Option<String>,
    // `conditionalCreate` and `useCookies` are accepted and change nothing.
}

/// `AddAuthenticatorResponse` of `@authsignal/browser`.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AddPasskeyResponse {
    is_verified: bool,
    user_authenticator_id: String,
    user_id: String,
    user_authenticator: AuthenticatorView,
    /// spec 3.5: the token `passkey.signUp` returns, when the registration completed the
    /// token's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
}

async fn add_passkey(
    BearerAuth { tenant, token }: BearerAuth,
    State(app): State<SharedApp>,
    JsonBody(body): JsonBody<AddPasskeyBody>,
) -> Result<JsonResponse<AddPasskeyResponse>> {
    let challenge_id = required(body.challenge_id, "challengeId")?;
    let response = serde_json::from_value(required(
        body.registration_credential,
        "registrationCredential",
    )?)
    .map_err(|_| Error::PasskeyRejected(PasskeyCheck::Malformed))?;
    let registered = app
        .add_passkey(&tenant, &token, &challenge_id, &response)
        .await?;
    let passkey = registered.passkey;
    Ok(JsonResponse(AddPasskeyResponse {
        is_verified: true,
        user_authenticator_id: passkey.id.to_string(),
        user_id: passkey.user_id.to_string(),
        user_authenticator: AuthenticatorView::from(passkey),
        access_token: registered.token,
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct FindPasskeyQuery {
    credential_ids: Option<String>,
}

/// `PasskeyAuthenticatorResponse` of `@authsignal/browser` (it only checks the status).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct FindPasskeyResponse {
    credential_id: String,
    verified_at: String,
}

async fn find_passkey(
    TenantAuth(tenant): TenantAuth,
    State(app): State<SharedApp>,
    QueryParams(query): QueryParams<FindPasskeyQuery>,
) -> Result<JsonResponse<FindPasskeyResponse>> {
    // The SDK joins an array into the URL: `a,b`.
    let ids: Vec<String> = required(query.credential_ids, "credentialIds")?
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    let passkey = app.find_passkey(&tenant, &ids).await?;
    Ok(JsonResponse(FindPasskeyResponse {
        credential_id: passkey.credential_id,
        verified_at: passkey
            .last_verified_at
            .unwrap_or(passkey.created_at)
            .to_iso8601(),
    }))
}
