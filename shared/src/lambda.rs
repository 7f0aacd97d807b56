//! The Lambda entry point the four functions share: their `main` builds the app once per
//! execution environment and hands its router to [`serve`].
//!
//! Requests arrive as API Gateway HTTP API (v2) events through `lambda_http`; the router, the
//! handlers and the error mapping are exactly those of the local server.

use crate::http::{RequestId, SharedApp, SourceIp, finish, normalize_path};
use crate::store::dynamodb::{self, DynamoConfig, DynamoStore, UsageMeter};
use crate::telemetry::{self, LogFormat};
use crate::webhook::WebhookNotifier;
use crate::{App, Ports, clock::SystemClock, config::Settings};
use axum::Router;
use lambda_http::RequestExt as _;
use std::sync::Arc;
use tower::ServiceExt as _;

/// Builds what every invocation shares, once: JSON logs, settings and the DynamoDB client
/// from the environment (`TABLE_NAME` is required; `TRUSTED_DEVICE_DYNAMODB_ENDPOINT`,
/// `RUST_LOG` and the `TRUSTED_DEVICE_*` settings of `Settings::from_env`, among them the
/// rate limits that `template.yaml` passes as parameters, are optional).
pub async fn app_from_env() -> Result<SharedApp, lambda_http::Error> {
    telemetry::init(LogFormat::Json);
    install_metrics()?;
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let settings = Settings::from_env()?;
    let config = DynamoConfig {
        endpoint_url: std::env::var("TRUSTED_DEVICE_DYNAMODB_ENDPOINT").ok(),
    };
    let meter = UsageMeter::default();
    let client = dynamodb::lambda_client(&config, meter.clone()).await?;
    let store = DynamoStore::new(client, table, meter);
    // The composition root of the functions: the adapters are built here and handed in.
    let ports = Ports {
        store: Arc::new(store),
        clock: Arc::new(SystemClock),
        notifier: Arc::new(WebhookNotifier::for_settings(&settings)),
    };
    #[allow(unused_mut, reason = "changed only with the feature sockets-aws")]
    let mut app = App::new(ports, settings);
    // QR-code states go to the WebSocket API (spec 3.8) where the template says it is.
    #[cfg(feature = "sockets-aws")]
    if let Ok(endpoint) = std::env::var(crate::sockets_aws::ENDPOINT_ENV) {
        let sockets = crate::sockets_aws::ApiGatewaySockets::new(&endpoint).await?;
        app = app.with_socket_notifier(Arc::new(sockets));
    }
    Ok(Arc::new(app))
}

/// The EMF collector [`install_metrics`] installed, flushed after each invocation.
static METRICS: std::sync::OnceLock<&'static metrics_cloudwatch_embedded::Collector> =
    std::sync::OnceLock::new();

/// Installs the CloudWatch Embedded Metric Format recorder as the process's metrics recorder
/// (DESIGN 11): what `shared::metric` records is written to stdout as EMF JSON lines after
/// each invocation ([`handler`]), which CloudWatch Logs turns into metrics with no API call.
/// No dimension is set for the whole process (the function name is not one either: an alarm
/// sums a metric across the four functions without a metric-math expression).
fn install_metrics() -> Result<(), lambda_http::Error> {
    if METRICS.get().is_some() {
        return Ok(());
    }
    let namespace = std::env::var(crate::metric::NAMESPACE_ENV)
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| crate::metric::DEFAULT_NAMESPACE.to_owned());
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .init()
        .map_err(|error| format!("the metrics recorder could not be installed: {error}"))?;
    crate::metric::describe();
    let _ = METRICS.set(collector);
    Ok(())
}

/// Writes the metrics recorded since the last flush as EMF lines on stdout (one line per
/// label set; nothing when nothing was recorded). A failed write loses those numbers, never
/// the response. [`handler`] calls it after each HTTP invocation, [`flushed`] after each
/// event of a function with a handler of its own.
pub fn flush_metrics() {
    if let Some(collector) = METRICS.get()
        && let Err(error) = collector.flush(std::io::stdout().lock())
    {
        tracing::warn!(error = %error, "metrics could not be written");
    }
}

/// One invocation of a function whose handler is not HTTP (qr-socket, events): its work,
/// then the metrics it recorded, written in its invocation as [`handler`] does for HTTP
/// (DESIGN 11).
pub async fn flushed<T>(work: impl std::future::Future<Output = T>) -> T {
    let output = work.await;
    flush_metrics();
    output
}

/// The router as a Lambda handler: the shared layers, the Lambda request id in the log line,
/// API Gateway's source address for the handlers, the path normalised before routing, and
/// the metrics flushed once the response is ready (before the runtime posts it, so the lines
/// belong to this invocation's log stream and time).
pub fn handler(
    router: Router,
) -> impl tower::Service<
    lambda_http::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    finish(router)
        .map_request(|mut request: lambda_http::Request| {
            if let Some(id) = request.lambda_context_ref().map(|c| c.request_id.clone()) {
                request.extensions_mut().insert(RequestId(id));
            }
            if let Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) =
                request.request_context_ref()
                && let Some(ip) = context
                    .http
                    .source_ip
                    .as_deref()
                    .and_then(|ip| ip.parse().ok())
            {
                request.extensions_mut().insert(SourceIp(ip));
            }
            normalize_path(request)
        })
        .map_future(|response| async move {
            let response = response.await;
            flush_metrics();
            response
        })
}

/// Runs `router` as this process's Lambda handler until the runtime stops it.
pub async fn serve(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(handler(router)).await
}
