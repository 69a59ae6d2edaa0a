//! `wasm-opt` for `cargo xtask dist`: found on PATH or installed from npm,
//! run with several optimization levels, and kept only when it makes the
//! download (gzipped) smaller.

use crate::dist::gzip_len;
use crate::util;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// binaryen release installed from npm when no usable `wasm-opt` is on PATH.
const BINARYEN_NPM: &str = "binaryen@132";
/// Older binaryen (Debian's 108) mis-handles the wasm today's rustc emits.
const MIN_WASM_OPT_VERSION: u32 = 116;
/// Features rustc's wasm32 target enables by default; wasm-opt must be told,
/// or it rejects (or miscompiles) the instructions that use them.
const WASM_OPT_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// The levels tried: `-Oz` is smallest raw, but on rustc's already dense
/// `opt-level = "z"` output `-O1` often compresses best (measured on the
/// app: gzip 240.0 kB as built, 238.1 kB with `-O1`, 248.7 kB with `-Oz`).
const LEVELS: &[&str] = &["-O1", "-Oz"];

/// Runs `wasm-opt` at each of [`LEVELS`] if a recent enough one can be
/// found or installed. Returns the module to ship: the smallest gzipped
/// of the input and the outputs (what users wait for is the compressed
/// download).
pub fn optimize(wasm: &Path, target: &Path) -> Result<Vec<u8>, std::io::Error> {
    let input = fs::read(wasm)?;
    let Some(tool) = find_wasm_opt(target) else {
        eprintln!(
            "xtask: warning: no usable wasm-opt (binaryen >= {MIN_WASM_OPT_VERSION}) on PATH and no npm to install one; shipping the wasm unoptimized"
        );
        return Ok(input);
    };
    let name = wasm.file_name().unwrap_or_default().to_string_lossy();
    let mut best = (gzip_len(&input), "as built", input);
    for level in LEVELS {
        let out = wasm.with_extension("opt.wasm");
        let mut cmd = Command::new(&tool);
        cmd.arg(level)
            .args(WASM_OPT_FEATURES)
            .arg(wasm)
            .arg("-o")
            .arg(&out);
        match util::run(&mut cmd).and_then(|()| Ok(fs::read(&out)?)) {
            Ok(after) => {
                let gz = gzip_len(&after);
                eprintln!(
                    "xtask: wasm-opt {level} {name}: raw {} bytes, gzip {gz} bytes (as built: gzip {})",
                    after.len(),
                    gzip_len(&fs::read(wasm)?)
                );
                if gz < best.0 {
                    best = (gz, level, after);
                }
            }
            Err(e) => eprintln!("xtask: warning: wasm-opt {level} failed ({e})"),
        }
    }
    eprintln!("xtask: shipping {name} {}", best.1);
    Ok(best.2)
}

/// `wasm-opt` from PATH if recent enough, else from binaryen's npm package
/// (installed once into `<target>/tools/binaryen`).
fn find_wasm_opt(target: &Path) -> Option<PathBuf> {
    if let Some(p) = util::which("wasm-opt") {
        match wasm_opt_version(&p) {
            Some(v) if v >= MIN_WASM_OPT_VERSION => return Some(p),
            v => eprintln!(
                "xtask: ignoring {} (version {v:?}, need >= {MIN_WASM_OPT_VERSION})",
                p.display()
            ),
        }
    }
    let dir = target.join("tools/binaryen");
    let bin = dir.join("node_modules/.bin/wasm-opt");
    if wasm_opt_version(&bin).is_some() {
        return Some(bin);
    }
    if !util::works("npm") || !util::works("node") {
        return None;
    }
    fs::create_dir_all(&dir).ok()?;
    let installed = util::run(Command::new("npm").args([
        "install",
        "--prefix",
        &dir.to_string_lossy(),
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        BINARYEN_NPM,
    ]));
    if let Err(e) = installed {
        eprintln!("xtask: warning: could not install {BINARYEN_NPM} with npm: {e}");
        return None;
    }
    wasm_opt_version(&bin).map(|_| bin)
}

/// The binaryen version a `wasm-opt` reports (`wasm-opt version 132 (…)`).
fn wasm_opt_version(p: &Path) -> Option<u32> {
    let o = Command::new(p).arg("--version").output().ok()?;
    if !o.status.success() {
        return None;
    }
    parse_wasm_opt_version(&String::from_utf8_lossy(&o.stdout))
}

fn parse_wasm_opt_version(s: &str) -> Option<u32> {
    let after = &s[s.find("version")? + "version".len()..];
    after
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_opt_versions() {
        assert_eq!(
            parse_wasm_opt_version("wasm-opt version 132 (version_132)"),
            Some(132)
        );
        assert_eq!(parse_wasm_opt_version("wasm-opt version 108"), Some(108));
        assert_eq!(parse_wasm_opt_version("garbage"), None);
    }
}
