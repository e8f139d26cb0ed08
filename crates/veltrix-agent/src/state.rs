//! The state directory: the last good revision, its digest and its keys, so
//! that an agent that starts while the servers are away keeps (or rewrites)
//! the files it last applied, and resumes after that revision.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use veltrix_client::Entry;

use crate::render::Config;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    namespace: String,
    prefix: String,
    revision: u64,
    digest: String,
    entries: BTreeMap<String, Entry>,
}

/// What the agent last applied successfully.
#[derive(Debug, Clone)]
pub struct Good {
    pub config: Config,
    pub digest: String,
}

fn file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The saved state, if it is for this namespace and prefix.
pub fn load(dir: &Path, namespace: &str, prefix: &str) -> Option<Good> {
    let bytes = std::fs::read(file(dir)).ok()?;
    match serde_json::from_slice::<Saved>(&bytes) {
        Ok(s) if s.namespace == namespace && s.prefix == prefix => Some(Good {
            config: Config { namespace: s.namespace, revision: s.revision, entries: s.entries },
            digest: s.digest,
        }),
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "the state directory holds another namespace or prefix; ignored");
            None
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "unreadable state; ignored");
            None
        }
    }
}

/// Saves `good` (temp file, fsync, rename).
pub fn save(dir: &Path, prefix: &str, good: &Good) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let saved = Saved {
        namespace: good.config.namespace.clone(),
        prefix: prefix.to_owned(),
        revision: good.config.revision,
        digest: good.digest.clone(),
        entries: good.config.entries.clone(),
    };
    let json = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
    let tmp = dir.join("state.json.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file(dir))
}
