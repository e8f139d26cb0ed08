//! `put` and `delete`.

use std::path::{Path, PathBuf};

use veltrix_client::{Client, WriteOptions};

use crate::{Failure, cli::Output, cli::WriteArgs, read_input, revision, usage};

fn options(w: WriteArgs, content_type: String) -> WriteOptions {
    WriteOptions {
        expected_revision: w.expect_revision,
        reason: w.reason.unwrap_or_default(),
        request_id: w.request_id,
        content_type,
    }
}

/// The value of `put`: the argument, standard input for `-`, or a file.
fn value(value: Option<String>, file: Option<PathBuf>) -> Result<Vec<u8>, Failure> {
    match (value, file) {
        (Some(v), None) if v == "-" => read_input(Path::new("-")),
        (Some(v), None) => Ok(v.into_bytes()),
        (None, Some(path)) => read_input(&path),
        _ => Err(usage("put needs a VALUE or --file PATH")),
    }
}

#[allow(clippy::too_many_arguments)] // the subcommand's arguments, as parsed
pub async fn put(
    client: &Client,
    out: Output,
    namespace: &str,
    key: &str,
    v: Option<String>,
    file: Option<PathBuf>,
    content_type: String,
    write: WriteArgs,
) -> Result<(), Failure> {
    let r = client.put_with(namespace, key, value(v, file)?, &options(write, content_type)).await?;
    revision(out, r)
}

pub async fn delete(client: &Client, out: Output, namespace: &str, key: &str, write: WriteArgs) -> Result<(), Failure> {
    let r = client.delete_with(namespace, key, &options(write, String::new())).await?;
    revision(out, r)
}
