//! Which strings in a Markdown file name repository paths. The rule is
//! documented on [`super::docs_name_existing_paths`].

/// Paths that exist only at run or build time, never in a clone: a named
/// path equal to one of these or below it is not checked.
pub const RUNTIME_PATHS: &[&str] = &[
    "dist/",          // `cargo xtask dist` output
    "data/",          // the relay's default database directory
    "target/",        // cargo's build directory
    "e2e-artifacts/", // browser-suite screenshots
];

/// File extensions that make a code span a path even without a `/`.
pub const EXTENSIONS: &[&str] = &[
    "rs", "md", "toml", "sh", "css", "html", "js", "json", "lock", "yml", "yaml", "txt",
];

/// One path a document names.
#[derive(Debug, PartialEq, Eq)]
pub struct Named {
    /// 1-based line in the document.
    pub line: usize,
    /// As written (code span or link target).
    pub written: String,
    /// Repository-relative path (already normalised) or, for code spans,
    /// the path as written after expansion: resolved by the caller.
    pub path: String,
    /// A link target (resolved against the document's directory only).
    pub link: bool,
}

/// Every checkable path in `text`: code spans and link targets outside
/// fenced code blocks.
pub fn named_paths(text: &str) -> Vec<Named> {
    let mut out = Vec::new();
    // Fenced blocks become empty lines so line numbers stay right.
    let mut fenced = false;
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("```") || t.starts_with("~~~") {
                fenced = !fenced;
                ""
            } else if fenced {
                ""
            } else {
                l
            }
        })
        .collect();
    let prose = lines.join("\n");
    for (line, span) in code_spans(&prose) {
        for path in span_paths(&span) {
            out.push(Named {
                line,
                written: span.clone(),
                path,
                link: false,
            });
        }
    }
    for (n, l) in lines.iter().enumerate() {
        let mut rest = *l;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            let target = target.split('#').next().unwrap_or("");
            if !target.is_empty() && !target.contains(':') {
                out.push(Named {
                    line: n + 1,
                    written: rest[..end].to_string(),
                    path: target.to_string(),
                    link: true,
                });
            }
            rest = &rest[end..];
        }
    }
    out.sort_by_key(|n| n.line);
    out
}

/// Inline code spans: (line of the opening backtick, contents).
fn code_spans(text: &str) -> Vec<(usize, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            i += 1;
            continue;
        }
        let run = b[i..].iter().take_while(|&&c| c == b'`').count();
        let body = i + run;
        // The closing run has exactly the same length.
        let mut j = body;
        let mut close = None;
        while j < b.len() {
            if b[j] == b'`' {
                let r = b[j..].iter().take_while(|&&c| c == b'`').count();
                if r == run {
                    close = Some(j);
                    break;
                }
                j += r;
            } else {
                j += 1;
            }
        }
        let contents = close.map(|c| &text[body..c]);
        match contents {
            // A blank line ends a paragraph: no span crosses it.
            Some(s) if !s.contains("\n\n") => {
                let line = text[..i].matches('\n').count() + 1;
                out.push((line, s.replace('\n', " ").trim().to_string()));
                i = close.unwrap_or(b.len()) + run;
            }
            _ => i = body,
        }
    }
    out
}

/// The repository paths one code span names (none, one, or several for a
/// `{a,b}` list).
fn span_paths(span: &str) -> Vec<String> {
    // A command line: only its program can be a repository path
    // (`loadgen/bench.sh fanout 1`).
    let word = span.split_whitespace().next().unwrap_or("");
    let word = word.strip_prefix("./").unwrap_or(word);
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./-{},*".contains(c);
    if word.is_empty()
        || word.starts_with('/')
        || word.starts_with("../")
        || word == "."
        || word == ".."
        || !word.chars().all(plain)
    {
        return Vec::new();
    }
    let Some(expanded) = expand_braces(word) else {
        return Vec::new();
    };
    expanded
        .into_iter()
        .filter_map(|p| {
            // A glob: check the directory it lists.
            let p = match p.find('*') {
                Some(star) => p[..p[..star].rfind('/')? + 1].to_string(),
                None => p,
            };
            let runtime = RUNTIME_PATHS
                .iter()
                .any(|r| p == *r || p.starts_with(r) || p == r.trim_end_matches('/'));
            (!runtime && looks_like_path(&p)).then_some(p)
        })
        .collect()
}

/// `a/{b,c}.rs` → `a/b.rs`, `a/c.rs`. `None` for a brace group without a
/// comma: a placeholder such as `{id}`, not a list.
fn expand_braces(s: &str) -> Option<Vec<String>> {
    let Some(open) = s.find('{') else {
        return Some(vec![s.to_string()]);
    };
    let close = open + s[open..].find('}')?;
    let alternatives = &s[open + 1..close];
    if !alternatives.contains(',') {
        return None;
    }
    let mut out = Vec::new();
    for alt in alternatives.split(',') {
        out.extend(expand_braces(&format!(
            "{}{alt}{}",
            &s[..open],
            &s[close + 1..]
        ))?);
    }
    Some(out)
}

/// A path with a `/` (a directory if it ends in one), or a file name with a
/// known extension. Extensionless `a/b` is only checked if `a` is at the top
/// of the repository (`.ci/run`), which the caller decides with
/// [`needs_top_level_anchor`]: prose like `read/write` is not a path.
fn looks_like_path(p: &str) -> bool {
    !p.is_empty() && !p.split('/').any(|c| c == "..") && (p.contains('/') || has_extension(p))
}

/// Whether the last component ends in one of [`EXTENSIONS`].
fn has_extension(p: &str) -> bool {
    let last = p.rsplit('/').next().unwrap_or(p);
    last.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && EXTENSIONS.contains(&ext))
}

/// Extensionless, not a directory: checked only if its first component is a
/// top-level entry of the repository.
pub fn needs_top_level_anchor(p: &str) -> bool {
    !p.ends_with('/') && !has_extension(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(md: &str) -> Vec<(usize, String)> {
        named_paths(md)
            .into_iter()
            .map(|n| (n.line, n.path))
            .collect()
    }

    #[test]
    fn what_counts_as_a_path() {
        let md = "\
See `relay/src/hub/{registry,delivery}.rs` and [`docs/x.md`](docs/x.md#top).
`GET /api/groups/{id}` `/dev/shm` `https://x.org/a.md` `<db>-log` `ceil(N/tabs)`
`./data/ferrochat.db` `dist/` `target/trunk-dist` `loadgen/bench.sh fanout 1`
`src/components/*.rs` `shared::frame` `0.2.130` `Cargo.lock` `.ci/run` `../x/y.md`
```sh
cargo run -- `not/a/path.rs`
```
`split
over.rs` and ``a `b` c/d.rs``
";
        assert_eq!(
            paths(md),
            [
                (1, "relay/src/hub/registry.rs"),
                (1, "relay/src/hub/delivery.rs"),
                (1, "docs/x.md"),
                (1, "docs/x.md"),
                (3, "loadgen/bench.sh"),
                (4, "src/components/"),
                (4, "Cargo.lock"),
                (4, ".ci/run"),
            ]
            .map(|(l, p)| (l, p.to_string()))
        );
    }
}
