//! The OpenAPI document (issue #19) cannot drift from the code: it has exactly the routes the
//! functions serve, `docs/openapi.json` is what the generator makes, and `trusted-device
//! openapi` prints it. (That the server behaves as it says, over HTTP on both stores:
//! `tests/tests/e2e/openapi.rs`; that it is valid OpenAPI 3.1: `openapi-spec-validator` in
//! `infra/scripts/test-all.sh`.)

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_trusted-device");

fn checked_in_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    operations
}

/// Every route of every function's table (what the Lambdas and the local server serve), but
/// the CORS preflights, is in the document, and the document has no other.
#[test]
fn the_document_has_every_served_route_and_no_other() {
    let served: BTreeSet<(String, String)> = trusted_device::all_routes()
        .into_iter()
        .filter(|(method, _)| *method != "OPTIONS")
        .map(|(method, path)| (method.to_owned(), path.to_owned()))
        .collect();
    let documented = documented(&trusted_device::openapi_document());
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "served, not documented: {missing:?}");
    assert!(extra.is_empty(), "documented, not served: {extra:?}");
    // Each documented path still has its preflight line (the document says every path
    // answers OPTIONS).
    let preflights: BTreeSet<&str> = trusted_device::all_routes()
        .into_iter()
        .filter(|(method, _)| *method == "OPTIONS")
        .map(|(_, path)| path)
        .collect();
    for (_, path) in &documented {
        assert!(
            preflights.contains(path.as_str()),
            "{path} has no OPTIONS line"
        );
    }
}

/// `docs/openapi.json` is byte for byte what the code generates. After changing a route, a
/// handler's types or a wire type: `cargo run -p trusted-device -- openapi > docs/openapi.json`.
#[test]
fn the_checked_in_document_is_the_generated_one() {
    let checked_in = std::fs::read_to_string(checked_in_path()).unwrap();
    assert!(
        checked_in == trusted_device::openapi_json(),
        "docs/openapi.json is stale: run `cargo run -p trusted-device -- openapi > docs/openapi.json`"
    );
}

/// The CLI prints the document, and only it, on standard output.
#[test]
fn the_cli_prints_the_document() {
    let output = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["openapi"], "3.1.0");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        trusted_device::openapi_json()
    );
}

/// Each operation names the auth its handler takes, the schemas it refers to exist, and an
/// error response is the contract's error shape (spec 1.3).
#[test]
fn operations_name_their_auth_and_refer_to_existing_schemas() {
    let document = trusted_device::openapi_document();
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = &reference[..reference.find('"').unwrap()];
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not exist"
        );
    }
    let track = &document["paths"]["/v1/users/{userId}/actions/{action}"]["post"];
    assert_eq!(track["security"], serde_json::json!([{"secretKey": []}]));
    let verify = &document["paths"]["/v1/client/verify/in-app"]["post"];
    assert_eq!(
        verify["security"],
        serde_json::json!([{"token": []}, {"tenantId": []}])
    );
    assert!(
        verify["responses"].get("429").is_some(),
        "verify is rate-limited"
    );
    let jwks = &document["paths"]["/v1/tenants/{tenantId}/.well-known/jwks.json"]["get"];
    assert_eq!(jwks["security"], serde_json::json!([]));
    for operation in [track, verify, jwks] {
        for requirement in operation["security"].as_array().unwrap() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{scheme}");
            }
        }
    }
    let error =
        &document["components"]["responses"]["400"]["content"]["application/json"]["schema"];
    assert_eq!(
        error["required"],
        serde_json::json!(["error", "errorCode", "errorDescription"])
    );
}
