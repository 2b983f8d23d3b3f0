//! The syntax of a Java `.properties` file, which Apache ZooKeeper reads `zoo.cfg` with
//! (`java.util.Properties.load`): `key=value`, `key: value` or `key value`; `#` and `!`
//! comments; a line ending in an odd number of backslashes continues on the next; backslash
//! escapes (`\t`, `\n`, `\r`, `\f`, `\uXXXX`, and `\` before any other character for that
//! character).

use super::ConfigError;

/// One `key`/`value` pair, trimmed as Apache trims them, with the line it starts on.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) line: usize,
    pub(super) key: String,
    pub(super) value: String,
}

/// Whitespace as the properties format knows it.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// The entries of `text`, in file order.
///
/// # Errors
/// [`ConfigError::Syntax`] for a malformed `\uXXXX` escape (as Java's loader refuses it).
pub(super) fn entries(text: &str) -> Result<Vec<Entry>, ConfigError> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, natural)) = lines.next() {
        let first = natural.trim_start_matches(is_blank);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::from(first);
        while ends_in_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches(is_blank)),
                None => break,
            }
        }
        let line = index + 1;
        let syntax = || ConfigError::Syntax {
            line,
            text: natural.to_owned(),
        };
        let (key, value) = split_key_value(&logical);
        entries.push(Entry {
            line,
            key: unescape(key).ok_or_else(syntax)?.trim().to_owned(),
            value: unescape(value).ok_or_else(syntax)?.trim().to_owned(),
        });
    }
    Ok(entries)
}

fn ends_in_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// The key (up to the first unescaped `=`, `:` or whitespace) and the value (after the
/// whitespace and at most one `=` or `:` that follow the key), both still escaped.
fn split_key_value(logical: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = logical.len();
    for (i, c) in logical.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            key_end = i;
            break;
        }
    }
    let (key, rest) = logical.split_at(key_end);
    let rest = rest.trim_start_matches(is_blank);
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix(':'))
        .unwrap_or(rest);
    (key, rest.trim_start_matches(is_blank))
}

/// `s` with its backslash escapes resolved; `None` for a malformed `\uXXXX`.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let mut pending_high: Option<u16> = None;
    while let Some(c) = chars.next() {
        let decoded = if c == '\\' {
            match chars.next() {
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() != 4 {
                        return None;
                    }
                    let unit = u16::from_str_radix(&hex, 16).ok()?;
                    // A surrogate pair spelled as two escapes is one character.
                    if let Some(high) = pending_high.take() {
                        if let Some(Ok(joined)) = char::decode_utf16([high, unit]).next() {
                            out.push(joined);
                            continue;
                        }
                        out.push(char::REPLACEMENT_CHARACTER);
                    }
                    if (0xD800..0xDC00).contains(&unit) {
                        pending_high = Some(unit);
                        continue;
                    }
                    char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
                Some('t') => '\t',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('f') => '\u{c}',
                Some(other) => other,
                None => break,
            }
        } else {
            c
        };
        if pending_high.take().is_some() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
        out.push(decoded);
    }
    if pending_high.is_some() {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(usize, String, String)> {
        entries(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.line, e.key, e.value))
            .collect()
    }

    fn pair(line: usize, key: &str, value: &str) -> (usize, String, String) {
        (line, key.to_owned(), value.to_owned())
    }

    #[test]
    fn separators_are_equals_colon_or_whitespace() {
        assert_eq!(
            pairs("a=1\n  b : 2\nc 3\nd\t=\t4\ne\nf=\ng=x=y:z\nserver.1=h:2888:3888;2181\n"),
            vec![
                pair(1, "a", "1"),
                pair(2, "b", "2"),
                pair(3, "c", "3"),
                pair(4, "d", "4"),
                pair(5, "e", ""),
                pair(6, "f", ""),
                pair(7, "g", "x=y:z"),
                pair(8, "server.1", "h:2888:3888;2181"),
            ]
        );
    }

    #[test]
    fn comments_blank_lines_and_continuations() {
        assert_eq!(
            pairs("# c\n! c\n\n   \nlist=a,\\\n    b,\\\n c\nnext=1\\\\\nlast=2\\"),
            vec![
                pair(5, "list", "a,b,c"),
                pair(8, "next", "1\\"),
                pair(9, "last", "2"),
            ]
        );
    }

    #[test]
    fn escapes_are_resolved() {
        assert_eq!(
            pairs("k\\=ey=v\\:a\\lue\\t\nu=\\u0041\\u00e9\\ud83d\\ude00\n"),
            vec![pair(1, "k=ey", "v:alue"), pair(2, "u", "Aé😀")]
        );
        assert!(matches!(
            entries("a=\\u00zz"),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            entries("x=1\na=\\u12"),
            Err(ConfigError::Syntax { line: 2, .. })
        ));
    }
}
