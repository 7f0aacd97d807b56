//! The local server's metrics: the counters of `shared::metric` in the Prometheus text format
//! at `GET /metrics`, on an address of their own (`serve --metrics-addr`), off by default.
//!
//! A separate listener, never a route of the API: the API's address faces the SDKs' clients,
//! and what the service counts (routes, error codes, how often signatures fail) is for its
//! operator (DESIGN 11). The recorder is `metrics-exporter-prometheus`'s; this serves its
//! rendering with the axum the server already uses.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Duration;
use tokio::net::TcpListener;

/// The latency buckets, in milliseconds: the local server answers in about a millisecond, a
/// store or webhook stall takes seconds.
const LATENCY_BUCKETS_MS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

/// Installs the Prometheus recorder as the process's metrics recorder. Prometheus's naming
/// conventions: counters end in `_total`, the latency in `_milliseconds`.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .with_recommended_naming(true)
        .set_buckets_for_metric(
            Matcher::Full(shared::metric::name::HTTP_REQUEST_DURATION.to_owned()),
            LATENCY_BUCKETS_MS,
        )
        .map_err(|e| format!("the metrics recorder could not be built: {e}"))?
        .install_recorder()
        .map_err(|e| format!("the metrics recorder could not be installed: {e}"))?;
    shared::metric::describe();
    Ok(handle)
}

/// The `/metrics` router; any other path is a 404.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = handle.render();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    )],
                    body,
                )
                    .into_response()
            }
        }),
    )
}

/// Serves `/metrics` on `listener` for as long as the process runs, and keeps the recorder's
/// histograms drained between scrapes (the exporter's upkeep, which its own listener would run).
pub fn spawn(listener: TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(handle)).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
}
