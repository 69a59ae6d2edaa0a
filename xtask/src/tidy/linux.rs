//! Where Linux-only APIs are used, and whether a `cfg` keeps them off other
//! targets. The rule itself is documented on
//! [`super::linux_only_code_is_cfg_gated`].

use super::lexer::{Kind, Token};

/// `libc` items that exist only on Linux (or only with Linux's meaning,
/// such as thread ids): a use outside a Linux `cfg` breaks the build on
/// every other target.
pub const LINUX_ONLY_LIBC: &[&str] = &[
    // threads and scheduling
    "gettid",
    "sched_setattr",
    "sched_getattr",
    "sched_setscheduler",
    "sched_getscheduler",
    "SCHED_IDLE",
    "SCHED_BATCH",
    "SCHED_RESET_ON_FORK",
    "sched_setaffinity",
    "sched_getaffinity",
    "cpu_set_t",
    "CPU_SET",
    "CPU_ZERO",
    "CPU_ISSET",
    "prctl",
    // resource limits
    "prlimit",
    "prlimit64",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    // glibc's allocator
    "mallopt",
    "malloc_trim",
    "M_ARENA_MAX",
    "M_MMAP_THRESHOLD",
    "M_MMAP_MAX",
    "M_TRIM_THRESHOLD",
    "M_TOP_PAD",
    // file descriptors and files
    "eventfd",
    "signalfd",
    "memfd_create",
    "fallocate",
    "splice",
    "vmsplice",
    "tee",
    "sync_file_range",
    "syncfs",
    "statx",
    "O_TMPFILE",
    "MAP_POPULATE",
    // sockets
    "IP_BIND_ADDRESS_NO_PORT",
    "TCP_QUICKACK",
    "TCP_CORK",
    "TCP_USER_TIMEOUT",
    "SO_BUSY_POLL",
    "SO_INCOMING_CPU",
];

/// Name prefixes of Linux-only `libc` families: epoll, inotify, timerfd,
/// `prctl` options and raw syscall numbers (which differ per OS).
pub const LINUX_ONLY_LIBC_PREFIXES: &[&str] =
    &["epoll_", "EPOLL", "inotify_", "timerfd_", "PR_", "SYS_"];

fn linux_only(name: &str) -> bool {
    LINUX_ONLY_LIBC.contains(&name) || LINUX_ONLY_LIBC_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// What one file says about Linux gating.
#[derive(Debug, Default)]
pub struct FileScan {
    /// `#![cfg(target_os = "linux")]` at the top of the file.
    pub inner_gated: bool,
    /// `mod name;` declarations.
    pub mods: Vec<ModDecl>,
    /// Linux-only uses outside any Linux `cfg` of this file: line, what.
    pub ungated: Vec<(usize, String)>,
}

/// `mod name;` (a module in its own file).
#[derive(Debug, PartialEq, Eq)]
pub struct ModDecl {
    pub name: String,
    /// Its `#[path = "…"]`, if any.
    pub path: Option<String>,
    /// Whether a Linux `cfg` of this file covers the declaration.
    pub gated: bool,
    pub line: usize,
}

/// A `{`, `(` or `[` group and whether a Linux `cfg` covers its contents.
struct Group {
    gated: bool,
}

/// Scans one file's tokens.
pub fn scan(tokens: &[Token]) -> FileScan {
    let mut out = FileScan::default();
    let mut stack: Vec<Group> = Vec::new();
    // Depth at which an outer Linux `cfg` waits for the item or statement
    // it applies to; that item ends at its first `{ … }`, or at a `;` or `,`
    // at the same depth.
    let mut pending: Option<usize> = None;
    let mut path_attr: Option<String> = None;
    // Inside `use libc::…;`: names are imports of libc items.
    let mut in_use_libc = false;
    let t = |i: usize| tokens.get(i);
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        let gated = out.inner_gated || pending.is_some() || stack.last().is_some_and(|g| g.gated);
        if tok.is_punct('#') {
            let inner = t(i + 1).is_some_and(|n| n.is_punct('!'));
            let open = i + 1 + usize::from(inner);
            if t(open).is_some_and(|n| n.is_punct('[')) {
                let close = matching(tokens, open);
                let attr = &tokens[open + 1..close];
                if is_linux_cfg(attr) {
                    match (inner, stack.last_mut()) {
                        (true, None) => out.inner_gated = true,
                        (true, Some(g)) => g.gated = true,
                        (false, _) => pending = Some(stack.len()),
                    }
                }
                if let [p, eq, s, ..] = attr {
                    if p.is_ident("path") && eq.is_punct('=') && s.kind == Kind::Str {
                        path_attr = Some(s.text.to_string());
                    }
                }
                i = close + 1;
                continue;
            }
        }
        match tok.kind {
            Kind::Punct if tok.is_punct('{') || tok.is_punct('(') || tok.is_punct('[') => {
                if tok.is_punct('{') {
                    if pending == Some(stack.len()) {
                        pending = None;
                    }
                    path_attr = None;
                }
                stack.push(Group { gated });
            }
            Kind::Punct if tok.is_punct('}') || tok.is_punct(')') || tok.is_punct(']') => {
                stack.pop();
                if pending.is_some_and(|d| d > stack.len()) {
                    pending = None;
                }
            }
            Kind::Punct if tok.is_punct(';') || tok.is_punct(',') => {
                if pending == Some(stack.len()) {
                    pending = None;
                }
                if tok.is_punct(';') {
                    in_use_libc = false;
                    path_attr = None;
                }
            }
            Kind::Ident if tok.text == "mod" => {
                if let (Some(name), Some(semi)) = (t(i + 1), t(i + 2)) {
                    if name.kind == Kind::Ident && semi.is_punct(';') {
                        out.mods.push(ModDecl {
                            name: name.text.to_string(),
                            path: path_attr.take(),
                            gated,
                            line: tok.line,
                        });
                    }
                }
            }
            Kind::Ident if tok.text == "use" => {
                let mut j = i + 1;
                while t(j).is_some_and(|n| n.is_punct(':')) {
                    j += 1;
                }
                in_use_libc = t(j).is_some_and(|n| n.is_ident("libc"));
            }
            Kind::Ident if !gated => {
                let path_sep = |j: usize| {
                    t(j).is_some_and(|n| n.is_punct(':'))
                        && t(j + 1).is_some_and(|n| n.is_punct(':'))
                };
                let hit = if tok.text == "libc" && path_sep(i + 1) {
                    t(i + 3)
                        .filter(|n| n.kind == Kind::Ident && linux_only(n.text))
                        .map(|n| format!("libc::{}", n.text))
                } else if tok.text == "os"
                    && path_sep(i + 1)
                    && t(i + 3).is_some_and(|n| n.is_ident("linux"))
                {
                    Some("os::linux".to_string())
                } else if in_use_libc && linux_only(tok.text) {
                    Some(format!("libc::{} (imported)", tok.text))
                } else {
                    None
                };
                if let Some(what) = hit {
                    out.ungated.push((tok.line, what));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Index of the `]` that closes the `[` at `open` (or the last token).
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        if t.is_punct('[') {
            depth += 1;
        } else if t.is_punct(']') {
            depth -= 1;
            if depth == 0 {
                return j;
            }
        }
    }
    tokens.len() - 1
}

/// A `cfg` predicate, as far as Linux is concerned.
#[derive(Debug)]
enum Cfg {
    Linux,
    Other,
    All(Vec<Cfg>),
    Any(Vec<Cfg>),
    Not,
}

impl Cfg {
    /// Whether the predicate can only hold when compiling for Linux.
    fn implies_linux(&self) -> bool {
        match self {
            Cfg::Linux => true,
            Cfg::All(xs) => xs.iter().any(Cfg::implies_linux),
            Cfg::Any(xs) => !xs.is_empty() && xs.iter().all(Cfg::implies_linux),
            Cfg::Not | Cfg::Other => false,
        }
    }
}

/// Whether an attribute's tokens (between `[` and `]`) are a `cfg(…)` that
/// implies `target_os = "linux"`.
fn is_linux_cfg(attr: &[Token]) -> bool {
    match attr {
        [cfg, open, rest @ ..] if cfg.is_ident("cfg") && open.is_punct('(') => {
            let mut pos = 0;
            parse_cfg(rest, &mut pos).is_some_and(|c| c.implies_linux())
        }
        _ => false,
    }
}

fn parse_cfg(t: &[Token], pos: &mut usize) -> Option<Cfg> {
    let name = t.get(*pos).filter(|n| n.kind == Kind::Ident)?.text;
    *pos += 1;
    if t.get(*pos).is_some_and(|n| n.is_punct('=')) {
        let value = t.get(*pos + 1).filter(|n| n.kind == Kind::Str)?.text;
        *pos += 2;
        return Some(if name == "target_os" && value == "linux" {
            Cfg::Linux
        } else {
            Cfg::Other
        });
    }
    if !t.get(*pos).is_some_and(|n| n.is_punct('(')) {
        return Some(Cfg::Other);
    }
    *pos += 1;
    let mut list = Vec::new();
    while !t.get(*pos)?.is_punct(')') {
        list.push(parse_cfg(t, pos)?);
        if t.get(*pos).is_some_and(|n| n.is_punct(',')) {
            *pos += 1;
        }
    }
    *pos += 1;
    Some(match name {
        "all" => Cfg::All(list),
        "any" => Cfg::Any(list),
        "not" => Cfg::Not,
        _ => Cfg::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn ungated(src: &str) -> Vec<usize> {
        scan(&lex(src).tokens)
            .ungated
            .into_iter()
            .map(|(l, _)| l)
            .collect()
    }

    #[test]
    fn cfg_predicates() {
        let linux = |a: &str| is_linux_cfg(&lex(a).tokens);
        assert!(linux(r#"cfg(target_os = "linux")"#));
        assert!(linux(
            r#"cfg(all(target_os = "linux", target_env = "gnu"))"#
        ));
        assert!(linux(
            r#"cfg(any(all(unix, target_os = "linux"), target_os = "linux"))"#
        ));
        assert!(!linux(
            r#"cfg(any(target_os = "linux", target_os = "macos"))"#
        ));
        assert!(!linux(r#"cfg(not(target_os = "linux"))"#));
        assert!(!linux("cfg(unix)"));
        assert!(!linux(r#"cfg_attr(target_os = "linux", x)"#));
    }

    #[test]
    fn gating_by_item_block_statement_and_file() {
        let src = r#"
fn a() { unsafe { libc::gettid() }; }
#[cfg(target_os = "linux")]
fn b(t: libc::cpu_set_t) -> i32 { libc::gettid() }
fn c() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe { libc::mallopt(1, 2); }
    libc::mallopt(1, 2);
    #[cfg(target_os = "linux")]
    let t = f(libc::SCHED_IDLE, libc::SYS_gettid);
    let u = libc::SCHED_OTHER + libc::SCHED_IDLE;
}
#[cfg(unix)]
use libc::{getrlimit, prctl};
use std::os::linux::fs::MetadataExt;
"#;
        assert_eq!(ungated(src), [2, 8, 11, 14, 15]);
        let gated_file = format!("#![cfg(target_os = \"linux\")]\n{src}");
        assert!(ungated(&gated_file).is_empty());
    }

    #[test]
    fn mod_declarations_carry_their_cfg_and_path() {
        let src = r#"
#[cfg(target_os = "linux")]
mod priority;
mod other;
#[cfg(test)]
#[path = "x_tests.rs"]
mod tests;
"#;
        let mods: Vec<_> = scan(&lex(src).tokens)
            .mods
            .into_iter()
            .map(|m| (m.name, m.path, m.gated, m.line))
            .collect();
        let s = String::from;
        assert_eq!(
            mods,
            [
                (s("priority"), None, true, 3),
                (s("other"), None, false, 4),
                (s("tests"), Some(s("x_tests.rs")), false, 7),
            ]
        );
    }
}
