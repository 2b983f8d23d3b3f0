//! Moving clients when the server list changes, as Apache's
//! `StaticHostProvider.updateServerList` (ZOOKEEPER-1355) does, so that an ensemble that grows
//! gets its share of the clients and one that shrinks spreads the orphans evenly:
//!
//! * the current server is still listed and the list grew from `n` to `m` servers: move to
//!   one of the new servers with probability `1 - n/m`, else stay;
//! * still listed and the list did not grow: stay;
//! * no longer listed: leave it, for a new server if the list grew, else for one of the kept
//!   servers with Apache's probability `pOld` (a new one otherwise).
//!
//! A client that is not connected just takes the new list.

use crate::connect_string::HostPort;

/// What a session does about a new server list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The servers, in the order to try them from `next`.
    pub(crate) hosts: Vec<HostPort>,
    /// Index in `hosts` of the next server to try.
    pub(crate) next: usize,
    /// Whether to end the current connection now.
    pub(crate) leave: bool,
}

/// The plan for moving from the `old` list to `new` (already in the random order to try it)
/// while connected to `current`; `random` is uniform in `[0, 1)`.
pub(crate) fn plan(
    old: &[HostPort],
    new: Vec<HostPort>,
    current: Option<&HostPort>,
    random: f64,
) -> Plan {
    let Some(current) = current else {
        return Plan {
            hosts: new,
            next: 0,
            leave: false,
        };
    };
    let (kept, added): (Vec<HostPort>, Vec<HostPort>) =
        new.iter().cloned().partition(|h| old.contains(h));
    let grew = new.len() > old.len();
    let stay = |hosts: Vec<HostPort>, at: usize| Plan {
        hosts,
        next: at + 1,
        leave: false,
    };
    let leave_for = |first: Vec<HostPort>, then: Vec<HostPort>| Plan {
        hosts: first.into_iter().chain(then).collect(),
        next: 0,
        leave: true,
    };
    match new.iter().position(|h| h == current) {
        Some(at) => {
            let move_share = 1.0 - old.len() as f64 / new.len() as f64;
            if grew && !added.is_empty() && random < move_share {
                leave_for(added, kept)
            } else {
                stay(new, at)
            }
        }
        None if grew || kept.is_empty() => leave_for(added, kept),
        None => {
            // Apache's pOld: the kept servers take what keeps every server's load even.
            let (kept_n, total, old_n) = (kept.len() as f64, new.len() as f64, old.len() as f64);
            let p_old = kept_n * (old_n - total) / (total * (old_n - kept_n));
            if random < p_old || added.is_empty() {
                leave_for(kept, added)
            } else {
                leave_for(added, kept)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &str) -> Vec<HostPort> {
        names
            .chars()
            .map(|c| HostPort {
                host: c.to_string(),
                port: 2181,
            })
            .collect()
    }

    fn names(plan: &Plan) -> String {
        plan.hosts.iter().map(|h| h.host.as_str()).collect()
    }

    #[test]
    fn a_listed_server_is_kept_unless_the_list_grew() {
        let a = &hosts("a")[0];
        let p = plan(&hosts("ab"), hosts("ba"), Some(a), 0.0);
        assert_eq!((names(&p), p.next, p.leave), ("ba".into(), 2, false));
        let p = plan(&hosts("abc"), hosts("ab"), Some(a), 0.0);
        assert_eq!((p.next, p.leave), (1, false));
    }

    #[test]
    fn growth_moves_a_share_of_the_clients_to_the_new_servers() {
        let a = &hosts("a")[0];
        // 2 -> 3 servers: a third of the clients move.
        let p = plan(&hosts("ab"), hosts("bca"), Some(a), 0.3);
        assert_eq!((names(&p), p.next, p.leave), ("cba".into(), 0, true));
        let p = plan(&hosts("ab"), hosts("bca"), Some(a), 0.34);
        assert_eq!((names(&p), p.next, p.leave), ("bca".into(), 3, false));
        // 1 -> 4: three quarters move.
        let p = plan(&hosts("a"), hosts("abcd"), Some(a), 0.74);
        assert!(p.leave);
        assert_eq!(&names(&p)[..3], "bcd");
    }

    #[test]
    fn a_client_of_a_removed_server_leaves_it_for_an_even_load() {
        let c = &hosts("c")[0];
        // Grew: a new server first.
        let p = plan(&hosts("abc"), hosts("abde"), Some(c), 0.99);
        assert_eq!((names(&p), p.next, p.leave), ("deab".into(), 0, true));
        // Same size, c replaced by d: a and b keep their thirds, c's clients all go to d.
        let p = plan(&hosts("abc"), hosts("abd"), Some(c), 0.0);
        assert_eq!((names(&p), p.leave), ("dab".into(), true));
        // Shrank, b and c replaced by d: a keeps its third and takes a quarter of the
        // orphans (pOld = 1/4), d the rest: half the clients each.
        let p = plan(&hosts("abc"), hosts("ad"), Some(c), 0.2);
        assert_eq!((names(&p), p.leave), ("ad".into(), true));
        let p = plan(&hosts("abc"), hosts("ad"), Some(c), 0.3);
        assert_eq!((names(&p), p.leave), ("da".into(), true));
        // Shrank to kept servers only.
        let p = plan(&hosts("abc"), hosts("ab"), Some(c), 0.99);
        assert_eq!((names(&p), p.leave), ("ab".into(), true));
    }

    #[test]
    fn a_client_without_a_connection_takes_the_list() {
        let p = plan(&hosts("ab"), hosts("cab"), None, 0.0);
        assert_eq!((names(&p), p.next, p.leave), ("cab".into(), 0, false));
    }
}
