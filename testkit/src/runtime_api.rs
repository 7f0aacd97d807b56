//! A minimal Lambda Runtime API (the HTTP interface a Lambda execution environment offers its
//! bootstrap binary), so that a function's real binary can be run and invoked on this machine.
//!
//! It implements the calls a runtime makes: `GET /runtime/invocation/next` (long-polls for the
//! next event), `POST /runtime/invocation/{id}/response`, `.../{id}/error` and
//! `/runtime/init/error`, under `/2018-06-01`. Start the binary with
//! `AWS_LAMBDA_RUNTIME_API` set to [`RuntimeApi::address`], then [`RuntimeApi::invoke`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// What an invocation ended with: the body the runtime posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response(String),
    Error(String),
}

#[derive(Default)]
struct Shared {
    pending: Mutex<VecDeque<(String, String)>>,
    new_event: Notify,
    outcomes: Mutex<HashMap<String, Outcome>>,
    init_error: Mutex<Option<String>>,
    new_outcome: Notify,
    counter: Mutex<u64>,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    /// Serves the Runtime API on a free loopback port.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi { addr, shared, task })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the binary: `host:port`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` for the runtime and waits for what it posts back.
    pub async fn invoke(&self, event: &str, timeout: Duration) -> Result<Outcome, String> {
        let id = {
            let mut counter = self
                .shared
                .counter
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *counter += 1;
            format!("00000000-0000-4000-8000-{:012}", *counter)
        };
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((id.clone(), event.to_owned()));
        self.shared.new_event.notify_waiters();
        self.shared.new_event.notify_one();
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.shared.new_outcome.notified();
                if let Some(error) = self
                    .shared
                    .init_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                {
                    return Err(format!("init error: {error}"));
                }
                if let Some(outcome) = self
                    .shared
                    .outcomes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                {
                    return Ok(outcome);
                }
                notified.await;
            }
        })
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
    }
}

impl RuntimeApi {
    /// A command that runs a function's `bootstrap` binary the way Lambda does, against this
    /// Runtime API, serving `table` on the DynamoDB-compatible server at `dynamodb_endpoint`.
    pub fn command(
        &self,
        binary: &std::path::Path,
        function: &str,
        table: &str,
        dynamodb_endpoint: &str,
    ) -> std::process::Command {
        let mut command = std::process::Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", self.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            )
            .env("TABLE_NAME", table)
            .env("TRUSTED_DEVICE_DYNAMODB_ENDPOINT", dynamodb_endpoint);
        command
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let (id, event) = loop {
        let notified = shared.new_event.notified();
        if let Some(item) = shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        {
            break item;
        }
        notified.await;
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_secs(30);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:local".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, event)
}

fn record(shared: &Shared, id: String, outcome: Outcome) -> StatusCode {
    shared
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, outcome);
    shared.new_outcome.notify_waiters();
    StatusCode::ACCEPTED
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    record(
        &shared,
        id,
        Outcome::Response(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    record(
        &shared,
        id,
        Outcome::Error(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(String::from_utf8_lossy(&body).into_owned());
    shared.new_outcome.notify_waiters();
    StatusCode::ACCEPTED
}
