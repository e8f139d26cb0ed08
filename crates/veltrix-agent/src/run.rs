//! The agent's loop: follow the Sync stream, coalesce bursts, and for each
//! new revision render → stage → check → swap → reload → health, then ACK;
//! any failure keeps (or puts back) the last good files and NACKs with its
//! step. `--once` does this one time, reports with ReportStatus and exits.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use tokio::time::Instant;
use veltrix_client::{Client, Entry, StatusReport, SyncOptions, SyncStep, WatchEvent, WatchStart};

use crate::{
    config::Settings,
    hooks::{self, HookEnv},
    output,
    render::{self, Config, relative},
    state::{self, Good},
};

/// Exit codes of `--once` (and of a fatal error).
pub mod exit {
    /// The revision was rejected (render, check, reload or health failed).
    pub const REJECTED: u8 = 1;
    /// The servers could not be reached in time.
    pub const UNREACHABLE: u8 = 3;
}

const AGENT: &str = "veltrix-agent";

/// What happened to one revision.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ack { revision: u64, digest: String },
    Nack { revision: u64, applied: u64, step: SyncStep, error: String },
}

pub struct Agent {
    settings: Settings,
    good: Option<Good>,
    healthy: Arc<AtomicBool>,
}

fn client(settings: &Settings) -> anyhow::Result<Client> {
    let mut builder = Client::builder().query_url(settings.query_url.clone()).command_url(settings.query_url.clone());
    if let Some(token) = &settings.token {
        builder = builder.token(token.clone());
    }
    if let Some(ca) = &settings.ca_cert {
        builder = builder.ca_certificate(std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?);
    }
    if let Some((cert, key)) = &settings.client_identity {
        builder = builder.client_identity(std::fs::read(cert)?, std::fs::read(key)?);
    }
    builder.build().map_err(|e| anyhow!("{e}"))
}

impl Agent {
    pub fn new(settings: Settings) -> Self {
        let good = settings.state_dir.as_deref().and_then(|d| state::load(d, &settings.namespace, &settings.prefix));
        Self { settings, good, healthy: Arc::new(AtomicBool::new(false)) }
    }

    pub fn healthy(&self) -> Arc<AtomicBool> {
        self.healthy.clone()
    }

    fn who(&self) -> SyncOptions {
        let mut o = SyncOptions::new(self.settings.client_id.clone());
        o.prefix.clone_from(&self.settings.prefix);
        o.labels.clone_from(&self.settings.labels);
        o.agent = (AGENT.into(), env!("CARGO_PKG_VERSION").into());
        o.keepalive = self.settings.keepalive;
        o
    }

    fn applied(&self) -> u64 {
        self.good.as_ref().map_or(0, |g| g.config.revision)
    }

    /// `--once`: the current keys, applied once and reported.
    pub async fn once(mut self) -> anyhow::Result<u8> {
        let client = client(&self.settings)?;
        let mut watch = client.watch(&self.settings.namespace, &self.settings.prefix, WatchStart::Snapshot);
        let first = tokio::time::timeout(self.settings.timeout, watch.next()).await;
        let (entries, revision) = match first {
            Ok(Some(Ok(WatchEvent::Snapshot { entries, revision }))) => (entries, revision),
            Ok(Some(Err(e))) => return Err(anyhow!("the query service refused: {e}")),
            Ok(_) => return Err(anyhow!("the query service ended the stream before a snapshot")),
            Err(_) => {
                eprintln!(
                    "veltrix-agent: could not reach the query service at {} within {:?}",
                    self.settings.query_url, self.settings.timeout
                );
                return Ok(exit::UNREACHABLE);
            }
        };
        drop(watch);
        let mut config = Config { namespace: self.settings.namespace.clone(), revision, ..Config::default() };
        for e in entries {
            config.entries.insert(relative(&e.key, &self.settings.prefix), e);
        }
        let outcome = self.apply(&config).await;
        let (report, code) = match &outcome {
            Outcome::Ack { revision, digest } => (StatusReport::Ack { revision: *revision, digest: digest.clone() }, 0),
            Outcome::Nack { revision, applied, step, error } => {
                eprintln!("veltrix-agent: revision {revision} rejected at {}: {error}", step.as_str());
                (
                    StatusReport::Nack { revision: *revision, applied: *applied, step: *step, error: error.clone() },
                    exit::REJECTED,
                )
            }
        };
        client
            .report_status(&self.settings.namespace, &self.who(), report)
            .await
            .map_err(|e| anyhow!("could not report: {e}"))?;
        Ok(code)
    }

    /// Runs until SIGTERM or Ctrl-C.
    pub async fn run(mut self) -> anyhow::Result<u8> {
        if let Some(good) = self.good.clone() {
            self.restore_from_state(&good).await?;
        }
        let client = client(&self.settings)?;
        let mut options = self.who();
        options.applied = self.applied();
        options.start = match &self.good {
            Some(g) => WatchStart::From(g.config.revision.saturating_add(1)),
            None => WatchStart::Snapshot,
        };
        let mut sync = client.sync(&self.settings.namespace, options);
        let mut latest = self
            .good
            .as_ref()
            .map(|g| g.config.clone())
            .unwrap_or_else(|| Config { namespace: self.settings.namespace.clone(), ..Config::default() });
        let (min, max) = self.settings.wait.unwrap_or((Duration::ZERO, Duration::ZERO));
        let mut pending: Option<(Instant, Instant)> = None;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let due = pending.map(|(first, last)| (last + min).min(first + max));
            tokio::select! {
                biased;
                _ = term.recv() => return Ok(0),
                _ = tokio::signal::ctrl_c() => return Ok(0),
                event = sync.next() => {
                    let event = event.ok_or_else(|| anyhow!("the Sync stream ended"))?.map_err(|e| anyhow!("{e}"))?;
                    if fold(&mut latest, event, &self.settings.prefix) {
                        let now = Instant::now();
                        pending = Some(pending.map_or((now, now), |(first, _)| (first, now)));
                    }
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    pending = None;
                    match self.apply(&latest).await {
                        Outcome::Ack { revision, digest } => sync.ack(revision, &digest),
                        Outcome::Nack { revision, applied, step, error } => {
                            tracing::warn!(revision, step = step.as_str(), %error, "revision rejected; keeping the last good files");
                            sync.nack(revision, applied, step, &error);
                        }
                    }
                }
            }
        }
    }

    /// With the servers away the last good files stay; if they are missing
    /// (a new volume), they are written again from the state directory. If
    /// the outputs changed since the state was saved (another template, say),
    /// the saved revision goes through check, reload and health like any
    /// other before it replaces what is in place.
    async fn restore_from_state(&mut self, good: &Good) -> anyhow::Result<()> {
        let present = self.settings.outputs.iter().all(|o| match o {
            crate::config::Output::Dir(d) => output::current_version(d).is_some(),
            crate::config::Output::File { path, .. } | crate::config::Output::Template { dest: path, .. } => {
                path.exists()
            }
        });
        let revision = good.config.revision;
        match render::render(&good.config, &self.settings.outputs) {
            Ok(rendered) if rendered.digest == good.digest => {
                if !present {
                    output::stage(&rendered)?.swap()?.finish();
                }
            }
            Ok(_) => {
                if let Outcome::Nack { step, error, .. } = self.apply(&good.config).await {
                    tracing::warn!(revision, step = step.as_str(), %error, "the saved revision fails with the current outputs; keeping what is in place");
                    self.healthy.store(present, Ordering::Relaxed);
                    return Ok(());
                }
            }
            Err(e) => {
                tracing::warn!(revision, error = %format!("{e:#}"), "the saved revision does not render with the current outputs; keeping what is in place");
                self.healthy.store(present, Ordering::Relaxed);
                return Ok(());
            }
        }
        // The gauge first: a probe that finds the agent healthy finds its revision too.
        metrics::gauge!("veltrix_agent_applied_revision").set(revision as f64);
        self.healthy.store(true, Ordering::Relaxed);
        tracing::info!(revision, "serving the last good revision from the state directory");
        Ok(())
    }

    /// Render, stage, check, swap, reload, health: ACK, or NACK with the
    /// last good files in place.
    pub async fn apply(&mut self, config: &Config) -> Outcome {
        let revision = config.revision;
        let applied = self.applied();
        let nack = |step: SyncStep, error: String| {
            metrics::counter!("veltrix_agent_rejections_total", "step" => step.as_str()).increment(1);
            Outcome::Nack { revision, applied, step, error }
        };
        let rendered = match render::render(config, &self.settings.outputs) {
            Ok(r) => r,
            Err(e) => return nack(SyncStep::Render, format!("{e:#}")),
        };
        if self.good.as_ref().is_some_and(|g| g.digest == rendered.digest) {
            // Same output: nothing to swap or reload.
            return self.accept(config, rendered.digest);
        }
        let staged = match output::stage(&rendered) {
            Ok(s) => s,
            Err(e) => return nack(SyncStep::Render, format!("cannot write the staged output: {e}")),
        };
        let env = HookEnv { staged: staged.paths(), revision };
        let timeout = self.settings.command_timeout;
        if let Some(check) = &self.settings.check
            && let Err(e) = hooks::run(check, &env, timeout).await
        {
            staged.discard();
            return nack(SyncStep::Check, format!("{e:#}"));
        }
        let swapped = match staged.swap() {
            Ok(s) => s,
            Err(e) => return nack(SyncStep::Render, format!("cannot put the output in place: {e}")),
        };
        let env = HookEnv { staged: Vec::new(), revision };
        let failed = match (&self.settings.reload, &self.settings.health) {
            (Some(reload), _) if let Err(e) = hooks::reload(reload, &env, timeout).await => Some((SyncStep::Reload, e)),
            (_, Some(health)) if let Err(e) = hooks::run(health, &env, timeout).await => Some((SyncStep::Health, e)),
            _ => None,
        };
        if let Some((step, e)) = failed {
            if let Err(restore) = swapped.restore() {
                tracing::error!(error = %restore, "could not put the last good files back");
            }
            if let Some(reload) = &self.settings.reload
                && let Err(again) = hooks::reload(reload, &env, timeout).await
            {
                tracing::error!(error = %again, "reload with the last good files failed");
            }
            return nack(step, format!("{e:#}"));
        }
        swapped.finish();
        if self.settings.reload.is_some() {
            metrics::counter!("veltrix_agent_reloads_total").increment(1);
        }
        self.accept(config, rendered.digest)
    }

    fn accept(&mut self, config: &Config, digest: String) -> Outcome {
        let good = Good { config: config.clone(), digest: digest.clone() };
        if let Some(dir) = &self.settings.state_dir
            && let Err(e) = state::save(dir, &self.settings.prefix, &good)
        {
            tracing::warn!(error = %e, "could not save the state directory");
        }
        self.good = Some(good);
        metrics::gauge!("veltrix_agent_applied_revision").set(config.revision as f64);
        self.healthy.store(true, Ordering::Relaxed);
        Outcome::Ack { revision: config.revision, digest }
    }
}

/// Applies an event to `latest`; `true` if the keys (or the revision to
/// report) changed.
fn fold(latest: &mut Config, event: WatchEvent, prefix: &str) -> bool {
    match event {
        WatchEvent::Snapshot { entries, revision } => {
            latest.entries = entries.into_iter().map(|e| (relative(&e.key, prefix), e)).collect();
            latest.revision = revision;
            true
        }
        WatchEvent::Changes(set) => {
            for c in set.changes {
                let key = relative(&c.key, prefix);
                match c.value {
                    Some(value) => {
                        let entry = Entry {
                            key: c.key,
                            value,
                            content_type: c.content_type,
                            create_revision: set.revision,
                            mod_revision: set.revision,
                            version: 1,
                            updated_at: set.time,
                            updated_by: set.actor.clone(),
                        };
                        latest.entries.insert(key, entry);
                    }
                    None => {
                        latest.entries.remove(&key);
                    }
                }
            }
            latest.revision = latest.revision.max(set.revision);
            true
        }
        WatchEvent::Progress(_) => false,
    }
}
