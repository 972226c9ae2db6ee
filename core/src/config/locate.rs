//! Where in the file a problem is: TOML/serde errors and validation problems
//! turned into `file:line:col: key: message`, by locating dotted keys in
//! the text.

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
pub(super) fn parse_error(text: &str, path: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column, key, message) = error_at(text, e, key_at);
    ConfigError::Parse {
        path: path.to_string(),
        line,
        column,
        key,
        message,
    }
}

/// Where a TOML/serde error is: `(line, column, "key: " or "", message)`,
/// the key named by `key_at` (the dotted key for the main file,
/// `rule[N].key` for a rules file).
pub fn error_at(
    text: &str,
    e: &toml::de::Error,
    key_at: impl Fn(&str, usize) -> Option<String>,
) -> (usize, usize, String, String) {
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
pub(super) fn plain_words(message: &str) -> String {
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

/// The dotted key of the `key = value` line containing `offset`, using the
/// nearest `[section]` header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return section;
    }
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

/// The 1-based line where a dotted key is set, if it appears in the text.
pub(super) fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (Some(s.split('[').next().unwrap_or(s)), k),
        None => (None, dotted),
    };
    let mut current: Option<String> = None;
    let mut section_line = None;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            let name = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if Some(name.as_str()) == section {
                section_line = Some(i + 1);
            }
            current = Some(name);
            continue;
        }
        let in_section = current.as_deref() == section;
        if in_section
            && let Some((k, _)) = l.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return Some(i + 1);
        }
    }
    section_line
}
