//! Measures what open QR-code WebSockets cost the local server in memory (docs/performance.md):
//! the server binary is started on a fresh data directory, `N` sockets are opened against it,
//! and its resident set size (`VmRSS` from `/proc/<pid>/status`) is read at each step:
//!
//! 1. `N` sockets open, each silent (within the first-message timeout);
//! 2. each has created one QR code (`CREATE_CHALLENGE` answered);
//! 3. each has sent a flood of `FLOOD` more creates and bad messages, every one answered
//!    (`too_many_requests` past the per-connection limit, `invalid_request`);
//! 4. all closed.
//!
//! ```sh
//! cargo build --release -p trusted-device -p e2e-tests --bin measure-websocket-memory
//! ./target/release/measure-websocket-memory target/release/trusted-device 1000
//! ```

use futures_util::{SinkExt as _, StreamExt as _};
use std::process::Stdio;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const FLOOD: usize = 20;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .map_or("target/release/trusted-device", String::as_str);
    let count: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tokio::process::Command::new(server)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--max-connections", &(count + 100).to_string()])
        .args(["--max-connections-per-address", &(count + 100).to_string()])
        .env("TRUSTED_DEVICE_TENANT_ID", "measure")
        .env(
            "TRUSTED_DEVICE_SECRET_KEY",
            "sk_measure_9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        )
        // Many anonymous starts from one address: lift that limit for the measurement.
        .env("TRUSTED_DEVICE_ANONYMOUS_QR_STARTS_PER_SOURCE", "1000000")
        .env("TRUSTED_DEVICE_ANONYMOUS_QR_LIVE_CAP", "10000000")
        .env("TRUSTED_DEVICE_DURABILITY", "normal")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws-v1-challenge");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm up: one socket through a whole create, so lazily built state is in the baseline.
    let mut sockets = Vec::new();
    let open = || async {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "authsignal-ws, x.authsignal.tenant.measure"
                .parse()
                .unwrap(),
        );
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    let create = Message::text(
        r#"{"type":"CREATE_CHALLENGE","data":{"challengeType":"QR_CODE","actionCode":"kioskSignIn"}}"#,
    );
    {
        let mut warm = open().await;
        warm.send(create.clone()).await.unwrap();
        warm.next().await.unwrap().unwrap();
        warm.close(None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = rss_kib(pid);
    println!("sockets: {count}; server RSS at start: {baseline} KiB");

    for _ in 0..count {
        sockets.push(open().await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let silent = rss_kib(pid);
    report("open, silent", silent, baseline, count);

    for socket in &mut sockets {
        socket.send(create.clone()).await.unwrap();
    }
    for socket in &mut sockets {
        socket.next().await.unwrap().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let created = rss_kib(pid);
    report("one QR code created each", created, baseline, count);

    for socket in &mut sockets {
        for i in 0..FLOOD {
            let message = if i % 2 == 0 {
                create.clone()
            } else {
                Message::text("not json")
            };
            socket.send(message).await.unwrap();
        }
    }
    for socket in &mut sockets {
        for _ in 0..FLOOD {
            socket.next().await.unwrap().unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flooded = rss_kib(pid);
    report(
        &format!("after a flood of {FLOOD} messages each"),
        flooded,
        baseline,
        count,
    );

    for mut socket in sockets {
        let _ = socket.close(None).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = rss_kib(pid);
    report("all closed", closed, baseline, count);
    child.kill().await.unwrap();
}

fn report(step: &str, rss: u64, baseline: u64, count: usize) {
    let per = (rss.saturating_sub(baseline) as f64 * 1024.0) / count as f64;
    println!(
        "| {step} | {rss} KiB | {:+} KiB | {:.0} bytes per socket |",
        rss as i64 - baseline as i64,
        per
    );
}
