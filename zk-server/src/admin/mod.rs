//! Four-letter words: short admin commands sent as the first four bytes of a client-port
//! connection, answered with text in Apache ZooKeeper's formats.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::config::ServerConfig;
use crate::core::ServerCore;

/// The version the server reports (the Apache release whose behaviour it follows).
pub const VERSION: &str = concat!(
    "3.8.4-zk-rs-",
    env!("CARGO_PKG_VERSION"),
    ", built on 1970-01-01 00:00 UTC"
);

/// Every word Apache ZooKeeper knows.
const KNOWN: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srvr", "srst", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// The word a connection's first four bytes spell, if they spell a known one.
pub fn four_letter_word(prefix: &[u8]) -> Option<&'static str> {
    let prefix = prefix.get(..4)?;
    KNOWN.iter().copied().find(|w| w.as_bytes() == prefix)
}

/// What a word needs besides the core.
pub struct AdminContext<'a> {
    /// The configuration.
    pub config: &'a ServerConfig,
    /// When the server started.
    pub started: Instant,
    /// `standalone`, `leader`, `follower` or `observer` (`None`: an ensemble member that is
    /// not serving, electing or syncing).
    pub mode: Option<&'static str>,
    /// As leader: (voting learners, voting learners synced, observers synced).
    pub learners: Option<(usize, usize, usize)>,
}

/// What Apache answers `srvr`, `stat` and `mntr` while electing or syncing.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

/// The reply text to `word` (already known to be allowed by the whitelist).
pub fn respond(word: &str, core: &mut ServerCore, ctx: &AdminContext<'_>) -> String {
    match word {
        "ruok" => "imok".into(),
        // Apache: `null` while not serving (electing, syncing); this server is never `ro`.
        "isro" if ctx.mode.is_none() => "null".into(),
        "isro" => "rw".into(),
        "srvr" | "stat" | "mntr" if ctx.mode.is_none() => NOT_SERVING.into(),
        "srvr" => server_summary(core, ctx, false),
        "stat" => server_summary(core, ctx, true),
        "mntr" => monitor(core, ctx),
        "conf" => conf(ctx.config),
        "cons" => connections(core),
        "envi" => environment(),
        "wchs" => {
            let w = core.watches();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                w.connection_count(),
                w.path_count(),
                w.count()
            )
        }
        "wchc" => watches_by_session(core),
        "wchp" => watches_by_path(core),
        "dump" => dump(core),
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_size(&ctx.config.data_dir),
            dir_size(&ctx.config.log_dir())
        ),
        "crst" => {
            core.reset_connection_stats();
            "Connection stats reset.\n".into()
        }
        "srst" => {
            core.reset_stats();
            "Server stats reset.\n".into()
        }
        other => format!("{other} is not supported by this server.\n"),
    }
}

/// The line Apache sends for a known word outside the whitelist.
pub fn not_whitelisted(word: &str) -> String {
    format!("{word} is not executed because it is not in the whitelist.\n")
}

fn server_summary(core: &ServerCore, ctx: &AdminContext<'_>, with_clients: bool) -> String {
    let stats = core.stats();
    let mut out = format!("Zookeeper version: {VERSION}\n");
    if with_clients {
        out.push_str("Clients:\n");
        for c in core.connections() {
            let _ = writeln!(
                out,
                " /{}[1](queued={},recved={},sent={})",
                c.remote, c.queued, c.received, c.sent
            );
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "Latency min/avg/max: {}/{:.4}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        stats.latency_min_ms.unwrap_or(0),
        stats.latency_avg_ms(),
        stats.latency_max_ms,
        stats.packets_received,
        stats.packets_sent,
        core.connections().len(),
        core.outstanding_requests(),
        core.tree().last_processed_zxid(),
        ctx.mode.unwrap_or("standalone"),
        // Apache's node map holds the root twice ("" and "/").
        core.tree().node_count() + 1,
    );
    out
}

fn monitor(core: &ServerCore, ctx: &AdminContext<'_>) -> String {
    let stats = core.stats();
    let tree = core.tree();
    let (open_fds, max_fds) = file_descriptors();
    let rows: Vec<(&str, String)> = vec![
        ("zk_version", VERSION.to_owned()),
        (
            "zk_server_state",
            ctx.mode.unwrap_or("standalone").to_owned(),
        ),
        ("zk_avg_latency", format!("{:.4}", stats.latency_avg_ms())),
        ("zk_max_latency", stats.latency_max_ms.to_string()),
        (
            "zk_min_latency",
            stats.latency_min_ms.unwrap_or(0).to_string(),
        ),
        ("zk_packets_received", stats.packets_received.to_string()),
        ("zk_packets_sent", stats.packets_sent.to_string()),
        (
            "zk_num_alive_connections",
            core.connections().len().to_string(),
        ),
        (
            "zk_outstanding_requests",
            core.outstanding_requests().to_string(),
        ),
        ("zk_znode_count", (tree.node_count() + 1).to_string()),
        ("zk_watch_count", core.watches().count().to_string()),
        ("zk_ephemerals_count", tree.ephemeral_count().to_string()),
        (
            "zk_approximate_data_size",
            tree.approximate_data_size().to_string(),
        ),
        ("zk_open_file_descriptor_count", open_fds.to_string()),
        ("zk_max_file_descriptor_count", max_fds.to_string()),
        ("zk_uptime", ctx.started.elapsed().as_millis().to_string()),
        ("zk_global_sessions", core.sessions().len().to_string()),
        ("zk_local_sessions", "0".to_owned()),
        ("zk_last_zxid", format!("0x{:x}", core.last_zxid())),
    ];
    let mut rows = rows;
    if let Some((followers, synced, observers)) = ctx.learners {
        rows.push(("zk_learners", (followers + observers).to_string()));
        rows.push(("zk_followers", followers.to_string()));
        rows.push(("zk_synced_followers", synced.to_string()));
        rows.push(("zk_synced_observers", observers.to_string()));
        rows.push(("zk_pending_syncs", (followers - synced).to_string()));
    }
    rows.into_iter()
        .map(|(k, v)| format!("{k}\t{v}\n"))
        .collect()
}

fn conf(config: &ServerConfig) -> String {
    let data_dir = config.data_dir.join("version-2");
    let log_dir = config.log_dir().join("version-2");
    format!(
        "clientPort={}\nsecureClientPort=-1\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId=0\n",
        config.client_port,
        data_dir.display(),
        dir_size(&data_dir),
        log_dir.display(),
        dir_size(&log_dir),
        config.tick_time_ms,
        config.max_client_cnxns,
        config.min_session_timeout(),
        config.max_session_timeout(),
    )
}

fn connections(core: &ServerCore) -> String {
    let mut out = String::new();
    for c in core.connections() {
        let sid = c
            .session
            .map_or_else(|| "0x0".to_owned(), |s| format!("0x{s:x}"));
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={},sid={sid})",
            c.remote, c.queued, c.received, c.sent
        );
    }
    out.push('\n');
    out
}

fn environment() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={VERSION}\nhost.name={}\nos.name={}\nos.arch={}\nuser.dir={cwd}\n",
        host.trim(),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

fn watches_by_session(core: &ServerCore) -> String {
    let mut out = String::new();
    for c in core.connections() {
        let paths = core.watches().paths_of(c.conn);
        if paths.is_empty() {
            continue;
        }
        let _ = writeln!(out, "0x{:x}", c.session.unwrap_or(0));
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out
}

fn watches_by_path(core: &ServerCore) -> String {
    let sessions: std::collections::HashMap<_, _> = core
        .connections()
        .into_iter()
        .map(|c| (c.conn, c.session.unwrap_or(0)))
        .collect();
    let mut out = String::new();
    for (path, conns) in core.watches().conns_by_path() {
        let _ = writeln!(out, "{path}");
        for conn in conns {
            let _ = writeln!(out, "\t0x{:x}", sessions.get(&conn).copied().unwrap_or(0));
        }
    }
    out
}

fn dump(core: &ServerCore) -> String {
    let sessions = core.sessions();
    let mut out = format!(
        "SessionTracker dump:\nGlobal Sessions({}):\n",
        sessions.len()
    );
    for (id, timeout) in &sessions {
        let _ = writeln!(out, "0x{id:x}\t{timeout}ms");
    }
    let with_ephemerals: Vec<(i64, Vec<String>)> = sessions
        .iter()
        .map(|(id, _)| (*id, core.tree().ephemerals_of(*id)))
        .filter(|(_, paths)| !paths.is_empty())
        .collect();
    let _ = writeln!(
        out,
        "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
        with_ephemerals.len()
    );
    for (id, paths) in with_ephemerals {
        let _ = writeln!(out, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn file_descriptors() -> (usize, u64) {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(Iterator::count)
        .unwrap_or(0);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0);
    (open, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_known_words_only() {
        assert_eq!(four_letter_word(b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word(b"mntr\n"), Some("mntr"));
        assert_eq!(four_letter_word(b"nope"), None);
        assert_eq!(four_letter_word(b"ru"), None);
        assert_eq!(
            not_whitelisted("dump"),
            "dump is not executed because it is not in the whitelist.\n"
        );
    }
}
