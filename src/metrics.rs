//! Prometheus metrics in the text exposition format, served on `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The service's counters.
#[derive(Default)]
pub struct Metrics {
    rpc_requests: Mutex<BTreeMap<String, u64>>,
    overdue_announced: AtomicU64,
    overdue_scan_failures: AtomicU64,
    /// Per background worker: (items worked on, failed rounds).
    workers: Mutex<BTreeMap<&'static str, (u64, u64)>>,
}

impl Metrics {
    pub fn count_rpc(&self, path: &str) {
        let mut map = self.rpc_requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(path.to_owned()).or_default() += 1;
    }

    pub fn count_overdue_announced(&self, n: usize) {
        self.overdue_announced
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn count_overdue_scan_failure(&self) {
        self.overdue_scan_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A background worker's round: how many items it worked on, or that it failed.
    pub fn count_worker_round(&self, worker: &'static str, result: Result<usize, ()>) {
        let mut map = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(worker).or_default();
        match result {
            Ok(n) => entry.0 += n as u64,
            Err(()) => entry.1 += 1,
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP dunning_grpc_requests_total gRPC requests received, by method.\n");
        out.push_str("# TYPE dunning_grpc_requests_total counter\n");
        for (path, n) in self
            .rpc_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.push_str(&format!(
                "dunning_grpc_requests_total{{method=\"{path}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP dunning_invoices_overdue_announced_total invoice.overdue events appended.\n",
        );
        out.push_str("# TYPE dunning_invoices_overdue_announced_total counter\n");
        out.push_str(&format!(
            "dunning_invoices_overdue_announced_total {}\n",
            self.overdue_announced.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP dunning_overdue_scan_failures_total overdue scans that failed and will be retried.\n");
        out.push_str("# TYPE dunning_overdue_scan_failures_total counter\n");
        out.push_str(&format!(
            "dunning_overdue_scan_failures_total {}\n",
            self.overdue_scan_failures.load(Ordering::Relaxed)
        ));
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP dunning_background_items_total items background workers worked on (emails, payment requests, webhook deliveries), by worker.\n");
        out.push_str("# TYPE dunning_background_items_total counter\n");
        for (worker, (items, _)) in workers.iter() {
            out.push_str(&format!(
                "dunning_background_items_total{{worker=\"{worker}\"}} {items}\n"
            ));
        }
        out.push_str("# HELP dunning_background_failures_total background rounds that failed and will be retried, by worker.\n");
        out.push_str("# TYPE dunning_background_failures_total counter\n");
        for (worker, (_, failures)) in workers.iter() {
            out.push_str(&format!(
                "dunning_background_failures_total{{worker=\"{worker}\"}} {failures}\n"
            ));
        }
        out
    }
}

/// Serves `GET /metrics` until the task is dropped. Deliberately minimal: one request per
/// connection, no keep-alive, which is all a Prometheus scraper needs.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_rounds_are_counted_per_worker() {
        let metrics = Metrics::default();
        metrics.count_worker_round("webhooks", Ok(3));
        metrics.count_worker_round("webhooks", Ok(2));
        metrics.count_worker_round("webhooks", Err(()));
        metrics.count_worker_round("payment requests", Ok(1));
        let text = metrics.render();
        assert!(text.contains("dunning_background_items_total{worker=\"webhooks\"} 5\n"));
        assert!(text.contains("dunning_background_failures_total{worker=\"webhooks\"} 1\n"));
        assert!(text.contains("dunning_background_items_total{worker=\"payment requests\"} 1\n"));
    }
}
