//! HTTP plumbing shared by every function: auth extractors, the JSON body and path
//! extractors, error responses, the request log line, and the layers every router gets.
//!
//! A handler is three steps: extractors decode (and reject bad input with the precise
//! [`Error`] or transport failure, [`HttpError`]), one [`App`] use case runs, [`json`]
//! encodes. What any failure looks like on the wire is decided in [`error`], once.

pub mod cors;
pub mod error;

pub mod routes;

use crate::App;
use crate::encoding;
use crate::error::Error;
use crate::signature::PublicKey;
use crate::token::{self, VerifiedToken};
use crate::usecase::tenants::Tenant;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use error::HttpError;
use error::LoggedErrorCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// The state every router shares.
pub type SharedApp = Arc<App>;

// ---------------------------------------------------------------- responses

/// A JSON response with `Content-Type: application/json` exactly: the Python SDK parses only
/// that exact string (spec 1.2).
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => Error::Internal.into_response(),
    }
}

/// 200 with a JSON body: the only success the Client API may give (spec 3.6).
pub fn ok(body: &impl Serialize) -> Response {
    json(StatusCode::OK, body)
}

/// A handler's answer: 200 with `T` as its JSON body ([`ok`]). Handlers return this rather than
/// a bare [`Response`] so that the type of what they send is in their signature, where the
/// OpenAPI document reads it ([`crate::openapi`], issue #19).
#[derive(Debug)]
pub struct JsonResponse<T>(pub T);

impl<T: Serialize> IntoResponse for JsonResponse<T> {
    fn into_response(self) -> Response {
        ok(&self.0)
    }
}

/// A handler's answer that is not JSON: the pre-built UI's page, script, stylesheet and QR-code
/// image (issue #16). The handler builds the whole response (body, `Content-Type`, security
/// headers); the type names its media type for the OpenAPI document ([`crate::openapi`]).
#[derive(Debug)]
pub struct MediaResponse<M: MediaType>(pub Response, std::marker::PhantomData<M>);

impl<M: MediaType> MediaResponse<M> {
    pub fn new(response: Response) -> Self {
        MediaResponse(response, std::marker::PhantomData)
    }
}

impl<M: MediaType> IntoResponse for MediaResponse<M> {
    fn into_response(self) -> Response {
        self.0
    }
}

/// A media type a [`MediaResponse`] answers with (its success; errors stay JSON).
pub trait MediaType {
    /// As the OpenAPI document names it.
    const NAME: &'static str;
    /// What the 200 is, for the document.
    const DESCRIPTION: &'static str;
}

/// The media types of the pre-built UI's answers.
pub mod media {
    macro_rules! media_type {
        ($name:ident, $media:literal, $description:literal) => {
            #[derive(Debug)]
            pub struct $name;
            impl super::MediaType for $name {
                const NAME: &'static str = $media;
                const DESCRIPTION: &'static str = $description;
            }
        };
    }
    media_type!(Html, "text/html", "An HTML page.");
    media_type!(JavaScript, "text/javascript", "A script.");
    media_type!(Css, "text/css", "A stylesheet.");
    media_type!(Svg, "image/svg+xml", "An SVG image.");
}

/// The `{}` that a call with nothing to answer sends (delete user, revoke session, ...).
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct EmptyObject {}

// ---------------------------------------------------------------- auth

fn authorization<'a>(parts: &'a Parts, scheme: &str) -> Option<&'a str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Server API auth: `Basic base64("<secret>:")` (spec 2.1). Anything else is `Unauthorized`.
#[derive(Debug)]
pub struct SecretKeyAuth(pub Arc<Tenant>);

impl FromRequestParts<SharedApp> for SecretKeyAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &SharedApp) -> Result<Self, Error> {
        let credentials = authorization(parts, "Basic").ok_or(Error::Unauthorized)?;
        let secret = encoding::secret_from_basic(credentials).ok_or(Error::Unauthorized)?;
        Ok(SecretKeyAuth(app.tenant_by_secret(&secret).await?))
    }
}

/// Client API tenant auth: `Basic` with the tenant id in any of the three client encodings
/// (spec 3.1). It proves nothing by itself; the device signature in the body does.
#[derive(Debug)]
pub struct TenantAuth(pub Arc<Tenant>);

impl FromRequestParts<SharedApp> for TenantAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &SharedApp) -> Result<Self, Error> {
        let credentials = authorization(parts, "Basic").ok_or(Error::Unauthorized)?;
        let tenant = tenant_from_basic(parts, credentials, app).await?;
        cors::check_origin(parts, &tenant)?;
        Ok(TenantAuth(tenant))
    }
}

async fn tenant_from_basic(
    parts: &Parts,
    credentials: &str,
    app: &App,
) -> Result<Arc<Tenant>, Error> {
    let id = encoding::tenant_id_from_basic(credentials).ok_or(Error::Unauthorized)?;
    let id = crate::domain::TenantId::parse(id).map_err(|_| Error::Unauthorized)?;
    // The mobile SDKs also send the tenant in a header (spec 1.4): they must agree.
    if let Some(header_id) = parts.headers.get("x-authsignal-tenant-id")
        && header_id.to_str().map(str::trim).ok() != Some(id.as_str())
    {
        return Err(Error::Unauthorized);
    }
    app.tenant_by_id(&id).await
}

/// Client API user auth: `Bearer <token from track or verify>` (spec 3.1).
#[derive(Debug)]
pub struct BearerAuth {
    pub tenant: Arc<Tenant>,
    pub token: VerifiedToken,
}

impl FromRequestParts<SharedApp> for BearerAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &SharedApp) -> Result<Self, Error> {
        let token = authorization(parts, "Bearer").ok_or(Error::Unauthorized)?;
        bearer(parts, token, app).await
    }
}

async fn bearer(parts: &Parts, token: &str, app: &App) -> Result<BearerAuth, Error> {
    let tenant_id = token::claimed_tenant(token).ok_or(Error::InvalidToken)?;
    let tenant = app
        .tenant_by_id(&tenant_id)
        .await
        .map_err(|error| match error {
            Error::Unauthorized => Error::InvalidToken,
            other => other,
        })?;
    // Before the token's own checks, so that a page of an allowed origin can read an
    // `expired_token` and refresh (the browser SDK's `onTokenExpired`).
    cors::check_origin(parts, &tenant)?;
    let token = tenant.keys.verify(token, app.now())?;
    Ok(BearerAuth { tenant, token })
}

/// Either client auth, for the calls that take both (spec 3.3 #4, #5).
#[derive(Debug)]
pub enum ClientAuth {
    Bearer(BearerAuth),
    Tenant(Arc<Tenant>),
}

impl ClientAuth {
    pub fn tenant(&self) -> &Tenant {
        match self {
            ClientAuth::Bearer(auth) => &auth.tenant,
            ClientAuth::Tenant(tenant) => tenant,
        }
    }

    pub fn token(&self) -> Option<&VerifiedToken> {
        match self {
            ClientAuth::Bearer(auth) => Some(&auth.token),
            ClientAuth::Tenant(_) => None,
        }
    }
}

impl FromRequestParts<SharedApp> for ClientAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &SharedApp) -> Result<Self, Error> {
        if let Some(token) = authorization(parts, "Bearer") {
            return Ok(ClientAuth::Bearer(bearer(parts, token, app).await?));
        }
        let credentials = authorization(parts, "Basic").ok_or(Error::Unauthorized)?;
        let tenant = tenant_from_basic(parts, credentials, app).await?;
        cors::check_origin(parts, &tenant)?;
        Ok(ClientAuth::Tenant(tenant))
    }
}

// ---------------------------------------------------------------- input

/// A JSON request body. Whatever the `Content-Type`, an empty body or `null` reads as `{}`
/// (PHP sends none on track, spec 2.2; Go sends `null` for nil attributes); unknown fields are ignored and `null` reads as missing (spec
/// 1.2, by declaring optional fields as `Option`); bodies over the limit are refused.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SharedApp> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, app: &SharedApp) -> Result<Self, HttpError> {
        let limit = app.settings().max_body_bytes;
        // A body declared over the limit is refused before a byte of it is read: the client
        // waits for no read timeout, and an `Expect: 100-continue` client is never told to
        // send it (hyper answers `100 Continue` only once the body is read).
        let declared = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(HttpError::PayloadTooLarge(limit));
        }
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|error| body_read_error(&error, limit))?;
        // A body of `null` is "no attributes" too: the Go SDK marshals a nil attributes pointer.
        let trimmed = bytes.trim_ascii();
        let text: &[u8] = if trimmed.is_empty() || trimmed == b"null" {
            b"{}"
        } else {
            &bytes
        };
        // The whole body is UTF-8 (RFC 8259 8.1, spec 1.2), also in fields this route ignores,
        // which `serde_json` skips without decoding.
        let text = std::str::from_utf8(text).map_err(|_| {
            Error::invalid_request("The request body is not valid: it is not UTF-8 JSON.")
        })?;
        serde_json::from_str(text).map(JsonBody).map_err(|error| {
            Error::invalid_request(format!("The request body is not valid: {error}.")).into()
        })
    }
}

/// Why a request body could not be read: over the size limit (413), past the local server's
/// body-read deadline (408, [`BodyReadTimedOut`]), or broken off (400). The cause sits
/// somewhere in the chain of wrapped errors (axum's, `http-body-util`'s limit).
fn body_read_error(error: &axum::Error, limit: usize) -> HttpError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return HttpError::PayloadTooLarge(limit);
        }
        if let Some(timeout) = current.downcast_ref::<BodyReadTimedOut>() {
            return HttpError::RequestTimeout(timeout.0);
        }
        cause = current.source();
    }
    HttpError::BodyUnreadable
}

/// The error a request body yields when its sender is too slow: the local server wraps every
/// request body in a deadline (`trusted-device serve --body-read-timeout`) and fails the body
/// with this, which [`JsonBody`] answers with `408 request_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimedOut(pub std::time::Duration);

impl std::fmt::Display for BodyReadTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body did not arrive within {:?}", self.0)
    }
}

impl std::error::Error for BodyReadTimedOut {}

/// Path parameters, percent-decoded (spec 2.2); a malformed one is a 400, not axum's text.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|error| Error::invalid_request(format!("Invalid path: {error}.")))
    }
}

/// Query parameters; a malformed query is a 400 in the error shape.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|error| Error::invalid_request(format!("Invalid query: {error}.")))
    }
}

/// The `?publicKey=` query of the device calls (spec 3.3).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyQuery {
    pub public_key: Option<String>,
}

impl PublicKeyQuery {
    /// The double-encoded key of spec 4.3, in either platform's encoding.
    pub fn parse(self) -> Result<PublicKey, Error> {
        let value = required(self.public_key, "publicKey")?;
        let inner = encoding::public_key_from_query(&value)
            .ok_or_else(|| Error::invalid_request("Invalid publicKey query parameter."))?;
        Ok(PublicKey::from_base64(&inner)?)
    }
}

/// A required field of a request body, or `invalid_request` naming it.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::invalid_request(format!("The field `{name}` is required.")))
}

/// A body's `custom` (spec 2.3, 2.6): a JSON object, or `[]` for an empty one (the PHP SDK
/// sends an empty PHP array so: `json_encode` without `JSON_FORCE_OBJECT`); `null` or absent is
/// none. Anything else is refused, not dropped. For `#[serde(default, deserialize_with)]`.
pub fn custom_object<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, D::Error> {
    use serde::Deserialize as _;
    use serde_json::Value;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(Value::Array(items)) if items.is_empty() => Ok(Some(serde_json::Map::new())),
        Some(_) => Err(serde::de::Error::custom("`custom` must be a JSON object")),
    }
}

// ---------------------------------------------------------------- the service

/// Adds what every router needs, once, around the merged routes: JSON 404 and 405, a panic
/// turned into a 500 in the error shape, one log line per request, the refusal of an empty
/// path parameter (see [`normalize_path`]), and CORS for the Client API ([`cors`]).
pub fn finish(router: Router) -> Router {
    router
        .fallback(|| async { HttpError::RouteNotFound })
        .method_not_allowed_fallback(|| async { HttpError::MethodNotAllowed })
        // `Router::layer` runs after routing, so the matched route's parameters are known here;
        // it comes before every extractor, so an empty parameter is a 400 whatever the
        // handler's extractor order (authentication included).
        .layer(axum::middleware::from_fn(reject_empty_path_parameters))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            Error::Internal.into_response()
        }))
        .layer(axum::middleware::from_fn(cors::layer))
        // Outside the panic catcher, so a request that panicked is logged with its 500 too.
        .layer(axum::middleware::from_fn(log_request))
}

/// What [`normalize_path`] puts in place of an empty path segment: a percent-encoded NUL. It
/// is a valid path segment for the router (so a route whose parameter sits there still matches,
/// and a static segment does not), and no parameter may contain a control character anyway.
const EMPTY_SEGMENT: &str = "%00";

/// Marks a request whose path had an empty segment that [`normalize_path`] replaced by
/// [`EMPTY_SEGMENT`]: only then is a NUL parameter an empty one (a client's own `%00` is left to
/// the parameter's validation).
#[derive(Debug, Clone, Copy)]
struct EmptySegments;

/// Rewrites the path before routing, only where the SDKs' URL building needs it (spec 1.1,
/// 8.1). Every SDK builds `{configured base}{path}`, so a base URL that ends in `/` doubles the
/// slash at the join: `/v1//client/challenge`, `/v1//users/alice` (or `//v1/...` for a host
/// ending in `/`); the Go SDK's path repeats the version: `/v1/v1/challenges` (spec 2.2). So
/// the slashes before and after the `/v1` prefix collapse and a doubled `/v1` goes.
///
/// Any other empty segment stays a segment: `/v1/users//authenticators` is *not*
/// `/v1/users/authenticators` (the user named `authenticators`), and `/v1/users//actions/pay`
/// must not fall into a shorter route. Each one is replaced by [`EMPTY_SEGMENT`] so that routing
/// still sees it: at a parameter's place the route matches and [`finish`]'s check answers `400
/// invalid_request`; at a static segment's place nothing matches (`404 not_found`).
pub fn normalize_path<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let (normalized, had_empty) = normalized_path(request.uri().path());
    if had_empty {
        request.extensions_mut().insert(EmptySegments);
    }
    if normalized != request.uri().path() {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{normalized}?{query}"),
            None => normalized,
        };
        let mut uri_parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            uri_parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(uri_parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The path [`normalize_path`] routes, and whether an empty segment was kept as
/// [`EMPTY_SEGMENT`].
fn normalized_path(path: &str) -> (String, bool) {
    let mut rest = path.trim_start_matches('/');
    let mut versioned = false;
    while let Some(after) = rest.strip_prefix("v1/") {
        rest = after.trim_start_matches('/');
        versioned = true;
    }
    let mut normalized = String::with_capacity(path.len() + 8);
    normalized.push_str(if versioned { "/v1/" } else { "/" });
    let mut had_empty = false;
    if !rest.is_empty() {
        for (index, segment) in rest.split('/').enumerate() {
            if index > 0 {
                normalized.push('/');
            }
            if segment.is_empty() {
                normalized.push_str(EMPTY_SEGMENT);
                had_empty = true;
            } else {
                normalized.push_str(segment);
            }
        }
    }
    (normalized, had_empty)
}

/// `400 invalid_request` for a route matched with an empty parameter (`userId`, `action`,
/// `idempotencyKey`, an authenticator id, a namespace): see [`normalize_path`].
async fn reject_empty_path_parameters(request: Request, next: Next) -> Response {
    if request.extensions().get::<EmptySegments>().is_some() {
        let (mut parts, body) = request.into_parts();
        if let Ok(params) = axum::extract::RawPathParams::from_request_parts(&mut parts, &()).await
            && let Some((name, _)) = params.iter().find(|(_, value)| *value == "\0")
        {
            return Error::invalid_request(format!("The path parameter `{name}` is empty."))
                .into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(request).await
}

/// The address a request came from as the platform saw it: API Gateway's `sourceIp`, put
/// here by the Lambda entry point. The local server's peer address serves when it is absent.
#[derive(Debug, Clone, Copy)]
pub struct SourceIp(pub std::net::IpAddr);

/// The caller's address, if the platform knows it: for showing an approver where a QR code
/// was started (spec 3.4.7 claim `ipAddress`). Never read from a header such as
/// `X-Forwarded-For`, which whoever sends the request controls.
#[derive(Debug, Clone, Copy)]
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<SourceIp>().map(|s| s.0).or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
        });
        Ok(PeerIp(ip))
    }
}

/// The id of the request in the platform that delivered it (the Lambda request id), for the
/// log line.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The request log line: method, route template (never the raw path or query, which can
/// hold user ids and public keys), status, error code, latency, and the request id if known.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let error = response.extensions().get::<LoggedErrorCode>().map(|c| c.0);
    // The one place that sees every response with its route: DESIGN 11.
    crate::metric::http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    tracing::info!(
        request_id,
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        error,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(uri: &str) -> String {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        normalize_path(request).uri().to_string()
    }

    #[test]
    fn slashes_collapse_only_at_the_base_url_join() {
        // A base URL ending in `/` (spec 1.1), before or after the version.
        assert_eq!(path_of("/v1//client/challenge"), "/v1/client/challenge");
        assert_eq!(path_of("//v1/users/alice"), "/v1/users/alice");
        assert_eq!(path_of("/v1///users/alice?x=1"), "/v1/users/alice?x=1");
        // The Go SDK's doubled version (spec 2.2), also behind a trailing slash.
        assert_eq!(
            path_of("/v1/v1/challenges?challengeId=x"),
            "/v1/challenges?challengeId=x"
        );
        assert_eq!(path_of("/v1//v1/challenges"), "/v1/challenges");
        assert_eq!(
            path_of("/v1/users/a%20b/actions/signIn"),
            "/v1/users/a%20b/actions/signIn"
        );
        assert_eq!(path_of("//"), "/");
        assert_eq!(path_of("/v1"), "/v1");
        // Only a leading `v1` segment is the version: a user named `v1` keeps its place.
        assert_eq!(path_of("/v1/users/v1/actions"), "/v1/users/v1/actions");
    }

    #[test]
    fn any_other_empty_segment_keeps_its_place() {
        assert_eq!(
            path_of("/v1/users//authenticators"),
            "/v1/users/%00/authenticators"
        );
        assert_eq!(
            path_of("/v1/users/alice/actions//k"),
            "/v1/users/alice/actions/%00/k"
        );
        assert_eq!(path_of("/v1/client//challenge"), "/v1/client/%00/challenge");
        assert_eq!(path_of("/v1/users/alice/"), "/v1/users/alice/%00");
        let request = Request::builder()
            .uri("/v1/users/alice")
            .body(Body::empty())
            .unwrap();
        assert!(
            normalize_path(request)
                .extensions()
                .get::<EmptySegments>()
                .is_none()
        );
    }

    async fn route(router: &Router, method: &str, uri: &str) -> (StatusCode, serde_json::Value) {
        use tower::ServiceExt as _;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = router
            .clone()
            .map_request(normalize_path)
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        // The test handlers answer text; the errors are JSON.
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn an_empty_parameter_is_a_400_and_never_a_shorter_route() {
        use axum::routing::{get, post};
        let router = finish(
            Router::new()
                .route("/v1/users/{userId}", get(|| async { "user" }))
                .route(
                    "/v1/users/{userId}/authenticators",
                    get(|| async { "list" }),
                )
                .route(
                    "/v1/users/{userId}/actions/{action}",
                    post(|| async { "track" }),
                )
                .route(
                    "/v1/users/{userId}/actions/{action}/{key}",
                    get(|| async { "action" }),
                ),
        );
        for (method, uri, name) in [
            ("GET", "/v1/users//authenticators", "userId"),
            ("GET", "/v1//users//authenticators", "userId"),
            ("POST", "/v1/users//actions/pay", "userId"),
            ("POST", "/v1/users/alice/actions/", "action"),
            ("GET", "/v1/users/alice/actions//k", "action"),
            ("GET", "/v1/users/alice/actions/pay/", "key"),
            ("GET", "/v1/users/", "userId"),
        ] {
            let (status, body) = route(&router, method, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
            assert_eq!(body["error"], "invalid_request", "{uri}");
            assert_eq!(body["errorCode"], "invalid_request", "{uri}");
            assert_eq!(
                body["errorDescription"],
                format!("The path parameter `{name}` is empty."),
                "{uri}"
            );
        }
        // An empty segment where the routes have a fixed word matches nothing.
        let (status, body) = route(&router, "GET", "/v1/users/alice//authenticators").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"], "not_found");
        // A client's own `%00` is not an empty segment: the handler's validation decides.
        let (status, _) = route(&router, "GET", "/v1/users/%00").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_in_the_error_shape() {
        use tower::ServiceExt as _;
        let router = finish(Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                if true {
                    panic!("boom");
                }
                "unreachable"
            }),
        ));
        let request = Request::builder().uri("/boom").body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "internal_error");
        assert_eq!(body["errorCode"], "internal_error");
    }

    #[test]
    fn error_responses_have_the_exact_content_type() {
        let response = Error::ChallengeExpired.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
