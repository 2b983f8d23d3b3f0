//! zkCli's ACL syntax: `scheme:id:perms[,scheme:id:perms…]`.

use std::fmt;

use zk_proto::{Acl, Id, Perms};

/// Why an ACL string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclParseError {
    /// The entry at fault (the whole string when it is empty).
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for AclParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid ACL entry '{}': {}", self.entry, self.reason)
    }
}

impl std::error::Error for AclParseError {}

/// Parses zkCli's ACL notation: comma-separated `scheme:id:perms` entries.
///
/// The scheme ends at the first colon and the permissions start after the last one, so ids
/// may contain colons (`digest:user:BASE64:rw`, `ip:10.0.0.0/8:r`, `auth::cdrwa`). Permissions
/// are letters of `cdrwa` (create, delete, read, write, admin).
///
/// Unlike zkCli, which skips a malformed entry or an unknown permission letter with a warning
/// (and may so set a narrower ACL than meant), any malformed entry is an error.
///
/// ```
/// use zk_client::cli::parse_acl;
/// use zk_client::{Acl, Id, Perms};
/// let acl = parse_acl("world:anyone:r,digest:bob:X/NSthOB0fD/OT6iilJ55WJVado=:cdrwa")?;
/// assert_eq!(acl[0], Acl::new(Perms::READ, Id::anyone()));
/// assert_eq!(acl[1].id.id, "bob:X/NSthOB0fD/OT6iilJ55WJVado=");
/// assert_eq!(acl[1].perms, Perms::ALL);
/// # Ok::<(), zk_client::cli::AclParseError>(())
/// ```
pub fn parse_acl(text: &str) -> Result<Vec<Acl>, AclParseError> {
    if text.trim().is_empty() {
        return Err(AclParseError {
            entry: text.to_owned(),
            reason: "empty ACL".to_owned(),
        });
    }
    text.split(',').map(parse_entry).collect()
}

fn parse_entry(entry: &str) -> Result<Acl, AclParseError> {
    let err = |reason: &str| AclParseError {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
        return Err(err("expected scheme:id:perms"));
    };
    if first == last {
        return Err(err("expected scheme:id:perms"));
    }
    let scheme = &entry[..first];
    if scheme.is_empty() {
        return Err(err("empty scheme"));
    }
    let id = &entry[first + 1..last];
    let perms = parse_perms(&entry[last + 1..]).map_err(|e| err(&e))?;
    Ok(Acl::new(perms, Id::new(scheme, id)))
}

/// Parses zkCli's permission letters (`cdrwa`, any order, any subset; at least one).
pub fn parse_perms(text: &str) -> Result<Perms, String> {
    if text.is_empty() {
        return Err("no permissions (use letters of cdrwa)".to_owned());
    }
    let mut perms = Perms::NONE;
    for c in text.chars() {
        perms |= match c {
            'c' => Perms::CREATE,
            'd' => Perms::DELETE,
            'r' => Perms::READ,
            'w' => Perms::WRITE,
            'a' => Perms::ADMIN,
            other => {
                return Err(format!(
                    "unknown permission '{other}' (use letters of cdrwa)"
                ))
            }
        };
    }
    Ok(perms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_schemes() {
        assert_eq!(
            parse_acl("world:anyone:cdrwa").unwrap(),
            vec![Acl::new(Perms::ALL, Id::anyone())]
        );
        let digest = parse_acl("digest:user:smGaoVKd/cQkjm7b88GyorAUz20=:rw").unwrap();
        assert_eq!(
            digest,
            vec![Acl::new(
                Perms::READ | Perms::WRITE,
                Id::new("digest", "user:smGaoVKd/cQkjm7b88GyorAUz20=")
            )]
        );
        assert_eq!(
            parse_acl("ip:10.0.0.0/8:r").unwrap(),
            vec![Acl::new(Perms::READ, Id::new("ip", "10.0.0.0/8"))]
        );
        assert_eq!(
            parse_acl("auth::cdrwa").unwrap(),
            vec![Acl::new(Perms::ALL, Id::authenticated())]
        );
        // IPv6 ids contain colons: the perms are after the last one.
        assert_eq!(
            parse_acl("ip:::1:a").unwrap(),
            vec![Acl::new(Perms::ADMIN, Id::new("ip", "::1"))]
        );
    }

    #[test]
    fn parses_lists_in_order() {
        let acl = parse_acl("world:anyone:r,ip:127.0.0.1:cdrwa,auth::a").unwrap();
        assert_eq!(acl.len(), 3);
        assert_eq!(acl[0], Acl::new(Perms::READ, Id::anyone()));
        assert_eq!(acl[1], Acl::new(Perms::ALL, Id::new("ip", "127.0.0.1")));
        assert_eq!(acl[2], Acl::new(Perms::ADMIN, Id::authenticated()));
    }

    #[test]
    fn perms_in_any_order_and_repeated() {
        assert_eq!(parse_perms("awrdc").unwrap(), Perms::ALL);
        assert_eq!(parse_perms("rr").unwrap(), Perms::READ);
        assert_eq!(parse_perms("ca").unwrap(), Perms::CREATE | Perms::ADMIN);
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "",
            "world",
            "world:anyone",
            ":anyone:r",
            "world:anyone:",
            "world:anyone:rx",
            "world:anyone:R",
            "world:anyone:r,",
            "world:anyone:r,,ip:1.2.3.4:r",
        ] {
            assert!(parse_acl(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_acl("world:anyone:r,ip:1.2.3.4:rz").unwrap_err();
        assert_eq!(e.entry, "ip:1.2.3.4:rz");
        assert!(e.to_string().contains("unknown permission 'z'"), "{e}");
    }

    #[test]
    fn display_round_trips_through_the_parser() {
        let acl = parse_acl("digest:u:h=:cdrwa,world:anyone:r").unwrap();
        let text: Vec<String> = acl
            .iter()
            .map(|a| format!("{}:{}", a.id, a.perms))
            .collect();
        assert_eq!(parse_acl(&text.join(",")).unwrap(), acl);
    }
}
