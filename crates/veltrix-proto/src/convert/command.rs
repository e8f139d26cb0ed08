//! Requests of `ConfigCommand` to validated domain commands. Field names in
//! errors are the request's own (`changes[2].set.value`).

use std::time::SystemTime;

use veltrix_domain::{
    Actor, ChangeSetCommand, CommandMeta, Expectation, Key, KeyCommand, Limits, Namespace, Operation, Reason,
    RequestId, Revision, TraceContext, ValidationError,
    plan::{DeleteNamespace, DeleteSchema, Promote, Rollback, SetSchema},
    schema::{KeyPattern, Schema},
};

use crate::v1::{
    ApplyRequest, DeleteNamespaceRequest, DeleteRequest, DeleteSchemaRequest, PromoteRequest, PutRequest,
    RollbackRequest, SetSchemaRequest, change,
};

/// What a call carries besides its message: who, when, in which trace.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub actor: Actor,
    pub trace: TraceContext,
    pub time: SystemTime,
}

/// A request that becomes one change set.
pub trait IntoCommand {
    fn into_command(self, ctx: CallContext, limits: &Limits) -> Result<ChangeSetCommand, ValidationError>;
}

pub(super) fn meta(ctx: CallContext, request_id: &str, reason: &str) -> Result<CommandMeta, ValidationError> {
    super::rollout::reserved(request_id)?;
    Ok(CommandMeta {
        actor: ctx.actor,
        reason: Reason::parse(reason)?,
        request_id: RequestId::parse(request_id)?,
        trace: ctx.trace,
        time: ctx.time,
    })
}

impl IntoCommand for PutRequest {
    fn into_command(self, ctx: CallContext, limits: &Limits) -> Result<ChangeSetCommand, ValidationError> {
        let namespace = Namespace::parse(&self.namespace)?;
        let change = KeyCommand {
            key: Key::parse(&self.key)?,
            expected: Expectation::from_wire(self.expected_revision),
            op: Operation::set(self.value, &self.content_type, limits)?,
        };
        let meta = meta(ctx, &self.request_id, &self.reason)?;
        ChangeSetCommand::new(namespace, vec![change], meta, limits)
    }
}

impl IntoCommand for DeleteRequest {
    fn into_command(self, ctx: CallContext, limits: &Limits) -> Result<ChangeSetCommand, ValidationError> {
        let namespace = Namespace::parse(&self.namespace)?;
        let change = KeyCommand {
            key: Key::parse(&self.key)?,
            expected: Expectation::from_wire(self.expected_revision),
            op: Operation::Delete,
        };
        let meta = meta(ctx, &self.request_id, &self.reason)?;
        ChangeSetCommand::new(namespace, vec![change], meta, limits)
    }
}

impl IntoCommand for ApplyRequest {
    fn into_command(self, ctx: CallContext, limits: &Limits) -> Result<ChangeSetCommand, ValidationError> {
        let namespace = Namespace::parse(&self.namespace)?;
        if self.changes.len() > limits.max_changes {
            // Checked before converting so that a huge request costs little.
            return Err(ValidationError::new(
                "changes",
                format!("must hold at most {} changes (got {})", limits.max_changes, self.changes.len()),
            ));
        }
        let changes = self
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let at = format!("changes[{i}]");
                let key = Key::parse(&c.key).map_err(|e| e.under(&at))?;
                let op = match c.op {
                    Some(change::Op::Set(set)) => Operation::set(set.value, &set.content_type, limits)
                        .map_err(|e| e.under(&format!("{at}.set")))?,
                    Some(change::Op::Delete(_)) => Operation::Delete,
                    None => return Err(ValidationError::new(format!("{at}.op"), "must be set to 'set' or 'delete'")),
                };
                Ok(KeyCommand { key, expected: Expectation::from_wire(c.expected_revision), op })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = meta(ctx, &self.request_id, &self.reason)?;
        ChangeSetCommand::new(namespace, changes, meta, limits)
    }
}

/// A validated Rollback: `to_revision` at least 1, `prefix` as a key prefix.
pub fn rollback(req: RollbackRequest, ctx: CallContext) -> Result<Rollback, ValidationError> {
    let namespace = Namespace::parse(&req.namespace)?;
    if req.to_revision == 0 {
        return Err(ValidationError::new("to_revision", "must be at least 1"));
    }
    key_prefix(&req.prefix)?;
    Ok(Rollback {
        namespace,
        to_revision: Revision::new(req.to_revision),
        prefix: req.prefix,
        expected: req.expected_revision.map(Revision::new),
        dry_run: req.dry_run,
        meta: meta(ctx, &req.request_id, &req.reason)?,
    })
}

/// The most keys one Promote may name.
pub const MAX_PROMOTED_KEYS: usize = 1000;

/// The keys a Promote names: valid keys under its prefix, sorted, each once.
fn promoted_keys(keys: Vec<String>, prefix: &str) -> Result<Vec<String>, ValidationError> {
    if keys.len() > MAX_PROMOTED_KEYS {
        return Err(ValidationError::new(
            "keys",
            format!("must name at most {MAX_PROMOTED_KEYS} keys (got {})", keys.len()),
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        Key::parse(key).map_err(|e| e.under(&format!("keys[{i}]")))?;
        if !key.starts_with(prefix) {
            return Err(ValidationError::new(format!("keys[{i}]"), "must start with the prefix"));
        }
    }
    let mut keys = keys;
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

fn key_prefix(prefix: &str) -> Result<(), ValidationError> {
    if prefix.len() > Key::MAX_LEN || !prefix.bytes().all(|c| (0x21..=0x7e).contains(&c)) {
        return Err(ValidationError::new("prefix", "must be at most 256 bytes of printable ASCII without spaces"));
    }
    Ok(())
}

/// A validated Promote: two namespaces (field names `source_namespace`,
/// `target_namespace`), `source_revision` at least 1 when set.
pub fn promote(req: PromoteRequest, ctx: CallContext) -> Result<Promote, ValidationError> {
    let named =
        |field: &'static str, text: &str| Namespace::parse(text).map_err(|e| ValidationError::new(field, e.rule));
    let source = named("source_namespace", &req.source_namespace)?;
    let target = named("target_namespace", &req.target_namespace)?;
    if source == target {
        return Err(ValidationError::new("target_namespace", "must not be the source namespace"));
    }
    if req.source_revision == Some(0) {
        return Err(ValidationError::new("source_revision", "must be at least 1 when set"));
    }
    key_prefix(&req.prefix)?;
    let keys = promoted_keys(req.keys, &req.prefix)?;
    Ok(Promote {
        keys,
        source,
        source_revision: req.source_revision.map(Revision::new),
        target,
        prefix: req.prefix,
        delete_missing: req.delete_missing,
        expected: req.expected_revision.map(Revision::new),
        dry_run: req.dry_run,
        meta: meta(ctx, &req.request_id, &req.reason)?,
    })
}

/// A validated SetSchema: the pattern parses and the document compiles as a
/// draft 2020-12 schema that refers to nothing outside itself.
pub fn set_schema(req: SetSchemaRequest, ctx: CallContext) -> Result<SetSchema, ValidationError> {
    let namespace = Namespace::parse(&req.namespace)?;
    let pattern = KeyPattern::parse(&req.key_pattern)?;
    Schema::compile(&req.schema)?;
    Ok(SetSchema {
        namespace,
        pattern,
        schema: req.schema,
        expected: req.expected_revision.map(Revision::new),
        dry_run: req.dry_run,
        meta: meta(ctx, &req.request_id, &req.reason)?,
    })
}

pub fn delete_schema(req: DeleteSchemaRequest, ctx: CallContext) -> Result<DeleteSchema, ValidationError> {
    Ok(DeleteSchema {
        namespace: Namespace::parse(&req.namespace)?,
        pattern: KeyPattern::parse(&req.key_pattern)?,
        expected: req.expected_revision.map(Revision::new),
        dry_run: req.dry_run,
        meta: meta(ctx, &req.request_id, &req.reason)?,
    })
}

pub fn delete_namespace(req: DeleteNamespaceRequest, ctx: CallContext) -> Result<DeleteNamespace, ValidationError> {
    Ok(DeleteNamespace {
        namespace: Namespace::parse(&req.namespace)?,
        expected: req.expected_revision.map(Revision::new),
        dry_run: req.dry_run,
        meta: meta(ctx, &req.request_id, &req.reason)?,
    })
}
