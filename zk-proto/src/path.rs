//! Znode paths: validation exactly as Apache ZooKeeper's `PathUtils`, chroot handling and
//! parent/name splitting.

use thiserror::Error;

/// Why a path is not a valid znode path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    #[error("path must not be empty")]
    Empty,
    /// The path does not start with `/`.
    #[error("path {path:?} must start with a / character")]
    NotAbsolute {
        /// The path.
        path: String,
    },
    /// The path ends with `/` (only the root may).
    #[error("path {path:?} must not end with a / character")]
    TrailingSlash {
        /// The path.
        path: String,
    },
    /// The path contains `//`.
    #[error("path {path:?} has an empty node name at byte {offset}")]
    EmptySegment {
        /// The path.
        path: String,
        /// Byte offset of the second `/`.
        offset: usize,
    },
    /// A segment is `.` or `..`.
    #[error("path {path:?} has a relative segment {segment:?}; relative paths are not allowed")]
    RelativeSegment {
        /// The path.
        path: String,
        /// The offending segment.
        segment: String,
    },
    /// A character ZooKeeper forbids: NUL, control characters U+0001–U+001F and U+007F–U+009F,
    /// U+D800–U+F8FF, U+FFF0–U+FFFF, or one outside the Basic Multilingual Plane (Java sees it as
    /// a surrogate pair, which is forbidden).
    #[error("path {path:?} has the invalid character {ch:?} (U+{code:04X}) at byte {offset}", code = u32::from(*ch))]
    InvalidChar {
        /// The path.
        path: String,
        /// The character.
        ch: char,
        /// Its byte offset.
        offset: usize,
    },
}

fn is_forbidden_char(ch: char) -> bool {
    matches!(u32::from(ch),
        0x0000..=0x001F | 0x007F..=0x009F | 0xD800..=0xF8FF | 0xFFF0..=0xFFFF | 0x1_0000..)
}

/// The first forbidden character of `segment` and its byte offset. ASCII segments (the common
/// case) are checked byte by byte.
fn forbidden_char_in(segment: &str) -> Option<(usize, char)> {
    if segment.is_ascii() {
        segment
            .bytes()
            .position(|b| b < 0x20 || b == 0x7f)
            .map(|i| {
                (
                    i,
                    char::from(segment.as_bytes().get(i).copied().unwrap_or(0)),
                )
            })
    } else {
        segment
            .char_indices()
            .find(|&(_, ch)| is_forbidden_char(ch))
    }
}

/// The node holding the ensemble's dynamic configuration (read by getConfig). It is outside
/// any chroot: clients read it at this path whatever their chroot.
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// Checks that `path` is a valid znode path.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    if is_valid_printable_ascii(path.as_bytes()) {
        return Ok(());
    }
    explain_invalid_path(path)
}

/// The common case, quickly: a path of printable ASCII that is valid. `false` sends the
/// path through the full check (which accepts non-ASCII paths or says what is wrong).
fn is_valid_printable_ascii(path: &[u8]) -> bool {
    let Some((b'/', rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    // One pass over every byte, without an early exit, so that the compiler checks many per
    // step: all printable, and no segment that starts with `/` (empty) or `.` (maybe `.` or
    // `..`): each byte is seen with the one before it.
    let (printable, plain) =
        path.iter()
            .zip(rest)
            .fold((true, true), |(printable, plain), (&before, &b)| {
                (
                    printable & (b.wrapping_sub(0x20) < 0x7f - 0x20),
                    plain & !((before == b'/') & ((b == b'/') | (b == b'.'))),
                )
            });
    if !printable {
        return false;
    }
    if plain {
        // Only the last segment can still be empty.
        return rest.last() != Some(&b'/');
    }
    // Rarer: a segment starting with a dot (`.hidden` is fine), or an empty one.
    segments_are_valid(rest)
}

/// Whether no `/`-separated segment of `rest` (a path after its leading `/`) is empty, `.`
/// or `..`.
fn segments_are_valid(rest: &[u8]) -> bool {
    rest.split(|&b| b == b'/')
        .all(|segment| !(segment.len() <= 2 && segment.iter().all(|&b| b == b'.')))
}

fn explain_invalid_path(path: &str) -> Result<(), PathError> {
    let owned = || path.to_owned();
    let Some(rest) = path.strip_prefix('/') else {
        return Err(if path.is_empty() {
            PathError::Empty
        } else {
            PathError::NotAbsolute { path: owned() }
        });
    };
    if rest.is_empty() {
        return Ok(());
    }
    if rest.ends_with('/') {
        return Err(PathError::TrailingSlash { path: owned() });
    }
    let mut offset = 1;
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(PathError::EmptySegment {
                path: owned(),
                offset,
            });
        }
        if segment == "." || segment == ".." {
            return Err(PathError::RelativeSegment {
                path: owned(),
                segment: segment.to_owned(),
            });
        }
        if let Some((i, ch)) = forbidden_char_in(segment) {
            return Err(PathError::InvalidChar {
                path: owned(),
                ch,
                offset: offset + i,
            });
        }
        offset += segment.len() + 1;
    }
    Ok(())
}

/// Checks the path of a create request. For sequential modes the server appends a suffix, so a
/// trailing `/` is allowed (`/queue/` creates `/queue/0000000001`), as in Apache's client.
pub fn validate_create_path(path: &str, sequential: bool) -> Result<(), PathError> {
    if sequential {
        validate_path(&format!("{path}1")).map_err(|e| match e {
            // Report errors against the path the caller gave.
            PathError::InvalidChar { ch, offset, .. } => PathError::InvalidChar {
                path: path.to_owned(),
                ch,
                offset,
            },
            PathError::EmptySegment { offset, .. } => PathError::EmptySegment {
                path: path.to_owned(),
                offset,
            },
            PathError::RelativeSegment { segment, .. } => PathError::RelativeSegment {
                path: path.to_owned(),
                segment,
            },
            PathError::NotAbsolute { .. } if path.is_empty() => PathError::Empty,
            PathError::NotAbsolute { .. } => PathError::NotAbsolute {
                path: path.to_owned(),
            },
            other => other,
        })
    } else {
        validate_path(path)
    }
}

/// Splits a path into its parent and its last segment; `None` for the root.
///
/// ```
/// assert_eq!(zk_proto::path::split_parent("/a/b"), Some(("/a", "b")));
/// assert_eq!(zk_proto::path::split_parent("/a"), Some(("/", "a")));
/// assert_eq!(zk_proto::path::split_parent("/"), None);
/// ```
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    let idx = path.rfind('/')?;
    let name = path.get(idx + 1..)?;
    if name.is_empty() {
        return None;
    }
    let parent = if idx == 0 { "/" } else { path.get(..idx)? };
    Some((parent, name))
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    let parent = if parent == "/" { "" } else { parent };
    let mut path = String::with_capacity(parent.len() + 1 + name.len());
    path.push_str(parent);
    path.push('/');
    path.push_str(name);
    path
}

/// Validates the chroot suffix of a connect string: `None` for no chroot (absent or `/`).
pub fn parse_chroot(chroot: &str) -> Result<Option<String>, PathError> {
    if chroot.is_empty() || chroot == "/" {
        return Ok(None);
    }
    validate_path(chroot)?;
    Ok(Some(chroot.to_owned()))
}

/// The server path of a client path under `chroot` (the chroot itself for `/`).
pub fn prepend_chroot(chroot: Option<&str>, path: &str) -> String {
    match chroot {
        None => path.to_owned(),
        Some(root) if path == "/" => root.to_owned(),
        Some(root) => format!("{root}{path}"),
    }
}

/// The client path of a server path under `chroot`; `None` if the path lies outside it.
pub fn strip_chroot<'a>(chroot: Option<&str>, server_path: &'a str) -> Option<&'a str> {
    let Some(root) = chroot else {
        return Some(server_path);
    };
    let rest = server_path.strip_prefix(root)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// The client path of an owned server path: [`strip_chroot`], reusing the string when there
/// is nothing to strip; a path outside the chroot is kept as it is.
pub fn into_client_path(chroot: Option<&str>, server_path: String) -> String {
    match strip_chroot(chroot, &server_path) {
        Some(rest) if rest.len() < server_path.len() => rest.to_owned(),
        _ => server_path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/a.b/..c/c..",
            "/zookeeper/quota",
            "/é/日本",
            "/a b",
        ] {
            assert_eq!(validate_path(p), Ok(()), "{p}");
        }
    }

    proptest::proptest! {
        /// The fast check agrees with the full one on paths built from the characters that
        /// matter (separators, dots, the printable range's ends and the bytes just outside it,
        /// non-ASCII).
        #[test]
        fn the_fast_check_accepts_only_valid_paths(path in "[/.a ~\u{1f}\u{7f}é]{0,12}") {
            fast_and_full_checks_agree(&path)?;
        }

        /// The same on paths made of segments, so that `.`, `..` and empty segments come
        /// often, anywhere.
        #[test]
        fn the_fast_check_judges_segments_as_the_full_one(
            path in "(/(|\\.|\\.\\.|\\.\\.\\.|a|\\.a|a\\.|~|\u{7f}|é)){0,4}/?"
        ) {
            fast_and_full_checks_agree(&path)?;
        }
    }

    fn fast_and_full_checks_agree(path: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        let fast = is_valid_printable_ascii(path.as_bytes());
        let full = explain_invalid_path(path);
        proptest::prop_assert!(!fast || full.is_ok(), "{path:?}: {full:?}");
        let printable_ascii = path.bytes().all(|b| (0x20..0x7f).contains(&b));
        proptest::prop_assert_eq!(fast, printable_ascii && full.is_ok(), "{:?}", path);
        Ok(())
    }

    #[test]
    fn chroot_round_trip() {
        assert_eq!(prepend_chroot(Some("/app"), "/"), "/app");
        assert_eq!(prepend_chroot(Some("/app"), "/x"), "/app/x");
        assert_eq!(prepend_chroot(None, "/x"), "/x");
        assert_eq!(strip_chroot(Some("/app"), "/app"), Some("/"));
        assert_eq!(strip_chroot(Some("/app"), "/app/x/y"), Some("/x/y"));
        assert_eq!(strip_chroot(Some("/app"), "/apple"), None);
        assert_eq!(strip_chroot(Some("/app"), "/other"), None);
        assert_eq!(into_client_path(Some("/app"), "/app".to_owned()), "/");
        assert_eq!(into_client_path(Some("/app"), "/app/x".to_owned()), "/x");
        assert_eq!(
            into_client_path(Some("/app"), "/apple".to_owned()),
            "/apple"
        );
        assert_eq!(into_client_path(None, "/x".to_owned()), "/x");
        assert_eq!(parse_chroot("/"), Ok(None));
        assert_eq!(parse_chroot("/app"), Ok(Some("/app".to_owned())));
        assert!(parse_chroot("/app/").is_err());
    }

    #[test]
    fn join_and_split() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(split_parent("/a/b/c"), Some(("/a/b", "c")));
        assert_eq!(split_parent("relative"), None);
    }
}
