//! A real `prometheus` server scraping the services under test, and its
//! query API, for tests of what operators see (dashboards, alerts).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use crate::{
    free_port,
    process::{Server, temp_dir},
};

/// A `prometheus` with its storage in a temporary directory, scraping each
/// `(job, address)` target's `/metrics` every second.
pub struct PrometheusServer(Server);

impl PrometheusServer {
    const ENV: &str = "VELTRIX_PROMETHEUS";
    const HINT: &str = "Install it (Debian: apt-get install prometheus; `cargo xtask test` does)";

    pub fn start(targets: &[(&str, SocketAddr)]) -> Self {
        let dir = temp_dir("prometheus");
        let mut config = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n");
        for (job, addr) in targets {
            config.push_str(&format!("  - job_name: {job}\n    static_configs:\n      - targets: [\"{addr}\"]\n"));
        }
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        let args = [
            "--config.file={dir}/prometheus.yml",
            "--storage.tsdb.path={dir}/data",
            "--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        .map(String::from)
        .to_vec();
        let program = std::env::var(Self::ENV).unwrap_or_else(|_| "prometheus".to_owned());
        Self(Server::in_dir(dir, "prometheus", program, Self::ENV, Self::HINT, free_port(), args))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    /// The result of an instant query (`data.result`, a JSON array), or the
    /// error Prometheus answered with.
    pub fn query(&self, expr: &str) -> Result<serde_json::Value, String> {
        let body = self.get(&format!("/api/v1/query?query={}", percent_encode(expr)))?;
        let mut answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"))?;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        Ok(answer["data"]["result"].take())
    }

    /// Every target's scrape health, as `(job, health)` pairs.
    pub fn target_health(&self) -> Result<Vec<(String, String)>, String> {
        let body = self.get("/api/v1/targets")?;
        let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"))?;
        let active = answer["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        Ok(active
            .iter()
            .map(|t| {
                let job = t["labels"]["job"].as_str().unwrap_or_default().to_owned();
                (job, t["health"].as_str().unwrap_or_default().to_owned())
            })
            .collect())
    }

    /// One HTTP/1.0 GET (no chunked encoding; the server closes the connection).
    fn get(&self, path_and_query: &str) -> Result<String, String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.0.port)).map_err(|e| format!("connect: {e}"))?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        write!(conn, "GET {path_and_query} HTTP/1.0\r\nHost: prometheus\r\n\r\n").map_err(|e| e.to_string())?;
        let mut response = String::new();
        conn.read_to_string(&mut response).map_err(|e| format!("read: {e}"))?;
        match response.split_once("\r\n\r\n") {
            Some((_, body)) => Ok(body.to_owned()),
            None => Err(format!("no HTTP response: {response}")),
        }
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encodes_queries() {
        assert_eq!(super::percent_encode(r#"rate(x{a!="OK"}[5s])"#), "rate%28x%7Ba%21%3D%22OK%22%7D%5B5s%5D%29");
    }
}
