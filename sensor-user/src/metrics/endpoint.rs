//! The HTTP endpoint for Prometheus and for the orchestrator's probes: `/metrics`, `/healthz`
//! (the process answers) and `/readyz` (programs attached and /proc seeded). It serves counters
//! only, never alert contents.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, http::header, response::IntoResponse};

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
#[error(
    "metrics endpoint: cannot listen on {addr}: {source} (set metrics.listen or \
     --metrics-listen to a free address)"
)]
pub struct EndpointError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// A bound endpoint, serving until dropped.
pub struct Endpoint {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves on the current runtime.
pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Endpoint, EndpointError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| EndpointError { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EndpointError { addr, source })?;
    let app = Router::new()
        .route("/metrics", axum::routing::get(metrics_text))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(metrics);
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            log::error!("metrics endpoint stopped: {err}");
        }
    });
    log::info!("metrics on http://{addr}/metrics");
    Ok(Endpoint { addr, task })
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{err}\n"),
        ),
    }
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: attaching programs or seeding from /proc\n",
        )
    }
}
