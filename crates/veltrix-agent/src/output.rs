//! Putting rendered config in place so that a reader never sees half a
//! revision, and taking it back.
//!
//! - A directory works like a Kubernetes ConfigMap volume: the files live in
//!   `DIR/..rev-N` directories, `DIR/..data` is a symlink to the current
//!   one (replaced with one rename), and each top-level name in DIR is a
//!   symlink through `..data`. The previous directory stays until the new
//!   one is confirmed, so it can be put back.
//! - A document is written to a staged file next to it, fsynced, and renamed
//!   over it; the previous one is kept as a hard link until confirmed.

use std::{
    collections::BTreeSet,
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    config::Output,
    render::{Content, Rendered},
};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";
const REV: &str = "..rev-";

/// Rendered config written next to its destinations, not yet in place.
#[derive(Debug)]
pub struct Staged {
    items: Vec<Item>,
}

#[derive(Debug)]
enum Item {
    Dir { dir: PathBuf, version: String },
    Doc { dest: PathBuf, staged: PathBuf },
}

/// Config in place, with what it replaced (until [`Swapped::finish`]).
#[derive(Debug)]
pub struct Swapped {
    items: Vec<Done>,
}

#[derive(Debug)]
enum Done {
    Dir { dir: PathBuf, previous: Option<String>, current: String },
    Doc { dest: PathBuf, backup: Option<PathBuf> },
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}"))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes every output to its staging place.
pub fn stage(rendered: &Rendered) -> io::Result<Staged> {
    let mut staged = Staged { items: Vec::new() };
    for (output, content) in &rendered.outputs {
        let item = match (output, content) {
            (Output::Dir(dir), Content::Files(files)) => {
                fs::create_dir_all(dir)?;
                let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
                let version = format!("{REV}{nanos}");
                let root = dir.join(&version);
                fs::create_dir(&root)?;
                for (rel, bytes) in files {
                    let path = root.join(rel);
                    fs::create_dir_all(parent(&path))?;
                    write_synced(&path, bytes)?;
                }
                sync_dir(&root)?;
                Item::Dir { dir: dir.clone(), version }
            }
            (Output::File { path, .. } | Output::Template { dest: path, .. }, Content::Document(bytes)) => {
                fs::create_dir_all(parent(path))?;
                let staged_path = sibling(path, "veltrix-staged");
                write_synced(&staged_path, bytes)?;
                Item::Doc { dest: path.clone(), staged: staged_path }
            }
            _ => return Err(io::Error::other("an output's content does not match its kind")),
        };
        staged.items.push(item);
    }
    Ok(staged)
}

impl Staged {
    /// Where each output was staged (`VELTRIX_STAGED`: the first).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.items
            .iter()
            .map(|i| match i {
                Item::Dir { dir, version } => dir.join(version),
                Item::Doc { staged, .. } => staged.clone(),
            })
            .collect()
    }

    /// Throws the staged outputs away.
    pub fn discard(self) {
        for item in self.items {
            let _ = match item {
                Item::Dir { dir, version } => fs::remove_dir_all(dir.join(version)),
                Item::Doc { staged, .. } => fs::remove_file(staged),
            };
        }
    }

    /// Puts every output in place.
    pub fn swap(self) -> io::Result<Swapped> {
        let mut swapped = Swapped { items: Vec::new() };
        for item in self.items {
            let done = match item {
                Item::Dir { dir, version } => {
                    let previous = current_version(&dir);
                    point_data(&dir, &version)?;
                    Done::Dir { dir, previous, current: version }
                }
                Item::Doc { dest, staged } => {
                    let backup = if dest.exists() {
                        let backup = sibling(&dest, "veltrix-previous");
                        let _ = fs::remove_file(&backup);
                        fs::hard_link(&dest, &backup)?;
                        Some(backup)
                    } else {
                        None
                    };
                    fs::rename(&staged, &dest)?;
                    sync_dir(parent(&dest))?;
                    Done::Doc { dest, backup }
                }
            };
            swapped.items.push(done);
        }
        Ok(swapped)
    }
}

impl Swapped {
    /// Puts back what was there before.
    pub fn restore(self) -> io::Result<()> {
        for done in self.items.into_iter().rev() {
            match done {
                Done::Dir { dir, previous, current } => {
                    match &previous {
                        Some(previous) => point_data(&dir, previous)?,
                        None => unlink_all(&dir)?,
                    }
                    fs::remove_dir_all(dir.join(current))?;
                }
                Done::Doc { dest, backup } => match backup {
                    Some(backup) => fs::rename(backup, &dest)?,
                    None => fs::remove_file(&dest)?,
                },
            }
        }
        Ok(())
    }

    /// Confirms the new config: the previous one is removed.
    pub fn finish(self) {
        for done in self.items {
            match done {
                Done::Dir { dir, current, .. } => remove_old_versions(&dir, &current),
                Done::Doc { backup, .. } => {
                    if let Some(backup) = backup {
                        let _ = fs::remove_file(backup);
                    }
                }
            }
        }
    }
}

/// The version `..data` points to.
pub fn current_version(dir: &Path) -> Option<String> {
    fs::read_link(dir.join(DATA)).ok().map(|t| t.to_string_lossy().into_owned())
}

/// Points `..data` at `version` (one rename) and the top-level names
/// through it.
fn point_data(dir: &Path, version: &str) -> io::Result<()> {
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    let names: BTreeSet<String> = fs::read_dir(dir.join(version))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    for name in &names {
        let link = dir.join(name);
        let target = PathBuf::from(DATA).join(name);
        if fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
            continue;
        }
        if link.symlink_metadata().is_ok() && fs::read_link(&link).is_err() {
            return Err(io::Error::other(format!("{} exists and is not the agent's link", link.display())));
        }
        let tmp = dir.join(format!("..link_tmp_{name}"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)?;
        fs::rename(&tmp, &link)?;
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || names.contains(&name) {
            continue;
        }
        if fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(DATA)) {
            fs::remove_file(entry.path())?;
        }
    }
    sync_dir(dir)
}

/// Removes `..data` and the links through it (restoring to "nothing").
fn unlink_all(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == DATA || fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(DATA)) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn remove_old_versions(dir: &Path, current: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(REV) && name != current {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rendered(dir: &Path, file: &Path, files: &[(&str, &str)], doc: &str) -> Rendered {
        let files: BTreeMap<String, Vec<u8>> =
            files.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect();
        Rendered {
            outputs: vec![
                (Output::Dir(dir.to_owned()), Content::Files(files)),
                (
                    Output::File { path: file.to_owned(), format: crate::config::Format::Json },
                    Content::Document(doc.as_bytes().to_vec()),
                ),
            ],
            digest: String::new(),
        }
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).expect("readable")
    }

    #[test]
    fn swap_restore_and_finish() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, file) = (tmp.path().join("conf"), tmp.path().join("app.json"));
        let first = stage(&rendered(&dir, &file, &[("a", "1"), ("db/port", "5432")], "v1")).expect("staged");
        assert!(!file.exists(), "staging leaves the destination alone");
        first.swap().expect("swapped").finish();
        assert_eq!(
            (read(&dir.join("a")), read(&dir.join("db/port")), read(&file)),
            ("1".into(), "5432".into(), "v1".into())
        );

        let second = stage(&rendered(&dir, &file, &[("b", "2"), ("db/port", "5433")], "v2")).expect("staged");
        let swapped = second.swap().expect("swapped");
        assert_eq!(read(&dir.join("db/port")), "5433");
        assert!(!dir.join("a").exists(), "a key that went away goes away");
        swapped.restore().expect("restored");
        assert_eq!(
            (read(&dir.join("a")), read(&dir.join("db/port")), read(&file)),
            ("1".into(), "5432".into(), "v1".into())
        );
        assert!(!dir.join("b").exists());

        let third = stage(&rendered(&dir, &file, &[("a", "3")], "v3")).expect("staged");
        third.swap().expect("swapped").finish();
        let versions = fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(REV))
            .count();
        assert_eq!(versions, 1, "only the current version stays");
        assert_eq!(read(&file), "v3");
        assert!(!sibling(&file, "veltrix-previous").exists());

        let discarded = stage(&rendered(&dir, &file, &[("a", "4")], "v4")).expect("staged");
        discarded.discard();
        assert_eq!(read(&dir.join("a")), "3");
    }
}
