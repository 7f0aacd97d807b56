//! Measures each Lambda function's binary size and cold init: from process start to the
//! first API Gateway event answered, through a local Runtime API, on a DynamoDB-compatible
//! server on loopback, in wall-clock time and in the process's own CPU time; then the CPU time
//! per warm invocation of one process. Median of several runs. A hello-world `lambda_http`
//! function (`tests/lambda-hello`, same release profile) is the yardstick: each run starts it
//! and then each function once, in turn, and the table gives each function's init CPU divided
//! by the hello-world's. Results go in docs/performance.md.
//!
//! ```sh
//! cargo build --release -p track -p add-authenticator -p challenge -p validate
//! cargo build --release -p lambda-hello
//! cargo run -p e2e-tests --bin measure-lambda-init -- target/release 15
//! ```
//!
//! CPU time is read from `/proc/<pid>/task/*/schedstat` (nanoseconds on a CPU, per thread),
//! so it is the function's own work and not the time it waited for the machine, which other
//! builds share.

use e2e_tests::lambda_events::{FIXTURES, SECRET_KEY, TENANT_ID, fixture_path};
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};

/// (binary, fixture event), the hello-world first: the yardstick. It answers any event.
const FUNCTIONS: [(&str, &str); 5] = [
    ("lambda-hello", "track"),
    ("track", "track"),
    ("add-authenticator", "get-credential"),
    ("challenge", "start-challenge"),
    ("validate", "validate"),
];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin_dir = std::path::PathBuf::from(args.get(1).map_or("target/release", String::as_str));
    let runs: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(15);

    let local = LocalDynamo::start().await;
    let table = local
        .table_with_tenant("measure", TENANT_ID, SECRET_KEY)
        .await;

    // Each run starts every function once, in turn, so that a change in the machine's speed
    // (other builds share the two cores) falls on the hello-world and the functions alike:
    // the ratio to the hello-world compares starts made minutes, not seconds, apart otherwise.
    let mut measured: Vec<Measured> = FUNCTIONS
        .iter()
        .map(|(function, fixture_name)| {
            let binary = bin_dir.join(function);
            let size = std::fs::metadata(&binary)
                .unwrap_or_else(|_| panic!("no {}", binary.display()))
                .len();
            let fixture = FIXTURES.iter().find(|f| f.name == *fixture_name).unwrap();
            Measured {
                function,
                binary,
                size,
                event: std::fs::read_to_string(fixture_path(fixture)).unwrap(),
                status: String::new(),
                samples: Vec::with_capacity(runs),
                init_cpu: Vec::with_capacity(runs),
                warm: Vec::new(),
                warm_cpu: Duration::ZERO,
            }
        })
        .collect();
    for run in 0..runs {
        for m in &mut measured {
            m.start_once(&local, &table, run == 0).await;
        }
    }

    println!(
        "| function | binary (bytes) | first answer's status | init to first response, median (ms) | min | max | init CPU, median (ms) | init CPU ÷ hello-world's | warm invocation, median (ms) | warm CPU per invocation (µs) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = |v: &[Duration]| v[v.len() / 2];
    // The first row is the hello-world (`FUNCTIONS[0]`): every ratio is to its init CPU.
    let mut yardstick = None;
    for m in &mut measured {
        m.samples.sort();
        m.init_cpu.sort();
        m.warm.sort();
        let init_cpu = median(&m.init_cpu);
        let yardstick = *yardstick.get_or_insert(init_cpu);
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2}× | {:.2} | {:.0} |",
            m.function,
            m.size,
            m.status,
            ms(median(&m.samples)),
            ms(m.samples[0]),
            ms(m.samples[m.samples.len() - 1]),
            ms(init_cpu),
            init_cpu.as_secs_f64() / yardstick.as_secs_f64(),
            ms(median(&m.warm)),
            m.warm_cpu.as_secs_f64() * 1e6 / f64::from(WARM_INVOCATIONS)
        );
    }
}

/// One function's binary, its fixture event, and what its starts measured so far.
struct Measured {
    function: &'static str,
    binary: std::path::PathBuf,
    size: u64,
    event: String,
    /// The API Gateway response's status: what the function answered, not only that it
    /// answered (a binary built wrongly can answer every event with a 500).
    status: String,
    samples: Vec<Duration>,
    init_cpu: Vec<Duration>,
    warm: Vec<Duration>,
    warm_cpu: Duration,
}

impl Measured {
    /// Starts the function once, answers its first event (its cold init), and with `warm`
    /// the [`WARM_INVOCATIONS`] after it in the same process.
    async fn start_once(&mut self, local: &LocalDynamo, table: &str, warm: bool) {
        let runtime = RuntimeApi::start().await.unwrap();
        let started = Instant::now();
        let mut child = runtime
            .command(&self.binary, self.function, table, &local.endpoint())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let outcome = runtime
            .invoke(&self.event, Duration::from_secs(30))
            .await
            .unwrap();
        self.samples.push(started.elapsed());
        let cpu_at_init = process_cpu(child.id());
        self.init_cpu.push(cpu_at_init);
        let Outcome::Response(response) = &outcome else {
            panic!("{}: {outcome:?}", self.function);
        };
        self.status = serde_json::from_str::<serde_json::Value>(response)
            .ok()
            .and_then(|r| r["statusCode"].as_u64())
            .map_or_else(|| "?".to_owned(), |code| code.to_string());
        if warm {
            for _ in 0..WARM_INVOCATIONS {
                let started = Instant::now();
                runtime
                    .invoke(&self.event, Duration::from_secs(30))
                    .await
                    .unwrap();
                self.warm.push(started.elapsed());
            }
            self.warm_cpu = process_cpu(child.id()).saturating_sub(cpu_at_init);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Warm invocations of the first process of each function.
const WARM_INVOCATIONS: u32 = 200;

/// CPU time the process's live threads have run so far: the first field of each thread's
/// `schedstat` (nanoseconds). The Lambda runtime's threads live as long as the process.
fn process_cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the function is running");
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}
