//! `blame` (who last set each key), `schema set|list|delete` (the JSON
//! Schemas values must satisfy) and `delete-namespace`.

use std::path::Path;

use veltrix_client::{AdminOptions, Client, SchemaChange};

use crate::{
    Failure,
    cli::{ComputedArgs, Output, SchemaCommand},
    derived::diff_lines,
    output, read_input,
};

fn admin_options(args: ComputedArgs) -> AdminOptions {
    AdminOptions {
        expected_revision: args.expect_revision,
        dry_run: args.dry_run,
        request_id: args.request_id,
        reason: args.reason.unwrap_or_default(),
    }
}

pub async fn blame(
    client: &Client,
    out: Output,
    namespace: &str,
    prefix: &str,
    revision: Option<u64>,
) -> Result<(), Failure> {
    let blamed = client.blame(namespace, prefix, revision).await?;
    output::show(out, &blamed, |list| {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|b| {
                let origin = b.origin.to_string();
                vec![
                    b.key.clone(),
                    b.mod_revision.to_string(),
                    output::time(b.time),
                    b.actor.clone(),
                    origin,
                    b.reason.clone(),
                ]
            })
            .collect();
        output::table(&["KEY", "REVISION", "TIME", "ACTOR", "ORIGIN", "REASON"], &rows);
    })
}

pub async fn schema(client: &Client, out: Output, command: SchemaCommand) -> Result<(), Failure> {
    match command {
        SchemaCommand::Set { namespace, pattern, file, computed } => {
            let dry_run = computed.dry_run;
            let document = schema_file(&file)?;
            let revision = client.set_schema(&namespace, &pattern, &document, &admin_options(computed)).await?;
            answer(out, revision, || match dry_run {
                true => format!("dry run: the schema for '{pattern}' can be set; nothing written"),
                false => format!("schema for '{pattern}' in force: revision {revision}"),
            })
        }
        SchemaCommand::Delete { namespace, pattern, computed } => {
            let dry_run = computed.dry_run;
            let revision = client.delete_schema(&namespace, &pattern, &admin_options(computed)).await?;
            answer(out, revision, || match dry_run {
                true => format!("dry run: the schema for '{pattern}' can be deleted; nothing written"),
                false => format!("schema for '{pattern}' deleted: revision {revision}"),
            })
        }
        SchemaCommand::List { namespace, revision } => {
            let schemas = client.schemas(&namespace, revision).await?;
            output::show(out, &schemas, |list| {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| vec![s.key_pattern.clone(), s.revision.to_string(), output::printable(&s.schema)])
                    .collect();
                output::table(&["PATTERN", "REVISION", "SCHEMA"], &rows);
            })
        }
    }
}

/// The schema document, checked to be JSON here so that a typo is a usage
/// error naming the file (the service checks it is a valid schema).
fn schema_file(file: &Path) -> Result<String, Failure> {
    let bytes = read_input(file)?;
    let text = String::from_utf8(bytes).map_err(|_| crate::usage(format!("{}: not UTF-8 text", file.display())))?;
    serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| crate::usage(format!("{}: not a JSON document: {e}", file.display())))?;
    Ok(text)
}

fn answer(out: Output, revision: u64, line: impl FnOnce() -> String) -> Result<(), Failure> {
    output::show(out, &serde_json::json!({ "revision": revision }), |_| println!("{}", line()))
}

pub async fn delete_namespace(
    client: &Client,
    out: Output,
    namespace: &str,
    computed: ComputedArgs,
) -> Result<(), Failure> {
    let dry_run = computed.dry_run;
    let answer = client.delete_namespace(namespace, &admin_options(computed)).await?;
    output::show(out, &answer, |c| {
        diff_lines(&c.changes);
        schema_lines(&c.schema_changes);
        let (keys, schemas) = (c.changes.len(), c.schema_changes.len());
        match dry_run {
            true => println!("dry run: {keys} key(s) and {schemas} schema(s) would be deleted; nothing written"),
            false => println!("deleted {namespace} ({keys} key(s), {schemas} schema(s)): revision {}", c.revision),
        }
    })
}

/// `+ schema PATTERN` (set), `- schema PATTERN` (deleted).
pub fn schema_lines(changes: &[SchemaChange]) {
    for c in changes {
        let sign = if c.schema.is_some() { '+' } else { '-' };
        println!("{sign} schema {}", output::printable(&c.key_pattern));
    }
}
