//! The `zk` command-line tool (feature `cli`): zkCli's commands, flags and output formats for
//! operators and scripts, on top of [`Client`](crate::Client).
//!
//! ```text
//! zk --connect 127.0.0.1:2181 create /app "hello"
//! zk --connect 127.0.0.1:2181 get -s /app
//! zk --connect 127.0.0.1:2181 setAcl /app digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:cdrwa,world:anyone:r
//! zk --connect 127.0.0.1:2181 watch -R /app      # one line per event until Ctrl-C
//! zk --connect 127.0.0.1:2181                    # interactive, with history
//! ```
//!
//! Exit codes: [`EXIT_OK`] 0, [`EXIT_ZOOKEEPER`] 1 (NoNode, NodeExists, BadVersion, NoAuth, …;
//! zkCli's message on stderr, e.g. `Node does not exist: /x`), [`EXIT_USAGE`] 2 (bad command
//! line, invalid path, ACL or TTL), [`EXIT_CONNECTION`] 3 (no server within `--timeout`),
//! [`EXIT_INTERRUPTED`] 130 (Ctrl-C, except for `watch`). Without a command the tool is
//! interactive; when standard input is not a terminal it runs one command per line and exits
//! with the last command's code (130 if Ctrl-C stopped it, `watch` included).
//!
//! Only compiled with the `cli` feature; the library never depends on clap or rustyline
//! otherwise.

mod acl;
mod args;
mod commands;
mod interactive;
mod output;

use std::ffi::OsString;
use std::time::Duration;

use clap::Parser;

pub use acl::{parse_acl, parse_perms, AclParseError};
pub use commands::{EXIT_CONNECTION, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_ZOOKEEPER};
pub use output::format_stat;

use args::Cli;
use commands::Ctx;

/// Runs `zk` with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    run(std::env::args_os())
}

/// Runs `zk` with these arguments (the first is the program name); returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; errors to stderr with 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let mut auth = Vec::new();
    for entry in &cli.auth {
        match entry.split_once(':') {
            Some((scheme, credentials)) if !scheme.is_empty() => {
                auth.push((scheme.to_owned(), credentials.as_bytes().to_vec()));
            }
            _ => {
                eprintln!("--auth {entry}: expected scheme:auth, e.g. digest:user:password");
                return EXIT_USAGE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return EXIT_ZOOKEEPER;
        }
    };
    let mut ctx = Ctx::new(cli.connect, cli.timeout, auth, cli.command.is_none());
    ctx.max_reply_len = cli.max_reply_len;
    let code = match cli.command {
        Some(command) => rt.block_on(async {
            let code = ctx.run(command).await;
            ctx.shutdown().await;
            code
        }),
        None => interactive::run(&rt, &mut ctx),
    };
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}
