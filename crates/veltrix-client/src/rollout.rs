//! Gradual rollouts: start one, follow it, pause, resume, abort or promote
//! it ([`Client::start_rollout`], [`Client::rollout`], ...).

use std::{collections::BTreeMap, time::Duration, time::SystemTime};

use serde::Serialize;
use veltrix_proto::v1::{
    self, AbortRolloutRequest, GetRolloutRequest, ListRolloutsRequest, PauseRolloutRequest, PromoteRolloutRequest,
    ResumeRolloutRequest, StartRolloutRequest,
};

use crate::{Change, Client, Rejection, Result, Revision, client::new_request_id, types::time};

/// One step of a rollout: `percent` of the namespace's Sync clients
/// (cumulative, the last is 100), for at least `bake`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutStep {
    pub percent: u32,
    #[serde(with = "secs")]
    pub bake: Duration,
    /// Share of the step's cohort that must ACK (absent: 100).
    pub min_applied_percent: Option<u32>,
    /// Above this share of NACKs the rollout aborts (absent: 0).
    pub max_rejected_percent: Option<u32>,
}

impl RolloutStep {
    pub fn new(percent: u32, bake: Duration) -> Self {
        Self { percent, bake, min_applied_percent: None, max_rejected_percent: None }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RolloutStrategy {
    pub steps: Vec<RolloutStep>,
    /// Clients with all these labels are in from the first step.
    pub canary: BTreeMap<String, String>,
    /// Not enough ACKs by then (from a step's start): the rollout pauses.
    #[serde(with = "opt_secs")]
    pub ack_timeout: Option<Duration>,
}

/// Options of StartRollout.
#[derive(Debug, Clone, Default)]
pub struct RolloutOptions {
    /// The namespace's current revision must be this.
    pub expected_revision: Option<Revision>,
    /// Idempotency key (a retry names the same rollout); one is generated
    /// when empty.
    pub request_id: Option<String>,
    pub reason: String,
}

/// Options of a pause, resume, abort or promote.
#[derive(Debug, Clone, Default)]
pub struct RolloutActionOptions {
    /// The rollout's version ([`Rollout::version`]) must be this.
    pub expected_version: Option<u64>,
    pub request_id: Option<String>,
    pub reason: String,
}

/// What the ledger said of a step's cohort.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GateInputs {
    pub cohort: u32,
    pub applied: u32,
    pub rejected: u32,
    pub pending: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutTransition {
    /// started, advanced, paused, resumed, aborted, completed.
    pub kind: &'static str,
    /// The step after it (0-based).
    pub step: u32,
    #[serde(with = "crate::types::opt_time")]
    pub time: Option<SystemTime>,
    pub reason: String,
    /// user, gate, timeout.
    pub triggered_by: &'static str,
    pub inputs: Option<GateInputs>,
    pub revision: Revision,
    pub actor: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Rejection>,
}

/// A target change of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutChange {
    pub key: String,
    /// The value set; `None` for a delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A rollout with every transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollout {
    pub id: String,
    pub namespace: String,
    /// RUNNING, PAUSED, COMPLETED, ABORTED.
    pub state: &'static str,
    pub base_revision: Revision,
    pub changes: Vec<RolloutChange>,
    pub strategy: RolloutStrategy,
    pub step: u32,
    pub percent: u32,
    pub transitions: Vec<RolloutTransition>,
    pub version: u64,
    /// While it is live: the cohort now.
    pub current: Option<GateInputs>,
    #[serde(with = "crate::types::opt_time")]
    pub bake_until: Option<SystemTime>,
    #[serde(with = "crate::types::opt_time")]
    pub ack_deadline: Option<SystemTime>,
    pub completed_revision: Revision,
}

impl Rollout {
    pub fn is_live(&self) -> bool {
        matches!(self.state, "RUNNING" | "PAUSED")
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(d: &Option<std::time::Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

fn wire_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or_default(),
    }
}

fn duration(d: Option<prost_types::Duration>) -> Option<Duration> {
    d.and_then(|d| Duration::try_from(d).ok())
}

fn strategy_to_wire(s: &RolloutStrategy) -> v1::RolloutStrategy {
    v1::RolloutStrategy {
        steps: s
            .steps
            .iter()
            .map(|st| v1::RolloutStep {
                percent: st.percent,
                bake_time: Some(wire_duration(st.bake)),
                min_applied_percent: st.min_applied_percent,
                max_rejected_percent: st.max_rejected_percent,
            })
            .collect(),
        canary_selector: s.canary.clone().into_iter().collect(),
        ack_timeout: s.ack_timeout.map(wire_duration),
    }
}

fn state_name(s: i32) -> &'static str {
    match v1::RolloutState::try_from(s) {
        Ok(v1::RolloutState::Running) => "RUNNING",
        Ok(v1::RolloutState::Paused) => "PAUSED",
        Ok(v1::RolloutState::Completed) => "COMPLETED",
        Ok(v1::RolloutState::Aborted) => "ABORTED",
        _ => "UNKNOWN",
    }
}

pub(crate) fn kind_name(k: i32) -> &'static str {
    use v1::rollout_transition::Kind;
    match Kind::try_from(k) {
        Ok(Kind::Started) => "started",
        Ok(Kind::Advanced) => "advanced",
        Ok(Kind::Paused) => "paused",
        Ok(Kind::Resumed) => "resumed",
        Ok(Kind::Aborted) => "aborted",
        Ok(Kind::Completed) => "completed",
        _ => "unknown",
    }
}

pub(crate) fn trigger_name(t: i32) -> &'static str {
    match v1::RolloutTrigger::try_from(t) {
        Ok(v1::RolloutTrigger::User) => "user",
        Ok(v1::RolloutTrigger::Gate) => "gate",
        Ok(v1::RolloutTrigger::Timeout) => "timeout",
        _ => "unknown",
    }
}

fn inputs(i: Option<v1::GateInputs>) -> Option<GateInputs> {
    i.map(|i| GateInputs { cohort: i.cohort, applied: i.applied, rejected: i.rejected, pending: i.pending })
}

impl From<v1::Rollout> for Rollout {
    fn from(r: v1::Rollout) -> Self {
        let strategy = r.strategy.unwrap_or_default();
        Self {
            id: r.rollout_id,
            namespace: r.namespace,
            state: state_name(r.state),
            base_revision: r.base_revision,
            changes: r
                .changes
                .into_iter()
                .map(|c| RolloutChange {
                    key: c.key,
                    value: (c.op == v1::key_change::Op::Set as i32)
                        .then(|| String::from_utf8_lossy(&c.value).into_owned()),
                })
                .collect(),
            strategy: RolloutStrategy {
                steps: strategy
                    .steps
                    .into_iter()
                    .map(|s| RolloutStep {
                        percent: s.percent,
                        bake: duration(s.bake_time).unwrap_or_default(),
                        min_applied_percent: s.min_applied_percent,
                        max_rejected_percent: s.max_rejected_percent,
                    })
                    .collect(),
                canary: strategy.canary_selector.into_iter().collect(),
                ack_timeout: duration(strategy.ack_timeout),
            },
            step: r.step,
            percent: r.percent,
            transitions: r
                .transitions
                .into_iter()
                .map(|t| RolloutTransition {
                    kind: kind_name(t.kind),
                    step: t.step,
                    time: time(t.time),
                    reason: t.reason,
                    triggered_by: trigger_name(t.triggered_by),
                    inputs: inputs(t.inputs),
                    revision: t.revision,
                    actor: t.actor,
                    rejections: t.rejections.into_iter().map(crate::fleet::rejection).collect(),
                })
                .collect(),
            version: r.version,
            current: inputs(r.current),
            bake_until: time(r.bake_until),
            ack_deadline: time(r.ack_deadline),
            completed_revision: r.completed_revision,
        }
    }
}

/// What a person does to a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    Pause,
    Resume,
    /// The cohort gets the base values back.
    Abort,
    /// Straight to 100 %: the target is committed for everyone.
    Promote,
}

impl Client {
    /// Starts a rollout of `changes` (validated like [`Client::apply`]);
    /// answers its id and the revision of its start.
    pub async fn start_rollout(
        &self,
        namespace: &str,
        changes: Vec<Change>,
        strategy: &RolloutStrategy,
        options: &RolloutOptions,
    ) -> Result<(String, Revision)> {
        let message = StartRolloutRequest {
            namespace: namespace.into(),
            changes: changes.into_iter().map(Into::into).collect(),
            strategy: Some(strategy_to_wire(strategy)),
            expected_revision: options.expected_revision,
            request_id: options.request_id.clone().unwrap_or_else(new_request_id),
            reason: options.reason.clone(),
        };
        let answer = self
            .retry(|| {
                let (mut c, r) = (self.command.clone(), self.request(message.clone()));
                async move { Ok(c.start_rollout(r).await?.into_inner()) }
            })
            .await?;
        Ok((answer.rollout_id, answer.revision))
    }

    pub async fn pause_rollout(&self, namespace: &str, id: &str, options: &RolloutActionOptions) -> Result<Rollout> {
        self.rollout_action(RolloutAction::Pause, namespace, id, options).await
    }

    pub async fn resume_rollout(&self, namespace: &str, id: &str, options: &RolloutActionOptions) -> Result<Rollout> {
        self.rollout_action(RolloutAction::Resume, namespace, id, options).await
    }

    /// Aborts it: the cohort gets the base values back.
    pub async fn abort_rollout(&self, namespace: &str, id: &str, options: &RolloutActionOptions) -> Result<Rollout> {
        self.rollout_action(RolloutAction::Abort, namespace, id, options).await
    }

    /// Straight to 100 %: the target is committed for everyone.
    pub async fn promote_rollout(&self, namespace: &str, id: &str, options: &RolloutActionOptions) -> Result<Rollout> {
        self.rollout_action(RolloutAction::Promote, namespace, id, options).await
    }

    /// One of the four actions; answers the rollout after it.
    pub async fn rollout_action(
        &self,
        action: RolloutAction,
        namespace: &str,
        id: &str,
        options: &RolloutActionOptions,
    ) -> Result<Rollout> {
        let (ns, id) = (namespace.to_owned(), id.to_owned());
        let request_id = options.request_id.clone().unwrap_or_else(new_request_id);
        let (expected, reason) = (options.expected_version, options.reason.clone());
        let answer: v1::RolloutActionResponse = self
            .retry(|| {
                let mut c = self.command.clone();
                let (namespace, rollout_id, request_id, reason) =
                    (ns.clone(), id.clone(), request_id.clone(), reason.clone());
                let expected_rollout_version = expected;
                macro_rules! call {
                    ($msg:ident, $rpc:ident) => {{
                        let r =
                            self.request($msg { namespace, rollout_id, expected_rollout_version, request_id, reason });
                        Box::pin(async move { Ok(c.$rpc(r).await?.into_inner()) })
                            as std::pin::Pin<
                                Box<dyn std::future::Future<Output = std::result::Result<_, tonic::Status>> + Send>,
                            >
                    }};
                }
                match action {
                    RolloutAction::Pause => call!(PauseRolloutRequest, pause_rollout),
                    RolloutAction::Resume => call!(ResumeRolloutRequest, resume_rollout),
                    RolloutAction::Abort => call!(AbortRolloutRequest, abort_rollout),
                    RolloutAction::Promote => call!(PromoteRolloutRequest, promote_rollout),
                }
            })
            .await?;
        answer
            .rollout
            .map(Rollout::from)
            .ok_or_else(|| crate::Error::Local("the service's answer holds no rollout".into()))
    }

    /// A rollout by id; `None`: the namespace's running (or paused) one.
    pub async fn rollout(&self, namespace: &str, id: Option<&str>) -> Result<Rollout> {
        let message = GetRolloutRequest { namespace: namespace.into(), rollout_id: id.unwrap_or_default().into() };
        let answer = self
            .retry(|| {
                let (mut q, r) = (self.query(), self.request(message.clone()));
                async move { Ok(q.get_rollout(r).await?.into_inner()) }
            })
            .await?;
        answer
            .rollout
            .map(Rollout::from)
            .ok_or_else(|| crate::Error::Local("the service's answer holds no rollout".into()))
    }

    /// Every rollout of the namespace, newest first (all pages).
    pub async fn rollouts(&self, namespace: &str) -> Result<Vec<Rollout>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let message = ListRolloutsRequest { namespace: namespace.into(), page_size: 100, page_token };
            let answer = self
                .retry(|| {
                    let (mut q, r) = (self.query(), self.request(message.clone()));
                    async move { Ok(q.list_rollouts(r).await?.into_inner()) }
                })
                .await?;
            out.extend(answer.rollouts.into_iter().map(Rollout::from));
            if answer.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = answer.next_page_token;
        }
    }
}
