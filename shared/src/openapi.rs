//! The OpenAPI 3.1 document of every route served (issue #19, DESIGN 3), generated from the
//! code so that it cannot drift from it:
//!
//! - the paths and methods are the lines of each function's [`routes!`](crate::routes) table
//!   (its `openapi_operations`, next to `ROUTES` and `router`);
//! - how a route authenticates, its query parameters, its request body and whether it is
//!   rate-limited are read from its handler's extractor types ([`DescribeInput`]): a handler
//!   that takes [`SecretKeyAuth`] is documented with the secret key, one that takes
//!   [`JsonBody<T>`] with `T`'s schema. An extractor that is not described does not compile;
//! - what it answers is its handler's return type ([`JsonResponse<T>`], [`DescribeOutput`]);
//! - every schema is derived by `schemars` from the same types, with the same `#[serde]`
//!   attributes, that the handlers (de)serialise;
//! - the error responses are the contract's error shape ([`ErrorBody`], spec 1.3), with the
//!   statuses that the route's extractors and method can lead to.
//!
//! [`document`] assembles the operations of every function; the local server's CLI prints it
//! (`trusted-device openapi`), `docs/openapi.json` is that output checked in, and
//! `GET /v1/openapi.json` serves the checked-in file ([`DocumentResponse`]).

use crate::http::error::ErrorBody;
use crate::http::{
    BearerAuth, ClientAuth, JsonBody, JsonResponse, MediaResponse, MediaType, PathParams, PeerIp,
    QueryParams, SecretKeyAuth, TenantAuth,
};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use std::future::Future;

/// Where the schemas live in the document.
const SCHEMAS_PATH: &str = "/components/schemas";

/// The schema generators of one document: request types are described as they are read
/// (`Deserialize`: a field with a default is optional), response types as they are written
/// (`Serialize`: a skipped `None` is optional).
pub struct Generators {
    requests: SchemaGenerator,
    responses: SchemaGenerator,
    /// For query parameters: inlined, so each field becomes one parameter.
    queries: SchemaGenerator,
}

impl Default for Generators {
    fn default() -> Self {
        let settings = || {
            SchemaSettings::draft2020_12().with(|s| {
                s.definitions_path = SCHEMAS_PATH.into();
                s.meta_schema = None;
            })
        };
        Generators {
            requests: settings().for_deserialize().into_generator(),
            responses: settings().for_serialize().into_generator(),
            queries: settings()
                .for_deserialize()
                .with(|s| s.inline_subschemas = true)
                .into_generator(),
        }
    }
}

impl Generators {
    /// Every named schema, from requests and responses. A name that both have must be the same
    /// schema (a type read and written alike, as the enums are); two different types with one
    /// name would make the document ambiguous, so that panics where it is built (the tests).
    fn take_schemas(&mut self) -> Map<String, Value> {
        let mut schemas = self.requests.take_definitions(true);
        for (name, schema) in self.responses.take_definitions(true) {
            match schemas.get(&name) {
                Some(existing) if *existing != schema => panic!(
                    "two different schemas are named {name}: rename one with #[schemars(rename)]"
                ),
                _ => {
                    schemas.insert(name, schema);
                }
            }
        }
        schemas
    }
}

/// How a route authenticates: the auth extractor its handler takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (public keys, this document).
    None,
    /// The Server API's secret key, [`SecretKeyAuth`] (spec 2.1).
    SecretKey,
    /// The Client API's tenant id, [`TenantAuth`] (spec 3.1).
    Tenant,
    /// The Client API's track or verify token, [`BearerAuth`] (spec 3.1).
    Token,
    /// Either a token or the tenant id, [`ClientAuth`] (spec 3.1).
    TokenOrTenant,
}

/// What the document says of one route, as its handler's types say it.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    /// The Lambda function that serves it (the crate whose table has the line).
    pub function: &'static str,
    /// The handler, as the route table names it.
    pub handler: &'static str,
    pub auth: Auth,
    pub query: Vec<Value>,
    pub request_body: Option<Value>,
    /// The 200's schema and headers; `None` for a handler whose answer is not typed (the
    /// OPTIONS preflights, which the document leaves out).
    pub response: Option<Success>,
    /// Takes [`PeerIp`]: failures are counted per source and refused with 429 (DESIGN 6).
    pub rate_limited: bool,
    /// Answers `Result<Infallible>`: a route served only to refuse clearly (the OTP methods
    /// this server does not have, spec 2.8), so it has no 200.
    pub always_refuses: bool,
}

/// A 200 as the document shows it.
#[derive(Debug, Clone)]
pub struct Success {
    pub description: &'static str,
    /// `application/json` but for the pre-built UI's answers ([`MediaResponse`]).
    pub media_type: &'static str,
    pub schema: Value,
    /// `(header name, description)`.
    pub headers: Vec<(&'static str, &'static str)>,
}

/// An extractor's part of an operation: its auth, parameters or body.
pub trait DescribeInput {
    fn describe(operation: &mut Operation, generators: &mut Generators);
}

/// A handler's return type's part of an operation: its 200.
pub trait DescribeOutput {
    fn describe(operation: &mut Operation, generators: &mut Generators);
}

/// A handler whose every argument and whose answer are described; implemented for `async fn`s
/// of up to eight extractors, as axum's `Handler` is.
pub trait DescribeHandler<Marker> {
    fn describe(operation: &mut Operation, generators: &mut Generators);
}

macro_rules! describe_handler {
    ($($input:ident),*) => {
        impl<F, Fut, O, $($input,)*> DescribeHandler<(O, $($input,)*)> for F
        where
            F: Fn($($input),*) -> Fut,
            Fut: Future<Output = O>,
            O: DescribeOutput,
            $($input: DescribeInput,)*
        {
            fn describe(operation: &mut Operation, generators: &mut Generators) {
                $($input::describe(operation, generators);)*
                O::describe(operation, generators);
            }
        }
    };
}

describe_handler!();
describe_handler!(T1);
describe_handler!(T1, T2);
describe_handler!(T1, T2, T3);
describe_handler!(T1, T2, T3, T4);
describe_handler!(T1, T2, T3, T4, T5);
describe_handler!(T1, T2, T3, T4, T5, T6);
describe_handler!(T1, T2, T3, T4, T5, T6, T7);
describe_handler!(T1, T2, T3, T4, T5, T6, T7, T8);

/// One line of a route table as an [`Operation`]; called by [`routes!`](crate::routes).
pub fn describe<H, Marker>(
    _handler: &H,
    method: &'static str,
    path: &'static str,
    function: &'static str,
    handler: &'static str,
    generators: &mut Generators,
) -> Operation
where
    H: DescribeHandler<Marker>,
{
    let mut operation = Operation {
        method,
        path,
        function,
        handler,
        auth: Auth::None,
        query: Vec::new(),
        request_body: None,
        response: None,
        rate_limited: false,
        always_refuses: false,
    };
    H::describe(&mut operation, generators);
    operation
}

// ---------------------------------------------------------------- inputs

fn set_auth(operation: &mut Operation, auth: Auth) {
    operation.auth = auth;
}

impl DescribeInput for SecretKeyAuth {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        set_auth(operation, Auth::SecretKey);
    }
}

impl DescribeInput for TenantAuth {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        set_auth(operation, Auth::Tenant);
    }
}

impl DescribeInput for BearerAuth {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        set_auth(operation, Auth::Token);
    }
}

impl DescribeInput for ClientAuth {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        set_auth(operation, Auth::TokenOrTenant);
    }
}

impl<T: JsonSchema> DescribeInput for JsonBody<T> {
    fn describe(operation: &mut Operation, generators: &mut Generators) {
        operation.request_body = Some(generators.requests.subschema_for::<T>().to_value());
    }
}

impl<T: JsonSchema> DescribeInput for QueryParams<T> {
    fn describe(operation: &mut Operation, generators: &mut Generators) {
        let schema = generators.queries.root_schema_for::<T>().to_value();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                let mut property = property.clone();
                let description = property
                    .as_object_mut()
                    .and_then(|p| p.remove("description"));
                let mut parameter = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    // A query has no null: an absent parameter is what `None` reads.
                    "schema": without_null(property),
                });
                if let Some(description) = description {
                    parameter["description"] = description;
                }
                operation.query.push(parameter);
            }
        }
    }
}

/// `{"type": ["string", "null"]}` → `{"type": "string"}`.
fn without_null(mut schema: Value) -> Value {
    if let Some(types) = schema["type"].as_array() {
        let types: Vec<Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect();
        schema["type"] = match types.as_slice() {
            [one] => one.clone(),
            _ => Value::Array(types),
        };
    }
    schema
}

/// The path's `{name}` segments are its parameters: read from the path itself.
impl<T> DescribeInput for PathParams<T> {
    fn describe(_: &mut Operation, _: &mut Generators) {}
}

impl DescribeInput for PeerIp {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        operation.rate_limited = true;
    }
}

impl<S> DescribeInput for State<S> {
    fn describe(_: &mut Operation, _: &mut Generators) {}
}

/// Headers a handler reads itself (`User-Agent`, `X-Authsignal-Signature`): optional, so
/// not parameters of the document.
impl DescribeInput for HeaderMap {
    fn describe(_: &mut Operation, _: &mut Generators) {}
}

impl DescribeInput for Uri {
    fn describe(_: &mut Operation, _: &mut Generators) {}
}

// ---------------------------------------------------------------- outputs

impl<O: DescribeOutput, E> DescribeOutput for Result<O, E> {
    fn describe(operation: &mut Operation, generators: &mut Generators) {
        O::describe(operation, generators);
    }
}

impl<T: JsonSchema> DescribeOutput for JsonResponse<T> {
    fn describe(operation: &mut Operation, generators: &mut Generators) {
        operation.response = Some(Success {
            description: "OK",
            media_type: "application/json",
            schema: generators.responses.subschema_for::<T>().to_value(),
            headers: Vec::new(),
        });
    }
}

/// A typed answer with one header set (the JWKS's `Cache-Control`).
impl<O: DescribeOutput> DescribeOutput for ([(HeaderName, HeaderValue); 1], O) {
    fn describe(operation: &mut Operation, generators: &mut Generators) {
        O::describe(operation, generators);
        if let Some(success) = &mut operation.response {
            success
                .headers
                .push(("Cache-Control", "How long the answer may be reused."));
        }
    }
}

impl DescribeOutput for std::convert::Infallible {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        operation.always_refuses = true;
    }
}

/// The pre-built UI's page, script, stylesheet and image: a string of that media type.
impl<M: MediaType> DescribeOutput for MediaResponse<M> {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        operation.response = Some(Success {
            description: M::DESCRIPTION,
            media_type: M::NAME,
            schema: json!({"type": "string"}),
            headers: Vec::new(),
        });
    }
}

/// The query string a handler parses itself (the pre-built UI's `token` and `text`): not
/// described, as [`HeaderMap`] is not.
impl DescribeInput for axum::extract::RawQuery {
    fn describe(_: &mut Operation, _: &mut Generators) {}
}

/// Untyped: the OPTIONS preflights (left out of the document) and test handlers.
impl DescribeOutput for Response {
    fn describe(_: &mut Operation, _: &mut Generators) {}
}

impl DescribeOutput for &'static str {
    fn describe(_: &mut Operation, _: &mut Generators) {}
}

// ---------------------------------------------------------------- serving the document

/// How long a client or cache may reuse the served document without asking again. It only
/// changes with a deployment, and the `ETag` makes a later check cheap.
const DOCUMENT_MAX_AGE_SECONDS: u32 = 3600;

/// `GET /v1/openapi.json`'s answer: the checked-in document with `Cache-Control` and an
/// `ETag`, or `304 Not Modified` to a request whose `If-None-Match` has that tag.
#[derive(Debug)]
pub struct DocumentResponse {
    document: &'static str,
    etag: String,
    not_modified: bool,
}

/// A document served with its `ETag`, computed once (not on every request).
#[derive(Debug)]
pub struct ServedDocument {
    document: &'static str,
    etag: String,
}

impl ServedDocument {
    pub fn new(document: &'static str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, document.as_bytes());
        ServedDocument {
            document,
            etag: format!("\"{}\"", hex::encode(&digest.as_ref()[..16])),
        }
    }
}

impl DocumentResponse {
    pub fn new(served: &ServedDocument, request_headers: &HeaderMap) -> Self {
        let ServedDocument { document, etag } = served;
        let (document, etag) = (*document, etag.clone());
        // RFC 9110 13.1.2: a list of tags, or `*`; weak tags compare by their opaque part.
        let not_modified = request_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag == etag);
        DocumentResponse {
            document,
            etag,
            not_modified,
        }
    }
}

impl IntoResponse for DocumentResponse {
    fn into_response(self) -> Response {
        let mut response = if self.not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = self.document.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("public, max-age={DOCUMENT_MAX_AGE_SECONDS}"))
                .expect("a valid header value"),
        );
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

impl DescribeOutput for DocumentResponse {
    fn describe(operation: &mut Operation, _: &mut Generators) {
        operation.response = Some(Success {
            media_type: "application/json",
            description: "This document (OpenAPI 3.1). `304` with no body when `If-None-Match` \
                          has its `ETag`.",
            schema: json!({"type": "object"}),
            headers: vec![
                ("Cache-Control", "How long the document may be reused."),
                (
                    "ETag",
                    "The document's version, for `If-None-Match` (answered with 304).",
                ),
            ],
        });
    }
}

// ---------------------------------------------------------------- the document

/// The operations of one function: its `openapi_operations`.
pub type FunctionOperations = fn(&mut Generators) -> Vec<Operation>;

/// The OpenAPI 3.1 document of `functions`' routes, `OPTIONS` (each path's CORS preflight)
/// left out. Deterministic: the same code gives the same bytes.
pub fn document(functions: &[FunctionOperations]) -> Value {
    let mut generators = Generators::default();
    let operations: Vec<Operation> = functions
        .iter()
        .flat_map(|operations| operations(&mut generators))
        .filter(|operation| operation.method != "OPTIONS")
        .collect();
    let mut paths = Map::new();
    let mut operation_ids = std::collections::BTreeSet::new();
    for operation in &operations {
        let item = paths
            .entry(operation.path.to_owned())
            .or_insert_with(|| json!({}));
        item[operation.method.to_ascii_lowercase()] =
            operation_object(operation, &mut operation_ids);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "trusted-device",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "servers": [{"url": "/", "description": "The deployment's base URL, without /v1"}],
        "tags": [
            {"name": "Server API", "description": "For your backend, with the tenant's secret key (spec 2)."},
            {"name": "Client API", "description": "For apps and browsers, with a token or the tenant id (spec 3)."},
            {"name": "Pre-built UI", "description": "The page track's `url` points at, with its script, stylesheet and QR-code image (spec 2.3, issue #16): bound to the track token in its URL."},
        ],
        "paths": paths,
        "components": {
            "schemas": generators.take_schemas(),
            "securitySchemes": security_schemes(),
            "responses": error_responses(),
        },
    })
}

const DESCRIPTION: &str = "Self-hosted trusted-device authentication, wire-compatible with \
Authsignal's Server API and Client API (docs/wire-protocol.md), plus this server's own routes \
(action configs, the JWKS, this document, the pre-built UI). Generated from the code: the route tables, the \
handlers' extractor and answer types, and the wire types' schemas. Every path also answers \
`OPTIONS` (a CORS preflight, answered on the Client API and refused with 403 on the Server API); \
every `GET` answers `HEAD`. Every error has the body of `ErrorBody` (spec 1.3).";

fn operation_object(
    operation: &Operation,
    operation_ids: &mut std::collections::BTreeSet<String>,
) -> Value {
    let mut object = Map::new();
    let client = operation.path.starts_with("/v1/client/");
    let secured = operation.auth != Auth::None;
    let tag = if client {
        "Client API"
    } else if operation.path == "/v1/ui" || operation.path.starts_with("/v1/ui/") {
        "Pre-built UI"
    } else {
        "Server API"
    };
    object.insert("tags".into(), json!([tag]));
    object.insert(
        "operationId".into(),
        json!(operation_id(operation, operation_ids)),
    );
    object.insert(
        "x-trusted-device-function".into(),
        json!(operation.function),
    );
    object.insert("security".into(), security(operation.auth));

    let mut parameters: Vec<Value> = path_parameters(operation.path)
        .into_iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(operation.query.iter().cloned());
    if !parameters.is_empty() {
        object.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(schema) = &operation.request_body {
        object.insert(
            "requestBody".into(),
            json!({
                // An empty body or `null` reads as `{}` (spec 1.2, `JsonBody`).
                "required": false,
                "content": {"application/json": {"schema": schema}},
            }),
        );
    }

    let mut responses = Map::new();
    if !operation.always_refuses {
        responses.insert("200".into(), success_object(operation));
    }
    if operation.path.ends_with("/openapi.json") {
        responses.insert(
            "304".into(),
            json!({"description": "Not Modified: the `ETag` sent in `If-None-Match` is current."}),
        );
    }
    for status in error_statuses(operation, secured) {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{status}")}),
        );
    }
    object.insert("responses".into(), Value::Object(responses));
    Value::Object(object)
}

fn success_object(operation: &Operation) -> Value {
    let success = operation.response.as_ref().unwrap_or_else(|| {
        panic!(
            "{} {} ({}): its handler's answer has no type; return JsonResponse<T>",
            operation.method, operation.path, operation.handler
        )
    });
    let mut ok = json!({
        "description": success.description,
        "content": {success.media_type: {"schema": success.schema}},
    });
    if !success.headers.is_empty() {
        ok["headers"] = success
            .headers
            .iter()
            .map(|(name, description)| {
                (
                    (*name).to_owned(),
                    json!({"description": description, "schema": {"type": "string"}}),
                )
            })
            .collect::<Map<_, _>>()
            .into();
    }
    ok
}

/// The `{name}` segments of a route path.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// The handler's name in camelCase, unique in the document: a handler serving two lines
/// (`update_user` on PATCH and POST) gets the method, then a number, appended.
fn operation_id(operation: &Operation, taken: &mut std::collections::BTreeSet<String>) -> String {
    let name = operation
        .handler
        .rsplit("::")
        .next()
        .unwrap_or(operation.handler);
    let mut camel = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            camel.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    let method = operation.method.to_ascii_lowercase();
    let with_method = format!("{camel}_{method}");
    let candidates = std::iter::once(camel.clone())
        .chain(std::iter::once(with_method.clone()))
        .chain((2..).map(|n| format!("{with_method}{n}")));
    for candidate in candidates {
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
    unreachable!("an unbounded list of candidates")
}

/// The error statuses a route can answer, from what its handler takes (DESIGN 3):
/// - 400: any request can be malformed (a body, query or path that does not parse, spec 1.2),
///   and the use cases refuse bad values with it;
/// - 401: credentials missing or wrong (spec 2.1, 3.1);
/// - 403: a token for another scope or user, an origin not allowed (DESIGN 9);
/// - 404: an unknown user, action, authenticator or challenge, or a namespace without the route;
/// - 409: a write that lost to another (conditional writes: a used challenge or signature);
/// - 413: a body over the limit (spec 1.2);
/// - 429: failed signatures counted per source (DESIGN 6), for handlers that take [`PeerIp`];
/// - 503: the store unavailable.
fn error_statuses(operation: &Operation, secured: bool) -> Vec<u16> {
    let writes = operation.method != "GET";
    let mut statuses = vec![400];
    if secured {
        statuses.extend([401, 403]);
    }
    statuses.push(404);
    if secured && writes {
        statuses.push(409);
    }
    if operation.request_body.is_some() {
        statuses.push(413);
    }
    if operation.rate_limited {
        statuses.push(429);
    }
    if secured {
        statuses.push(503);
    }
    statuses
}

fn security(auth: Auth) -> Value {
    match auth {
        Auth::None => json!([]),
        Auth::SecretKey => json!([{"secretKey": []}]),
        Auth::Tenant => json!([{"tenantId": []}]),
        Auth::Token => json!([{"token": []}]),
        Auth::TokenOrTenant => json!([{"token": []}, {"tenantId": []}]),
    }
}

fn security_schemes() -> Value {
    json!({
        "secretKey": {
            "type": "http",
            "scheme": "basic",
            "description": "Server API (spec 2.1): the tenant's secret key as the Basic user name, \
                            an empty password: `Authorization: Basic base64(\"<secret>:\")`.",
        },
        "tenantId": {
            "type": "http",
            "scheme": "basic",
            "description": "Client API without a token (spec 3.1): the tenant id as the Basic \
                            user name (the mobile and browser SDKs' encodings are all accepted).",
        },
        "token": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Client API (spec 3.1): the token from track (your backend hands it to \
                            the app) or from a verify.",
        },
    })
}

fn error_responses() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .for_serialize()
        .into_generator();
    let schema = generator.root_schema_for::<ErrorBody>().to_value();
    let described = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": schema}},
        })
    };
    let mut too_many =
        described("Too many failed signatures from this source (`too_many_requests`, DESIGN 6).");
    too_many["headers"] = json!({
        "Retry-After": {
            "description": "Seconds until a new attempt is counted again.",
            "schema": {"type": "integer"},
        }
    });
    json!({
        "400": described("Malformed or refused (`invalid_request`, `invalid_signature`, \
                          `challenge_expired`, ...; spec 1.3)."),
        "401": described("Missing or wrong credentials (`unauthorized`, `invalid_token`, \
                          `expired_token`)."),
        "403": described("Not allowed (`insufficient_scope`, `user_mismatch`, \
                          `origin_not_allowed`, ...)."),
        "404": described("Not found (`not_found`, `action_not_found`, \
                          `authenticator_not_found`, `challenge_not_found`, ...)."),
        "409": described("Already done (`challenge_already_used`, `signature_already_used`, \
                          `credential_conflict`, ...)."),
        "413": described("The body is over the size limit (`payload_too_large`)."),
        "429": too_many,
        "503": described("The store is unavailable (`store_unavailable`): try again."),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_the_braced_segments() {
        assert_eq!(
            path_parameters("/v1/users/{userId}/actions/{action}"),
            ["userId", "action"]
        );
        assert!(path_parameters("/v1/validate").is_empty());
    }

    #[test]
    fn a_cached_document_is_not_sent_again() {
        let served = ServedDocument::new("{}");
        let fresh = DocumentResponse::new(&served, &HeaderMap::new()).into_response();
        assert_eq!(fresh.status(), StatusCode::OK);
        let etag = fresh.headers()[header::ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag.clone());
        let again = DocumentResponse::new(&served, &headers).into_response();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        let changed = DocumentResponse::new(&served, &headers).into_response();
        assert_eq!(changed.status(), StatusCode::OK);
    }
}
