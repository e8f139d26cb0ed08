//! `get`, `list`, `export`, `history` and `namespaces`.

use std::io::Write;

use veltrix_client::{Client, HistoryOptions, ReadOptions};

use crate::{
    Failure,
    cli::{Output, ReadKeys},
    export, other, output,
};

pub async fn get(client: &Client, out: Output, ns: &str, key: &str, o: ReadOptions, raw: bool) -> Result<(), Failure> {
    let entry = client.get_with(ns, key, o).await?;
    if raw {
        let mut stdout = std::io::stdout().lock();
        return stdout.write_all(&entry.value).and_then(|()| stdout.flush()).map_err(|e| other(e.to_string()));
    }
    output::show(out, &entry, output::entry)
}

pub async fn list(client: &Client, out: Output, keys: &ReadKeys) -> Result<(), Failure> {
    let listing = client.list_with(&keys.namespace, &keys.prefix, keys.options()).await?;
    match out {
        Output::Table => {
            output::entries(&listing.entries);
            Ok(())
        }
        f => output::structured(f, &serde_json::json!({ "revision": listing.revision, "entries": listing.entries }))
            .map_err(other),
    }
}

pub async fn export(client: &Client, out: Output, keys: &ReadKeys) -> Result<(), Failure> {
    let listing = client.list_with(&keys.namespace, &keys.prefix, keys.options()).await?;
    print!("{}", export::render(out, &keys.namespace, &listing).map_err(other)?);
    Ok(())
}

pub async fn history(
    client: &Client,
    out: Output,
    ns: &str,
    key: Option<&str>,
    options: HistoryOptions,
) -> Result<(), Failure> {
    let sets = client.history(ns, key, options).await?;
    output::show(out, &sets, |s| output::change_sets(s))
}

pub async fn namespaces(client: &Client, out: Output, prefix: &str, include_deleted: bool) -> Result<(), Failure> {
    let list = client.namespaces_with(prefix, include_deleted).await?;
    output::show(out, &list, |l| output::namespaces(l))
}
