//! `cargo xtask RECIPE [ARGS]`: the project's entry point on a machine that
//! has only the Rust toolchain, git and Python.
//!
//! The justfile holds every recipe; this bootstrap only makes sure the pinned
//! `just` (and the other pinned tools of `.ci/tools-requirements.txt`) are
//! installed under `.tools/`, then runs `just RECIPE` with `.tools/bin` first
//! on `PATH` (`cargo xtask install-tools` only installs). A `just` found elsewhere on `PATH` is never used, so every
//! machine runs the same version. No dependencies: it builds in a second.

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

const REQUIREMENTS: &str = ".ci/tools-requirements.txt";
const VENV: &str = ".tools/venv";
const BIN: &str = ".tools/bin";
/// The tools linked into `.tools/bin` (the venv's own python stays off `PATH`).
const LINKED: [&str; 2] = ["just", "buf"];

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    if let Err(e) = install_tools(&root) {
        eprintln!("cargo xtask: {e}");
        return ExitCode::FAILURE;
    }
    let mut args: Vec<OsString> = env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "install-tools") {
        return ExitCode::SUCCESS;
    }
    if args.is_empty() {
        args.push("--list".into());
    }
    let path = match env::var_os("PATH") {
        Some(old) => {
            let mut dirs = vec![root.join(BIN)];
            dirs.extend(env::split_paths(&old));
            env::join_paths(dirs).unwrap_or(old)
        }
        None => root.join(BIN).into_os_string(),
    };
    let status = Command::new(root.join(BIN).join("just")).args(&args).current_dir(&root).env("PATH", path).status();
    match status {
        Ok(s) => ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)),
        Err(e) => {
            eprintln!("cargo xtask: cannot run just: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the pinned tools unless the venv already holds exactly these
/// requirements (a copy of the file is kept beside it as the stamp).
fn install_tools(root: &Path) -> Result<(), String> {
    let wanted = fs::read_to_string(root.join(REQUIREMENTS)).map_err(|e| format!("cannot read {REQUIREMENTS}: {e}"))?;
    let venv = root.join(VENV);
    let stamp = venv.join("requirements.installed");
    let installed = fs::read_to_string(&stamp).ok();
    let linked = LINKED.iter().all(|t| root.join(BIN).join(t).exists());
    if installed.as_deref() == Some(wanted.as_str()) && linked {
        return Ok(());
    }
    eprintln!("cargo xtask: installing the pinned tools of {REQUIREMENTS} under .tools/ (once)");
    if !venv.join("bin/pip").exists() {
        make_venv(&venv)?;
    }
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "--require-hashes", "-r"])
        .arg(root.join(REQUIREMENTS)))?;
    let bin = root.join(BIN);
    fs::create_dir_all(&bin).map_err(|e| format!("cannot create {BIN}: {e}"))?;
    for tool in LINKED {
        let link = bin.join(tool);
        let _ = fs::remove_file(&link);
        symlink(&venv.join("bin").join(tool), &link)?;
    }
    fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// `python3 -m venv`; on Debian its `ensurepip` comes in `python3-venv`,
/// installed when missing and run as root.
fn make_venv(venv: &Path) -> Result<(), String> {
    let create = || Command::new("python3").args(["-m", "venv"]).arg(venv).status();
    match create() {
        Ok(s) if s.success() => return Ok(()),
        Ok(_) => {}
        Err(e) => return Err(format!("python3 is needed to install the project's tools: {e}")),
    }
    let _ = fs::remove_dir_all(venv);
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root || which("apt-get").is_none() {
        return Err("python3 -m venv failed; install the venv module (Debian: apt-get install python3-venv)".into());
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "python3-venv"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{shown} failed ({s})")),
        Err(e) => Err(format!("cannot run {shown}: {e}")),
    }
}

fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|d| d.join(program)).find(|p| p.is_file())
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("cannot link {}: {e}", link.display()))
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> Result<(), String> {
    fs::copy(target, link).map(drop).map_err(|e| format!("cannot copy to {}: {e}", link.display()))
}
