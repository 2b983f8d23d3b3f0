//! zkCli's output formats: the stat block, child lists, ACL entries and watch events.

use std::fmt::Write as _;

use zk_proto::{Acl, Stat};

use crate::session::WatchedEvent;

/// A node's stat as zkCli prints it (`get -s`, `ls -s`, `stat`, …): eleven `name = value`
/// lines, zxids and the ephemeral owner in hex, times as Java's `Date.toString()` (in UTC).
///
/// ```
/// let stat = zk_client::Stat { czxid: 0x1a, version: 2, ..Default::default() };
/// let text = zk_client::cli::format_stat(&stat);
/// assert!(text.starts_with("cZxid = 0x1a\nctime = Thu Jan 01 00:00:00 UTC 1970\n"));
/// assert!(text.contains("\ndataVersion = 2\n"));
/// ```
pub fn format_stat(stat: &Stat) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        java_date(stat.ctime),
        stat.mzxid,
        java_date(stat.mtime),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    );
    s
}

/// Milliseconds since the epoch as Java's `Date.toString()` prints them, in UTC:
/// `Thu Jan 01 00:00:00 UTC 1970`.
pub(crate) fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A list as Java's `List.toString()` prints it: `[a, b, c]`.
pub(crate) fn format_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", items.join(", "))
}

/// An ACL entry as zkCli's `getAcl` prints it: the id in jute's CSV notation on one line,
/// `: perms` on the next (`'world,'anyone` / `: cdrwa`).
pub(crate) fn format_acl(acl: &Acl) -> String {
    format!("'{},'{}\n: {}", acl.id.scheme, acl.id.id, acl.perms)
}

/// A watch event as Java's `WatchedEvent.toString()`:
/// `WatchedEvent state:SyncConnected type:NodeDataChanged path:/a`.
pub(crate) fn format_event(event: &WatchedEvent) -> String {
    format!(
        "WatchedEvent state:{:?} type:{:?} path:{}",
        event.state, event.event_type, event.path
    )
}

/// zkCli's `config -c`: the configuration's version and its members' client addresses,
/// `version host:port,host:port` (Apache's `ConfigUtils.getClientConfigStr`: a member without
/// a client address leaves an empty slot, a bare port means every address, `0.0.0.0`, and an
/// IPv6 host is written without brackets).
pub(crate) fn client_config(config: &str) -> String {
    let config = crate::dynamic_config::parse(config);
    let addresses: Vec<String> = config
        .members
        .iter()
        .map(|m| {
            m.client
                .as_ref()
                .map(|c| format!("{}:{}", c.host, c.port))
                .unwrap_or_default()
        })
        .collect();
    format!("{} {}", config.version, addresses.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::{EventType, Id, KeeperState, Perms};

    #[test]
    fn dates_match_java() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2024-02-29T13:05:09.123Z, a Thursday in a leap year.
        assert_eq!(java_date(1_709_211_909_123), "Thu Feb 29 13:05:09 UTC 2024");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
        assert_eq!(java_date(4_102_444_800_000), "Fri Jan 01 00:00:00 UTC 2100");
    }

    #[test]
    fn stat_block_has_zkclis_lines_in_order() {
        let stat = Stat {
            czxid: 0x100000002,
            mzxid: 0x100000003,
            ctime: 0,
            mtime: 1000,
            version: 1,
            cversion: 2,
            aversion: 3,
            ephemeral_owner: 0x1000abcd,
            data_length: 5,
            num_children: 0,
            pzxid: 0x100000002,
        };
        let expected = "cZxid = 0x100000002\n\
                        ctime = Thu Jan 01 00:00:00 UTC 1970\n\
                        mZxid = 0x100000003\n\
                        mtime = Thu Jan 01 00:00:01 UTC 1970\n\
                        pZxid = 0x100000002\n\
                        cversion = 2\n\
                        dataVersion = 1\n\
                        aclVersion = 3\n\
                        ephemeralOwner = 0x1000abcd\n\
                        dataLength = 5\n\
                        numChildren = 0\n";
        assert_eq!(format_stat(&stat), expected);
        // Negative values print as Java's Long.toHexString: two's complement.
        let neg = Stat {
            ephemeral_owner: -1,
            ..Stat::default()
        };
        assert!(format_stat(&neg).contains("ephemeralOwner = 0xffffffffffffffff\n"));
    }

    #[test]
    fn lists_acls_and_events() {
        assert_eq!(format_list::<&str>(&[]), "[]");
        assert_eq!(format_list(&["a", "b"]), "[a, b]");
        assert_eq!(
            format_acl(&Acl::new(Perms::ALL, Id::anyone())),
            "'world,'anyone\n: cdrwa"
        );
        let event = WatchedEvent {
            event_type: EventType::NodeDataChanged,
            state: KeeperState::SyncConnected,
            path: "/a".to_owned(),
        };
        assert_eq!(
            format_event(&event),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a"
        );
    }

    #[test]
    fn client_config_as_zkcli_prints_it() {
        let config = "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
                      server.2=[fd00::2]:2888:3888:participant;[fd00::2]:2182\n\
                      server.3=h3:2888:3888:observer;2183\n\
                      server.4=h4:2888:3888:participant\n\
                      version=100000000";
        assert_eq!(
            client_config(config),
            "100000000 127.0.0.1:2181,fd00::2:2182,0.0.0.0:2183,"
        );
        assert_eq!(client_config(""), " ");
    }
}
