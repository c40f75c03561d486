//! The credential file syntax (dotenv): `NAME=value` lines.
//!
//! Accepted: an optional `export ` before the name; unquoted values (trimmed,
//! ended by ` #` comments); single-quoted values (literal); double-quoted
//! values with the escapes `\n`, `\t`, `\"`, `\\` (any other backslash is
//! kept as written); full-line `#` comments; blank lines; CRLF line ends.
//! A value spans one line only. A malformed line is an error naming the file,
//! the line and what is wrong — never the line's text, which may hold a
//! secret. Within one file a later line for the same name wins, as when the
//! file is sourced by a shell.

use crate::secret::Secret;
use std::fmt;
use std::path::{Path, PathBuf};

/// One `NAME=value` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub value: Secret,
    /// 1-based line number.
    pub line: usize,
}

/// What is wrong with a line. The texts never include the line itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotenvProblem {
    MissingEquals,
    EmptyName,
    BadName,
    UnterminatedSingleQuote,
    UnterminatedDoubleQuote,
    TextAfterQuote,
    CarriageReturn,
    NotUtf8,
}

impl DotenvProblem {
    /// The operator-facing explanation (fixed text; safe to log).
    pub fn reason(self) -> &'static str {
        match self {
            DotenvProblem::MissingEquals => "missing '=' after name; write NAME=value",
            DotenvProblem::EmptyName => "no name before '='; write NAME=value",
            DotenvProblem::BadName => {
                "invalid name: use letters, digits and '_', not starting with a digit (NAME=value)"
            }
            DotenvProblem::UnterminatedSingleQuote => {
                "single quote not closed on the same line; values span one line"
            }
            DotenvProblem::UnterminatedDoubleQuote => {
                "double quote not closed on the same line; write newlines as \\n"
            }
            DotenvProblem::TextAfterQuote => {
                "unexpected text after the closing quote; only a ' #' comment may follow"
            }
            DotenvProblem::CarriageReturn => {
                "carriage return inside the line (file edited on Windows?); remove it"
            }
            DotenvProblem::NotUtf8 => "not valid UTF-8 text",
        }
    }
}

impl fmt::Display for DotenvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A malformed line: `credentials.env:7: missing '=' after name; write NAME=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DotenvError {
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    pub problem: DotenvProblem,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.problem)
    }
}

impl std::error::Error for DotenvError {}

/// Parses a whole file's bytes (checks UTF-8 first, naming the bad line).
pub fn parse_bytes(bytes: &[u8], file: &Path) -> Result<Vec<Entry>, DotenvError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file),
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            Err(DotenvError {
                file: file.to_path_buf(),
                line,
                problem: DotenvProblem::NotUtf8,
            })
        }
    }
}

/// Parses dotenv text; `file` is only used in errors.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Entry>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let err = |problem| DotenvError {
            file: file.to_path_buf(),
            line,
            problem,
        };
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((name, value))) => out.push(Entry {
                name: name.to_string(),
                value: Secret::new(value),
                line,
            }),
            Err(p) => return Err(err(p)),
        }
    }
    Ok(out)
}

/// The name a line defines (`NAME=` or `export NAME=`), if it is an assignment.
/// Used to find the line to replace without parsing (or trusting) its value.
pub fn defined_name(raw: &str) -> Option<&str> {
    let s = raw.trim_start();
    if s.starts_with('#') {
        return None;
    }
    let s = strip_export(s);
    let eq = s.find('=')?;
    let name = s[..eq].trim_end();
    valid_name(name).then_some(name)
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn strip_export(s: &str) -> &str {
    match s.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => s,
    }
}

/// `Ok(None)` for blank and comment lines.
fn parse_line(raw: &str) -> Result<Option<(&str, String)>, DotenvProblem> {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    if raw.contains('\r') {
        return Err(DotenvProblem::CarriageReturn);
    }
    let s = raw.trim_start();
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let s = strip_export(s);
    let Some(eq) = s.find('=') else {
        return Err(DotenvProblem::MissingEquals);
    };
    let name = s[..eq].trim_end();
    if name.is_empty() {
        return Err(DotenvProblem::EmptyName);
    }
    if !valid_name(name) {
        return Err(DotenvProblem::BadName);
    }
    let raw_value = &s[eq + 1..];
    let rest = raw_value.trim_start_matches([' ', '\t']);
    let value = if let Some(q) = rest.strip_prefix('\'') {
        let end = q.find('\'').ok_or(DotenvProblem::UnterminatedSingleQuote)?;
        only_comment_after(&q[end + 1..])?;
        q[..end].to_string()
    } else if let Some(q) = rest.strip_prefix('"') {
        let (value, used) = double_quoted(q)?;
        only_comment_after(&q[used..])?;
        value
    } else {
        unquoted(raw_value).to_string()
    };
    Ok(Some((name, value)))
}

/// After a closing quote: nothing, whitespace, or whitespace then `#`.
fn only_comment_after(after: &str) -> Result<(), DotenvProblem> {
    let t = after.trim_start_matches([' ', '\t']);
    if t.is_empty() || t.starts_with('#') {
        Ok(())
    } else {
        Err(DotenvProblem::TextAfterQuote)
    }
}

/// Reads up to the closing `"`; returns the value and the bytes used (incl. the quote).
fn double_quoted(q: &str) -> Result<(String, usize), DotenvProblem> {
    let mut out = String::new();
    let mut chars = q.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return Err(DotenvProblem::UnterminatedDoubleQuote),
            },
            c => out.push(c),
        }
    }
    Err(DotenvProblem::UnterminatedDoubleQuote)
}

/// An unquoted value (all that follows `=`) ends at a `#` that follows
/// whitespace, as in a shell: `A=#x` is `#x`, `A= #x` is empty. It is trimmed.
fn unquoted(raw: &str) -> &str {
    let bytes = raw.as_bytes();
    let end = (1..bytes.len())
        .find(|&i| bytes[i] == b'#' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t'))
        .unwrap_or(raw.len());
    raw[..end].trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> (String, String) {
        let v = parse(text, Path::new("c.env")).unwrap();
        assert_eq!(v.len(), 1, "{text:?}");
        (v[0].name.clone(), v[0].value.expose().to_string())
    }

    fn problem(text: &str) -> DotenvError {
        parse(text, Path::new("/etc/brokerguard/credentials.env")).unwrap_err()
    }

    #[test]
    fn plain_export_and_spacing() {
        assert_eq!(one("A=b"), ("A".into(), "b".into()));
        assert_eq!(one("export A=b"), ("A".into(), "b".into()));
        assert_eq!(one("  export\tA = b  "), ("A".into(), "b".into()));
        assert_eq!(one("A="), ("A".into(), "".into()));
        assert_eq!(one("A=x=y+/=="), ("A".into(), "x=y+/==".into()));
        assert_eq!(one("A=#x"), ("A".into(), "#x".into()));
        assert_eq!(one("A= #x"), ("A".into(), "".into()));
        assert_eq!(one("A=a b\t# c"), ("A".into(), "a b".into()));
        // "export" alone as a name is just a name.
        assert_eq!(one("export=1"), ("export".into(), "1".into()));
    }

    #[test]
    fn comments_and_blank_lines() {
        let v = parse(
            "# head\n\n  # indented\nA=1 # note\nB=x#notcomment\n\t\n",
            Path::new("f"),
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].name.as_str(), v[0].value.expose(), v[0].line),
            ("A", "1", 4)
        );
        assert_eq!(
            (v[1].name.as_str(), v[1].value.expose(), v[1].line),
            ("B", "x#notcomment", 5)
        );
    }

    #[test]
    fn quotes() {
        assert_eq!(one(r#"A='a b #c \n'"#).1, r"a b #c \n");
        assert_eq!(one(r#"A="a\nb\t\"q\" \\ \x""#).1, "a\nb\t\"q\" \\ \\x");
        assert_eq!(one(r#"A="x" # comment"#).1, "x");
        assert_eq!(one("A=' padded '").1, " padded ");
        assert_eq!(one("A=\"\"").1, "");
    }

    #[test]
    fn crlf_tolerated_but_inner_cr_is_an_error() {
        let v = parse("A=1\r\nB='2'\r\n", Path::new("f")).unwrap();
        assert_eq!(v[0].value.expose(), "1");
        assert_eq!(v[1].value.expose(), "2");
        let e = problem("A=1\nB=x\ry\n");
        assert_eq!((e.line, e.problem), (2, DotenvProblem::CarriageReturn));
    }

    #[test]
    fn errors_name_file_and_line_never_the_value() {
        let e = problem("A=1\n\n\n\n\n\nCANARY-SECRET-VALUE\n");
        assert_eq!(
            e.to_string(),
            "/etc/brokerguard/credentials.env:7: missing '=' after name; write NAME=value"
        );
        for (text, p) in [
            ("=CANARY-1", DotenvProblem::EmptyName),
            ("9A=CANARY-1", DotenvProblem::BadName),
            ("A B=CANARY-1", DotenvProblem::BadName),
            ("A='CANARY-1", DotenvProblem::UnterminatedSingleQuote),
            ("A=\"CANARY-1", DotenvProblem::UnterminatedDoubleQuote),
            ("A=\"CANARY-1\\\"", DotenvProblem::UnterminatedDoubleQuote),
            ("A='CANARY-1'x", DotenvProblem::TextAfterQuote),
        ] {
            let e = problem(text);
            assert_eq!((e.line, e.problem), (1, p), "{text}");
            assert!(!e.to_string().contains("CANARY"), "{e}");
            assert!(!format!("{e:?}").contains("CANARY"), "{e:?}");
        }
    }

    #[test]
    fn not_utf8_names_the_line() {
        let e = parse_bytes(b"A=1\nB=\xff\n", Path::new("f")).unwrap_err();
        assert_eq!((e.line, e.problem), (2, DotenvProblem::NotUtf8));
    }

    #[test]
    fn defined_name_finds_assignments_only() {
        assert_eq!(defined_name("export KEY = v"), Some("KEY"));
        assert_eq!(defined_name("KEY=v"), Some("KEY"));
        assert_eq!(defined_name("# KEY=v"), None);
        assert_eq!(defined_name("junk"), None);
    }
}
