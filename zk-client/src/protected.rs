//! Protected mode (Curator's `withProtection()`): node names prefixed with `_c_<uuid>-` so a
//! create whose reply was lost can be recognised on retry.
//!
//! Layout: `/parent/_c_53345f98-9423-4e0c-a7b5-9f819e3ec2e1-lock-0000000001` — the prefix is 40
//! characters (`_c_`, a 36-character UUID, `-`). Sort sequence nodes on
//! [`strip_protected_prefix`] (or [`sequence_number`]), never on the raw name.

use zk_proto::Stat;

use crate::client::background::spawn_until_done;
use crate::client::Client;
use crate::error::{Error, Result};

/// The start of every protected name.
pub const PROTECTED_PREFIX: &str = "_c_";

/// Length of the protection prefix: `_c_` + 36-char UUID + `-`.
pub const PROTECTED_PREFIX_LEN: usize = 40;

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn name_prefix(id: &str) -> String {
    format!("{PROTECTED_PREFIX}{id}-")
}

/// `parent/_c_<id>-name` for `parent/name`.
pub(crate) fn protected_path(full_path: &str, id: &str) -> String {
    let (parent, name) = match full_path.rfind('/') {
        Some(i) => (
            full_path.get(..i).unwrap_or_default(),
            full_path.get(i + 1..).unwrap_or_default(),
        ),
        None => ("", full_path),
    };
    format!("{parent}/{}{name}", name_prefix(id))
}

/// The name without a protection prefix (unchanged if it has none).
///
/// ```
/// use zk_client::protected::strip_protected_prefix;
/// assert_eq!(
///     strip_protected_prefix("_c_53345f98-9423-4e0c-a7b5-9f819e3ec2e1-lock-0000000001"),
///     "lock-0000000001"
/// );
/// assert_eq!(strip_protected_prefix("lock-0000000001"), "lock-0000000001");
/// ```
pub fn strip_protected_prefix(name: &str) -> &str {
    let name = name.rsplit('/').next().unwrap_or(name);
    if is_protected(name) {
        name.get(PROTECTED_PREFIX_LEN..).unwrap_or(name)
    } else {
        name
    }
}

/// Whether a node name carries a protection prefix.
pub fn is_protected(name: &str) -> bool {
    // Longer than the prefix, as Curator's `isProtectedZNode`: a bare prefix is a name.
    name.len() > PROTECTED_PREFIX_LEN
        && name.starts_with(PROTECTED_PREFIX)
        && name.as_bytes().get(PROTECTED_PREFIX_LEN - 1) == Some(&b'-')
        && name
            .get(PROTECTED_PREFIX.len()..PROTECTED_PREFIX_LEN - 1)
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}

/// The sequence number of a sequential node name (its last 10 digits), ignoring any
/// protection prefix.
pub fn sequence_number(name: &str) -> Option<i64> {
    let name = strip_protected_prefix(name);
    let start = name.len().checked_sub(10)?;
    let digits = name.get(start..)?;
    let digits = digits.trim_start_matches('-');
    let n: i64 = digits.parse().ok()?;
    Some(if name.get(start..)?.starts_with('-') {
        -n
    } else {
        n
    })
}

/// Every child of `target`'s parent carrying the protection id, with its stat (normally one;
/// more after a retry in a new session found an older node, or after lost replies).
pub(crate) async fn find_nodes(
    client: &Client,
    target: &str,
    id: &str,
) -> Result<Vec<(String, Stat)>> {
    let Some(i) = target.rfind('/') else {
        return Ok(Vec::new());
    };
    let parent = match target.get(..i) {
        Some("") | None => "/",
        Some(p) => p,
    };
    let prefix = name_prefix(id);
    let session = &client.inner.session;
    let candidates: Vec<String> = match session.get_children(parent, false).await {
        Ok((children, _)) => children
            .into_iter()
            .filter(|c| c.starts_with(&prefix))
            .map(|c| zk_proto::path::join(parent, &c))
            .collect(),
        Err(Error::NoNode) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut found = Vec::with_capacity(candidates.len());
    for path in candidates {
        if let Some(stat) = session.exists(&path).await? {
            found.push((path, stat));
        }
    }
    Ok(found)
}

/// After a protected create failed or was dropped: delete any node it may have left, in the
/// background, until done. Holds the client only weakly: when every handle is gone, the
/// session closes and the task ends (the session's ephemerals go with it).
pub(crate) fn delete_leftovers_in_background(client: &Client, target: &str, id: &str) {
    let (target, id) = (target.to_owned(), id.to_owned());
    let what = target.clone();
    spawn_until_done(client, "delete protected leftovers", what, move |inner| {
        let (target, id) = (target.clone(), id.clone());
        Box::pin(async move {
            let client = Client::from_inner(inner);
            for (path, _) in find_nodes(&client, &target, &id).await? {
                client.delete_in_background(path, -1);
            }
            Ok(())
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_names_have_curators_layout() {
        let id = new_id();
        let p = protected_path("/locks/lock-", &id);
        assert_eq!(p, format!("/locks/_c_{id}-lock-"));
        let name = p.rsplit('/').next().unwrap();
        assert_eq!(name.len() - "lock-".len(), PROTECTED_PREFIX_LEN);
        assert!(is_protected(name));
        assert_eq!(protected_path("/a", &id), format!("/_c_{id}-a"));
        let seq = format!("_c_{id}-lock-0000000042");
        assert_eq!(strip_protected_prefix(&seq), "lock-0000000042");
        assert_eq!(sequence_number(&seq), Some(42));
        assert_eq!(sequence_number("lock-0000000007"), Some(7));
        assert_eq!(sequence_number("x"), None);
        assert!(!is_protected("_c_not-a-uuid-at-all-but-long-enough-x-"));
        let bare = format!("_c_{id}-");
        assert!(!is_protected(&bare));
        assert_eq!(strip_protected_prefix(&bare), bare);
    }
}
