//! `rollback` (every key under a prefix back as it was right after a
//! revision) and `promote` (a namespace's keys made equal to another's),
//! each one change set; `--dry-run` prints what would change.

use veltrix_client::{Client, Computed, Diff, DiffKind, DiffOptions, PromoteOptions, RollbackOptions};

use crate::{
    Failure,
    cli::{ComputedArgs, Output},
    output,
};

pub async fn rollback(
    client: &Client,
    out: Output,
    namespace: &str,
    to: u64,
    prefix: String,
    computed: ComputedArgs,
) -> Result<(), Failure> {
    let options = RollbackOptions {
        prefix,
        expected_revision: computed.expect_revision,
        dry_run: computed.dry_run,
        request_id: computed.request_id,
        reason: computed.reason.unwrap_or_default(),
    };
    let answer = client.rollback(namespace, to, &options).await?;
    output::show(out, &answer, |c| print_rollback(c, to, computed.dry_run))
}

pub struct PromoteArgs {
    pub from_revision: Option<u64>,
    pub prefix: String,
    pub delete_missing: bool,
    pub keys: Vec<String>,
}

pub async fn promote(
    client: &Client,
    out: Output,
    source: &str,
    target: &str,
    args: PromoteArgs,
    computed: ComputedArgs,
) -> Result<(), Failure> {
    let options = PromoteOptions {
        source_revision: args.from_revision,
        prefix: args.prefix,
        delete_missing: args.delete_missing,
        keys: args.keys,
        expected_revision: computed.expect_revision,
        dry_run: computed.dry_run,
        request_id: computed.request_id,
        reason: computed.reason.unwrap_or_default(),
    };
    let answer = client.promote(source, target, &options).await?;
    output::show(out, &answer, |c| {
        diff_lines(&c.changes);
        match (computed.dry_run, c.changes.len()) {
            (_, 0) => println!("nothing to promote: {target} already matches {source} (revision {})", c.revision),
            (true, n) => println!("dry run: {n} change(s) would promote {source} into {target}; nothing written"),
            (false, n) => println!("promoted {n} key(s) from {source} into {target}: revision {}", c.revision),
        }
    })
}

fn text(d: &Option<veltrix_client::Entry>) -> String {
    d.as_ref().map_or_else(String::new, |e| output::printable(&String::from_utf8_lossy(&e.value)))
}

/// `+ key = value` (comes back), `- key` (goes), `~ key: old -> new`.
pub fn diff_lines(changes: &[Diff]) {
    for d in changes {
        let key = output::printable(&d.key);
        match d.kind {
            DiffKind::Added => println!("+ {key} = {}", text(&d.after)),
            DiffKind::Removed => println!("- {key}"),
            DiffKind::Changed => println!("~ {key}: {} -> {}", text(&d.before), text(&d.after)),
        }
    }
}

fn print_rollback(c: &Computed, to: u64, dry_run: bool) {
    diff_lines(&c.changes);
    crate::govern::schema_lines(&c.schema_changes);
    match (dry_run, c.changes.len() + c.schema_changes.len()) {
        (_, 0) => {
            println!("nothing to roll back: the keys are as they were at revision {to} (revision {})", c.revision)
        }
        (true, n) => println!("dry run: {n} change(s) would roll back to revision {to}; nothing written"),
        (false, n) => println!("rolled back {n} key(s) to revision {to}: revision {}", c.revision),
    }
}

/// `NS` or `NS@REV`.
fn side(text: &str) -> Result<(String, Option<u64>), Failure> {
    match text.split_once('@') {
        None => Ok((text.to_owned(), None)),
        Some((ns, rev)) => {
            let rev =
                rev.parse().map_err(|_| crate::usage(format!("'{text}': the revision after @ must be a number")))?;
            Ok((ns.to_owned(), Some(rev)))
        }
    }
}

/// `diff NS[@REV] [NS2[@REV2]]`: `+` only in the second, `-` only in the
/// first, `~` changed.
pub async fn diff(client: &Client, out: Output, from: &str, to: Option<&str>, prefix: String) -> Result<(), Failure> {
    let (from_ns, from_revision) = side(from)?;
    let (to_namespace, to_revision) = match to {
        Some(to) => side(to)?,
        None => (String::new(), None),
    };
    let options = DiffOptions { from_revision, to_namespace, to_revision, prefix };
    let differences = client.diff(&from_ns, &options).await?;
    output::show(out, &differences, |d| {
        diff_lines(&d.entries);
        println!("{} difference(s) (revision {} -> {})", d.entries.len(), d.from_revision, d.to_revision);
    })
}
