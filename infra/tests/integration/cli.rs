//! The `trusted-device` binary as an operator runs it: tenant creation, `serve` with a tenant
//! from flags and with a development tenant, one log line per request without secrets, a
//! clean stop on SIGTERM with nothing lost.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_trusted-device");

/// A running `trusted-device serve`, with every line it prints collected.
pub(crate) struct Served {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    pub(crate) seen: Vec<String>,
    pub(crate) base_url: String,
}

impl Served {
    pub(crate) fn start(data_dir: &std::path::Path, extra: &[&str]) -> Served {
        let port = free_port();
        let mut command = Command::new(BIN);
        command.args(["serve", "--addr", &format!("127.0.0.1:{port}")]);
        // --data-dir is refused with --store dynamodb: it would be ignored.
        if !extra.contains(&"dynamodb") {
            command.arg("--data-dir").arg(data_dir);
        }
        let mut child = command
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("TRUSTED_DEVICE_TENANT_ID")
            .env_remove("TRUSTED_DEVICE_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut served = Served {
            child,
            lines,
            seen: Vec::new(),
            base_url: format!("http://127.0.0.1:{port}/v1"),
        };
        served.wait_for("listening");
        served
    }

    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n"));
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_for("stopped");
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "exit status {exit}");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.seen.push(line);
        }
        self.seen
    }
}

/// Runs one HTTP request on a small runtime: the binary is driven from plain test threads.
pub(crate) fn request(
    builder: impl FnOnce(&::reqwest::Client) -> ::reqwest::RequestBuilder,
) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = builder(&::reqwest::Client::new()).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    })
}

/// `POST /users/{user}/actions/signIn` with the secret key, as a server SDK sends it.
pub(crate) fn track(base_url: &str, secret: &str, user: &str) -> Value {
    let url = format!("{base_url}/users/{user}/actions/signIn");
    let (status, body) = request(|c| c.post(url).basic_auth(secret, Some("")));
    assert_eq!(status, 200, "{body}");
    body
}

fn get(url: &str, secret: &str) -> (u16, Value) {
    request(|c| c.get(url).basic_auth(secret, Some("")))
}

#[test]
fn tenant_create_then_serve_logs_one_line_per_request_without_secrets_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["tenant", "create", "--tenant-id", "acme", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("tenant id:  acme"), "{printed}");
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .expect("the secret is printed once")
        .to_owned();
    assert!(secret.starts_with("sk_") && secret.len() > 40);

    let served = Served::start(dir.path(), &[]);
    let tracked = track(&served.base_url, &secret, "alice");
    let token = tracked["token"].as_str().unwrap().to_owned();
    let key = tracked["idempotencyKey"].as_str().unwrap().to_owned();
    let lines = served.stop();

    let requests: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("/v1/users/{userId}/actions/{action}"))
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "one line per request:\n{}",
        lines.join("\n")
    );
    assert!(requests[0].contains("200"));
    let all = lines.join("\n");
    for secret_text in [secret.as_str(), token.as_str(), "alice"] {
        assert!(!all.contains(secret_text), "logged {secret_text:?}:\n{all}");
    }

    // Restarted on the same data, the action tracked before is still there.
    let served = Served::start(dir.path(), &[]);
    let url = format!("{}/users/alice/actions/signIn/{key}", served.base_url);
    let (status, action) = get(&url, &secret);
    assert_eq!(status, 200, "{action}");
    assert_eq!(action["state"], "ALLOW");
    served.stop();
}

#[test]
fn serve_creates_a_development_tenant_once_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &[]);
    let printed = served
        .seen
        .iter()
        .find(|l| l.trim_start().starts_with("secret key:"))
        .expect("printed on first start");
    let secret = printed.split_whitespace().last().unwrap().to_owned();
    served.stop();

    let served = Served::start(dir.path(), &[]);
    let lines = served.seen.join("\n");
    assert!(lines.contains("Development tenant"), "{lines}");
    assert!(
        !lines.contains(&secret),
        "the secret is printed only on the first start"
    );
    let tracked = track(&served.base_url, &secret, "bob");
    assert_eq!(tracked["state"], "ALLOW");
    served.stop();
}

#[test]
fn serve_with_a_tenant_from_flags_accepts_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "sk_from_flags_6f1d0c9b2a7e4f38a5c1d9e0b7f3a2c4";
    let served = Served::start(
        dir.path(),
        &["--tenant-id", "flagged", "--secret-key", secret],
    );
    assert!(served.seen.join("\n").contains("tenant flagged created"));
    let tracked = track(&served.base_url, secret, "carol");
    assert_eq!(tracked["isEnrolled"], json!(false));
    let (status, body) = get(
        &format!("{}/users/carol", served.base_url),
        "sk_not_the_secret_000",
    );
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("unauthorized"))
    );
    served.stop();
}

/// A chosen secret is stored as a fast hash, so one that can be guessed is refused (issue #11),
/// with how to make a good one.
#[test]
fn a_short_or_guessable_secret_is_refused_with_a_clear_message() {
    for (secret, problem) in [
        ("short", "too short"),
        ("sk_demo_0123456789abcdef", "too short"),
        ("sk_0123456789abcdef0123456789abcdef", "guessable pattern"),
        ("sk_passwordpasswordpasswordpassword", "guessable pattern"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(BIN)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--tenant-id",
                "t",
                "--secret-key",
                secret,
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(problem), "{secret}: {stderr}");
        assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
    }
}

/// A webhook secret signs what the tenant's backend trusts: the same rule. `serve` checks it
/// before it touches the tenant, so a refused one leaves the store as it was.
#[test]
fn a_guessable_webhook_secret_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let strong = "sk_cli_webhook_3c9a1f7e5d2b8c4a6e0f1d3b5a7c9e2f";
    let output = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tenant-id",
            "hooked",
            "--secret-key",
            strong,
            "--push-webhook-url",
            "http://127.0.0.1:9/push",
            "--push-webhook-secret",
            "whsec_short",
            "--data-dir",
            data_dir,
        ])
        .env_remove("TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--push-webhook-secret") && stderr.contains("too short"),
        "{stderr}"
    );
    // The tenant was not created: creating it now works.
    let (ok, _, err) = run_cli(&[
        "tenant",
        "create",
        "--tenant-id",
        "hooked",
        "--data-dir",
        data_dir,
    ]);
    assert!(ok, "{err}");

    let configured = Command::new(BIN)
        .args([
            "tenant",
            "configure",
            "--tenant-id",
            "hooked",
            "--push-webhook-url",
            "https://hooks.example.com/push",
            "--data-dir",
            data_dir,
        ])
        .env(
            "TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET",
            "whsec_passwordpasswordpasswordpassword",
        )
        .output()
        .unwrap();
    assert!(!configured.status.success());
    let stderr = String::from_utf8_lossy(&configured.stderr);
    assert!(stderr.contains("guessable pattern"), "{stderr}");
}

#[test]
fn table_create_tenant_create_and_serve_on_dynamodb() {
    // A DynamoDB-compatible server on a free loopback port, for the binary to talk to.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local = runtime.block_on(testkit::dynamodb::LocalDynamo::start());
    let endpoint = local.endpoint();
    let dynamo = [
        "--store",
        "dynamodb",
        "--table",
        "td-cli",
        "--endpoint-url",
        &endpoint,
    ];

    let run = |args: &[&str]| {
        let output = Command::new(BIN).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let created = run(&[
        "table",
        "create",
        "--table",
        "td-cli",
        "--endpoint-url",
        &endpoint,
    ]);
    assert!(created.contains("table td-cli created"), "{created}");
    let again = run(&[
        "table",
        "create",
        "--table",
        "td-cli",
        "--endpoint-url",
        &endpoint,
    ]);
    assert!(again.contains("already exists"), "{again}");

    let mut args = vec!["tenant", "create", "--tenant-id", "dyn-acme"];
    args.extend_from_slice(&dynamo);
    let printed = run(&args);
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .expect("the secret is printed once")
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &dynamo);
    let tracked = track(&served.base_url, &secret, "dora");
    let key = tracked["idempotencyKey"].as_str().unwrap().to_owned();
    served.stop();

    // Another server process on the same table sees the action: the data is in DynamoDB.
    let served = Served::start(dir.path(), &dynamo);
    let (status, action) = get(
        &format!("{}/users/dora/actions/signIn/{key}", served.base_url),
        &secret,
    );
    assert_eq!(status, 200, "{action}");
    served.stop();
    assert!(
        !dir.path().join("trusted-device.db").exists(),
        "nothing was written locally"
    );
    drop(local);
}

/// Runs the binary to completion: (success, stdout, stderr).
pub(crate) fn run_cli(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("TRUSTED_DEVICE_TENANT_ID")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

const PAY_CONFIG_YAML: &str = r#"
actionCode: pay
defaultOutcome: ALLOW
rules:
  - ruleId: big-on-new-device
    name: Big payment on a new device
    description: More than 1,000 from a device never seen for this user
    priority: 1
    type: REVIEW
    conditions:
      and:
        - {var: device.isNew}
        - {">": [{var: custom.amount}, 1000]}
  - ruleId: blocked-network
    name: Blocked network
    priority: 0
    type: BLOCK
    conditions: {ip_in_cidr: [{var: ip.address}, ["198.51.100.0/24"]]}
  - ruleId: switched-off
    name: Switched off
    isActive: false
    type: BLOCK
    conditions: true
"#;

/// `action-config set|get|list|delete` against one store, then a server on that store
/// deciding with the config that was set. `store` are the STORE flags.
fn action_config_round_trip(store: &[&str], data_dir: &std::path::Path) {
    let files = tempfile::tempdir().unwrap();
    let config_file = files.path().join("pay.yaml");
    std::fs::write(&config_file, PAY_CONFIG_YAML).unwrap();
    let invalid_file = files.path().join("bad.json");
    std::fs::write(
        &invalid_file,
        r#"{"actionCode": "pay", "rules": [{"ruleId": "geo", "name": "Geo", "type": "BLOCK",
            "conditions": {"==": [{"var": "ip.country"}, "NZ"]}}]}"#,
    )
    .unwrap();
    let with = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(store.iter().map(|a| (*a).to_owned()));
        all.extend(["--tenant-id".to_owned(), "rules-co".to_owned()]);
        all
    };
    let run = |args: Vec<String>| run_cli(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let mut create = vec!["tenant", "create", "--tenant-id", "rules-co"];
    create.extend_from_slice(store);
    let (ok, printed, stderr) = run_cli(&create);
    assert!(ok, "{stderr}");
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .unwrap()
        .to_owned();

    let (ok, out, err) = run(with(&[
        "action-config",
        "set",
        "--config",
        config_file.to_str().unwrap(),
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("saved the config of pay"), "{out}");
    assert!(out.contains("3 rule(s), default outcome ALLOW"), "{out}");

    let (ok, out, err) = run(with(&[
        "action-config",
        "set",
        "--config",
        invalid_file.to_str().unwrap(),
    ]));
    assert!(!ok);
    assert!(
        err.contains("rule #0 (ruleId \"geo\", name \"Geo\"): conditions at ==[0].var: unknown data point \"ip.country\""),
        "{out}{err}"
    );

    let (ok, out, err) = run(with(&["action-config", "get", "pay"]));
    assert!(ok, "{err}");
    let config: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        config["rules"][0]["ruleId"], "big-on-new-device",
        "the invalid set changed nothing"
    );
    assert_eq!(config["rules"][2]["isActive"], false);

    let (ok, out, err) = run(with(&["action-config", "list"]));
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let (ok, _, err) = run(with(&["action-config", "get", "withdraw"]));
    assert!(!ok);
    assert!(err.contains("No config for this action code"), "{err}");

    // A server on the same store decides with it (`Served` gives `--data-dir` itself).
    let serve_flags: &[&str] = if store.contains(&"dynamodb") {
        store
    } else {
        &[]
    };
    let served = Served::start(data_dir, serve_flags);
    let url = format!("{}/users/erin/actions/pay", served.base_url);
    let (status, blocked) = request(|c| {
        c.post(url.clone())
            .basic_auth(&secret, Some(""))
            .json(&json!({"ipAddress": "198.51.100.9"}))
    });
    assert_eq!(status, 200, "{blocked}");
    assert_eq!(blocked["state"], "BLOCK");
    assert_eq!(blocked["ruleIds"], json!(["blocked-network"]));
    let (_, reviewed) = request(|c| {
        c.post(url.clone())
            .basic_auth(&secret, Some(""))
            .json(&json!({"deviceId": "new-phone", "custom": {"amount": 5000}}))
    });
    assert_eq!(reviewed["state"], "REVIEW_REQUIRED");
    served.stop();

    let (ok, out, err) = run(with(&["action-config", "delete", "pay"]));
    assert!(ok, "{err}");
    assert!(out.contains("deleted the config of pay"), "{out}");
    let (_, out, _) = run(with(&["action-config", "list"]));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
}

#[test]
fn action_config_set_get_list_delete_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    action_config_round_trip(&["--data-dir", &data_dir], dir.path());
}

#[test]
fn action_config_set_get_list_delete_on_dynamodb() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local = runtime.block_on(testkit::dynamodb::LocalDynamo::start());
    let endpoint = local.endpoint();
    let (ok, _, err) = run_cli(&[
        "table",
        "create",
        "--table",
        "td-rules",
        "--endpoint-url",
        &endpoint,
    ]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    action_config_round_trip(
        &[
            "--store",
            "dynamodb",
            "--table",
            "td-rules",
            "--endpoint-url",
            &endpoint,
        ],
        dir.path(),
    );
    drop(local);
}

#[test]
fn rules_test_explains_which_rule_matched_and_why() {
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("pay.yaml");
    std::fs::write(&config, PAY_CONFIG_YAML).unwrap();
    let request = files.path().join("request.json");
    let explain = |sample: Value| {
        std::fs::write(&request, sample.to_string()).unwrap();
        run_cli(&[
            "rules",
            "test",
            "--config",
            config.to_str().unwrap(),
            "--request",
            request.to_str().unwrap(),
        ])
    };

    let (ok, out, err) = explain(json!({
        "device.isNew": true, "custom": {"amount": 5000}, "ip.address": "203.0.113.5",
        "user": {"isEnrolled": true}
    }));
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "action pay: 3 rule(s) from the config \"pay\", in evaluation order",
            "  [priority 0] blocked-network \"Blocked network\" (BLOCK): conditions = false -> no match",
            "  [priority 0] switched-off \"Switched off\" (BLOCK): inactive, skipped",
            "  [priority 1] big-on-new-device \"Big payment on a new device\" (REVIEW): conditions = true -> MATCH",
            "decided by: rule big-on-new-device \"Big payment on a new device\" matched first",
            "outcome: REVIEW (track state REVIEW_REQUIRED)",
        ],
        "{out}"
    );

    // Nothing matches: the default; a data point the rules read is missing: a note.
    let (ok, out, _) = explain(json!({"custom": {"amount": 5}, "user.isEnrolled": false}));
    assert!(ok);
    assert!(
        out.contains("note: device.isNew is not in the sample request (null)"),
        "{out}"
    );
    assert!(
        out.contains("note: ip.address is not in the sample request (null)"),
        "{out}"
    );
    assert!(
        out.contains("decided by: no rule matched: the action's defaultOutcome"),
        "{out}"
    );
    assert!(
        out.ends_with("outcome: ALLOW (track state ALLOW)\n"),
        "{out}"
    );

    // An invalid config is refused as `set` would refuse it.
    std::fs::write(
        &config,
        "actionCode: pay\nrules:\n  - {ruleId: r, name: R, type: BLOCK, conditions: {nope: [1]}}\n",
    )
    .unwrap();
    let (ok, _, err) = explain(json!({}));
    assert!(!ok);
    assert!(
        err.contains("rule #0 (ruleId \"r\", name \"R\"): conditions: unknown operator \"nope\""),
        "{err}"
    );
}

#[test]
fn tenant_configure_sets_a_push_webhook_and_refuses_a_cleartext_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET")
            .output()
            .unwrap()
    };
    assert!(
        run(&["tenant", "create", "--tenant-id", "acme"])
            .status
            .success()
    );

    let refused = run(&[
        "tenant",
        "configure",
        "--tenant-id",
        "acme",
        "--push-webhook-url",
        "http://hooks.example.com/push",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("plain http is only allowed to localhost"),
        "{stderr}"
    );

    let configured = run(&[
        "tenant",
        "configure",
        "--tenant-id",
        "acme",
        "--push-webhook-url",
        "https://hooks.example.com/push",
        "--require-decision-signature",
        "true",
    ]);
    assert!(
        configured.status.success(),
        "{}",
        String::from_utf8_lossy(&configured.stderr)
    );
    let stdout = String::from_utf8(configured.stdout).unwrap();
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("webhook signing secret: "))
        .expect("the generated secret is printed once");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );

    let unknown = run(&[
        "tenant",
        "configure",
        "--tenant-id",
        "nobody",
        "--remove-push-webhook",
    ]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("does not exist"));
}

/// `tenant configure --allowed-origin` (repeatable) stores the normalised origins; a path, a
/// plain-http host other than localhost or a missing scheme is refused; `--no-allowed-origins`
/// empties the list.
#[test]
fn tenant_configure_sets_allowed_origins_and_refuses_malformed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert!(
        run(&["tenant", "create", "--tenant-id", "acme"])
            .status
            .success()
    );
    for bad in [
        "https://app.example/login",
        "http://app.example",
        "app.example",
    ] {
        let refused = run(&[
            "tenant",
            "configure",
            "--tenant-id",
            "acme",
            "--allowed-origin",
            bad,
        ]);
        assert!(!refused.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("Invalid allowed origin"), "{bad}: {stderr}");
    }
    let configured = run(&[
        "tenant",
        "configure",
        "--tenant-id",
        "acme",
        "--allowed-origin",
        "HTTPS://App.Example:443",
        "--allowed-origin",
        "http://localhost:3000",
    ]);
    assert!(
        configured.status.success(),
        "{}",
        String::from_utf8_lossy(&configured.stderr)
    );
    let stdout = String::from_utf8(configured.stdout).unwrap();
    assert!(
        stdout.contains("allowed origins: https://app.example http://localhost:3000"),
        "{stdout}"
    );
    let cleared = run(&[
        "tenant",
        "configure",
        "--tenant-id",
        "acme",
        "--no-allowed-origins",
    ]);
    assert!(cleared.status.success());
    assert!(
        String::from_utf8(cleared.stdout)
            .unwrap()
            .contains("allowed origins: none")
    );
}

/// `tenant configure --ui-*` (issue #16) sets the pre-built UI's branding and refuses what the
/// page could not show safely: a colour that is not `#rrggbb`, a logo that is not https, a name
/// with a control character. `serve --public-url` refuses a URL that is not an absolute base.
#[test]
fn tenant_configure_sets_the_ui_branding_and_refuses_unsafe_values() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert!(
        run(&["tenant", "create", "--tenant-id", "acme"])
            .status
            .success()
    );
    for (flag, bad, reason) in [
        ("--ui-colour", "red", "#rrggbb"),
        ("--ui-colour", "#12345g", "#rrggbb"),
        ("--ui-logo-url", "http://cdn.example/logo.png", "https"),
        ("--ui-logo-url", "javascript:alert(1)", "https"),
        ("--ui-name", "a\nb", "printable"),
    ] {
        let refused = run(&["tenant", "configure", "--tenant-id", "acme", flag, bad]);
        assert!(!refused.status.success(), "{flag} {bad}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(reason), "{flag} {bad}: {stderr}");
    }
    for args in [
        &[
            "--ui-name",
            "Acme Bank",
            "--ui-logo-url",
            "https://cdn.example/logo.png",
            "--ui-colour",
            "#0b6e4f",
        ][..],
        &["--reset-ui"][..],
    ] {
        let configured = run(&[&["tenant", "configure", "--tenant-id", "acme"][..], args].concat());
        assert!(
            configured.status.success(),
            "{}",
            String::from_utf8_lossy(&configured.stderr)
        );
    }
    let refused = run(&["serve", "--public-url", "auth.example/v1"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("public URL"));
}

/// The connection limits are `serve` flags (README, Configuration): a short header read
/// timeout closes a silent connection; a value out of range is refused at start.
#[test]
fn serve_takes_its_connection_limits_from_flags() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        dir.path(),
        &[
            "--header-read-timeout",
            "1",
            "--body-read-timeout",
            "2",
            "--idle-timeout",
            "3",
            "--max-connections",
            "8",
            "--max-header-bytes",
            "4096",
        ],
    );
    let addr = served
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let _ = silent.read_to_end(&mut received);
    let waited = started.elapsed();
    assert!(received.is_empty());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    let (status, body) = request(|http| {
        http.get(format!("{}/users/alice", served.base_url))
            .header("x-large", "a".repeat(5000))
    });
    assert_eq!(status, 431, "{body}");
    assert_eq!(body["error"], "request_header_fields_too_large");
    served.stop();

    let refused = Command::new(BIN)
        .args(["serve", "--max-connections", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--max-connections"));
}

/// The embedded store is SQLite: the CLI writes while the server runs on the same data
/// directory, and the server sees it (a new tenant at once, a rules config on the next track).
#[test]
fn the_cli_works_on_the_embedded_store_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let served = Served::start(dir.path(), &[]);

    let (ok, out, err) = run_cli(&[
        "tenant",
        "create",
        "--tenant-id",
        "live",
        "--data-dir",
        &data_dir,
    ]);
    assert!(ok, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .expect("the secret is printed")
        .to_owned();
    assert_eq!(track(&served.base_url, &secret, "alice")["state"], "ALLOW");

    let config = dir.path().join("block.yaml");
    std::fs::write(&config, "actionCode: signIn\ndefaultOutcome: BLOCK\n").unwrap();
    // `--file`, the old name of `--config`, still works (a hidden alias, for scripts).
    let (ok, _, err) = run_cli(&[
        "action-config",
        "set",
        "--file",
        config.to_str().unwrap(),
        "--tenant-id",
        "live",
        "--data-dir",
        &data_dir,
    ]);
    assert!(ok, "{err}");
    assert_eq!(track(&served.base_url, &secret, "alice")["state"], "BLOCK");

    let (ok, out, err) = run_cli(&[
        "tenant",
        "configure",
        "--tenant-id",
        "live",
        "--require-decision-signature",
        "true",
        "--data-dir",
        &data_dir,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("tenant live configured"), "{out}");
    served.stop();
}

#[test]
fn a_data_dir_of_the_old_journal_engine_is_imported_and_a_damaged_database_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let journal = dir.path().join("trusted-device.journal");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/src/store/embedded/fixtures/journal-engine.journal"
        ),
        &journal,
    )
    .unwrap();
    let list = [
        "action-config",
        "list",
        "--tenant-id",
        "legacy-tenant",
        "--data-dir",
        &data_dir,
    ];
    let (ok, out, err) = run_cli(&list);
    assert!(ok, "{err}");
    assert!(
        err.contains("imported 5 items from the old journal"),
        "{err}"
    );
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
    assert!(!journal.exists());
    let (ok, _, err) = run_cli(&list);
    assert!(ok && !err.contains("imported"), "{err}");

    // A database that is not one: refused with a clear message, the file left as it was.
    let db = dir.path().join("trusted-device.db");
    for name in ["trusted-device.db-wal", "trusted-device.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    std::fs::write(&db, vec![0x42; 4096]).unwrap();
    let (ok, _, err) = run_cli(&list);
    assert!(!ok);
    assert!(err.contains("refusing to start"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x42; 4096]);
}

/// Runs the binary in `dir` with no `TRUSTED_DEVICE_*` variable but `env`: (success, stdout,
/// stderr).
fn run_clean(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command.current_dir(dir).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("TRUSTED_DEVICE_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// A store flag that does not apply to the store chosen is refused before anything is opened
/// or created, whether it comes from the command line or from its environment variable:
/// `tenant create --table prod` used to create a local tenant and print its secret.
#[test]
fn store_flags_that_do_not_apply_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], env: &[(&str, &str)], expected: &[&str]| {
        let (ok, out, err) = run_clean(dir.path(), args, env);
        assert!(!ok, "{args:?} {env:?} was accepted: {out}");
        assert!(!out.contains("secret key"), "{args:?}: {out}");
        for text in expected {
            assert!(err.contains(text), "{args:?} {env:?}: {err}");
        }
        assert!(
            !dir.path().join(".trusted-device").exists(),
            "{args:?} created the default data directory"
        );
    };
    let only_dynamodb = "applies only to --store dynamodb";
    let only_embedded = "applies only to --store embedded";
    refused(
        &["tenant", "create", "--table", "prod"],
        &[],
        &["--table (or TRUSTED_DEVICE_TABLE)", only_dynamodb],
    );
    refused(
        &[
            "tenant",
            "create",
            "--endpoint-url",
            "http://127.0.0.1:8000",
        ],
        &[],
        &["--endpoint-url", only_dynamodb],
    );
    refused(
        &["action-config", "list", "--tenant-id", "t"],
        &[("TRUSTED_DEVICE_TABLE", "prod")],
        &["TRUSTED_DEVICE_TABLE", only_dynamodb],
    );
    refused(
        &["serve", "--addr", "127.0.0.1:0", "--table", "prod"],
        &[],
        &["--table", only_dynamodb],
    );
    let dynamodb = ["--store", "dynamodb", "--table", "prod"];
    for (extra, env, flag) in [
        (&["--data-dir", "here"][..], &[][..], "--data-dir"),
        (&["--durability", "normal"][..], &[][..], "--durability"),
        (
            &[][..],
            &[("TRUSTED_DEVICE_DATA_DIR", "here")][..],
            "TRUSTED_DEVICE_DATA_DIR",
        ),
    ] {
        for command in [
            &["tenant", "create"][..],
            &[
                "tenant",
                "configure",
                "--tenant-id",
                "t",
                "--remove-push-webhook",
            ][..],
            &["action-config", "get", "pay", "--tenant-id", "t"][..],
            &["serve", "--addr", "127.0.0.1:0"][..],
        ] {
            let args: Vec<&str> = command
                .iter()
                .chain(&dynamodb)
                .chain(extra)
                .copied()
                .collect();
            refused(&args, env, &[flag, only_embedded]);
        }
    }
    // The DynamoDB store needs its table; clap says so.
    refused(
        &["tenant", "create", "--store", "dynamodb"],
        &[],
        &["--table <TABLE>"],
    );
    refused(
        &["tenant", "create"],
        &[("TRUSTED_DEVICE_STORE", "dynamodb")],
        &["--table <TABLE>"],
    );
    // `tenant configure` with nothing to change, and a webhook secret without a webhook.
    refused(
        &["tenant", "configure", "--tenant-id", "t"],
        &[],
        &["--push-webhook-url", "--remove-push-webhook"],
    );
    refused(
        &[
            "tenant",
            "configure",
            "--tenant-id",
            "t",
            "--remove-push-webhook",
            "--push-webhook-secret",
            "whsec_3c9a1f7e5d2b8c4a6e0f1d3b5a7c9e2f8a6b",
        ],
        &[],
        &["--push-webhook-secret", "cannot be used with"],
    );
    refused(
        &[
            "tenant",
            "configure",
            "--tenant-id",
            "t",
            "--require-decision-signature",
            "true",
        ],
        &[(
            "TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET",
            "whsec_3c9a1f7e5d2b8c4a6e0f1d3b5a7c9e2f8a6b",
        )],
        &["--push-webhook-url"],
    );
}

/// A store that cannot be opened says why, with the cause underneath (the operating system's
/// or the AWS SDK's words), not a generic "unavailable".
#[test]
fn a_store_that_cannot_be_opened_reports_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let (ok, _, err) = run_clean(
        dir.path(),
        &["tenant", "create", "--data-dir", "a-file/data"],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("cannot create data directory a-file/data") && err.contains("os error"),
        "{err}"
    );

    // The database file is a directory: SQLite alone says "unable to open database file".
    std::fs::create_dir_all(dir.path().join("data/trusted-device.db")).unwrap();
    let (ok, _, err) = run_clean(dir.path(), &["tenant", "create", "--data-dir", "data"], &[]);
    assert!(!ok);
    assert!(
        err.contains("data/trusted-device.db") && err.contains("Is a directory"),
        "{err}"
    );

    // Nothing listens on the endpoint: the SDK's chain down to the refused connection.
    let closed = free_port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let dynamodb = [
        "--store",
        "dynamodb",
        "--table",
        "td-nowhere",
        "--endpoint-url",
        &endpoint,
    ];
    let mut args = vec!["tenant", "create"];
    args.extend_from_slice(&dynamodb);
    let (ok, out, err) = run_clean(dir.path(), &args, &[]);
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!(
            "cannot open the DynamoDB table td-nowhere ({endpoint})"
        )) && err.contains("Connection refused"),
        "{err}"
    );

    // A table that does not exist: DynamoDB's own message.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local = runtime.block_on(testkit::dynamodb::LocalDynamo::start());
    let endpoint = local.endpoint();
    let (ok, out, err) = run_clean(
        dir.path(),
        &[
            "action-config",
            "list",
            "--tenant-id",
            "t",
            "--store",
            "dynamodb",
            "--table",
            "td-missing",
            "--endpoint-url",
            &endpoint,
        ],
        &[],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("cannot open the DynamoDB table td-missing")
            && err.contains("ResourceNotFoundException"),
        "{err}"
    );
    drop(local);
}

/// The commands a user runs, each with the arguments its `--help` needs.
const COMMANDS: &[&[&str]] = &[
    &["serve"],
    &["tenant", "create"],
    &["tenant", "configure"],
    &["table", "create"],
    &["action-config", "set"],
    &["action-config", "get"],
    &["action-config", "list"],
    &["action-config", "delete"],
    &["rules", "test"],
    &["device", "enroll"],
    &["device", "verify"],
    &["device", "pending"],
    &["device", "approve"],
    &["device", "reject"],
    &["device", "claim"],
    &["device", "remove"],
    &["device", "list"],
    &["conformance"],
];

/// `(flag, environment variable or "")` for every option of a command, from its `--help`.
fn flags_of(command: &[&str]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = command.to_vec();
    args.push("--help");
    let (ok, help, err) = run_clean(dir.path(), &args, &[]);
    assert!(ok, "{command:?}: {err}");
    let mut flags: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        // A flag's line; its description follows on it (short help) or below (long help).
        if trimmed.starts_with('-') && line.starts_with("  ") && !line.starts_with("          ") {
            let flag = trimmed
                .split([' ', ','])
                .find(|word| word.starts_with("--"))
                .unwrap_or(trimmed)
                .to_owned();
            flags.push((flag, String::new()));
        }
        if let Some((_, rest)) = trimmed.split_once("[env: ") {
            let name: String = rest
                .chars()
                .take_while(|c| *c != '=' && *c != ']')
                .collect();
            flags.last_mut().expect("an env line follows a flag").1 = name;
        }
    }
    flags
}

/// The same flag reads the same environment variable in every command, and every variable
/// any command reads is in its `--help` and in README.md or docs/cli.md.
#[test]
fn every_command_reads_the_same_variables_and_documents_them() {
    let readme = include_str!("../../../README.md");
    let cli_doc = include_str!("../../../docs/cli.md");
    let mut by_flag: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for command in COMMANDS {
        for (flag, env) in flags_of(command) {
            if flag == "--help" {
                continue;
            }
            by_flag
                .entry(flag)
                .or_default()
                .push((command.join(" "), env));
        }
    }
    // Every store and tenant flag is there, with its variable.
    for (flag, env) in [
        ("--store", "TRUSTED_DEVICE_STORE"),
        ("--data-dir", "TRUSTED_DEVICE_DATA_DIR"),
        ("--durability", "TRUSTED_DEVICE_DURABILITY"),
        ("--table", "TRUSTED_DEVICE_TABLE"),
        ("--endpoint-url", "TRUSTED_DEVICE_DYNAMODB_ENDPOINT"),
        ("--tenant-id", "TRUSTED_DEVICE_TENANT_ID"),
        (
            "--push-webhook-secret",
            "TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET",
        ),
    ] {
        let uses = &by_flag[flag];
        assert!(uses.iter().all(|(_, e)| e == env), "{flag}: {uses:?}");
    }
    for (flag, uses) in &by_flag {
        let first = &uses[0].1;
        assert!(
            uses.iter().all(|(_, env)| env == first),
            "{flag} reads different variables: {uses:?}"
        );
        if !first.is_empty() {
            assert!(
                readme.contains(first.as_str()) || cli_doc.contains(first.as_str()),
                "{first} ({flag}) is in no document"
            );
        }
    }
    // The lifetimes and limits have no flag: the help of every command that reads them (each
    // that opens a store) names them all.
    let dir = tempfile::tempdir().unwrap();
    for command in COMMANDS
        .iter()
        .filter(|c| matches!(c[0], "serve" | "tenant" | "action-config"))
    {
        let mut args = command.to_vec();
        args.push("--help");
        let (_, help, _) = run_clean(dir.path(), &args, &[]);
        for name in shared::config::ENV_VARIABLES {
            assert!(
                help.contains(name),
                "{command:?} --help does not name {name}"
            );
        }
        assert!(help.contains("RUST_LOG"), "{command:?}");
    }
    // Rules configs are `--config` everywhere; `--file` is a hidden alias.
    assert!(!by_flag.contains_key("--file"));
    let commands_with_config: Vec<&str> = by_flag["--config"]
        .iter()
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(commands_with_config, ["action-config set", "rules test"]);
}

/// `tenant configure --push-webhook-secret` (or its variable) signs with the secret given,
/// and prints none.
#[test]
fn tenant_configure_takes_the_webhook_secret_as_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run_clean(
        dir.path(),
        &["tenant", "create", "--tenant-id", "acme"],
        &[],
    );
    assert!(ok, "{err}");
    let configure = [
        "tenant",
        "configure",
        "--tenant-id",
        "acme",
        "--push-webhook-url",
        "https://hooks.example.com/push",
    ];
    let mut args = configure.to_vec();
    args.extend([
        "--push-webhook-secret",
        "whsec_3c9a1f7e5d2b8c4a6e0f1d3b5a7c9e2f8a6b",
    ]);
    let (ok, out, err) = run_clean(dir.path(), &args, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("tenant acme configured"), "{out}");
    assert!(!out.contains("webhook signing secret"), "{out}");

    let mut args = configure.to_vec();
    args.extend(["--push-webhook-secret", "whsec_short"]);
    let (ok, _, err) = run_clean(dir.path(), &args, &[]);
    assert!(!ok);
    assert!(
        err.contains("--push-webhook-secret") && err.contains("too short"),
        "{err}"
    );
    // From the environment, the same check.
    let (ok, _, err) = run_clean(
        dir.path(),
        &configure,
        &[("TRUSTED_DEVICE_PUSH_WEBHOOK_SECRET", "whsec_short")],
    );
    assert!(!ok);
    assert!(err.contains("too short"), "{err}");
}

/// A bad lifetime or limit in the environment stops the command with the variable's name.
#[test]
fn a_bad_setting_in_the_environment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run_clean(
        dir.path(),
        &["tenant", "create", "--data-dir", "data"],
        &[("TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS", "10m")],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains(
            "TRUSTED_DEVICE_TOKEN_LIFETIME_SECONDS must be a positive integer, not \"10m\""
        ),
        "{err}"
    );
    let (ok, _, err) = run_clean(
        dir.path(),
        &["tenant", "create", "--data-dir", "data"],
        &[("TRUSTED_DEVICE_RATE_LIMIT_SHARDS", "16")],
    );
    assert!(ok, "{err}");
}

/// A tenant made without an id gets a random version-4 UUID (the `uuid` crate formats ring's
/// bytes).
#[test]
fn a_generated_tenant_id_is_a_version_4_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (ok, out, err) =
            run_clean(dir.path(), &["tenant", "create", "--data-dir", "data"], &[]);
        assert!(ok, "{err}");
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("tenant id:  "))
            .unwrap()
            .to_owned();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert!(groups[2].starts_with('4'), "version 4: {id}");
        assert!(
            groups[3].starts_with(['8', '9', 'a', 'b']),
            "RFC 4122 variant: {id}"
        );
        seen.push(id);
    }
    assert_ne!(seen[0], seen[1]);
}

/// `--log-format json`: every log line is one JSON object; a request's has its method, route
/// template, status, error code and latency, and no log line holds the secret, a token, the
/// user id or the raw path.
#[test]
fn serve_logs_json_lines_with_the_request_fields_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "sk_json_logs_5b2e8d1c7a9f3e6b4d0c2a8f1e7b3d9c";
    let served = Served::start(
        dir.path(),
        &[
            "--tenant-id",
            "logged",
            "--secret-key",
            secret,
            "--log-format",
            "json",
        ],
    );
    let tracked = track(&served.base_url, secret, "user-in-logs");
    let token = tracked["token"].as_str().unwrap().to_owned();
    let (status, _) = get(
        &format!("{}/users/user-in-logs", served.base_url),
        "sk_wrong_secret_for_the_log_test_0000",
    );
    assert_eq!(status, 401);
    let lines = served.stop();

    let logs: Vec<Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    // What is not JSON is what the command prints for the operator (the tenant line).
    for line in lines.iter().filter(|l| !l.starts_with('{')) {
        assert!(
            line.starts_with("tenant logged "),
            "not a JSON log line: {line}"
        );
    }
    for log in &logs {
        assert!(
            log["timestamp"].is_string() && log["level"].is_string(),
            "{log}"
        );
    }
    let requests: Vec<&Value> = logs.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 2, "{logs:?}");
    let tracked_line = requests[0];
    assert_eq!(tracked_line["level"], "INFO");
    assert_eq!(tracked_line["method"], "POST");
    assert_eq!(tracked_line["route"], "/v1/users/{userId}/actions/{action}");
    assert_eq!(tracked_line["status"], 200);
    assert!(
        tracked_line["latency_ms"].as_f64().is_some(),
        "{tracked_line}"
    );
    let refused_line = requests[1];
    assert_eq!(refused_line["status"], 401);
    assert_eq!(refused_line["error"], "unauthorized");
    assert!(logs.iter().any(|l| l["message"] == "listening"));
    let all = lines.join("\n");
    for hidden in [secret, token.as_str(), "user-in-logs", "sk_wrong_secret"] {
        assert!(!all.contains(hidden), "logged {hidden:?}:\n{all}");
    }
}

/// A reader that goes away (`trusted-device ... | head -1`) ends the command with status 141 (as
/// a shell reports SIGPIPE) and a clear line on standard error: no panic, no status 101, and
/// never 0, since a secret shown only once was lost. The reading end is closed before the CLI
/// prints.
#[test]
fn a_closed_standard_output_ends_the_command_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["tenant", "create", "--tenant-id", "pipe", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("standard output was closed"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}
