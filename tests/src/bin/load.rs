//! The load generator: full in-app flows (track, challenge, verify, validate) over HTTP by N
//! concurrent virtual users for a fixed time, as a backend and its apps would drive them.
//! It shows progress every second and ends with flows per second, p50/p95/p99 per endpoint,
//! the server's CPU time per flow next to one P-256 verify measured in the same run, and on
//! DynamoDB the requests per flow. Results and method: docs/performance.md.
//!
//! ```sh
//! # The server in this process (its own threads, so its CPU is measured apart), on the
//! # embedded store or on DynamoDB (an embedded dynoxide server on loopback):
//! cargo run --release -p e2e-tests --bin load -- --store embedded --users 50 --seconds 20 [--durability normal] [--events-webhook]
//! cargo run --release -p e2e-tests --bin load -- --store dynamodb --users 50 --seconds 20
//! # A server running elsewhere (CPU from /proc/<pid> when --server-pid is given):
//! cargo run --release -p e2e-tests --bin load -- --url http://127.0.0.1:8787/v1 \
//!     --tenant-id T --secret-key S [--server-pid PID]
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::config::Settings;
use shared::domain::{TenantId, WebhookEndpoint};
use shared::events::outbox::RetryPolicy;
use shared::store::Store;
use shared::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use shared::store::embedded::{Durability, EmbeddedStore};
use shared::usecase::tenants::{ApiSecret, TenantSettingsChange};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use testkit::dynamodb::{LocalDynamo, unique_table};

/// The same allocator as the `trusted-device` server binary, so the in-process server is
/// measured as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENDPOINTS: [&str; 4] = ["track", "challenge", "verify", "validate"];
/// The server's threads, its blocking pool (the embedded store's writes) included.
const SERVER_THREAD: &str = "td-server";

/// Full in-app flows (track, challenge, verify, validate) over HTTP by concurrent virtual
/// users; prints flows per second, latency per endpoint, server CPU per flow and, on DynamoDB,
/// requests and capacity units per flow (docs/performance.md).
#[derive(clap::Parser)]
#[command(name = "load")]
struct Options {
    /// The store of the in-process server: `embedded` (SQLite) or `dynamodb` (an embedded
    /// dynoxide server on loopback). Ignored with --url.
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "dynamodb"])]
    store: String,
    /// Concurrent virtual users, each registered with its own device key.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// How long to run full flows, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The base URL of a server running elsewhere (e.g. http://127.0.0.1:8787/v1) instead of
    /// one in this process.
    #[arg(long)]
    url: Option<String>,
    /// The tenant to drive (created in the in-process server; must exist with --url).
    #[arg(long, default_value = "load-tenant")]
    tenant_id: String,
    /// The tenant's secret key.
    #[arg(long, default_value = "sk_load_0123456789abcdef")]
    secret_key: String,
    /// With --url: the server's process id, to measure its CPU from /proc/<pid>.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The embedded store's durability: `full` (fsync per commit) or `normal`.
    #[arg(long, default_value = "full", value_parser = parse_durability)]
    durability: Durability,
    /// Give the in-process server's tenant an events webhook: a receiver on the load
    /// generator's threads that accepts every delivery, so the events worker's work is measured
    /// with the rest (embedded store only).
    #[arg(long)]
    events_webhook: bool,
}

/// A receiver of events webhooks on `127.0.0.1:0` that answers every delivery with 200 and
/// counts them; returns its URL.
async fn start_events_receiver(delivered: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move || {
            delivered.fetch_add(1, Ordering::Relaxed);
            async { axum::http::StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn parse_durability(value: &str) -> Result<Durability, String> {
    match value {
        "normal" => Ok(Durability::Normal),
        "full" => Ok(Durability::Full),
        other => Err(format!("normal|full, not {other}")),
    }
}

fn options() -> Options {
    let options = <Options as clap::Parser>::parse();
    if options.events_webhook && (options.url.is_some() || options.store != "embedded") {
        <Options as clap::CommandFactory>::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--events-webhook needs the in-process server on the embedded store \
                 (no --url, --store embedded)",
            )
            .exit();
    }
    options
}

/// CPU seconds (user + system) of this process's threads whose name starts with `prefix`.
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let ticks = procfs_ticks_per_second();
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with(prefix)
            && let Some(seconds) = stat_cpu_seconds(&entry.path().join("stat"), ticks)
        {
            total += seconds;
        }
    }
    total
}

fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(
        std::path::Path::new(&format!("/proc/{pid}/stat")),
        procfs_ticks_per_second(),
    )
    .unwrap_or(0.0)
}

fn stat_cpu_seconds(path: &std::path::Path, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

fn procfs_ticks_per_second() -> f64 {
    // USER_HZ is 100 on Linux for every architecture this runs on.
    100.0
}

struct Device {
    pair: EcdsaKeyPair,
    public_key: String,
}

impl Device {
    fn new() -> Device {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = shared::signature::p256_spki(pair.public_key().as_ref());
        Device {
            public_key: STANDARD.encode(spki),
            pair,
        }
    }

    fn sign(&self, message: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        STANDARD.encode(self.pair.sign(&rng, message.as_bytes()).unwrap().as_ref())
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    secret_auth: String,
    tenant_auth: String,
}

impl Client {
    async fn post(&self, path: &str, auth: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    }
}

/// Latency samples (microseconds) and errors of one endpoint.
#[derive(Default)]
struct Samples {
    micros: Vec<u32>,
    errors: u64,
}

async fn register(client: &Client, user: &str, device: &Device) {
    let tracked = client
        .post(
            &format!("/users/{user}/actions/addAuthenticator"),
            &client.secret_auth,
            &json!({"scope": "add:authenticators"}),
        )
        .await
        .expect("track for registration");
    client
        .post(
            "/client/user-authenticators/in-app",
            &format!("Bearer {}", tracked["token"].as_str().unwrap()),
            &json!({"publicKey": device.public_key, "deviceName": "load", "devicePlatform": "android"}),
        )
        .await
        .expect("registration");
}

/// One virtual user: full flows until `stop`.
async fn virtual_user(
    client: Arc<Client>,
    user: String,
    device: Device,
    stop: Arc<AtomicBool>,
    flows: Arc<AtomicU64>,
) -> [Samples; 4] {
    let mut samples: [Samples; 4] = Default::default();
    let mut timed = |index: usize, started: Instant, ok: bool| {
        if ok {
            samples[index]
                .micros
                .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        } else {
            samples[index].errors += 1;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let tracked = client
            .post(
                &format!("/users/{user}/actions/signIn"),
                &client.secret_auth,
                &json!({}),
            )
            .await;
        timed(0, started, tracked.is_ok());
        let Ok(tracked) = tracked else { continue };
        let token = tracked["token"].as_str().unwrap_or_default().to_owned();

        let started = Instant::now();
        let challenge = client
            .post("/client/challenge", &client.tenant_auth, &json!({}))
            .await;
        timed(1, started, challenge.is_ok());
        let Ok(challenge) = challenge else { continue };
        let challenge_id = challenge["challengeId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let signature = device.sign(&challenge_id);

        let started = Instant::now();
        let body = json!({"challengeId": challenge_id, "publicKey": device.public_key, "signature": signature});
        let verified = client
            .post("/client/verify/in-app", &format!("Bearer {token}"), &body)
            .await;
        timed(2, started, verified.is_ok());
        let Ok(verified) = verified else { continue };

        let started = Instant::now();
        let validated = client
            .post(
                "/validate",
                &client.secret_auth,
                &json!({"token": verified["token"]}),
            )
            .await;
        let valid = validated.as_ref().is_ok_and(|v| v["isValid"] == true);
        timed(3, started, valid);
        if valid {
            flows.fetch_add(1, Ordering::Relaxed);
        }
    }
    samples
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

/// A device's signature over a challenge-like message, and its key: what a verify request
/// checks, for timing the verify alone.
struct SignedSample {
    key: shared::signature::PublicKey,
    message: &'static str,
    signature: String,
}

impl SignedSample {
    fn new() -> SignedSample {
        let device = Device::new();
        let message = "c1.eyJ0IjoibG9hZCJ9.bWFj";
        SignedSample {
            key: shared::signature::PublicKey::from_base64(&device.public_key).unwrap(),
            message,
            signature: device.sign(message),
        }
    }

    /// Verifies the signature `rounds` times.
    fn verify(&self, rounds: u32) {
        for _ in 0..rounds {
            self.key
                .verify(
                    std::hint::black_box(self.message),
                    std::hint::black_box(&self.signature),
                )
                .unwrap();
        }
    }
}

/// Mean time of one P-256 verify on this machine, now: the floor of a verify request.
fn p256_verify_micros() -> f64 {
    let sample = SignedSample::new();
    let rounds = 3000;
    let started = Instant::now();
    sample.verify(rounds);
    started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

/// The calling thread's CPU time so far, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`, which
/// counts the time since the thread was last scheduled too; `/proc/thread-self/schedstat`
/// lags by up to a scheduler tick, more than a batch of verifies takes).
fn thread_cpu_nanos() -> Option<u64> {
    // SAFETY: an all-zero `timespec` is a valid value (plain integers, and padding fields
    // on targets that have them).
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is a valid, writable `timespec` that outlives the call, which only
    // writes it.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return None;
    }
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(seconds * 1_000_000_000 + nanos)
}

/// One P-256 verify measured *during* the run, on the loaded machine, as the server's own
/// verifies are: a probe thread times a batch of verifies in its own CPU time (not wall time,
/// so waiting for a core does not count) every 100 ms until `stop`, and returns the median
/// per-verify time of the batches, in µs. It costs about 2% of one core.
fn spawn_verify_probe(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Option<f64>> {
    std::thread::Builder::new()
        .name("td-verify-probe".into())
        .spawn(move || {
            const BATCH: u32 = 20;
            let sample = SignedSample::new();
            let mut per_verify = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // A clock that fails ends the probe with the batches it has.
                let Some(before) = thread_cpu_nanos() else {
                    break;
                };
                sample.verify(BATCH);
                let Some(after) = thread_cpu_nanos() else {
                    break;
                };
                let spent = after.saturating_sub(before);
                per_verify.push(spent as f64 / 1000.0 / f64::from(BATCH));
                std::thread::sleep(Duration::from_millis(100));
            }
            per_verify.sort_by(f64::total_cmp);
            per_verify.get(per_verify.len() / 2).copied()
        })
        .unwrap()
}

fn main() {
    let o = options();
    // The server (when in this process) on its own named threads, so its CPU is counted apart
    // from the load generator's and from the DynamoDB emulator's.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let dynamo_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("td-dynamodb")
        .enable_all()
        .build()
        .unwrap();
    let load_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("td-load")
        .enable_all()
        .build()
        .unwrap();

    let mut meter = None;
    // The in-process embedded store: its housekeeping, and how many changes its events worker
    // left behind.
    let mut outbox_probe: Option<EmbeddedStore> = None;
    // Deliveries the events receiver accepted (--events-webhook).
    let events_delivered = Arc::new(AtomicU64::new(0));
    let mut _keep_alive = None;
    let base = match &o.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let store: Arc<dyn Store> = match o.store.as_str() {
                "embedded" => {
                    let dir = tempfile::tempdir().unwrap();
                    let store = EmbeddedStore::open_with(&dir.path().join("load.db"), o.durability)
                        .unwrap();
                    _keep_alive = Some(Box::new(dir) as Box<dyn std::any::Any>);
                    outbox_probe = Some(store.clone());
                    Arc::new(store)
                }
                "dynamodb" => {
                    let local = dynamo_runtime.block_on(LocalDynamo::start());
                    let usage = UsageMeter::default();
                    let store = server_runtime.block_on(async {
                        let client = dynamodb::client(
                            &DynamoConfig {
                                endpoint_url: Some(local.endpoint()),
                            },
                            usage.clone(),
                        )
                        .await;
                        let table = unique_table("load");
                        dynamodb::create_table(&client, &table).await.unwrap();
                        DynamoStore::new(client, table, usage.clone())
                    });
                    meter = Some(usage);
                    _keep_alive = Some(Box::new(local) as Box<dyn std::any::Any>);
                    Arc::new(store)
                }
                other => unreachable!("clap admits only embedded|dynamodb, not {other}"),
            };
            // The events receiver runs on the load generator's threads: its CPU is not the
            // server's.
            let events_url = (o.events_webhook && outbox_probe.is_some()).then(|| {
                let delivered = events_delivered.clone();
                load_runtime.block_on(start_events_receiver(delivered))
            });
            let app = testkit::app(store, Arc::new(SystemClock), Settings::default());
            server_runtime.block_on(async {
                // The events worker and the sweep, as `trusted-device serve` runs them.
                if let Some(store) = &outbox_probe {
                    trusted_device::spawn_embedded_housekeeping(
                        store.clone(),
                        RetryPolicy::default(),
                        app.settings().max_failed_attempts,
                    );
                }
                let tenant = TenantId::parse(o.tenant_id.clone()).unwrap();
                app.ensure_tenant(&tenant, &ApiSecret::parse(&o.secret_key).unwrap())
                    .await
                    .unwrap();
                if let Some(url) = &events_url {
                    let events = TenantSettingsChange {
                        events_webhook: Some(Some(WebhookEndpoint {
                            url: url.clone(),
                            secret: "whsec_load_0123456789abcdef0123456789".into(),
                        })),
                        ..TenantSettingsChange::default()
                    };
                    app.configure_tenant(&tenant, events).await.unwrap();
                }
                let server = trusted_device::RunningServer::start(app).await.unwrap();
                let url = server.base_url();
                std::mem::forget(server);
                url
            })
        }
    };

    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        base,
        secret_auth: format!("Basic {}", STANDARD.encode(format!("{}:", o.secret_key))),
        tenant_auth: format!("Basic {}", STANDARD.encode(format!("{}:", o.tenant_id))),
    });

    println!("registering {} users ...", o.users);
    let devices: Vec<(String, Device)> = load_runtime.block_on(async {
        let mut devices = Vec::new();
        for i in 0..o.users {
            let user = format!("load-user-{i}-{}", std::process::id());
            let device = Device::new();
            register(&client, &user, &device).await;
            devices.push((user, device));
        }
        devices
    });

    let verify_micros = p256_verify_micros();
    let cpu_before = match o.server_pid {
        Some(pid) => process_cpu_seconds(pid),
        None => thread_cpu_seconds(SERVER_THREAD),
    };
    let _ = meter.as_ref().map(UsageMeter::take);
    let stop = Arc::new(AtomicBool::new(false));
    let flows = Arc::new(AtomicU64::new(0));
    println!(
        "{} virtual users, {} s of full in-app flows ...",
        o.users, o.seconds
    );
    let started = Instant::now();
    let verify_probe = spawn_verify_probe(stop.clone());
    let results: Vec<[Samples; 4]> = load_runtime.block_on(async {
        let tasks: Vec<_> = devices
            .into_iter()
            .map(|(user, device)| {
                tokio::spawn(virtual_user(
                    client.clone(),
                    user,
                    device,
                    stop.clone(),
                    flows.clone(),
                ))
            })
            .collect();
        let mut last = 0;
        for second in 1..=o.seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = flows.load(Ordering::Relaxed);
            println!("  {second:>3} s  {now:>7} flows  {:>6} flows/s", now - last);
            last = now;
        }
        stop.store(true, Ordering::Relaxed);
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match o.server_pid {
        Some(pid) => process_cpu_seconds(pid),
        None => thread_cpu_seconds(SERVER_THREAD),
    } - cpu_before;
    // After the server's CPU is read: the probe may take up to 100 ms more to notice `stop`.
    let verify_under_load_micros = verify_probe.join().ok().flatten();
    let usage = meter.as_ref().map(UsageMeter::take);
    let flows = flows.load(Ordering::Relaxed);

    println!();
    println!("| endpoint | requests | errors | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---|---|---|---|---|---|");
    for (index, name) in ENDPOINTS.iter().enumerate() {
        let mut micros: Vec<u32> = results
            .iter()
            .flat_map(|r| r[index].micros.iter().copied())
            .collect();
        let errors: u64 = results.iter().map(|r| r[index].errors).sum();
        micros.sort_unstable();
        println!(
            "| {name} | {} | {errors} | {:.2} | {:.2} | {:.2} | {:.2} |",
            micros.len(),
            percentile(&micros, 0.50),
            percentile(&micros, 0.95),
            percentile(&micros, 0.99),
            percentile(&micros, 1.0)
        );
    }
    println!();
    println!(
        "store: {}, users: {}, duration: {elapsed:.1} s",
        if o.url.is_some() {
            "external"
        } else {
            &o.store
        },
        o.users
    );
    println!(
        "full flows: {flows} ({:.0} flows/s)",
        flows as f64 / elapsed
    );
    if flows > 0 {
        let per_flow = cpu * 1e6 / flows as f64;
        println!(
            "server CPU per flow: {per_flow:.0} us (one P-256 verify here, now: {verify_micros:.0} us; ratio {:.2})",
            per_flow / verify_micros
        );
        if let Some(under_load) = verify_under_load_micros {
            println!(
                "one P-256 verify during the run (a probe thread's CPU time, median): {under_load:.0} us; ratio {:.2}",
                per_flow / under_load
            );
        }
    }
    if let Some(usage) = usage
        && flows > 0
    {
        println!(
            "DynamoDB per flow: {:.2} requests, {:.2} read units, {:.2} write units ({:?})",
            usage.total_requests() as f64 / flows as f64,
            usage.read_units / flows as f64,
            usage.write_units / flows as f64,
            usage.requests
        );
    }
    if let Some(store) = &outbox_probe {
        // Without --events-webhook the tenant has none, so its changes write no row (DESIGN
        // 10) and the worker only polls; with it, rows left say whether the worker kept up.
        println!(
            "events outbox rows left: {}",
            store.outbox_len().unwrap_or(u64::MAX)
        );
    }
    if let Some(store) = outbox_probe.as_ref().filter(|_| o.events_webhook) {
        // The rows made at the end of the run, delivered before counting (the worker polls
        // every half second): the count per flow is then exact.
        let drained = Instant::now();
        while store.outbox_len().unwrap_or(0) > 0 && drained.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let delivered = events_delivered.load(Ordering::Relaxed);
        println!(
            "events delivered: {delivered} ({:.2} per flow; outbox emptied {} ms after the run)",
            delivered as f64 / flows.max(1) as f64,
            drained.elapsed().as_millis()
        );
    }
    // The servers run until the process ends.
    std::process::exit(0);
}
