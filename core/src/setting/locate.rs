//! Where in the file a problem is: TOML/serde errors and validation problems
//! turned into `file:line:col: key: message`, dotted keys located through
//! the spans of toml's own parser (`toml::de::DeTable`), so quoting, inline
//! tables and arrays of tables are read as TOML reads them.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::{ConfigError, Problem};

/// The `Invalid` error's text: one `file:line: key: reason` per problem
/// (also the rules file's).
pub fn format_invalid(path: &str, problems: &[(Option<usize>, Problem)]) -> String {
    problems
        .iter()
        .map(|(line, p)| match line {
            Some(l) => format!("{path}:{l}: {}: {}", p.key, p.reason),
            None => format!("{path}: {}: {}", p.key, p.reason),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turns a TOML/serde error into `file:line:col: key: message`.
pub fn parse_error(text: &str, path: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column, key, message) = error_at(text, e);
    ConfigError::Parse {
        path: path.to_string(),
        line,
        column,
        key,
        message,
    }
}

/// Where a TOML/serde error is: `(line, column, "key: " or "", message)`,
/// the key named by its dotted path (`uplink.mqtt.url`, `rule[N].key`).
pub fn error_at(text: &str, e: &toml::de::Error) -> (usize, usize, String, String) {
    let (line, column, key) = match e.span() {
        Some(span) => {
            let (l, c) = line_col(text, span.start);
            (l, c, key_at(text, span.start).map(|k| format!("{k}: ")))
        }
        None => (1, 1, None),
    };
    (
        line,
        column,
        key.unwrap_or_default(),
        plain_words(e.message().trim()),
    )
}

/// serde names Rust types ("expected f64"); an installer reads words.
pub(crate) fn plain_words(message: &str) -> String {
    const EXPECTED: &str = "expected ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(EXPECTED) {
        let (head, tail) = rest.split_at(i + EXPECTED.len());
        out.push_str(head);
        let end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        let (word, after) = tail.split_at(end);
        out.push_str(match word {
            "f32" | "f64" => "a number",
            "u8" => "a whole number from 0 to 255",
            "u16" => "a whole number from 0 to 65535",
            "u32" | "u64" | "usize" => "a whole number of 0 or more",
            "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
            other => other,
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// One key of the document: its dotted path (`uplink.mqtt.url`,
/// `serial[1].port`, `rule[0].window`) and the spans of the key and value.
struct Entry {
    path: String,
    key: Range<usize>,
    value: Range<usize>,
}

/// Every key of the document, from toml's own parser (which also reads a
/// document with syntax errors as far as it can).
fn entries(text: &str) -> Vec<Entry> {
    fn walk(prefix: &str, table: &DeTable<'_>, out: &mut Vec<Entry>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            out.push(Entry {
                path: path.clone(),
                key: k.span(),
                value: v.span(),
            });
            match v.get_ref() {
                DeValue::Table(t) => walk(&path, t, out),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(t) = item.get_ref() {
                            let path = format!("{path}[{i}]");
                            out.push(Entry {
                                path: path.clone(),
                                key: item.span(),
                                value: item.span(),
                            });
                            walk(&path, t, out);
                        } else {
                            // A plain value in a list (`url = ["…", "…"]`):
                            // `url[1]` names its own line.
                            out.push(Entry {
                                path: format!("{path}[{i}]"),
                                key: item.span(),
                                value: item.span(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let (doc, _errors) = DeTable::parse_recoverable(text);
    let mut out = Vec::new();
    walk("", doc.get_ref(), &mut out);
    out
}

/// The dotted key whose key or value holds `offset` (the innermost one).
fn key_at(text: &str, offset: usize) -> Option<String> {
    entries(text)
        .into_iter()
        .filter(|e| e.key.contains(&offset) || e.value.contains(&offset))
        .max_by_key(|e| e.path.len())
        .map(|e| e.path)
}

/// The 1-based line where a dotted key is set, if it is in the text.
pub fn line_of(text: &str, dotted: &str) -> Option<usize> {
    entries(text)
        .into_iter()
        .find(|e| e.path == dotted)
        .map(|e| line_col(text, e.key.start).0)
}

/// The 1-based line where a dotted key is set; else where its nearest
/// enclosing table is; `None` if neither is in the text.
pub(crate) fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    let mut want = dotted;
    loop {
        if let Some(line) = line_of(text, want) {
            return Some(line);
        }
        want = want.rsplit_once('.')?.0;
    }
}
