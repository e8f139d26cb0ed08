//! `veltrixctl rollout start|status|pause|resume|abort|promote|list`.

use std::time::SystemTime;

use veltrix_client::{
    Client, Rollout, RolloutAction as Action, RolloutActionOptions, RolloutOptions, RolloutStep, RolloutStrategy,
};

use crate::{
    Failure,
    apply::{self, File},
    cli::{Output, RolloutAction, RolloutCommand},
    output, usage,
};

pub async fn run(c: &Client, out: Output, command: RolloutCommand) -> Result<(), Failure> {
    match command {
        RolloutCommand::Start {
            namespace,
            file,
            steps,
            bake,
            min_applied,
            max_rejected,
            canary,
            ack_timeout,
            expect_revision,
            reason,
            request_id,
        } => {
            let File::ChangeSet { reason: file_reason, changes } = apply::read(&file, false)? else {
                return Err(usage("a rollout's file is a change set (a list of `changes`), not a desired state"));
            };
            let mut selector = std::collections::BTreeMap::new();
            for pair in &canary {
                let (k, v) = pair.split_once('=').ok_or_else(|| usage(format!("--canary {pair}: must be k=v")))?;
                selector.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            let strategy = RolloutStrategy {
                steps: steps
                    .iter()
                    .map(|&percent| RolloutStep {
                        percent,
                        bake,
                        min_applied_percent: min_applied,
                        max_rejected_percent: max_rejected,
                    })
                    .collect(),
                canary: selector,
                ack_timeout,
            };
            let options = RolloutOptions {
                expected_revision: expect_revision,
                request_id,
                reason: reason.or(file_reason).unwrap_or_default(),
            };
            let (id, revision) = c.start_rollout(&namespace, changes, &strategy, &options).await?;
            let answer = serde_json::json!({ "rollout_id": id, "revision": revision });
            output::show(out, &answer, |_| println!("rollout {id} started at revision {revision}"))
        }
        RolloutCommand::Status { namespace, id } => {
            let r = c.rollout(&namespace, id.as_deref()).await?;
            output::show(out, &r, |r| println!("{}", status(r, SystemTime::now())))
        }
        RolloutCommand::Pause(a) => act(c, out, a, Action::Pause).await,
        RolloutCommand::Resume(a) => act(c, out, a, Action::Resume).await,
        RolloutCommand::Abort(a) => act(c, out, a, Action::Abort).await,
        RolloutCommand::Promote(a) => act(c, out, a, Action::Promote).await,
        RolloutCommand::List { namespace } => {
            let list = c.rollouts(&namespace).await?;
            output::show(out, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|r| {
                        let started = r.transitions.first();
                        vec![
                            r.id.clone(),
                            r.state.to_owned(),
                            format!("{}/{} ({}%)", r.step.saturating_add(1), r.strategy.steps.len(), r.percent),
                            r.base_revision.to_string(),
                            output::time(started.and_then(|t| t.time)),
                            started.map(|t| t.actor.clone()).unwrap_or_default(),
                            r.transitions.last().map(|t| t.reason.clone()).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["ROLLOUT", "STATE", "STEP", "BASE", "STARTED", "BY", "LAST REASON"], &rows);
            })
        }
    }
}

async fn act(c: &Client, out: Output, a: RolloutAction, action: Action) -> Result<(), Failure> {
    let id = match a.id {
        Some(id) => id,
        None => c.rollout(&a.namespace, None).await?.id,
    };
    let options = RolloutActionOptions {
        expected_version: a.expect_version,
        request_id: a.request_id,
        reason: a.reason.unwrap_or_default(),
    };
    let r = c.rollout_action(action, &a.namespace, &id, &options).await?;
    output::show(out, &r, |r| println!("{}", status(r, SystemTime::now())))
}

/// "rollout r-1a2b RUNNING at step 2/3 (50%): cohort 40: 38 applied, 0
/// rejected, 2 pending; next gate in 42 s".
pub fn status(r: &Rollout, now: SystemTime) -> String {
    let mut line = format!(
        "rollout {} {} at step {}/{} ({}%)",
        r.id,
        r.state,
        r.step.saturating_add(1),
        r.strategy.steps.len(),
        r.percent
    );
    if let Some(i) = r.current {
        line.push_str(&format!(
            ": cohort {}: {} applied, {} rejected, {} pending",
            i.cohort, i.applied, i.rejected, i.pending
        ));
    }
    if let Some(until) = r.bake_until {
        match until.duration_since(now) {
            Ok(left) => line.push_str(&format!("; next gate in {} s", left.as_secs().saturating_add(1))),
            Err(_) => line.push_str("; bake time over, waiting for ACKs"),
        }
    }
    if let Some(deadline) = r.ack_deadline.and_then(|d| d.duration_since(now).ok()) {
        line.push_str(&format!("; pauses without enough ACKs in {} s", deadline.as_secs().saturating_add(1)));
    }
    if let Some(last) = r.transitions.last() {
        line.push_str(&format!("; last: {} by {} ({}): {}", last.kind, last.triggered_by, last.actor, last.reason));
        for g in &last.rejections {
            line.push_str(&format!(
                "; {}: {} ({} clients: {})",
                g.step,
                output::printable(&g.error),
                g.count,
                g.client_ids.join(", ")
            ));
        }
    }
    if r.completed_revision > 0 {
        line.push_str(&format!("; committed at revision {}", r.completed_revision));
    }
    line
}
