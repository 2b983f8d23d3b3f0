//! Access control: permission checks, ACL fix-up on create/setACL, digest authentication.

use std::net::IpAddr;

use zk_proto::{digest_of, Acl, ErrorCode, Id, Perms};

/// Whether `ids` (a connection's identities) hold `perm` under `acl`, following
/// `ZooKeeperServer.checkACL`: `super` passes everything, an empty ACL allows all, `world:anyone`
/// matches everybody, `digest` ids match exactly and `ip` ids match an address or CIDR range.
pub fn check(acl: &[Acl], perm: Perms, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter().any(|entry| {
        entry.perms.bits() & perm.bits() != 0
            && (is_anyone(&entry.id)
                || ids.iter().any(|id| {
                    id.scheme == entry.id.scheme && id_matches(&id.scheme, &id.id, &entry.id.id)
                }))
    })
}

fn is_anyone(id: &Id) -> bool {
    id.scheme == "world" && id.id == "anyone"
}

fn id_matches(scheme: &str, authenticated: &str, acl_id: &str) -> bool {
    match scheme {
        "ip" => ip_matches(authenticated, acl_id),
        _ => authenticated == acl_id,
    }
}

/// Whether the address `addr` lies in `spec` (`a.b.c.d`, `a.b.c.d/bits`, IPv6 likewise).
fn ip_matches(addr: &str, spec: &str) -> bool {
    let (net, bits) = match spec.split_once('/') {
        Some((net, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (net, Some(bits)),
            Err(_) => return false,
        },
        None => (spec, None),
    };
    let (Ok(addr), Ok(net)) = (addr.parse::<IpAddr>(), net.parse::<IpAddr>()) else {
        return false;
    };
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => prefix_eq(&a.octets(), &n.octets(), bits.unwrap_or(32)),
        (IpAddr::V6(a), IpAddr::V6(n)) => prefix_eq(&a.octets(), &n.octets(), bits.unwrap_or(128)),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let bits = usize::try_from(bits).unwrap_or(usize::MAX).min(a.len() * 8);
    let (full, rest) = (bits / 8, bits % 8);
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Whether a digest ACL id is `user:hash` as Apache's `DigestAuthenticationProvider.isValid`
/// sees it: Java's `id.split(":")` yields two parts, trailing empty parts dropped (so
/// `user:hash:` is valid, and `user:` or `a:b:c` are not).
fn is_valid_digest_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split(':').collect();
    let kept = parts.len() - parts.iter().rev().take_while(|p| p.is_empty()).count();
    kept == 2
}

fn is_valid_ip_spec(spec: &str) -> bool {
    let (net, bits) = match spec.split_once('/') {
        Some((net, bits)) => (net, Some(bits)),
        None => (spec, None),
    };
    let Ok(addr) = net.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    bits.is_none_or(|b| b.parse::<u32>().is_ok_and(|b| b <= max))
}

/// Validates and normalizes an ACL from create or setACL (`PrepRequestProcessor.fixupACL`):
/// duplicates removed, `auth` entries expanded to the connection's authenticated (non-ip) ids,
/// unknown schemes and malformed ids rejected with INVALIDACL.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let push = |entry: Acl, out: &mut Vec<Acl>| {
        if !out.contains(&entry) {
            out.push(entry);
        }
    };
    for entry in acl {
        match entry.id.scheme.as_str() {
            "world" if entry.id.id == "anyone" => push(entry.clone(), &mut out),
            "auth" => {
                let authenticated: Vec<&Id> = ids
                    .iter()
                    .filter(|id| id.scheme != "ip" && id.scheme != "world" && id.scheme != "super")
                    .collect();
                if authenticated.is_empty() {
                    return Err(ErrorCode::InvalidAcl);
                }
                for id in authenticated {
                    push(Acl::new(entry.perms, id.clone()), &mut out);
                }
            }
            "digest" if is_valid_digest_id(&entry.id.id) => push(entry.clone(), &mut out),
            "ip" if is_valid_ip_spec(&entry.id.id) => push(entry.clone(), &mut out),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

/// The ACL as returned to a reader without ADMIN permission: digest ids masked as `user:x`
/// (CVE-2019-0201).
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| {
            if entry.id.scheme == "digest" {
                let user = entry.id.id.split(':').next().unwrap_or_default();
                Acl::new(entry.perms, Id::new("digest", format!("{user}:x")))
            } else {
                entry.clone()
            }
        })
        .collect()
}

/// Authenticates an `addauth` packet, as Apache's providers do. `digest`: `auth` holds UTF-8
/// `user:password` (a text without `:` is all user name, hashed whole); the identities to
/// add are the digest id, plus `super:` when it matches the configured super digest. `ip`:
/// always accepted, adding nothing (the connection's address is its ip identity already).
/// Any other scheme: AUTHFAILED.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        "digest" => {}
        "ip" => return Ok(Vec::new()),
        _ => return Err(ErrorCode::AuthFailed),
    }
    // Never refused for its encoding, as Apache (`new String(auth, UTF_8)`).
    let id = digest_of(&zk_proto::jute::decode_java_utf8(auth));
    let mut ids = Vec::with_capacity(2);
    if super_digest == Some(id.as_str()) {
        ids.push(Id::new("super", ""));
    }
    ids.push(Id::new("digest", id));
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(addr: &str) -> Vec<Id> {
        vec![Id::new("ip", addr)]
    }

    #[test]
    fn world_and_empty_acl_allow_everyone() {
        assert!(check(&Acl::open_unsafe(), Perms::WRITE, &ip("10.0.0.1")));
        assert!(check(&[], Perms::ADMIN, &[]));
        assert!(!check(&Acl::read_unsafe(), Perms::WRITE, &ip("10.0.0.1")));
    }

    #[test]
    fn digest_and_super() {
        let alice = Id::digest("alice", "secret");
        let acl = vec![Acl::new(Perms::ALL, alice.clone())];
        assert!(check(&acl, Perms::READ, &[alice]));
        assert!(!check(&acl, Perms::READ, &[Id::digest("bob", "secret")]));
        assert!(check(&acl, Perms::READ, &[Id::new("super", "")]));
    }

    #[test]
    fn ip_ranges() {
        let acl = vec![Acl::new(Perms::READ, Id::new("ip", "10.1.0.0/16"))];
        assert!(check(&acl, Perms::READ, &ip("10.1.200.3")));
        assert!(!check(&acl, Perms::READ, &ip("10.2.0.1")));
        let exact = vec![Acl::new(Perms::READ, Id::new("ip", "127.0.0.1"))];
        assert!(check(&exact, Perms::READ, &ip("127.0.0.1")));
        let v6 = vec![Acl::new(Perms::READ, Id::new("ip", "fe80::/16"))];
        assert!(check(&v6, Perms::READ, &ip("fe80::1")));
        assert!(!check(&v6, Perms::READ, &ip("127.0.0.1")));
    }

    #[test]
    fn fixup_expands_auth_and_rejects_invalid() {
        let alice = Id::digest("alice", "pw");
        let ids = vec![Id::new("ip", "127.0.0.1"), alice.clone()];
        assert_eq!(
            fixup(&Acl::creator_all(), &ids),
            Ok(vec![Acl::new(Perms::ALL, alice)])
        );
        assert_eq!(
            fixup(&Acl::creator_all(), &ip("127.0.0.1")),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(fixup(&[], &ids), Err(ErrorCode::InvalidAcl));
        for bad in [
            Id::new("world", "someone"),
            Id::new("digest", "nocolon"),
            // Java's split drops trailing empty parts: these have one part, none, or three.
            Id::new("digest", "user:"),
            Id::new("digest", "::"),
            Id::new("digest", "a:b:c"),
            Id::new("ip", "300.1.1.1"),
            Id::new("ip", "10.0.0.0/33"),
            Id::new("unknown", "x"),
        ] {
            assert_eq!(
                fixup(&[Acl::new(Perms::ALL, bad.clone())], &ids),
                Err(ErrorCode::InvalidAcl),
                "{bad}"
            );
        }
        for good in ["user:hash", "user:hash:", ":hash"] {
            let acl = [Acl::new(Perms::ALL, Id::new("digest", good))];
            assert_eq!(fixup(&acl, &ids), Ok(acl.to_vec()), "{good}");
        }
        let dup = vec![
            Acl::new(Perms::READ, Id::anyone()),
            Acl::new(Perms::READ, Id::anyone()),
        ];
        assert_eq!(fixup(&dup, &ids).map(|a| a.len()), Ok(1));
    }

    #[test]
    fn masking_and_authentication() {
        let acl = vec![Acl::new(Perms::ALL, Id::digest("alice", "pw"))];
        assert_eq!(mask_digests(&acl)[0].id, Id::new("digest", "alice:x"));
        let ids = authenticate("digest", b"alice:pw", None).unwrap();
        assert_eq!(ids, vec![Id::digest("alice", "pw")]);
        let sup = zk_proto::digest_id("super", "test");
        let ids = authenticate("digest", b"super:test", Some(&sup)).unwrap();
        assert_eq!(ids[0], Id::new("super", ""));
        assert_eq!(
            authenticate("kerberos", b"x", None),
            Err(ErrorCode::AuthFailed)
        );
        // As Apache's generateDigest: no colon, the whole text is the user and is hashed.
        assert_eq!(
            authenticate("digest", b"nocolon", None),
            Ok(vec![Id::new(
                "digest",
                "nocolon:Ra+cHr2ZoHvBjtNArFGNGlVie4g="
            )])
        );
        // As Apache's IPAuthenticationProvider: accepted, nothing to add.
        assert_eq!(authenticate("ip", b"10.0.0.1", None), Ok(Vec::new()));
    }
}
