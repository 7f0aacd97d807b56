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
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    base_url: String,
}

impl Served {
    fn start(data_dir: &std::path::Path, extra: &[&str]) -> Served {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
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
    fn stop(mut self) -> Vec<String> {
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
fn request(builder: impl FnOnce(&::reqwest::Client) -> ::reqwest::RequestBuilder) -> (u16, Value) {
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
fn track(base_url: &str, secret: &str, user: &str) -> Value {
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
    let local = runtime.block_on(shared::store::dynamodb::local::LocalDynamo::start());
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
fn run_cli(args: &[&str]) -> (bool, String, String) {
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
        "--file",
        config_file.to_str().unwrap(),
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("saved the config of pay"), "{out}");
    assert!(out.contains("3 rule(s), default outcome ALLOW"), "{out}");

    let (ok, out, err) = run(with(&[
        "action-config",
        "set",
        "--file",
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
    let local = runtime.block_on(shared::store::dynamodb::local::LocalDynamo::start());
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
