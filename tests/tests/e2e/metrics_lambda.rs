//! The Lambda functions' metrics as CloudWatch receives them: the four real `bootstrap`
//! binaries on local Runtime APIs behind the API Gateway double of `lambda_conformance`, on
//! DynamoDB (dynoxide). A backend and a device run a sign-in with one bad signature; then every
//! EMF line the functions printed on stdout is read back and checked against the EMF
//! specification (`_aws.Timestamp`, `_aws.CloudWatchMetrics` with the namespace, dimension sets
//! whose keys are members, metric definitions whose names are members with numbers), and the
//! values are summed: they moved by exactly the flow's events (DESIGN 11). Then the table goes
//! away and one more track is a 503, counted as a 5xx and a store error. No user id, tenant id,
//! key, token, challenge id, signature or address appears in the lines.

use crate::lambda_conformance::{Children, Gateway, bin_dir, build_functions, gateway};
use e2e_tests::{Device, FUNCTIONS};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::RuntimeApi;

const TENANT: &str = "lambda-metrics";
const SECRET: &str = "sk_test_lambda_metrics_5d1f7c3a9e2b4068a7c6";
const NAMESPACE: &str = "TrustedDevice/e2e";
const USER: &str = "metrics-user-4b7e";

/// One EMF value, keyed by metric name and its dimensions (`name{key=value,...}`).
type Totals = BTreeMap<String, f64>;

/// Checks one EMF document against the specification and adds its values to `totals`
/// (histogram arrays count their values, so a latency counts its requests).
fn add_emf(line: &str, totals: &mut Totals, latencies: &mut Vec<f64>) {
    let document: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let aws = &document["_aws"];
    assert!(aws["Timestamp"].as_u64().is_some(), "no Timestamp: {line}");
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert_eq!(directives.len(), 1, "{line}");
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], NAMESPACE, "{line}");
    let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
    assert_eq!(dimension_sets.len(), 1, "{line}");
    let mut dimensions = Vec::new();
    for key in dimension_sets[0].as_array().expect("a dimension set") {
        let key = key.as_str().expect("a dimension name");
        let value = document[key]
            .as_str()
            .unwrap_or_else(|| panic!("dimension {key} has no string member: {line}"));
        dimensions.push(format!("{key}={value}"));
    }
    dimensions.sort();
    let metrics = directive["Metrics"].as_array().expect("Metrics");
    assert!(!metrics.is_empty(), "{line}");
    for metric in metrics {
        let name = metric["Name"].as_str().expect("a metric name");
        if let Some(unit) = metric.get("Unit") {
            assert!(
                ["Count", "Milliseconds"].contains(&unit.as_str().unwrap()),
                "{line}"
            );
        }
        let value = match &document[name] {
            Value::Number(number) => number.as_f64().unwrap(),
            Value::Array(values) => {
                for value in values {
                    let ms = value.as_f64().expect("a number");
                    assert!(ms >= 0.0, "{line}");
                    latencies.push(ms);
                }
                values.len() as f64
            }
            other => panic!("metric {name} is {other}: {line}"),
        };
        *totals
            .entry(format!("{name}{{{}}}", dimensions.join(",")))
            .or_default() += value;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_print_valid_emf_counting_a_sign_in_a_bad_signature_and_a_store_outage() {
    tokio::task::spawn_blocking(build_functions).await.unwrap();
    let mut local = LocalDynamo::start().await;
    let table = local
        .table_with_tenant("lambda-metrics", TENANT, SECRET)
        .await;

    let mut runtimes = Vec::new();
    let mut children = Children(Vec::new());
    let mut readers = Vec::new();
    for function in FUNCTIONS {
        let runtime = RuntimeApi::start().await.unwrap();
        let mut child = runtime
            .command(
                &bin_dir().join(function),
                function,
                &table,
                &local.endpoint(),
            )
            .env("RUST_LOG", "warn")
            .env("TRUSTED_DEVICE_METRICS_NAMESPACE", NAMESPACE)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Everything the function prints, until it is stopped (end of the pipe).
        let stdout = child.stdout.take().unwrap();
        readers.push(std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        }));
        children.0.push(child);
        runtimes.push((function, runtime));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(gateway).with_state(Gateway {
        runtimes: Arc::new(runtimes),
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    // The flow, as the Node SDK and a phone send it.
    let http = reqwest::Client::new();
    let post = |path: &str, auth: Option<String>, body: Value| {
        let mut request = http.post(format!("{base}{path}")).json(&body);
        request = match auth {
            Some(bearer) => request.bearer_auth(bearer),
            None => request.basic_auth(SECRET, Some("")),
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let device = Device::new();
    let (status, enrol) = post(
        &format!("/users/{USER}/actions/addAuthenticator"),
        None,
        json!({"scope": "add:authenticators"}),
    )
    .await;
    assert_eq!(status, 200, "{enrol}");
    let enrol_token = enrol["token"].as_str().unwrap().to_owned();
    let (status, added) = post(
        "/client/user-authenticators/in-app",
        Some(enrol_token.clone()),
        json!({"publicKey": device.public_key, "deviceName": "Pixel", "devicePlatform": "android"}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let (status, tracked) = post(&format!("/users/{USER}/actions/signIn"), None, json!({})).await;
    assert_eq!(status, 200, "{tracked}");
    assert_eq!(tracked["state"], "CHALLENGE_REQUIRED");
    let token = tracked["token"].as_str().unwrap().to_owned();
    let (status, challenge) = post("/client/challenge", Some(token.clone()), json!({})).await;
    assert_eq!(status, 200, "{challenge}");
    let challenge_id = challenge["challengeId"].as_str().unwrap().to_owned();
    let forged = device.impostor().sign(&challenge_id);
    let (status, refused) = post(
        "/client/verify/in-app",
        Some(token.clone()),
        json!({"challengeId": challenge_id, "publicKey": device.public_key, "signature": forged}),
    )
    .await;
    assert_eq!(
        (status, refused["errorCode"].as_str()),
        (400, Some("invalid_signature"))
    );
    let signature = device.sign(&challenge_id);
    let (status, verified) = post(
        "/client/verify/in-app",
        Some(token.clone()),
        json!({"challengeId": challenge_id, "publicKey": device.public_key, "signature": signature}),
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    let verified_token = verified["token"].as_str().unwrap().to_owned();
    let (status, validated) = post("/validate", None, json!({"token": verified_token})).await;
    assert_eq!(status, 200, "{validated}");
    assert_eq!(validated["state"], "CHALLENGE_SUCCEEDED");

    // The table goes away: the next track is a 503, counted as a store error.
    local.stop().await;
    let (status, unavailable) =
        post(&format!("/users/{USER}/actions/signIn"), None, json!({})).await;
    assert_eq!(
        (status, unavailable["errorCode"].as_str()),
        (503, Some("service_unavailable"))
    );

    // Stopped, each function's pipe ends: every line it printed has been read.
    server.abort();
    drop(children);
    let printed: Vec<String> = readers
        .into_iter()
        .flat_map(|reader| reader.join().unwrap())
        .collect();
    let emf: Vec<&String> = printed.iter().filter(|l| l.contains("\"_aws\"")).collect();
    let mut totals = Totals::new();
    let mut latencies = Vec::new();
    for line in &emf {
        add_emf(line, &mut totals, &mut latencies);
    }

    let track_route = "/v1/users/{userId}/actions/{action}";
    let verify_route = "/v1/client/verify/in-app";
    let expected: Totals = [
        (format!("http_requests{{method=POST,route={track_route},status_class=2xx}}"), 2.0),
        (format!("http_requests{{method=POST,route={track_route},status_class=5xx}}"), 1.0),
        ("http_server_errors{}".into(), 1.0),
        ("error_responses{code=service_unavailable}".into(), 1.0),
        ("store_errors{kind=unavailable,store=dynamodb}".into(), 1.0),
        ("http_requests{method=POST,route=/v1/client/user-authenticators/{namespace},status_class=2xx}".into(), 1.0),
        ("http_requests{method=POST,route=/v1/client/challenge,status_class=2xx}".into(), 1.0),
        (format!("http_requests{{method=POST,route={verify_route},status_class=2xx}}"), 1.0),
        (format!("http_requests{{method=POST,route={verify_route},status_class=4xx}}"), 1.0),
        ("http_requests{method=POST,route=/v1/validate,status_class=2xx}".into(), 1.0),
        (format!("http_request_duration{{method=POST,route={track_route}}}"), 3.0),
        ("http_request_duration{method=POST,route=/v1/client/user-authenticators/{namespace}}".into(), 1.0),
        ("http_request_duration{method=POST,route=/v1/client/challenge}".into(), 1.0),
        (format!("http_request_duration{{method=POST,route={verify_route}}}"), 2.0),
        ("http_request_duration{method=POST,route=/v1/validate}".into(), 1.0),
        ("error_responses{code=invalid_signature}".into(), 1.0),
        ("flows_started{method=device-key}".into(), 1.0),
        ("flows_completed{method=device-key}".into(), 1.0),
        ("verifications_failed{code=invalid_signature,method=device-key}".into(), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        totals,
        expected,
        "EMF lines:\n{}",
        emf.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(latencies.len(), 8);

    // Privacy: nothing that names a user, a tenant, a key or a credential.
    let all = emf
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for private in [
        USER,
        TENANT,
        SECRET,
        &enrol_token,
        &token,
        &verified_token,
        &challenge_id,
        &signature,
        &forged,
        &device.public_key,
        "127.0.0.1",
    ] {
        assert!(!all.contains(private), "EMF holds {private:?}:\n{all}");
    }
}
