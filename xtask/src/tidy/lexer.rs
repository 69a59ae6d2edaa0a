//! Just enough of a Rust tokenizer for the tidy checks: identifiers, string
//! literals (with their contents), single-character punctuation, and the
//! comments of every line. Comments, strings and char literals are never
//! mistaken for code, so `unsafe` in a doc comment or `"libc::gettid"` in a
//! string is not a hit. Not a validating lexer: odd input degrades to
//! punctuation, it never fails.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Identifier or keyword (`r#x` gives `x`).
    Ident,
    /// String literal of any flavour; `text` is its contents, unescaped
    /// only as far as dropping the quotes.
    Str,
    /// One punctuation character (`::` is two tokens).
    Punct,
    /// Number, char or byte literal, lifetime, label.
    Other,
}

#[derive(Clone, Debug)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// 1-based line of the token's first character.
    pub line: usize,
}

impl Token<'_> {
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.starts_with(c)
    }

    pub fn is_ident(&self, name: &str) -> bool {
        self.kind == Kind::Ident && self.text == name
    }
}

pub struct Lexed<'a> {
    pub tokens: Vec<Token<'a>>,
    /// Per line (index 0 is line 1): the text of the comments on it, `//`
    /// markers included, joined with a space.
    pub comments: Vec<String>,
    /// Per line: whether any token starts on it.
    pub has_code: Vec<bool>,
}

impl Lexed<'_> {
    /// The comment text on 1-based `line` ("" if none).
    pub fn comment(&self, line: usize) -> &str {
        self.comments.get(line - 1).map_or("", String::as_str)
    }

    /// Whether 1-based `line` holds a comment and no code.
    pub fn comment_only(&self, line: usize) -> bool {
        !self.comment(line).is_empty() && !self.has_code[line - 1]
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub fn lex(src: &str) -> Lexed<'_> {
    let lines = src.lines().count().max(1) + 1;
    let mut out = Lexed {
        tokens: Vec::new(),
        comments: vec![String::new(); lines],
        has_code: vec![false; lines],
    };
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or('\0', |&(_, c)| c);
    let byte = |i: usize| chars.get(i).map_or(src.len(), |&(b, _)| b);
    let mut line = 1;
    let mut i = 0;
    // Counts the newlines in chars[from..to].
    let newlines =
        |from: usize, to: usize| chars[from..to].iter().filter(|&&(_, c)| c == '\n').count();
    while i < chars.len() {
        let c = at(i);
        let start = i;
        if c == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // Comments: `//…` to the end of the line, `/* … */` nested.
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && at(i) != '\n' {
                i += 1;
            }
            add_comment(&mut out.comments, line, &src[byte(start)..byte(i)]);
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            let mut l = line;
            let mut seg = start;
            while i < chars.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if at(i) == '\n' {
                    add_comment(&mut out.comments, l, &src[byte(seg)..byte(i)]);
                    l += 1;
                    i += 1;
                    seg = i;
                } else {
                    i += 1;
                }
            }
            add_comment(&mut out.comments, l, &src[byte(seg)..byte(i)]);
            line = l;
            continue;
        }
        let token_line = line;
        let (kind, text_from, text_to) = if let Some((hashes, q)) = raw_string_start(&chars, i) {
            // r"…", r#"…"#, br"…", cr#"…"#: no escapes, ends at `"` + hashes.
            let body = q + 1;
            let mut j = body;
            loop {
                if j >= chars.len() {
                    break (Kind::Str, body, j);
                }
                if at(j) == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                    let end = j;
                    i = j + 1 + hashes;
                    break (Kind::Str, body, end);
                }
                j += 1;
            }
        } else if c == '"' || ((c == 'b' || c == 'c') && at(i + 1) == '"') {
            let body = if c == '"' { i + 1 } else { i + 2 };
            let mut j = body;
            while j < chars.len() && at(j) != '"' {
                j += if at(j) == '\\' { 2 } else { 1 };
            }
            let end = j.min(chars.len());
            i = end + 1;
            (Kind::Str, body, end)
        } else if c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
            // Raw identifier.
            let mut j = i + 2;
            while is_ident_continue(at(j)) {
                j += 1;
            }
            i = j;
            (Kind::Ident, start + 2, j)
        } else if c == 'b' && at(i + 1) == '\'' {
            i = char_literal_end(&chars, i + 1);
            (Kind::Other, start, i)
        } else if is_ident_start(c) {
            let mut j = i + 1;
            while is_ident_continue(at(j)) {
                j += 1;
            }
            i = j;
            (Kind::Ident, start, j)
        } else if c.is_ascii_digit() {
            let mut j = i + 1;
            while is_ident_continue(at(j)) || (at(j) == '.' && at(j + 1).is_ascii_digit()) {
                j += 1;
            }
            i = j;
            (Kind::Other, start, j)
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime/label ('a).
            if at(i + 1) == '\\' || (at(i + 1) != '\0' && at(i + 2) == '\'') {
                i = char_literal_end(&chars, i);
            } else {
                let mut j = i + 1;
                while is_ident_continue(at(j)) {
                    j += 1;
                }
                i = j.max(i + 1);
            }
            (Kind::Other, start, i)
        } else {
            i += 1;
            (Kind::Punct, start, i)
        };
        line += newlines(start, i.min(chars.len()));
        out.has_code[token_line - 1] = true;
        out.tokens.push(Token {
            kind,
            text: &src[byte(text_from)..byte(text_to)],
            line: token_line,
        });
    }
    out
}

fn add_comment(comments: &mut [String], line: usize, text: &str) {
    let slot = &mut comments[line - 1];
    if !slot.is_empty() {
        slot.push(' ');
    }
    slot.push_str(text);
}

/// If a raw string literal starts at `i`: its number of `#`s and the index
/// of its opening quote.
fn raw_string_start(chars: &[(usize, char)], i: usize) -> Option<(usize, usize)> {
    let at = |i: usize| chars.get(i).map_or('\0', |&(_, c)| c);
    let mut j = i;
    if matches!(at(j), 'b' | 'c') {
        j += 1;
    }
    if at(j) != 'r' {
        return None;
    }
    // `r` must start the token, not end an identifier like `for`.
    if i > 0 && is_ident_continue(at(i - 1)) {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while at(j) == '#' {
        hashes += 1;
        j += 1;
    }
    (at(j) == '"').then_some((hashes, j))
}

/// Index just past the char literal whose opening quote is at `i`.
fn char_literal_end(chars: &[(usize, char)], i: usize) -> usize {
    let at = |i: usize| chars.get(i).map_or('\0', |&(_, c)| c);
    let mut j = i + 1;
    while j < chars.len() && at(j) != '\'' && at(j) != '\n' {
        j += if at(j) == '\\' { 2 } else { 1 };
    }
    j + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(src: &str) -> Vec<(&str, usize)> {
        lex(src)
            .tokens
            .into_iter()
            .filter(|t| t.kind == Kind::Ident)
            .map(|t| (t.text, t.line))
            .collect()
    }

    #[test]
    fn comments_strings_and_chars_are_not_code() {
        let src = "// unsafe\n/* unsafe /* nested */ unsafe */ a\n\"unsafe \\\" unsafe\" b\nr#\"unsafe\"# '\"' c 'x' 'life d\n";
        // `'life` is a lifetime, not an identifier.
        assert_eq!(idents(src), [("a", 2), ("b", 3), ("c", 4), ("d", 4)]);
        let l = lex(src);
        assert!(l.comment_only(1));
        assert!(l.comment(2).contains("nested"));
        assert!(!l.comment_only(2));
    }

    #[test]
    fn multi_line_tokens_keep_line_numbers() {
        let src = "let s = \"one\ntwo\";\n/* a\nb */ x\ny";
        let t = lex(src);
        let s = t.tokens.iter().find(|t| t.kind == Kind::Str).unwrap();
        assert_eq!((s.text, s.line), ("one\ntwo", 1));
        assert_eq!(idents(src)[2..], [("x", 4), ("y", 5)]);
        assert!(t.comment(3).contains("/* a"));
        assert!(t.comment(4).contains("b */"));
    }
}
