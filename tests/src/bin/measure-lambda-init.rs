//! Measures each Lambda function's binary size and cold init time: from process start to the
//! first API Gateway event answered, through a local Runtime API, on a DynamoDB-compatible
//! server on loopback. Median of several runs. Results go in docs/performance.md.
//!
//! ```sh
//! cargo build --release -p track -p add-authenticator -p challenge -p validate
//! cargo run -p e2e-tests --bin measure-lambda-init -- target/release 15
//! ```

use e2e_tests::lambda_events::{FIXTURES, SECRET_KEY, TENANT_ID, fixture_path};
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::dynamodb::LocalDynamo;
use testkit::runtime_api::{Outcome, RuntimeApi};

const FUNCTIONS: [(&str, &str); 4] = [
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

    println!(
        "| function | binary (bytes) | init to first response, median (ms) | min | max | warm invocation, median (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    for (function, fixture_name) in FUNCTIONS {
        let binary = bin_dir.join(function);
        let size = std::fs::metadata(&binary)
            .unwrap_or_else(|_| panic!("no {}", binary.display()))
            .len();
        let fixture = FIXTURES.iter().find(|f| f.name == fixture_name).unwrap();
        let event = std::fs::read_to_string(fixture_path(fixture)).unwrap();
        let mut samples = Vec::with_capacity(runs);
        let mut warm = Vec::new();
        for run in 0..runs {
            let runtime = RuntimeApi::start().await.unwrap();
            let started = Instant::now();
            let mut child = runtime
                .command(&binary, function, &table, &local.endpoint())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let outcome = runtime
                .invoke(&event, Duration::from_secs(30))
                .await
                .unwrap();
            samples.push(started.elapsed());
            assert!(
                matches!(outcome, Outcome::Response(_)),
                "{function}: {outcome:?}"
            );
            // Warm invocations of the same process, once: the time per request after init.
            if run == 0 {
                for _ in 0..200 {
                    let started = Instant::now();
                    runtime
                        .invoke(&event, Duration::from_secs(30))
                        .await
                        .unwrap();
                    warm.push(started.elapsed());
                }
                warm.sort();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {function} | {size} | {:.1} | {:.1} | {:.1} | {:.2} |",
            ms(samples[samples.len() / 2]),
            ms(samples[0]),
            ms(samples[samples.len() - 1]),
            ms(warm[warm.len() / 2])
        );
    }
}
