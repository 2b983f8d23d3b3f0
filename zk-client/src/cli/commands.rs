//! Running one command against a session: [`Ctx`] holds the client, the pending one-shot
//! watches and the settings of the process.

use std::fmt;
use std::io::{self, Write as _};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use zk_proto::{CreateMode, EventType};

use super::acl::parse_acl;
use super::args::{Command, COMMANDS};
use super::output::{client_config, format_acl, format_event, format_list, format_stat};
use crate::session::WatchFuture;
use crate::{Client, ConnectString, ConnectionState, Error};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the server (or the client library) refused the operation: NoNode, NodeExists,
/// NotEmpty, BadVersion, NoAuth, …
pub const EXIT_ZOOKEEPER: i32 = 1;
/// Exit code: bad usage: an unknown command or flag, a missing argument, an invalid path, ACL
/// or TTL.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: no server reachable within the timeout, or the connection was lost.
pub const EXIT_CONNECTION: i32 = 3;
/// Exit code: interrupted by Ctrl-C (except `watch`, which ends that way with 0).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A ZooKeeper (or client library) error on a path.
    Zk { error: Error, path: String },
    /// Bad usage detected by the tool.
    Usage(String),
    /// Could not connect.
    Connect(String),
    /// Ctrl-C.
    Interrupted,
    /// Failures already printed (e.g. by `setAcl -R`), with the exit code to return.
    Reported(i32),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            CliError::Zk { error, .. } => {
                if error.is_argument_error() || matches!(error, Error::InvalidConnectString(_)) {
                    EXIT_USAGE
                } else if matches!(
                    error,
                    Error::ConnectionLoss
                        | Error::Connect(_)
                        | Error::Closed
                        | Error::SessionExpired
                        | Error::OperationTimeout
                ) {
                    EXIT_CONNECTION
                } else {
                    EXIT_ZOOKEEPER
                }
            }
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Connect(_) => EXIT_CONNECTION,
            CliError::Interrupted => EXIT_INTERRUPTED,
            CliError::Reported(code) => *code,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // zkCli's messages (CliWrapperException, 3.7+) for the common errors, so that
            // scripts written for zkCli keep matching them.
            CliError::Zk { error, path } => match error {
                Error::NoNode => write!(f, "Node does not exist: {path}"),
                Error::NodeExists => write!(f, "Node already exists: {path}"),
                Error::NotEmpty => write!(f, "Node not empty: {path}"),
                Error::NoChildrenForEphemerals => {
                    write!(f, "Ephemerals cannot have children: {path}")
                }
                Error::NotReadOnly => write!(f, "Not a read-only call: {path}"),
                Error::InvalidAcl => write!(f, "Acl is not valid : {path}"),
                Error::NoAuth => write!(f, "Insufficient permission : {path}"),
                Error::QuotaExceeded => write!(f, "Quota has exceeded : {path}"),
                Error::BadArguments => write!(f, "Arguments are not valid : {path}"),
                Error::BadVersion => write!(f, "version No is not valid : {path}"),
                Error::ReplyTooLarge { len, max } => write!(
                    f,
                    "Reply of {len} bytes exceeds the limit of {max} (see --max-reply-len): {path}"
                ),
                other if path.is_empty() => write!(f, "{other}"),
                other => write!(f, "{other}: {path}"),
            },
            CliError::Usage(message) | CliError::Connect(message) => f.write_str(message),
            CliError::Interrupted => f.write_str("Interrupted"),
            CliError::Reported(code) => write!(f, "failed (exit code {code})"),
        }
    }
}

/// Maps a client error on `path` to a [`CliError`].
fn at(path: &str) -> impl FnOnce(Error) -> CliError + '_ {
    move |error| CliError::Zk {
        error,
        path: path.to_owned(),
    }
}

/// Prints a line on stdout (ignoring a closed pipe, as `zk ls -R / | head` does).
pub(crate) fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Prints text that already ends with a newline (a stat block).
fn say_block(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The state of one `zk` process: settings, the client (started on first need) and watches.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) connect: String,
    timeout: Duration,
    auth: Vec<(String, Vec<u8>)>,
    interactive: bool,
    /// The client's reply size limit, if not the default.
    pub(crate) max_reply_len: Option<usize>,
    client: Option<Client>,
    /// One-shot watches (`-w`) of the current command.
    watches: Vec<WatchFuture>,
    /// Interactive mode: the tasks that print watch events when they fire.
    printers: Vec<JoinHandle<()>>,
    /// Whether Ctrl-C ended the latest command: a script read from a pipe stops there.
    pub(crate) interrupted: bool,
}

impl Ctx {
    pub(crate) fn new(
        connect: String,
        timeout: Duration,
        auth: Vec<(String, Vec<u8>)>,
        interactive: bool,
    ) -> Ctx {
        Ctx {
            connect,
            timeout,
            auth,
            interactive,
            max_reply_len: None,
            client: None,
            watches: Vec::new(),
            printers: Vec::new(),
            interrupted: false,
        }
    }

    /// Starts the client (connecting in the background). Needs a tokio runtime.
    pub(crate) fn start(&mut self) -> Result<Client, CliError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let mut builder = Client::builder()
            .connect_string(&self.connect)
            .session_timeout(self.timeout)
            .connection_timeout(self.timeout);
        for (scheme, auth) in &self.auth {
            builder = builder.auth(scheme, auth);
        }
        if let Some(bytes) = self.max_reply_len {
            builder = builder.max_reply_len(bytes);
        }
        let client = builder
            .build()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// The client, connected (waiting at most the timeout).
    async fn client(&mut self) -> Result<Client, CliError> {
        let client = self.start()?;
        match client.block_until_connected(self.timeout).await {
            Ok(()) => Ok(client),
            Err(Error::AuthFailed) => Err(CliError::Zk {
                error: Error::AuthFailed,
                path: String::new(),
            }),
            // The client's error says why the latest attempt failed (refused, unresolved).
            Err(e) => Err(CliError::Connect(format!(
                "Unable to connect to {} within {} ms ({e})",
                self.connect,
                self.timeout.as_millis()
            ))),
        }
    }

    /// The connection state as the interactive prompt shows it (zkCli's names).
    pub(crate) fn state_name(&self) -> &'static str {
        match self.client.as_ref().and_then(Client::connection_state) {
            None => "CONNECTING",
            Some(ConnectionState::Connected | ConnectionState::Reconnected) => "CONNECTED",
            Some(ConnectionState::ReadOnly) => "CONNECTEDREADONLY",
            Some(ConnectionState::Suspended) => "SUSPENDED",
            Some(ConnectionState::Lost) => "LOST",
        }
    }

    /// Runs a command, printing its error on stderr; returns the exit code. Ctrl-C interrupts
    /// it (and is how `watch` ends, with 0).
    pub(crate) async fn run(&mut self, command: Command) -> i32 {
        let is_watch = matches!(command, Command::Watch { .. });
        let interrupted = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        self.interrupted = false;
        let result = tokio::select! {
            r = self.execute(command) => r,
            () = interrupted => {
                self.interrupted = true;
                if is_watch { Ok(()) } else { Err(CliError::Interrupted) }
            }
        };
        self.watches.clear();
        match result {
            Ok(()) => EXIT_OK,
            Err(CliError::Reported(code)) => code,
            Err(e) => {
                eprintln!("{e}");
                e.exit_code()
            }
        }
    }

    /// Closes the session and lets the watch printers finish.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(client) = self.client.take() {
            if client.is_connected() {
                let _ =
                    tokio::time::timeout(self.timeout.min(Duration::from_secs(5)), client.close())
                        .await;
            }
        }
        for printer in self.printers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(1), printer).await;
        }
    }

    async fn execute(&mut self, command: Command) -> Result<(), CliError> {
        if !command.needs_session() {
            return self.execute_local(command).await;
        }
        let client = self.client().await?;
        match command {
            Command::Ls {
                stat,
                watch,
                recursive,
                path,
            } => {
                if recursive {
                    self.subtree(&client, &path, watch, &mut |p| say(p)).await?;
                } else {
                    let builder = client.get_children(&path).with_stat();
                    let (mut children, st) = if watch {
                        let (c, s, w) = builder.watched().await.map_err(at(&path))?;
                        self.watches.push(w);
                        (c, s)
                    } else {
                        builder.await.map_err(at(&path))?
                    };
                    children.sort();
                    say(&format_list(&children));
                    if stat {
                        say_block(&format_stat(&st));
                    }
                }
            }
            Command::Get { stat, watch, path } => {
                let (data, st) = if watch {
                    let (d, s, w) = client.get_data(&path).watched().await.map_err(at(&path))?;
                    self.watches.push(w);
                    (d, s)
                } else {
                    client.get_data(&path).await.map_err(at(&path))?
                };
                say(&String::from_utf8_lossy(&data));
                if stat {
                    say_block(&format_stat(&st));
                }
            }
            Command::Set {
                stat,
                version,
                path,
                data,
            } => {
                let st = client
                    .set_data(&path, data.into_bytes())
                    .version(version.unwrap_or(-1))
                    .await
                    .map_err(at(&path))?;
                if stat {
                    say_block(&format_stat(&st));
                }
            }
            Command::Create {
                sequential,
                ephemeral,
                container,
                ttl,
                path,
                data,
                acl,
            } => {
                let mode = create_mode(sequential, ephemeral, container, ttl.is_some())?;
                let mut builder = client
                    .create(&path)
                    .mode(mode)
                    .data(data.unwrap_or_default().into_bytes());
                if let Some(ttl) = ttl {
                    builder = builder.ttl(ttl);
                }
                if let Some(acl) = acl {
                    builder =
                        builder.acl(parse_acl(&acl).map_err(|e| CliError::Usage(e.to_string()))?);
                }
                let created = builder.await.map_err(at(&path))?;
                say(&format!("Created {}", created.path));
            }
            Command::Delete { version, path } => {
                client
                    .delete(&path)
                    .version(version.unwrap_or(-1))
                    .await
                    .map_err(at(&path))?;
            }
            Command::DeleteAll { path, .. } => {
                client
                    .delete(&path)
                    .deleting_children_if_needed()
                    .await
                    .map_err(at(&path))?;
            }
            Command::Stat { watch, path } => {
                let st = if watch {
                    let (s, w) = client.exists(&path).watched().await.map_err(at(&path))?;
                    self.watches.push(w);
                    s
                } else {
                    client.exists(&path).await.map_err(at(&path))?
                };
                let st = st.ok_or_else(|| at(&path)(Error::NoNode))?;
                say_block(&format_stat(&st));
            }
            Command::GetAcl { stat, path } => {
                let (acl, st) = client.get_acl(&path).await.map_err(at(&path))?;
                for entry in &acl {
                    say(&format_acl(entry));
                }
                if stat {
                    say_block(&format_stat(&st));
                }
            }
            Command::SetAcl {
                stat,
                version,
                recursive,
                path,
                acl,
            } => {
                let acl = parse_acl(&acl).map_err(|e| CliError::Usage(e.to_string()))?;
                let version = version.unwrap_or(-1);
                if recursive {
                    // As zkCli: every node of the subtree, reporting failures and going on.
                    let mut paths = Vec::new();
                    let walked = self
                        .subtree(&client, &path, false, &mut |p| paths.push(p.to_owned()))
                        .await;
                    let mut first_error = None;
                    for p in paths {
                        if let Err(e) = client.set_acl(&p, acl.clone()).version(version).await {
                            let e = at(&p)(e);
                            eprintln!("{e}");
                            first_error.get_or_insert(e);
                        }
                    }
                    walked?;
                    if let Some(e) = first_error {
                        return Err(CliError::Reported(e.exit_code()));
                    }
                } else {
                    let st = client
                        .set_acl(&path, acl)
                        .version(version)
                        .await
                        .map_err(at(&path))?;
                    if stat {
                        say_block(&format_stat(&st));
                    }
                }
            }
            Command::AddAuth { scheme, auth } => {
                client
                    .session()
                    .add_auth(&scheme, auth.as_bytes())
                    .await
                    .map_err(at(""))?;
            }
            Command::Watch { recursive, path } => {
                let mut builder = client.add_watch(&path);
                if recursive {
                    builder = builder.recursive();
                }
                let mut events = builder.await.map_err(at(&path))?;
                eprintln!(
                    "Watching {path}{} (Ctrl-C to stop)",
                    if recursive { " and its subtree" } else { "" }
                );
                while let Some(event) = events.next().await {
                    if event.event_type == EventType::None {
                        // The session ended (expired or closed): no more events.
                        return Err(CliError::Connect(format!(
                            "The watch on {path} ended: session {:?}",
                            event.state
                        )));
                    }
                    say(&format_event(&event));
                }
            }
            Command::Sync { path } => {
                client.sync(&path).await.map_err(at(&path))?;
                say("Sync is OK");
            }
            Command::WhoAmI => {
                let infos = client.who_am_i().await.map_err(at(""))?;
                say("Auth scheme: User");
                for info in infos {
                    say(&format!("{}: {}", info.auth_scheme, info.user));
                }
            }
            Command::Config {
                client: client_only,
                watch,
                stat,
            } => {
                let (data, st) = if watch {
                    let (d, s, w) = client.get_config().watched().await.map_err(at(""))?;
                    self.watches.push(w);
                    (d, s)
                } else {
                    client.get_config().await.map_err(at(""))?
                };
                let text = String::from_utf8_lossy(&data);
                if client_only {
                    say(&client_config(&text));
                } else {
                    say(&text);
                }
                if stat {
                    say_block(&format_stat(&st));
                }
            }
            Command::GetEphemerals { path } => {
                let prefix = path.unwrap_or_else(|| "/".to_owned());
                let mut paths = client.get_ephemerals(&prefix).await.map_err(at(&prefix))?;
                paths.sort();
                say(&format_list(&paths));
            }
            Command::GetAllChildrenNumber { path } => {
                let n = client
                    .get_all_children_number(&path)
                    .await
                    .map_err(at(&path))?;
                say(&n.to_string());
            }
            Command::Srvr | Command::Mntr | Command::Ruok | Command::Help | Command::Quit => {
                unreachable!("local commands are handled above")
            }
        }
        self.after_watches().await
    }

    async fn execute_local(&mut self, command: Command) -> Result<(), CliError> {
        match command {
            Command::Srvr => self.four_letter_word("srvr").await,
            Command::Mntr => self.four_letter_word("mntr").await,
            Command::Ruok => self.four_letter_word("ruok").await,
            Command::Help => {
                say(COMMANDS);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// What happens to the `-w` watches of a command: a one-shot command waits for the first
    /// to fire and prints it (a watch ended by the session's end is a lost connection); the
    /// interactive mode prints each when it fires, as zkCli does.
    async fn after_watches(&mut self) -> Result<(), CliError> {
        let watches = std::mem::take(&mut self.watches);
        if watches.is_empty() {
            return Ok(());
        }
        if self.interactive {
            for watch in watches {
                self.printers.push(tokio::spawn(async move {
                    let event = watch.await;
                    if event.event_type != EventType::None {
                        say(&format!("\nWATCHER::\n\n{}", format_event(&event)));
                    }
                }));
            }
        } else {
            let (event, _, _) = futures::future::select_all(watches).await;
            if event.event_type == EventType::None {
                return Err(CliError::Connect(format!(
                    "The watch on {} ended unfired: session {:?}",
                    event.path, event.state
                )));
            }
            say(&format_event(&event));
        }
        Ok(())
    }

    /// Visits every path of the subtree at `root` as it is found, in zkCli's order
    /// (`ZKUtil.visitSubTreeDFS`): the root, then a node's children (sorted) before the
    /// subtrees of each. Nodes deleted meanwhile are skipped; a missing root is an error, and
    /// so is a node that cannot be read (after the paths visited before it).
    async fn subtree(
        &mut self,
        client: &Client,
        root: &str,
        watch: bool,
        visit: &mut dyn FnMut(&str),
    ) -> Result<(), CliError> {
        visit(root);
        let mut stack: Vec<std::vec::IntoIter<String>> = Vec::new();
        let mut next = Some(root.to_owned());
        loop {
            if let Some(node) = next.take() {
                let children = if watch {
                    client.get_children(&node).watched().await.map(|(c, w)| {
                        self.watches.push(w);
                        c
                    })
                } else {
                    client.get_children(&node).await
                };
                let mut children = match children {
                    Ok(c) => c,
                    Err(Error::NoNode) if node != root => Vec::new(),
                    Err(e) => return Err(at(&node)(e)),
                };
                children.sort();
                let paths: Vec<String> = children
                    .iter()
                    .map(|c| zk_proto::path::join(&node, c))
                    .collect();
                for p in &paths {
                    visit(p);
                }
                stack.push(paths.into_iter());
            }
            let Some(top) = stack.last_mut() else { break };
            match top.next() {
                Some(child) => next = Some(child),
                None => {
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// Sends a four-letter word to the first server over a raw TCP connection and prints the
    /// answer.
    async fn four_letter_word(&self, word: &str) -> Result<(), CliError> {
        let cs: ConnectString = self
            .connect
            .parse()
            .map_err(|e: Error| CliError::Usage(e.to_string()))?;
        let host = cs
            .hosts()
            .first()
            .ok_or_else(|| CliError::Usage("no server in --connect".to_owned()))?;
        let exchange = async {
            let mut stream = TcpStream::connect((host.host.as_str(), host.port)).await?;
            stream.write_all(word.as_bytes()).await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            Ok::<_, io::Error>(answer)
        };
        let answer = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                return Err(CliError::Connect(format!(
                    "Unable to connect to {host}: {e}"
                )))
            }
            Err(_) => {
                return Err(CliError::Connect(format!(
                    "No answer from {host} within {} ms",
                    self.timeout.as_millis()
                )))
            }
        };
        let text = String::from_utf8_lossy(&answer);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if text.ends_with("is not executed because it is not in the whitelist.") {
            eprintln!(
                "{text}\n(the server's 4lw.commands.whitelist lacks it; zk-server: \
                 --all-four-letter-words or 4lw.commands.whitelist=* in zoo.cfg)"
            );
            return Err(CliError::Reported(EXIT_ZOOKEEPER));
        }
        say(text);
        Ok(())
    }
}

/// zkCli's create flags to a mode, with its rules about which combine.
fn create_mode(
    sequential: bool,
    ephemeral: bool,
    container: bool,
    ttl: bool,
) -> Result<CreateMode, CliError> {
    if container && (ephemeral || sequential) {
        return Err(CliError::Usage(
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential."
                .to_owned(),
        ));
    }
    if ttl && ephemeral {
        return Err(CliError::Usage(
            "TTLs cannot be used with Ephemeral znodes".to_owned(),
        ));
    }
    if ttl && container {
        return Err(CliError::Usage(
            "TTLs cannot be used with Container znodes".to_owned(),
        ));
    }
    Ok(match (ephemeral, sequential, container, ttl) {
        (true, true, _, _) => CreateMode::EphemeralSequential,
        (true, false, _, _) => CreateMode::Ephemeral,
        (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
        (false, true, _, false) => CreateMode::PersistentSequential,
        (false, false, true, _) => CreateMode::Container,
        (false, false, false, true) => CreateMode::PersistentWithTtl,
        (false, false, false, false) => CreateMode::Persistent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_flags_map_to_modes_as_in_zkcli() {
        assert_eq!(
            create_mode(false, false, false, false).unwrap(),
            CreateMode::Persistent
        );
        assert_eq!(
            create_mode(true, true, false, false).unwrap(),
            CreateMode::EphemeralSequential
        );
        assert_eq!(
            create_mode(true, false, false, true).unwrap(),
            CreateMode::PersistentSequentialWithTtl
        );
        assert_eq!(
            create_mode(false, false, false, true).unwrap(),
            CreateMode::PersistentWithTtl
        );
        assert_eq!(
            create_mode(false, false, true, false).unwrap(),
            CreateMode::Container
        );
        assert!(create_mode(false, true, true, false).is_err());
        assert!(create_mode(false, false, true, true).is_err());
        assert!(create_mode(false, true, false, true).is_err());
    }

    #[test]
    fn errors_print_like_zkcli_and_map_to_exit_codes() {
        let e = at("/x")(Error::NoNode);
        assert_eq!(e.to_string(), "Node does not exist: /x");
        assert_eq!(e.exit_code(), EXIT_ZOOKEEPER);
        assert_eq!(
            at("/x")(Error::NodeExists).to_string(),
            "Node already exists: /x"
        );
        assert_eq!(at("/x")(Error::ConnectionLoss).exit_code(), EXIT_CONNECTION);
        assert_eq!(
            at("/x")(Error::InvalidArgument("no".to_owned())).exit_code(),
            EXIT_USAGE
        );
        assert_eq!(CliError::Usage(String::new()).exit_code(), EXIT_USAGE);
    }
}
