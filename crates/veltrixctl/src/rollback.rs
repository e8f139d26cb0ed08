//! `rollback`: every key (under a prefix) back as it was right after a
//! revision, in one change set; `--dry-run` prints what would change.

use veltrix_client::{Client, Computed, Diff, DiffKind, RollbackOptions};

use crate::{Failure, cli::Output, output};

pub struct Args {
    pub to: u64,
    pub prefix: String,
    pub expect_revision: Option<u64>,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

pub async fn run(client: &Client, out: Output, namespace: &str, args: Args) -> Result<(), Failure> {
    let options = RollbackOptions {
        prefix: args.prefix,
        expected_revision: args.expect_revision,
        dry_run: args.dry_run,
        request_id: args.request_id,
        reason: args.reason.unwrap_or_default(),
    };
    let computed = client.rollback(namespace, args.to, &options).await?;
    output::show(out, &computed, |c| print(c, args.to, args.dry_run))
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

fn print(c: &Computed, to: u64, dry_run: bool) {
    diff_lines(&c.changes);
    match (dry_run, c.changes.len()) {
        (_, 0) => {
            println!("nothing to roll back: the keys are as they were at revision {to} (revision {})", c.revision)
        }
        (true, n) => println!("dry run: {n} change(s) would roll back to revision {to}; nothing written"),
        (false, n) => println!("rolled back {n} key(s) to revision {to}: revision {}", c.revision),
    }
}
