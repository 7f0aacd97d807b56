//! The local server: the four functions' routers merged into one `axum::serve`, on the
//! embedded store. The Lambda functions serve the same routers, so what runs here is what runs
//! in AWS (DESIGN 2).

pub mod conformance;
pub mod device;
pub mod device_cli;
pub mod dry_run;
pub mod http_client;
pub mod metrics_endpoint;
pub mod secret_strength;
pub mod server;
pub mod websocket;

pub use server::Limits;
pub use websocket::SocketLimits;

/// Writes `text` to standard output. When the reader has gone (`trusted-device ... | head -1`)
/// the process ends with status 141 (128 + SIGPIPE, what a shell reports for a tool that
/// SIGPIPE killed) and a line on standard error, instead of `println!`'s panic. Never status 0:
/// what was not written may have been a secret shown only once, or a failed check.
pub fn write_stdout(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            eprintln!("error: standard output was closed; what was left to print is lost");
            std::process::exit(141);
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}

/// `println!` through [`write_stdout`]: the CLI's way to print.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

use axum::Router;
use shared::App;
use shared::clock::{Clock, SystemClock};
use shared::http::{SharedApp, finish};
use shared::store::embedded::EmbeddedStore;
use shared::websocket::LocalSockets;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every route of every function, `(method, path)`.
pub fn all_routes() -> Vec<(&'static str, &'static str)> {
    [
        track::ROUTES,
        add_authenticator::ROUTES,
        challenge::ROUTES,
        validate::ROUTES,
    ]
    .concat()
}

/// The OpenAPI 3.1 document of the four functions' routes (issue #19, [`shared::openapi`]).
pub fn openapi_document() -> serde_json::Value {
    shared::openapi::document(&[
        track::openapi_operations,
        add_authenticator::openapi_operations,
        challenge::openapi_operations,
        validate::openapi_operations,
    ])
}

/// [`openapi_document`] as `docs/openapi.json` holds it: pretty-printed, with a final newline.
pub fn openapi_json() -> String {
    let mut text =
        serde_json::to_string_pretty(&openapi_document()).expect("a JSON value always serialises");
    text.push('\n');
    text
}

/// The four functions' routes in one router, with the shared layers.
pub fn router(app: SharedApp) -> Router {
    finish(function_routes(app))
}

fn function_routes(app: SharedApp) -> Router {
    Router::new()
        .merge(track::router(app.clone()))
        .merge(add_authenticator::router(app.clone()))
        .merge(challenge::router(app.clone()))
        .merge(validate::router(app))
}

/// The four functions' routes and the QR-code WebSocket ([`websocket`], spec 3.8): what the
/// local server serves. `app` must push to `sockets` ([`local_app`]).
pub fn local_router(app: SharedApp, sockets: LocalSockets, socket_limits: SocketLimits) -> Router {
    finish(function_routes(app.clone()).merge(websocket::router(app, sockets, socket_limits)))
}

/// `app` with a registry of local WebSockets that its claims and answers push to, at most
/// one per connection the server may hold.
pub fn local_app(app: App, limits: &Limits) -> (SharedApp, LocalSockets) {
    let sockets = LocalSockets::new(limits.max_connections.max(1));
    let app = app.with_socket_notifier(std::sync::Arc::new(sockets.clone()));
    (std::sync::Arc::new(app), sockets)
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes; requests in flight
/// finish first, and open WebSockets are closed. Connections, timeouts and limits: [`server`].
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: Limits,
    socket_limits: SocketLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (app, sockets) = local_app(app, &limits);
    server::serve(
        listener,
        local_router(app, sockets, socket_limits),
        limits,
        shutdown,
    )
    .await
}

/// The embedded store's work beside the requests, as `trusted-device serve` runs it (and the
/// load tool, so that what it measures is what an operator runs): the events worker, which
/// delivers the outbox that the store writes in the transaction of each change (issue #19,
/// DESIGN 10), and the sweep of expired items every ten minutes, which DynamoDB's TTL does in
/// production (reads check expiry themselves, so the sweep only keeps the file small).
pub fn spawn_embedded_housekeeping(
    store: EmbeddedStore,
    policy: shared::events::outbox::RetryPolicy,
    max_failed_attempts: u32,
) {
    let worker = shared::events::outbox::OutboxWorker::new(
        store.clone(),
        std::sync::Arc::new(shared::webhook::HttpWebhookSender::default()),
        policy,
        max_failed_attempts,
    );
    tokio::spawn(worker.run(std::future::pending()));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Ok(purged) = store.purge_expired(SystemClock.now()).await
                && purged > 0
            {
                tracing::info!(purged, "expired records removed");
            }
        }
    });
}

/// A server running in this process, for tests: started on a port the OS picks.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Binds `127.0.0.1:0` and serves `app` in the background, with the default limits.
    pub async fn start(app: App) -> std::io::Result<RunningServer> {
        Self::start_with_limits(app, Limits::default()).await
    }

    /// [`RunningServer::start`] with other limits (short timeouts for tests).
    pub async fn start_with_limits(app: App, limits: Limits) -> std::io::Result<RunningServer> {
        Self::start_with_all_limits(app, limits, SocketLimits::default()).await
    }

    /// [`RunningServer::start_with_limits`] with other WebSocket limits too.
    pub async fn start_with_all_limits(
        app: App,
        limits: Limits,
        socket_limits: SocketLimits,
    ) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, app, limits, socket_limits, async {
            let _ = rx.await;
        }));
        Ok(RunningServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The base URL the SDKs are configured with, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The QR-code WebSocket's URL, as the browser SDK derives it from [`Self::base_url`].
    pub fn websocket_url(&self) -> String {
        format!("ws://{}{}", self.addr, shared::websocket::PATH)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
