//! Tidy checks, in the style of rust-analyzer's `xtask/src/tidy.rs`: plain
//! `#[test]`s that read the source tree (no cargo, no network), so
//! `cargo test -p xtask` (and therefore `cargo xtask test`) enforces them.
//! Each test lists every offender at once, as `path:line: what`, with the
//! fix.
//!
//! The Rust sources are every `*.rs` file under the workspace root except
//! build output and runtime directories (see [`walk`]) and generated files
//! (`@generated` in their first five lines).

mod docs;
mod lexer;
mod linux;

use crate::util::workspace_root;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The longest a Rust source file may be, in lines.
const MAX_LINES: usize = 800;

/// How many lines of code (blank lines and attributes count; comment lines
/// do not) may separate an `unsafe` from its `// SAFETY:` comment.
const SAFETY_WINDOW: usize = 3;

/// Every `unsafe` keyword in code (blocks, `unsafe impl`, `unsafe fn`,
/// `unsafe trait`, `unsafe extern`) carries a justification:
///
/// - a comment containing `SAFETY:` on the same line, or on a line above
///   it: walking up from the `unsafe`, comment lines are free (so a
///   multi-line comment works whatever its length), and at most
///   [`SAFETY_WINDOW`] other lines (code, attributes, blank) may be passed;
///   the walk stops at a line holding another `unsafe`, whose comment it
///   is;
/// - for `unsafe fn` and `unsafe trait`, a `# Safety` section in the doc
///   comment above also counts (the convention for what callers must
///   uphold).
///
/// `unsafe` in comments and string literals is ignored, and so is
/// `unsafe_code` in lint attributes.
#[test]
fn unsafe_has_a_safety_comment() {
    let mut offenders = Vec::new();
    for (path, text) in rust_sources() {
        let lexed = lexer::lex(&text);
        for line in undocumented_unsafe(&lexed) {
            offenders.push(format!(
                "{path}:{line}: `unsafe` without a `// SAFETY:` comment"
            ));
        }
    }
    report(
        offenders,
        &format!(
            "Write `// SAFETY: <why this is sound>` on the lines just above each \
             (at most {SAFETY_WINDOW} lines of code between comment and `unsafe`)."
        ),
    );
}

/// Linux-only code is `cfg`-gated, so the workspace still builds elsewhere.
///
/// "Linux-only code" is a use of a `libc` item that exists only on Linux
/// ([`linux::LINUX_ONLY_LIBC`], and the families in
/// [`linux::LINUX_ONLY_LIBC_PREFIXES`]: epoll, inotify, timerfd, `PR_*`,
/// `SYS_*`), written `libc::name` or imported by `use libc::…`, and any
/// `std::os::linux` path. Each must be inside a region a Linux `cfg`
/// covers:
///
/// - an item, block, statement, field or match arm carrying
///   `#[cfg(P)]` where `P` can only hold on Linux: `target_os = "linux"`,
///   `all(…)` with such a member, or `any(…)` whose members all are (so
///   `#[cfg(all(target_os = "linux", target_env = "gnu"))]` counts,
///   `#[cfg(unix)]` and `cfg!(…)` do not); or
/// - a module gated that way: a `#![cfg(…)]` at the top of its file, a
///   gated `mod x;` declaration in the parent file, or a gated ancestor
///   module.
///
/// Reading `/proc` is not covered: it compiles everywhere and fails at run
/// time with an `io::Error` the callers already handle.
#[test]
fn linux_only_code_is_cfg_gated() {
    let mut scans = HashMap::new();
    for (path, text) in rust_sources() {
        scans.insert(path, linux::scan(&lexer::lex(&text).tokens));
    }
    // Who declares each file, and whether that declaration is gated.
    let mut declared_by: HashMap<String, (String, &linux::ModDecl)> = HashMap::new();
    for (path, scan) in &scans {
        for m in &scan.mods {
            let child = module_file(path, m, |p| scans.contains_key(p));
            declared_by.insert(child, (path.clone(), m));
        }
    }
    let mut offenders = Vec::new();
    let mut paths: Vec<&String> = scans.keys().collect();
    paths.sort();
    for path in paths {
        let scan = &scans[path];
        if scan.ungated.is_empty() || module_gated(path, &scans, &declared_by, 0) {
            continue;
        }
        let via = match declared_by.get(path) {
            Some((parent, m)) => format!(
                " (its file is not gated either: `mod {};` at {parent}:{})",
                m.name, m.line
            ),
            None => String::new(),
        };
        for (line, what) in &scan.ungated {
            offenders.push(format!("{path}:{line}: `{what}` outside a Linux cfg{via}"));
        }
    }
    report(
        offenders,
        "Put each under `#[cfg(target_os = \"linux\")]` (the item or block using it, or the \
         `mod` declaration of its file), with a `#[cfg(not(target_os = \"linux\"))]` \
         fallback where other targets need one.",
    );
}

/// No Rust source file is longer than [`MAX_LINES`] lines.
#[test]
fn source_files_are_short() {
    let mut offenders = Vec::new();
    for (path, text) in rust_sources() {
        let n = text.lines().count();
        if n > MAX_LINES {
            offenders.push(format!("{path}: {n} lines (limit {MAX_LINES})"));
        }
    }
    report(offenders, "Split each file by concern into modules.");
}

/// Every repository path that `README.md`, `docs/**/*.md` and the
/// top-level directories' `README.md`s name exists.
///
/// What is checked, outside fenced code blocks:
///
/// - code spans that look like paths: with a `/` (a directory if it ends
///   in one), or a file name ending in a known extension
///   ([`docs::EXTENSIONS`]). Only characters `A-Za-z0-9_./-{},*` may
///   appear, so placeholders (`<db>-log`, `$VAR`), Rust paths (`a::b`),
///   URLs and calls are not paths. `{a,b}` lists are expanded, each checked;
///   a brace group without a comma (`{id}`) is a placeholder: not checked.
///   A glob (`src/*.rs`) checks its directory. A span with spaces is a
///   command line: only its first word is considered
///   (`loadgen/bench.sh fanout 1`). Skipped: absolute paths (`/api`,
///   `/dev/shm`: URLs and system paths), paths leaving the repository
///   (`../…`), runtime paths under [`docs::RUNTIME_PATHS`], and
///   extensionless non-directories whose first component exists neither at
///   the repository root nor in the document's directory (prose such as
///   `read/write`; `.ci/run` is checked). A span path exists if it names a
///   file or directory relative to the repository root, relative to the
///   document's directory, or as a path suffix of one in the document's
///   scope: the whole repository for `README.md` and `docs/`, the
///   document's own directory for `<dir>/README.md` (so
///   `store/sqlite/front.rs` and a layout list's `mod.rs` resolve);
/// - link targets `[text](target)` without a scheme, resolved against the
///   document's directory as Markdown does, `#fragment` dropped.
#[test]
fn docs_name_existing_paths() {
    let root = workspace_root();
    let mut entries = Vec::new();
    walk(&root, "", &mut entries);
    let exists: HashSet<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    let mut offenders = Vec::new();
    for doc in doc_files(&entries) {
        let text = fs::read_to_string(root.join(&doc)).expect("readable doc");
        let dir = doc.rsplit_once('/').map_or("", |(d, _)| d);
        let mut seen = HashSet::new();
        for named in docs::named_paths(&text) {
            if !seen.insert((named.line, named.path.clone())) {
                continue;
            }
            let found = |path: &str| {
                if named.link {
                    // `None`: outside the repository, not checked.
                    normalize(&join(dir, path))
                        .is_none_or(|p| exists.contains(p.trim_end_matches('/')))
                } else {
                    span_path_exists(path, dir, &exists)
                }
            };
            if !found(&named.path) {
                let shown = if named.written == named.path {
                    format!("`{}`", named.written)
                } else {
                    format!("`{}` ({})", named.written, named.path)
                };
                let what = if named.link { "link target" } else { "path" };
                // A module that became a directory: say where it went.
                let hint = match named.path.strip_suffix(".rs") {
                    Some(stem) if !stem.ends_with("mod") && found(&format!("{stem}/mod.rs")) => {
                        format!("; `{stem}/mod.rs` exists")
                    }
                    _ => String::new(),
                };
                offenders.push(format!(
                    "{doc}:{}: {what} {shown} does not exist{hint}",
                    named.line
                ));
            }
        }
    }
    report(
        offenders,
        "Update the document to the current path, or, for a path that only exists at run \
         time, add it to `RUNTIME_PATHS` in xtask/src/tidy/docs.rs.",
    );
}

/// Whether a code-span path resolves (see [`docs_name_existing_paths`]).
fn span_path_exists(path: &str, dir: &str, exists: &HashSet<&str>) -> bool {
    let p = path.trim_end_matches('/');
    let in_dir = join(dir, p);
    if docs::needs_top_level_anchor(path) {
        let first = p.split('/').next().unwrap_or(p);
        if !exists.contains(first) && !exists.contains(join(dir, first).as_str()) {
            return true; // not a repository path: nothing to check
        }
    }
    if exists.contains(p) || exists.contains(in_dir.as_str()) {
        return true;
    }
    // Path suffix of an entry in the document's scope.
    let scope = if dir.is_empty() || dir == "docs" || dir.starts_with("docs/") {
        String::new()
    } else {
        format!("{dir}/")
    };
    let tail = format!("/{p}");
    exists
        .iter()
        .any(|e| e.starts_with(scope.as_str()) && e.ends_with(tail.as_str()))
}

/// `a` + `/` + `b`, or `b` alone when `a` is empty.
fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Resolves `.` and `..`; `None` if the path leaves the repository.
fn normalize(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// `README.md`, `docs/**/*.md`, and `<dir>/README.md` for each top-level
/// directory.
fn doc_files(entries: &[(String, bool)]) -> Vec<String> {
    let mut out: Vec<String> = entries
        .iter()
        .filter(|(p, is_dir)| {
            !is_dir
                && (p == "README.md"
                    || (p.starts_with("docs/") && p.ends_with(".md"))
                    || p.split('/').count() == 2 && p.ends_with("/README.md"))
        })
        .map(|(p, _)| p.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The `unsafe` keywords of a file without a SAFETY comment (1-based lines).
fn undocumented_unsafe(lexed: &lexer::Lexed) -> Vec<usize> {
    let tokens = &lexed.tokens;
    let unsafe_lines: HashSet<usize> = tokens
        .iter()
        .filter(|t| t.is_ident("unsafe"))
        .map(|t| t.line)
        .collect();
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !t.is_ident("unsafe") {
            continue;
        }
        let declaration = tokens
            .get(i + 1)
            .is_some_and(|n| n.is_ident("fn") || n.is_ident("trait"));
        let justifies = |line: usize| {
            let c = lexed.comment(line);
            c.contains("SAFETY:") || (declaration && c.contains("# Safety"))
        };
        let mut ok = justifies(t.line);
        let mut line = t.line;
        let mut budget = SAFETY_WINDOW;
        while !ok && line > 1 && budget > 0 {
            line -= 1;
            if lexed.comment_only(line) {
                ok = justifies(line);
                continue;
            }
            if unsafe_lines.contains(&line) {
                break;
            }
            ok = justifies(line);
            budget -= 1;
        }
        if !ok && out.last() != Some(&t.line) {
            out.push(t.line);
        }
    }
    out
}

/// Path of the file a `mod` declaration in `parent` loads.
fn module_file(parent: &str, m: &linux::ModDecl, exists: impl Fn(&str) -> bool) -> String {
    let parent_dir = parent.rsplit_once('/').map_or("", |(d, _)| d);
    if let Some(p) = &m.path {
        return normalize(&join(parent_dir, p)).unwrap_or_default();
    }
    let file = parent.rsplit('/').next().unwrap_or(parent);
    let root = workspace_root();
    let grandparent_is_crate = Path::new(parent_dir)
        .parent()
        .is_some_and(|g| root.join(g).join("Cargo.toml").is_file());
    let dir_name = parent_dir.rsplit('/').next().unwrap_or(parent_dir);
    let crate_root = matches!(file, "lib.rs" | "main.rs" | "mod.rs" | "build.rs")
        || (grandparent_is_crate && matches!(dir_name, "tests" | "examples" | "benches"))
        || parent_dir.ends_with("src/bin");
    let dir = if crate_root {
        parent_dir.to_string()
    } else {
        join(parent_dir, file.trim_end_matches(".rs"))
    };
    let flat = join(&dir, &format!("{}.rs", m.name));
    if exists(&flat) {
        flat
    } else {
        join(&dir, &format!("{}/mod.rs", m.name))
    }
}

/// Whether a Linux `cfg` covers a whole file: its own `#![cfg]`, its `mod`
/// declaration, or an ancestor module.
fn module_gated(
    path: &str,
    scans: &HashMap<String, linux::FileScan>,
    declared_by: &HashMap<String, (String, &linux::ModDecl)>,
    depth: usize,
) -> bool {
    if scans.get(path).is_some_and(|s| s.inner_gated) {
        return true;
    }
    match declared_by.get(path) {
        Some((parent, m)) => {
            m.gated || (depth < 64 && module_gated(parent, scans, declared_by, depth + 1))
        }
        None => false,
    }
}

/// Every Rust source: (path relative to the root, `/`-separated; text).
fn rust_sources() -> Vec<(String, String)> {
    let root = workspace_root();
    let mut entries = Vec::new();
    walk(&root, "", &mut entries);
    entries
        .into_iter()
        .filter(|(p, is_dir)| !is_dir && p.ends_with(".rs"))
        .filter_map(|(p, _)| {
            let text = fs::read_to_string(root.join(&p)).expect("readable source");
            let generated = text.lines().take(5).any(|l| l.contains("@generated"));
            (!generated).then_some((p, text))
        })
        .collect()
}

/// Lists the files and directories under `dir` (relative to the root in
/// `rel`), sorted. Skips `.git`, `target`, `node_modules`, any directory
/// holding a `CACHEDIR.TAG` (a cargo target directory under another name),
/// and the top-level runtime directories of [`docs::RUNTIME_PATHS`].
fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, bool)>) {
    let mut children: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    children.sort();
    for child in children {
        let name = child.file_name().unwrap_or_default().to_string_lossy();
        let path = join(rel, &name);
        if child.is_dir() {
            let runtime =
                rel.is_empty() && docs::RUNTIME_PATHS.contains(&format!("{name}/").as_str());
            if matches!(&*name, ".git" | "target" | "node_modules")
                || runtime
                || child.join("CACHEDIR.TAG").exists()
            {
                continue;
            }
            out.push((path.clone(), true));
            walk(&child, &path, out);
        } else {
            out.push((path, false));
        }
    }
}

/// Fails with every offender and the fix, or passes if there are none.
fn report(offenders: Vec<String>, fix: &str) {
    if offenders.is_empty() {
        return;
    }
    let mut msg = format!("\n{} offender(s):\n", offenders.len());
    for o in &offenders {
        let _ = writeln!(msg, "  {o}");
    }
    let _ = write!(msg, "\nFix: {fix}\n");
    panic!("{msg}");
}

#[cfg(test)]
mod self_tests {
    use super::*;

    #[test]
    fn safety_comment_window() {
        let src = "\
// SAFETY: one
unsafe { a() };
unsafe { b() };
// SAFETY: spans
// two lines
#[cfg(unix)]

unsafe { c() }
let x = unsafe { d() }; // SAFETY: trailing
// SAFETY: too far
x;
y;
z;
unsafe { e() }
/// # Safety
/// callers must…
pub unsafe fn f() {}
";
        assert_eq!(undocumented_unsafe(&lexer::lex(src)), [3, 14]);
    }

    #[test]
    fn module_files() {
        let m = |name: &str, path: Option<&str>| linux::ModDecl {
            name: name.into(),
            path: path.map(Into::into),
            gated: false,
            line: 1,
        };
        let none = |_: &str| false;
        assert_eq!(
            module_file("relay/src/lib.rs", &m("hub", None), none),
            "relay/src/hub/mod.rs"
        );
        assert_eq!(
            module_file("relay/src/lib.rs", &m("auth", None), |p| p
                == "relay/src/auth.rs"),
            "relay/src/auth.rs"
        );
        assert_eq!(
            module_file(
                "relay/src/store/sqlite/mod.rs",
                &m("priority", None),
                |_| true
            ),
            "relay/src/store/sqlite/priority.rs"
        );
        assert_eq!(
            module_file(
                "relay/src/rules/group.rs",
                &m("tests", Some("group_tests.rs")),
                none
            ),
            "relay/src/rules/group_tests.rs"
        );
        assert_eq!(
            module_file("relay/tests/delivery.rs", &m("common", None), none),
            "relay/tests/common/mod.rs"
        );
        assert_eq!(
            module_file("loadgen/src/client/api.rs", &m("x", None), |_| true),
            "loadgen/src/client/api/x.rs"
        );
    }

    #[test]
    fn span_paths_resolve_by_root_dir_or_suffix() {
        let exists: HashSet<&str> = [
            "relay",
            "relay/src",
            "relay/src/store",
            "relay/src/store/front.rs",
            "loadgen",
            "loadgen/src",
            "loadgen/src/mod.rs",
            ".ci",
            ".ci/run",
        ]
        .into_iter()
        .collect();
        let ok = |p: &str, dir: &str| span_path_exists(p, dir, &exists);
        assert!(ok("relay/src/", ""));
        assert!(ok("store/front.rs", "docs"));
        assert!(ok("src/mod.rs", "loadgen"));
        assert!(ok("mod.rs", "loadgen"));
        assert!(
            !ok("front.rs", "loadgen"),
            "suffixes stay in the doc's crate"
        );
        assert!(ok(".ci/run", ""));
        assert!(!ok(".ci/missing", ""));
        assert!(ok("read/write", ""), "prose, not checked");
        assert!(!ok("relay/src/hub.rs", ""));
    }
}
