//! Metrics as Prometheus sees them: a scrape of `/metrics`, one value, the
//! families exported, and the names the dashboard and the alerts use.

use std::collections::{BTreeSet, HashSet};

/// A free loopback address for a `/metrics` endpoint (outside the
/// ephemeral range, so another test's servers do not take it first).
pub fn metrics_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], veltrix_testkit::free_fixed_port()))
}

/// The Prometheus text of a `/metrics` endpoint.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n").await.expect("request");
    let mut out = String::new();
    conn.read_to_string(&mut out).await.expect("response");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of a metric line `name value` (without labels).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sum of a metric's labelled lines (`name{labels} value`) whose labels
/// include all of `labels` (each written `key="value"`).
pub fn labelled(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The Grafana dashboard's query expressions, in panel order.
pub fn dashboard_exprs() -> Vec<String> {
    const DASHBOARD: &str = include_str!("../../../deploy/grafana/dashboards/veltrix.json");
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "the dashboard has queries: {exprs:?}");
    exprs
}

/// The `veltrix_` metric names the dashboard's queries use (histogram
/// series by their family name).
pub fn dashboard_metric_names() -> BTreeSet<String> {
    metric_names(&dashboard_exprs().join("\n"))
}

/// The `veltrix_` metric names the alert rules use.
pub fn alert_metric_names() -> BTreeSet<String> {
    const ALERTS: &str = include_str!("../../../deploy/prometheus/alerts.yml");
    let exprs: Vec<&str> = ALERTS.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    let names = metric_names(&exprs.join("\n"));
    assert!(names.len() >= 8, "the alerts use veltrix metrics: {names:?}");
    names
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("veltrix_") {
        let rest = &text[i..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        names.insert(rest[..end].to_owned());
    }
    names
}

/// Metric family names in a Prometheus text exposition.
pub fn exported(text: &str) -> HashSet<String> {
    text.lines()
        .filter(|l| l.starts_with("veltrix_"))
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}
