//! Sequence-node helpers shared by the lock-style recipes: Curator's naming and sorting rule.
//!
//! Curator's `StandardLockInternalsDriver.fixForSorting(name, lockName)` sorts on the part of
//! the name after the *last* occurrence of the lock name (`lock-`, `latch-`, …), which is the
//! 10-digit zero-padded sequence number; everything before it — in particular protected mode's
//! `_c_<uuid>-` prefix — is ignored. [`sort_key`] and [`sorted_children`] implement exactly
//! that rule, so Rust and Java participants can share one lock path.

/// The part of `name` Curator sorts on: everything after the last `lock_name`, or the whole
/// name when it does not contain `lock_name`.
///
/// ```
/// use zk_recipes::nodes::sort_key;
/// assert_eq!(
///     sort_key("_c_53345f98-9423-4e0c-a7b5-9f819e3ec2e1-lock-0000000001", "lock-"),
///     "0000000001"
/// );
/// assert_eq!(sort_key("lock-0000000002", "lock-"), "0000000002");
/// assert_eq!(sort_key("foreign", "lock-"), "foreign");
/// ```
pub fn sort_key<'a>(name: &'a str, lock_name: &str) -> &'a str {
    match name.rfind(lock_name) {
        Some(i) => name.get(i + lock_name.len()..).unwrap_or(""),
        None => name,
    }
}

/// `children` (node names) sorted by Curator's rule ([`sort_key`]); ties keep the full name
/// order so the result is deterministic. Only names containing `lock_name` are kept: other
/// children of the path (e.g. a revocation or lease sub-node) take no part in the queue.
pub fn sorted_children(children: Vec<String>, lock_name: &str) -> Vec<String> {
    let mut kept: Vec<String> = children
        .into_iter()
        .filter(|c| c.contains(lock_name))
        .collect();
    kept.sort_by(|a, b| {
        sort_key(a, lock_name)
            .cmp(sort_key(b, lock_name))
            .then_with(|| a.cmp(b))
    });
    kept
}

/// `children` sorted by Curator's rule over several lock names, as its read-write lock does
/// (`InterProcessReadWriteLock`'s sorting driver strips up to the last of each name in turn,
/// so `…__READ__0000000007` and `…__WRIT__0000000008` sort on their sequence numbers). Only
/// names containing one of `lock_names` are kept.
///
/// ```
/// use zk_recipes::nodes::sorted_children_by;
/// let sorted = sorted_children_by(
///     vec!["_c_b-__WRIT__0000000002".into(), "_c_a-__READ__0000000001".into(), "x".into()],
///     &["__READ__", "__WRIT__"],
/// );
/// assert_eq!(sorted, ["_c_a-__READ__0000000001", "_c_b-__WRIT__0000000002"]);
/// ```
pub fn sorted_children_by(children: Vec<String>, lock_names: &[&str]) -> Vec<String> {
    let key = |name: &str| -> String {
        let mut key = name;
        for lock_name in lock_names {
            key = sort_key(key, lock_name);
        }
        key.to_owned()
    };
    let mut kept: Vec<(String, String)> = children
        .into_iter()
        .filter(|c| lock_names.iter().any(|n| c.contains(n)))
        .map(|c| (key(&c), c))
        .collect();
    kept.sort();
    kept.into_iter().map(|(_, c)| c).collect()
}

/// The last path segment (the node name).
pub(crate) fn node_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `parent/name`.
pub(crate) fn join(parent: &str, name: &str) -> String {
    zk_proto::path::join(parent, name)
}

/// Validates a recipe's base path (absolute, no trailing slash, not the root).
pub(crate) fn check_base_path(path: &str) -> crate::Result<()> {
    zk_proto::path::validate_path(path)
        .map_err(|e| crate::Error::InvalidArgument(format!("{path}: {e}")))?;
    if path == "/" {
        return Err(crate::Error::InvalidArgument(
            "a recipe cannot own the root path".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_prefixes_are_ignored_and_foreign_children_dropped() {
        let names = vec![
            "_c_ffffffff-9423-4e0c-a7b5-9f819e3ec2e1-lock-0000000003".to_owned(),
            "lock-0000000002".to_owned(),
            "_c_00000000-9423-4e0c-a7b5-9f819e3ec2e1-lock-0000000010".to_owned(),
            "_c_aaaaaaaa-9423-4e0c-a7b5-9f819e3ec2e1-lock-0000000001".to_owned(),
            "leases".to_owned(),
        ];
        let sorted = sorted_children(names, "lock-");
        let keys: Vec<&str> = sorted.iter().map(|n| sort_key(n, "lock-")).collect();
        assert_eq!(
            keys,
            ["0000000001", "0000000002", "0000000003", "0000000010"]
        );
    }
}
