//! Issue #19 over HTTP, on the store `TRUSTED_DEVICE_TEST_STORE` names: the OpenAPI document at
//! `GET /v1/openapi.json` (no auth, cacheable, the checked-in `docs/openapi.json`), and the
//! server behaving as that document says: every documented operation is routed and
//! authenticates with the scheme the document names, and every other method on a documented
//! path is not served.

use e2e_tests::{Auth, Harness};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CHECKED_IN: &str = include_str!("../../../docs/openapi.json");

async fn served_document(h: &Harness) -> Value {
    let reply = h.get("/openapi.json", Auth::None).await;
    reply.expect(200)
}

/// Served without credentials, as the file checked in, with `Cache-Control` and an `ETag`
/// that a revalidation answers with 304.
#[tokio::test]
async fn the_document_is_served_without_auth_and_is_cacheable() {
    let h = Harness::start().await;
    let response = h.http.get(h.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    let cache_control = headers["cache-control"].to_str().unwrap();
    assert!(
        cache_control.starts_with("public, max-age="),
        "{cache_control}"
    );
    let etag = headers["etag"].clone();
    assert_eq!(response.text().await.unwrap(), CHECKED_IN);

    let again = h
        .http
        .get(h.url("/openapi.json"))
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());

    let stale = h
        .http
        .get(h.url("/openapi.json"))
        .header("If-None-Match", "\"an-older-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
}

/// A request path for a documented path: its parameters filled with values that reach the
/// handler (a namespace that has every route, tenant A's id for the JWKS).
fn concrete(path: &str, tenant_id: &str) -> String {
    let filled: Vec<String> = path
        .split('/')
        .map(|segment| match segment {
            "{namespace}" => "push".to_owned(),
            "{tenantId}" => tenant_id.to_owned(),
            s if s.starts_with('{') => "openapi-x".to_owned(),
            s => s.to_owned(),
        })
        .collect();
    let filled = filled.join("/");
    filled
        .strip_prefix("/v1")
        .expect("every path is under /v1")
        .to_owned()
}

fn methods() -> [Method; 5] {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]
}

/// Every operation of the served document, sent as a client would: without credentials a
/// secured one is 401 `unauthorized` and a public one is not; with each credential the
/// document names it is not 401 (the scheme is the one the route takes). Every method the
/// document does not list on a path is 405.
#[tokio::test]
async fn the_server_routes_and_authenticates_as_the_document_says() {
    let h = Harness::start().await;
    let document = served_document(&h).await;
    // A token for the Client API's `token` scheme, as the backend gets one from track.
    let tracked = h
        .track(&h.a, "openapi-user", "addAuthenticator", json!({}))
        .await;
    let token = tracked["token"].as_str().unwrap().to_owned();

    let paths = document["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let url = concrete(path, &h.a.id);
        for method in methods() {
            let name = method.as_str().to_ascii_lowercase();
            let Some(operation) = item.get(&name) else {
                let reply = h.send(method.clone(), &url, Auth::None, None).await;
                assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not in the document, so it must not be served: {:?}",
                    reply.body
                );
                continue;
            };
            operations += 1;
            // The pre-built UI's page, script, stylesheet and image (issue #16) answer another
            // media type: fetched as a browser does, the answer's type is the documented one.
            let documented_media = operation["responses"]["200"]["content"]
                .as_object()
                .and_then(|content| content.keys().next().cloned());
            if let Some(media) = documented_media.filter(|m| m != "application/json") {
                let reply = h
                    .http
                    .request(method.clone(), h.url(&url))
                    .send()
                    .await
                    .unwrap();
                let status = reply.status().as_u16().to_string();
                assert!(
                    operation["responses"].get(&status).is_some(),
                    "{method} {path} answered {status}, which the document does not list"
                );
                // A refusal (the QR-code image without its text) is the JSON error shape.
                let expected = if status == "200" {
                    media
                } else {
                    "application/json".to_owned()
                };
                let content_type = reply.headers()["content-type"].to_str().unwrap();
                assert!(
                    content_type.starts_with(&expected),
                    "{method} {path}: {content_type} is not the documented {expected}"
                );
                continue;
            }
            let body = operation.get("requestBody").map(|_| json!({}));
            let security = operation["security"].as_array().unwrap();
            if security.is_empty() {
                // Public: answered, with a status the document lists (the JWKS of a tenant
                // without sessions is a 404). Read raw: the pre-built UI's answers are not JSON.
                let answer = h
                    .http
                    .request(method.clone(), h.url(&url))
                    .send()
                    .await
                    .unwrap();
                let status = answer.status().as_u16().to_string();
                assert!(
                    operation["responses"].get(&status).is_some(),
                    "{method} {path} is documented without auth, answered {status}"
                );
                continue;
            }
            let anonymous = h
                .send(method.clone(), &url, Auth::None, body.as_ref())
                .await;
            assert_eq!(
                (anonymous.status, anonymous.body["errorCode"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {path} is documented with credentials"
            );
            for requirement in security {
                let scheme = requirement.as_object().unwrap().keys().next().unwrap();
                let auth = match scheme.as_str() {
                    "secretKey" => Auth::Secret(&h.a.secret),
                    "tenantId" => Auth::TenantAndroid(&h.a.id),
                    "token" => Auth::Bearer(&token),
                    other => panic!("{method} {path}: unknown scheme {other}"),
                };
                let reply = h.send(method.clone(), &url, auth, body.as_ref()).await;
                assert_ne!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with its documented scheme {scheme}: {:?}",
                    reply.body
                );
                // The status is one the document lists for the operation.
                let status = reply.status.as_u16().to_string();
                assert!(
                    operation["responses"].get(&status).is_some(),
                    "{method} {path} with {scheme} answered {status}, which the document does \
                     not list: {:?}",
                    reply.body
                );
            }
        }
    }
    assert!(operations > 40, "only {operations} operations documented");
}
