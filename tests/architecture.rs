//! The layer rules of docs/ARCHITECTURE.md, enforced: every `crate::…`
//! path and every string literal in `src/` is read (comments skipped), and
//! an import the layer table forbids, a broker named outside its own
//! folder, or an `unsafe` outside `src/os/` fails the test with file:line
//! and the rule. The table is parsed from the ```layers block of
//! docs/ARCHITECTURE.md, so the doc and the test cannot drift apart; a
//! `debt` line there names a known violation still to be fixed, and the
//! test fails too when a debt is paid but still listed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The rules read from the doc's ```layers block.
#[derive(Default)]
struct Rules {
    /// module → modules it must not name.
    forbidden: BTreeMap<String, BTreeSet<String>>,
    /// module → the only modules it may name.
    only: BTreeMap<String, BTreeSet<String>>,
    /// module → the only modules that may name it.
    only_from: BTreeMap<String, BTreeSet<String>>,
    /// The broker names no module outside its own folder may spell.
    brokers: Vec<String>,
    /// Known violations, as (file, what) with what = `-> module` or `names broker`.
    debts: BTreeSet<(String, String)>,
}

fn parse_rules(doc: &str) -> Rules {
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/ARCHITECTURE.md holds a ```layers block");
    let mut rules = Rules::default();
    for (n, raw) in block.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let set =
            |from: usize| -> Vec<String> { words[from..].iter().map(|w| w.to_string()).collect() };
        match words.as_slice() {
            ["brokers", "=", ..] => rules.brokers = set(2),
            ["debt", file, "->", module] => {
                rules
                    .debts
                    .insert((file.to_string(), format!("-> {module}")));
            }
            ["debt", file, "names", broker] => {
                rules
                    .debts
                    .insert((file.to_string(), format!("names {broker}")));
            }
            [from, "!->", ..] => {
                rules
                    .forbidden
                    .insert(from.to_string(), set(2).into_iter().collect());
            }
            [from, "only->", ..] => {
                rules
                    .only
                    .insert(from.to_string(), set(2).into_iter().collect());
            }
            [to, "only<-", ..] => {
                rules
                    .only_from
                    .insert(to.to_string(), set(2).into_iter().collect());
            }
            _ => panic!(
                "docs/ARCHITECTURE.md layers block line {}: cannot read {raw:?}",
                n + 1
            ),
        }
    }
    rules
}

/// One source line split into its code (string contents blanked, comments
/// dropped) and the string literals that start on it.
struct Line {
    code: String,
    strings: Vec<String>,
}

/// A small Rust lexer: enough to tell code from comments and strings
/// (nested block comments, raw strings, char literals versus lifetimes).
fn lex(text: &str) -> Vec<Line> {
    let chars: Vec<char> = text.chars().collect();
    let mut lines = vec![Line {
        code: String::new(),
        strings: Vec::new(),
    }];
    let mut i = 0;
    let push_nl = |lines: &mut Vec<Line>| {
        lines.push(Line {
            code: String::new(),
            strings: Vec::new(),
        })
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            push_nl(&mut lines);
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        push_nl(&mut lines);
                    }
                    i += 1;
                }
            }
        } else if c == '"'
            || (c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i))
        {
            // A string: plain ("…" with escapes) or raw (r#"…"#).
            let raw = c == 'r';
            let mut hashes = 0;
            if raw {
                i += 1;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if chars.get(i) != Some(&'"') {
                    lines.last_mut().unwrap().code.push('r');
                    continue;
                }
            }
            i += 1;
            let start_line = lines.len() - 1;
            let mut body = String::new();
            while i < chars.len() {
                if !raw && chars[i] == '\\' {
                    body.push(chars[i]);
                    if let Some(&e) = chars.get(i + 1) {
                        body.push(e);
                    }
                    i += 2;
                    continue;
                }
                if chars[i] == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                body.push(chars[i]);
                i += 1;
            }
            lines[start_line].code.push_str("\"\"");
            for _ in body.matches('\n') {
                push_nl(&mut lines);
            }
            lines[start_line].strings.push(body);
        } else if c == '\'' {
            // A char literal ('x', '\n', '"') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                lines.last_mut().unwrap().code.push(c);
                i += 1;
            }
        } else {
            lines.last_mut().unwrap().code.push(c);
            i += 1;
        }
    }
    lines
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The top-level modules a line of code names through `crate::…`
/// (including `crate::{a, b::c}` groups; macros `crate::name!` excluded).
fn crate_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before_ok = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if !before_ok {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut word = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !word.is_empty() {
                            found.push(std::mem::take(&mut word));
                        }
                        at_start = true;
                    }
                    c if (c.is_alphanumeric() || c == '_') && depth == 0 && at_start => {
                        word.push(c)
                    }
                    _ => {
                        if !word.is_empty() {
                            found.push(std::mem::take(&mut word));
                        }
                        if !c.is_whitespace() {
                            at_start = false;
                        }
                    }
                }
            }
            if !word.is_empty() {
                found.push(word);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !rest[name.len()..].starts_with('!') {
                found.push(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let edge = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        edge(before) && edge(after)
    })
}

/// Every violation in `src/` as (file, what, file:line and the rule).
fn violations(root: &Path, rules: &Rules) -> Vec<(String, String, String)> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let parts: Vec<&str> = rel.split('/').collect();
        let top = parts[1].trim_end_matches(".rs").to_string();
        // The broker a file belongs to: src/brokers/<name>/… or src/sim/<name>/….
        let own = match parts.as_slice() {
            ["src", "brokers" | "sim", name, _, ..] => Some(name.to_string()),
            _ => None,
        };
        let text = fs::read_to_string(&path).expect("a source file is readable");
        for (n, line) in lex(&text).iter().enumerate() {
            let at = format!("{rel}:{}", n + 1);
            for module in crate_modules(&line.code) {
                if module == top {
                    continue;
                }
                if rules
                    .forbidden
                    .get(&top)
                    .is_some_and(|f| f.contains(&module))
                {
                    found.push((
                        rel.clone(),
                        format!("-> {module}"),
                        format!("{at}: `{top}` must not import `{module}`"),
                    ));
                }
                if let Some(importers) = rules.only_from.get(&module).filter(|i| !i.contains(&top))
                {
                    let allowed: Vec<&str> = importers.iter().map(String::as_str).collect();
                    found.push((
                        rel.clone(),
                        format!("-> {module}"),
                        format!(
                            "{at}: only {} may import `{module}` (not `{top}`)",
                            allowed.join(", ")
                        ),
                    ));
                }
                if rules.only.get(&top).is_some_and(|o| !o.contains(&module)) {
                    let allowed: Vec<&str> = rules.only[&top].iter().map(String::as_str).collect();
                    found.push((
                        rel.clone(),
                        format!("-> {module}"),
                        format!(
                            "{at}: `{top}` may import only {} (not `{module}`)",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
            for broker in &rules.brokers {
                if own.as_deref() == Some(broker.as_str()) {
                    continue;
                }
                let path_named = [format!("brokers::{broker}"), format!("sim::{broker}")]
                    .iter()
                    .any(|p| has_word(&line.code, p));
                let literal_named = line
                    .strings
                    .iter()
                    .any(|s| has_word(&s.to_lowercase(), broker));
                if path_named || literal_named {
                    found.push((
                        rel.clone(),
                        format!("names {broker}"),
                        format!("{at}: names the broker `{broker}` outside src/brokers/{broker}/ and src/sim/{broker}/"),
                    ));
                }
            }
            if top != "os" && has_word(&line.code, "unsafe") {
                found.push((
                    rel.clone(),
                    "unsafe".into(),
                    format!("{at}: `unsafe` outside src/os/"),
                ));
            }
        }
    }
    found
}

#[test]
fn the_layer_table_holds_for_every_file_in_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let rules = parse_rules(&doc);
    assert!(
        !rules.brokers.is_empty(),
        "the layers block names the brokers"
    );
    let found = violations(root, &rules);
    let broken: Vec<&str> = found
        .iter()
        .filter(|(file, what, _)| !rules.debts.contains(&(file.clone(), what.clone())))
        .map(|(_, _, msg)| msg.as_str())
        .collect();
    let seen: BTreeSet<(String, String)> = found
        .iter()
        .map(|(f, w, _)| (f.clone(), w.clone()))
        .collect();
    let paid: Vec<String> = rules
        .debts
        .iter()
        .filter(|d| !seen.contains(*d))
        .map(|(f, w)| format!("debt {f} {w}"))
        .collect();
    let mut report = String::new();
    if !broken.is_empty() {
        report += &format!(
            "layer rules of docs/ARCHITECTURE.md broken:\n{}\n",
            broken.join("\n")
        );
    }
    if !paid.is_empty() {
        report += &format!(
            "debts paid but still listed in docs/ARCHITECTURE.md (remove the line):\n{}\n",
            paid.join("\n")
        );
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn the_lexer_skips_comments_and_reads_strings() {
    let lines = lex(
        "use crate::a; // crate::b\nlet s = \"crate::c kraken\"; /* crate::d */ let c = '\"';\nfn f<'a>() {}",
    );
    assert_eq!(crate_modules(&lines[0].code), vec!["a"]);
    assert!(crate_modules(&lines[1].code).is_empty());
    assert_eq!(lines[1].strings, vec!["crate::c kraken"]);
    assert!(lines[2].code.contains("'a"));
    assert_eq!(
        crate_modules("use crate::{x::Y, z, w::{p, q}};"),
        vec!["x", "z", "w"]
    );
    assert!(crate_modules("crate::notice!(x)").is_empty());
}

#[test]
fn an_only_from_rule_fails_on_any_other_importer() {
    let root = std::env::temp_dir().join(format!("bg-arch-{}", std::process::id()));
    let src = root.join("src");
    fs::create_dir_all(src.join("commands")).unwrap();
    fs::write(src.join("cli.rs"), "use crate::commands::doctor;\n").unwrap();
    fs::write(src.join("commands/mod.rs"), "use crate::config;\n").unwrap();
    fs::write(
        src.join("daemon.rs"),
        "fn f() {\n    crate::commands::doctor::audit();\n}\n",
    )
    .unwrap();
    let rules = parse_rules("```layers\nbrokers = kraken\ncommands only<- cli\n```\n");
    let found = violations(&root, &rules);
    let said: Vec<&str> = found.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(
        said,
        vec!["src/daemon.rs:2: only cli may import `commands` (not `daemon`)"]
    );
    fs::remove_dir_all(&root).unwrap();
}
