//! The command line: global flags and zkCli's commands, parsed by clap (for the process's
//! arguments and for each line of the interactive mode alike).

use std::time::Duration;

use clap::{Parser, Subcommand};

/// What `--help` says about exit codes.
const AFTER_HELP: &str = "\
Without a command, reads commands interactively (with history in $ZK_HISTORY or ~/.zk_history), \
or one per line from standard input when it is not a terminal. Run `zk help` for the commands.

Exit codes:
  0  success
  1  ZooKeeper error (NoNode, NodeExists, NotEmpty, BadVersion, NoAuth, ...); message on stderr,
     e.g. `Node does not exist: /x`
  2  usage error (unknown command or flag, missing argument, invalid path, ACL or TTL)
  3  connection failure (no server reachable within --timeout, connection lost)
  130  interrupted by Ctrl-C (`watch` ends that way with 0)
In the interactive mode, the exit code is that of the last command (130 when Ctrl-C stopped
a script read from a pipe).";

/// `zk`: a ZooKeeper command-line tool with zkCli's commands, flags and output.
#[derive(Debug, Parser)]
#[command(
    name = "zk",
    version,
    after_help = AFTER_HELP,
    disable_help_subcommand = true,
    args_conflicts_with_subcommands = false
)]
pub(crate) struct Cli {
    /// The servers: host:port[,host:port...][/chroot].
    #[arg(
        long,
        visible_alias = "server",
        env = "ZK_CONNECT",
        default_value = "127.0.0.1:2181",
        value_name = "HOST:PORT"
    )]
    pub(crate) connect: String,

    /// Session timeout, also the longest wait for a connection: milliseconds as zkCli's
    /// -timeout, or with a unit (500ms, 10s, 1m).
    #[arg(long, default_value = "30000", value_parser = parse_timeout, value_name = "TIME")]
    pub(crate) timeout: Duration,

    /// Credentials to add to the session, as zkCli's `addauth`: scheme:auth (e.g.
    /// digest:user:password). Repeatable.
    #[arg(long = "auth", value_name = "SCHEME:AUTH")]
    pub(crate) auth: Vec<String>,

    /// The largest reply to accept, in bytes (default 4 MiB); raise it to list a node with
    /// very many children (zkCli's -Djute.maxbuffer).
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_reply_len: Option<usize>,

    /// The command; none for the interactive mode.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// One line of the interactive mode: a command without the program name.
#[derive(Debug, Parser)]
#[command(
    name = "zk",
    no_binary_name = true,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
pub(crate) struct Line {
    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// zkCli's commands (names and flags as zkCli spells them).
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum Command {
    /// List a node's children ([a, b]), or with -R every path of its subtree.
    Ls {
        /// Also print the node's stat.
        #[arg(short = 's')]
        stat: bool,
        /// Leave a child watch (a one-shot command waits for it to fire).
        #[arg(short = 'w')]
        watch: bool,
        /// Print the whole subtree, one path per line.
        #[arg(short = 'R')]
        recursive: bool,
        /// The node.
        path: String,
    },
    /// Print a node's data (UTF-8, lossy).
    Get {
        /// Also print the node's stat.
        #[arg(short = 's')]
        stat: bool,
        /// Leave a data watch (a one-shot command waits for it to fire).
        #[arg(short = 'w')]
        watch: bool,
        /// The node.
        path: String,
    },
    /// Write a node's data.
    Set {
        /// Print the node's new stat.
        #[arg(short = 's')]
        stat: bool,
        /// Write only if the node's data version matches.
        #[arg(short = 'v', value_name = "version", allow_negative_numbers = true)]
        version: Option<i32>,
        /// The node.
        path: String,
        /// The data (UTF-8).
        #[arg(allow_hyphen_values = true)]
        data: String,
    },
    /// Create a node; prints `Created <path>`.
    Create {
        /// Sequential: the server appends a 10-digit counter to the name.
        #[arg(short = 's')]
        sequential: bool,
        /// Ephemeral: deleted when the session ends (so at once for a one-shot command).
        #[arg(short = 'e')]
        ephemeral: bool,
        /// Container: deleted by the server once its last child is gone.
        #[arg(short = 'c')]
        container: bool,
        /// Time to live in ms: deleted once unmodified and childless that long.
        #[arg(short = 't', value_name = "ttl")]
        ttl: Option<i64>,
        /// The node.
        path: String,
        /// The data (UTF-8; empty if omitted).
        #[arg(allow_hyphen_values = true)]
        data: Option<String>,
        /// The ACL, as setAcl's (default world:anyone:cdrwa).
        acl: Option<String>,
    },
    /// Delete a node (it must have no children).
    Delete {
        /// Delete only if the node's data version matches.
        #[arg(short = 'v', value_name = "version", allow_negative_numbers = true)]
        version: Option<i32>,
        /// The node.
        path: String,
    },
    /// Delete a node and its whole subtree.
    #[command(name = "deleteall", alias = "rmr")]
    DeleteAll {
        /// zkCli's batch size for its multi deletes: accepted so that its scripts run; nodes
        /// are deleted one by one.
        #[arg(short = 'b', value_name = "batch size")]
        batch: Option<u32>,
        /// The node.
        path: String,
    },
    /// Print a node's stat.
    Stat {
        /// Leave a watch (a one-shot command waits for it to fire).
        #[arg(short = 'w')]
        watch: bool,
        /// The node.
        path: String,
    },
    /// Print a node's ACL.
    #[command(name = "getAcl", alias = "get-acl")]
    GetAcl {
        /// Also print the node's stat.
        #[arg(short = 's')]
        stat: bool,
        /// The node.
        path: String,
    },
    /// Replace a node's ACL: scheme:id:perms[,...], e.g. world:anyone:cdrwa,
    /// digest:user:BASE64:rw, ip:10.0.0.0/8:r, auth::cdrwa.
    #[command(name = "setAcl", alias = "set-acl")]
    SetAcl {
        /// Print the node's new stat (not with -R).
        #[arg(short = 's', conflicts_with = "recursive")]
        stat: bool,
        /// Replace only if the node's ACL version matches.
        #[arg(short = 'v', value_name = "version", allow_negative_numbers = true)]
        version: Option<i32>,
        /// Also every node of the subtree.
        #[arg(short = 'R')]
        recursive: bool,
        /// The node.
        path: String,
        /// The ACL.
        acl: String,
    },
    /// Add credentials to the session (e.g. addauth digest user:password).
    #[command(name = "addauth", alias = "add-auth")]
    AddAuth {
        /// The scheme (digest, ...).
        scheme: String,
        /// The credentials.
        auth: String,
    },
    /// Print every event of a node (or with -R its subtree) until Ctrl-C, one line each.
    Watch {
        /// Watch the whole subtree (persistent recursive watch).
        #[arg(short = 'R')]
        recursive: bool,
        /// The node.
        path: String,
    },
    /// Wait until the server has caught up with the leader.
    Sync {
        /// The node.
        path: String,
    },
    /// Print the identities the server gives this session.
    #[command(name = "whoami", alias = "who-am-i")]
    WhoAmI,
    /// Print the ensemble's configuration (`/zookeeper/config`; empty on a standalone server).
    Config {
        /// Only the version and the client addresses: `version host:port,host:port`.
        #[arg(short = 'c')]
        client: bool,
        /// Leave a watch (a one-shot command waits for it to fire).
        #[arg(short = 'w')]
        watch: bool,
        /// Also print the config node's stat.
        #[arg(short = 's')]
        stat: bool,
    },
    /// List this session's ephemeral nodes (under a path prefix).
    #[command(name = "getEphemerals", alias = "get-ephemerals")]
    GetEphemerals {
        /// A path prefix (default: all).
        path: Option<String>,
    },
    /// Print the number of nodes below a node, at any depth.
    #[command(name = "getAllChildrenNumber", alias = "get-all-children-number")]
    GetAllChildrenNumber {
        /// The node.
        path: String,
    },
    /// Four-letter word `srvr` to the first server: version, latency, mode, node count.
    Srvr,
    /// Four-letter word `mntr` to the first server: metrics, one `name<TAB>value` a line.
    Mntr,
    /// Four-letter word `ruok` to the first server: `imok` when it runs.
    Ruok,
    /// List the commands.
    Help,
    /// Leave the interactive mode.
    #[command(alias = "exit")]
    Quit,
}

impl Command {
    /// Whether the command needs a session (the others are local or use a raw connection).
    pub(crate) fn needs_session(&self) -> bool {
        !matches!(
            self,
            Command::Srvr | Command::Mntr | Command::Ruok | Command::Help | Command::Quit
        )
    }
}

/// The command summary `help` prints, zkCli style.
pub(crate) const COMMANDS: &str = "\
zk [--connect host:port] [--timeout ms] [--auth scheme:auth] [--max-reply-len bytes] cmd args
\taddauth scheme auth
\tconfig [-c] [-w] [-s]
\tcreate [-s] [-e] [-c] [-t ttl] path [data] [acl]
\tdelete [-v version] path
\tdeleteall path [-b batch size]
\tget [-s] [-w] path
\tgetAcl [-s] path
\tgetAllChildrenNumber path
\tgetEphemerals [path]
\thelp
\tls [-s] [-w] [-R] path
\tmntr
\tquit
\truok
\tset [-s] [-v version] path data
\tsetAcl [-s] [-v version] [-R] path acl
\tsrvr
\tstat [-w] path
\tsync path
\twatch [-R] path
\twhoami";

/// A timeout: bare milliseconds (zkCli's `-timeout 30000`) or a number with `ms`, `s` or `m`.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1)
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a timeout (e.g. 30000, 500ms, 10s, 1m)"))?;
    if n == 0 {
        return Err("the timeout must be positive".to_owned());
    }
    Ok(Duration::from_millis(n.saturating_mul(unit_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_definitions_are_consistent() {
        Cli::command().debug_assert();
        Line::command().debug_assert();
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30000"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn zkcli_flags_parse() {
        let line = Line::try_parse_from(["create", "-s", "-e", "/a", "-1"]).unwrap();
        match line.command {
            Command::Create {
                sequential,
                ephemeral,
                container,
                ttl,
                path,
                data,
                acl,
            } => {
                assert!(sequential && ephemeral && !container);
                assert_eq!(
                    (ttl, path.as_str(), data.as_deref()),
                    (None, "/a", Some("-1"))
                );
                assert_eq!(acl, None);
            }
            other => panic!("{other:?}"),
        }
        let line = Line::try_parse_from(["set", "-v", "-1", "/a", "x"]).unwrap();
        assert!(matches!(
            line.command,
            Command::Set {
                version: Some(-1),
                ..
            }
        ));
        let line = Line::try_parse_from(["getAcl", "-s", "/a"]).unwrap();
        assert!(matches!(line.command, Command::GetAcl { stat: true, .. }));
        let line = Line::try_parse_from(["ls", "-R", "-s", "/"]).unwrap();
        assert!(matches!(
            line.command,
            Command::Ls {
                recursive: true,
                stat: true,
                watch: false,
                ..
            }
        ));
        assert!(Line::try_parse_from(["ls"]).is_err());
        assert!(Line::try_parse_from(["frobnicate", "/"]).is_err());
        assert!(Line::try_parse_from(["setAcl", "-s", "-R", "/a", "world:anyone:r"]).is_err());
    }
}
