//! Prometheus metrics: the `metrics` facade with one process-wide recorder,
//! rendered as Prometheus text on `GET /metrics` by a small HTTP/1 endpoint.
//! Without an endpoint no recorder is installed and every metric call is a
//! no-op.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Bucket bounds of every histogram, in seconds.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder, installed on first use.
pub fn recorder() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Histograms as Prometheus histograms (buckets), so that dashboards
        // can aggregate them across replicas; seconds from 0.5 ms to 10 s.
        let builder = PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS).unwrap_or_else(|e| {
            // Only an empty bucket list is refused.
            tracing::warn!(error = %e, "histogram buckets refused; histograms are summaries");
            PrometheusBuilder::new()
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only this one's metrics");
        }
        handle
    })
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub fn serve_metrics(listener: TcpListener, shutdown: CancellationToken) -> impl Future<Output = ()> {
    serve_endpoints(listener, shutdown, None)
}

/// Serves `GET /metrics`, and with `healthy` also `GET /healthz` (200 while
/// it is true, else 503), on `listener` until `shutdown`. The recorder is
/// installed when this is called, not when the future first runs: what the
/// process records right after spawning it is not lost to no recorder.
pub fn serve_endpoints(
    listener: TcpListener,
    shutdown: CancellationToken,
    healthy: Option<Arc<AtomicBool>>,
) -> impl Future<Output = ()> {
    let handle = recorder();
    serve(listener, shutdown, healthy, handle)
}

async fn serve(
    listener: TcpListener,
    shutdown: CancellationToken,
    healthy: Option<Arc<AtomicBool>>,
    handle: &'static PrometheusHandle,
) {
    let upkeep = {
        let shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            while !shutdown.is_cancelled() {
                tick.tick().await;
                handle.run_upkeep();
            }
        }
    };
    tokio::spawn(upkeep);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    tokio::spawn(respond(conn, handle, healthy.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn respond(mut conn: TcpStream, handle: &'static PrometheusHandle, healthy: Option<Arc<AtomicBool>>) {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    // Read the request head (bounded in size and time).
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        while len < buf.len() {
            match conn.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let request = String::from_utf8_lossy(&buf[..len]);
    let (status, body) = match (head, request.split_whitespace().nth(1)) {
        (Ok(()), Some(path)) if path == "/metrics" || path.starts_with("/metrics?") => ("200 OK", handle.render()),
        (Ok(()), Some("/healthz")) if healthy.is_some() => {
            if healthy.is_some_and(|h| h.load(Ordering::Relaxed)) {
                ("200 OK", "ok\n".to_owned())
            } else {
                ("503 Service Unavailable", "not ready\n".to_owned())
            }
        }
        (Ok(()), Some(_)) => ("404 Not Found", "not found: try /metrics\n".to_owned()),
        _ => ("400 Bad Request", String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes()).await;
    let _ = conn.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_prometheus_text() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_metrics(listener, shutdown.clone()));
        recorder();
        metrics::counter!("veltrix_test_events_total").increment(3);
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("veltrix_test_events_total 3"), "{out}");
        shutdown.cancel();
    }
}
