//! `clients` and `status`: what the fleet ledger says each client runs.

use veltrix_client::{Client, ClientFilter, ClientState, RevisionStatus};

use crate::{Failure, cli::Output, output, usage};

pub async fn clients(
    client: &Client,
    out: Output,
    namespace: &str,
    state: Option<String>,
    selector: String,
) -> Result<(), Failure> {
    let state = match state {
        Some(s) => Some(ClientState::parse(&s).ok_or_else(|| {
            usage(format!("--state {s}: must be one of synced, pending, stale, rejected, disconnected"))
        })?),
        None => None,
    };
    let list = client.clients(namespace, &ClientFilter { state, selector }).await?;
    output::show(out, &list, |list| {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|c| {
                let error = c.last_error.as_ref().map_or_else(String::new, |e| {
                    format!("{}@{}: {}", e.step, e.revision, output::printable(&e.error))
                });
                vec![
                    c.client_id.clone(),
                    c.state.as_str().to_owned(),
                    c.applied_revision.to_string(),
                    c.target_revision.to_string(),
                    output::time(c.last_seen),
                    c.replica.clone(),
                    error,
                ]
            })
            .collect();
        output::table(&["CLIENT", "STATE", "APPLIED", "NEWEST", "LAST SEEN", "REPLICA", "LAST ERROR"], &rows);
    })
}

pub async fn status(client: &Client, out: Output, namespace: &str, revision: Option<u64>) -> Result<(), Failure> {
    let status = client.revision_status(namespace, revision).await?;
    output::show(out, &status, |s| println!("{}", summary(s)))
}

/// "revision 42: 97 applied, 1 pending, 2 rejected: check: invalid port (2
/// clients: web-7, web-9)".
pub fn summary(s: &RevisionStatus) -> String {
    let mut parts = vec![format!("{} applied", s.applied)];
    for (n, what) in
        [(s.pending, "pending"), (s.stale, "stale"), (s.rejected, "rejected"), (s.disconnected, "disconnected")]
    {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let mut line = format!("revision {}: {}", s.revision, parts.join(", "));
    for r in &s.rejections {
        let clients = if r.count == 1 { "1 client".to_owned() } else { format!("{} clients", r.count) };
        let more = if (r.client_ids.len() as u32) < r.count { ", ..." } else { "" };
        line.push_str(&format!(
            ": {}: {} ({clients}: {}{more})",
            r.step,
            output::printable(&r.error),
            r.client_ids.join(", ")
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use veltrix_client::{Rejection, RevisionStatus};

    #[test]
    fn the_summary_reads_like_a_sentence() {
        let s = RevisionStatus {
            revision: 42,
            applied: 97,
            pending: 1,
            stale: 0,
            rejected: 2,
            disconnected: 0,
            rejections: vec![Rejection {
                step: "check".into(),
                error: "invalid port".into(),
                count: 2,
                client_ids: vec!["web-7".into(), "web-9".into()],
            }],
        };
        assert_eq!(
            super::summary(&s),
            "revision 42: 97 applied, 1 pending, 2 rejected: check: invalid port (2 clients: web-7, web-9)"
        );
    }
}
