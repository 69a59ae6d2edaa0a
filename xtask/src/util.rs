//! Helpers shared by the commands: paths and child processes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors are reported once, at the top, as text.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The workspace root (this crate lives in `<root>/xtask`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => absolute(d),
        None => workspace_root().join("target"),
    }
}

/// Makes a path absolute against the current directory.
pub fn absolute(p: impl AsRef<Path>) -> PathBuf {
    let p = p.as_ref();
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .expect("a current directory")
            .join(p)
    }
}

/// The `cargo` that runs us (so `+toolchain` overrides carry over).
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Runs a command with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", describe(cmd)))?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", describe(cmd)).into());
    }
    Ok(())
}

/// Adds the rustup `kind`s (`"component"` or `"target"`) in `names` that
/// the active toolchain lacks. Without rustup this does nothing: the
/// toolchain must have them already, and cargo says so clearly if not.
pub fn ensure_rustup(kind: &str, names: &[&str]) -> Result<()> {
    let mut list = Command::new("rustup");
    list.args([kind, "list", "--installed"])
        .current_dir(workspace_root());
    let Ok(o) = list.output() else {
        return Ok(());
    };
    if !o.status.success() {
        return Ok(());
    }
    let installed = String::from_utf8_lossy(&o.stdout);
    // Components are listed with their host triple (`clippy-x86_64-…`).
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| {
            !installed
                .lines()
                .map(str::trim)
                .any(|l| l == *n || l.starts_with(&format!("{n}-")))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("rustup")
        .args([kind, "add"])
        .args(&missing)
        .current_dir(workspace_root()))
}

/// Whether a program runs at all (`prog --version` exits 0).
pub fn works(prog: impl AsRef<std::ffi::OsStr>) -> bool {
    Command::new(prog)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Finds an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
