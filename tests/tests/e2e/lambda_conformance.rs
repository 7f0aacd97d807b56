//! `trusted-device conformance` against the four Lambda functions as Lambda runs them: each
//! function's real `bootstrap` binary (target/debug/{track,add-authenticator,challenge,validate})
//! on its own local Runtime API (`testkit::runtime_api`), on DynamoDB (dynoxide),
//! behind a small router that plays API Gateway: it picks the function by the routes of
//! `template.yaml` (the functions' `ROUTES`), turns the request into an HTTP API payload 2.0
//! event, and the function's answer back into HTTP. Unknown routes get API Gateway's own
//! `404 {"message":"Not Found"}`.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use e2e_tests::{FUNCTIONS, routes_of};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};
use trusted_device::conformance::{self, Options};

const TENANT: &str = "lambda-conformance";
const SECRET: &str = "sk_test_lambda_conformance_9c4e2b7a1f0d83e6a5b4c3d2";

/// The directory cargo puts this package's binaries in: target/debug (this test runs from
/// target/debug/deps).
pub(crate) fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds the four bootstraps (a no-op when they are fresh): they belong to other packages,
/// so cargo does not build them for this test by itself.
pub(crate) fn build_functions() {
    build_packages(&FUNCTIONS);
}

/// Builds the binaries of `packages` into [`bin_dir`] (a no-op when they are fresh).
pub(crate) fn build_packages(packages: &[&str]) {
    let dir = bin_dir();
    let mut command = std::process::Command::new(env!("CARGO"));
    command.args(["build", "--quiet", "--locked"]);
    // Into the directory this test runs from, in its profile, whatever flags built it.
    if let Some(target_dir) = dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    if dir.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    for package in packages {
        command.args(["-p", package]);
    }
    let mut child = command
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .spawn()
        .unwrap();
    // A thread waits for the build to exit and sends its status; this one waits for that
    // message, 20 minutes at most.
    let pid = child.id();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    match exited.recv_timeout(Duration::from_secs(1200)) {
        Ok(status) => assert!(
            status.unwrap().success(),
            "cargo build of {packages:?} failed"
        ),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            panic!("cargo build of {packages:?} did not finish in 20 minutes");
        }
    }
}

/// API Gateway's route selection: the route whose template matches, the most literal
/// segments first (a literal beats a `{parameter}`).
fn route_for(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    let segments: Vec<&str> = path.split('/').collect();
    FUNCTIONS
        .iter()
        .flat_map(|f| routes_of(f).iter().map(move |(m, r)| (*f, *m, *r)))
        .filter(|(_, m, route)| {
            *m == method && {
                let parts: Vec<&str> = route.split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| p.starts_with('{') || p == s)
            }
        })
        .max_by_key(|(_, _, route)| route.split('/').filter(|p| !p.starts_with('{')).count())
        .map(|(f, _, r)| (f, r))
}

/// An HTTP API payload 2.0 event, as API Gateway builds it (cf. `lambda_events::event`).
fn event(route: &str, request: &axum::http::request::Parts, body: &[u8]) -> Value {
    let path = request.uri.path();
    let query = request.uri.query().unwrap_or("");
    let mut headers = serde_json::Map::new();
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| *v = Value::String(format!("{},{value}", v.as_str().unwrap_or(""))))
            .or_insert(Value::String(value));
    }
    let route_key = format!("{} {route}", request.method);
    let parameters: serde_json::Map<String, Value> = route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(template, actual)| {
            let name = template.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), Value::String(actual.to_owned())))
        })
        .collect();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "local.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "local",
            "http": {
                "method": request.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": request.headers.get("user-agent")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default(),
            },
            "requestId": format!("local-{}", std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()),
            "routeKey": route_key,
            "stage": "$default",
            "time": "02/Dec/2026:00:00:00 +0000",
            "timeEpoch": 0
        },
        "isBase64Encoded": true,
    });
    if !parameters.is_empty() {
        event["pathParameters"] = Value::Object(parameters);
    }
    if !body.is_empty() {
        event["body"] = Value::String(STANDARD.encode(body));
    }
    event
}

#[derive(Clone)]
pub(crate) struct Gateway {
    pub(crate) runtimes: Arc<Vec<(&'static str, RuntimeApi)>>,
}

pub(crate) async fn gateway(State(gateway): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 10 << 20)
        .await
        .unwrap_or_default();
    let Some((function, route)) = route_for(parts.method.as_str(), parts.uri.path()) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"message":"Not Found"}"#))
            .unwrap();
    };
    let runtime = &gateway
        .runtimes
        .iter()
        .find(|(f, _)| *f == function)
        .unwrap()
        .1;
    let text = event(route, &parts, &body).to_string();
    let answer = match runtime.invoke(&text, Duration::from_secs(60)).await {
        Ok(Outcome::Response(answer)) => answer,
        other => {
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .header("content-type", "application/json")
                .body(Body::from(format!(
                    r#"{{"message":"Internal Server Error","debug":"{other:?}"}}"#
                )))
                .unwrap();
        }
    };
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let mut response =
        Response::builder().status(answer["statusCode"].as_u64().unwrap_or(500) as u16);
    if let Some(headers) = answer["headers"].as_object() {
        for (name, value) in headers {
            response = response.header(name, value.as_str().unwrap_or(""));
        }
    }
    let body = answer["body"].as_str().unwrap_or("");
    let bytes = if answer["isBase64Encoded"] == json!(true) {
        Bytes::from(STANDARD.decode(body).unwrap())
    } else {
        Bytes::from(body.to_owned())
    };
    response.body(Body::from(bytes)).unwrap()
}

pub(crate) struct Children(pub(crate) Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_passes_against_the_four_lambda_functions_through_the_runtime_api() {
    tokio::task::spawn_blocking(build_functions).await.unwrap();

    let local = LocalDynamo::start().await;
    let table = local
        .table_with_tenant("lambda-conformance", TENANT, SECRET)
        .await;

    let mut runtimes = Vec::new();
    let mut children = Children(Vec::new());
    for function in FUNCTIONS {
        let runtime = RuntimeApi::start().await.unwrap();
        let child = runtime
            .command(
                &bin_dir().join(function),
                function,
                &table,
                &local.endpoint(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.0.push(child);
        runtimes.push((function, runtime));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(gateway).with_state(Gateway {
        runtimes: Arc::new(runtimes),
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let report = conformance::run(Options {
        base_url: format!("http://{addr}/v1"),
        tenant_id: TENANT.into(),
        secret_key: SECRET.into(),
    })
    .await
    .unwrap();
    let table = conformance::render(&report.results);
    assert!(!conformance::any_failed(&report.results), "{table}");
    assert!(
        report
            .results
            .iter()
            .all(|r| matches!(r.outcome, conformance::Outcome::Pass)),
        "{table}"
    );
    server.abort();
    drop(children);
}

#[test]
fn the_gateway_double_routes_as_api_gateway_does() {
    assert_eq!(
        route_for(
            "POST",
            "/v1/client/user-authenticators/push/challenge/claim"
        )
        .map(|r| r.0),
        Some("challenge")
    );
    assert_eq!(
        route_for("POST", "/v1/client/user-authenticators/push/remove").map(|r| r.0),
        Some("add-authenticator")
    );
    assert_eq!(
        route_for("POST", "/v1/client/user-authenticators/push/sign").map(|r| r.0),
        Some("add-authenticator")
    );
    assert_eq!(
        route_for("POST", "/v1/validate").map(|r| r.0),
        Some("validate")
    );
    assert_eq!(
        route_for("DELETE", "/v1/users/u-1").map(|r| r.0),
        Some("track")
    );
    assert_eq!(route_for("GET", "/v1/nowhere"), None);
}
