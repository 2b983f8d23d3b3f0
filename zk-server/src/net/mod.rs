//! The tokio driver: accepts connections, runs the core on one task, hands storage work to the
//! storage thread and executes the core's actions.

mod connection;
mod ensemble;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::{self, AdminContext};
use crate::config::{QuorumConfig, ServerConfig};
use crate::core::{Action, CoreConfig, Input, Now, ServerCore};
use crate::quorum::{
    peer_config, DiskOptions, DiskStorage, DriverConfig, QuorumTransport, Replica, TransportConfig,
};
use crate::storage::{self, DataDirs, StorageError, StorageEvent, StorageHandle, StorageOp};
use crate::{ConnId, IdMap};

/// Why the server could not start or had to stop.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Recovery or the storage thread failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Binding the client port failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A write or fsync of the txn log failed; the server stopped without acknowledging it.
    #[error("storage failure, server stopped: {0}")]
    Fatal(String),
    /// The ensemble member's replica could not start or stopped.
    #[error("replica: {0}")]
    Replica(#[from] crate::quorum::DriverError),
}

/// What connection tasks receive from the core task.
#[derive(Debug)]
enum Outbound {
    /// A frame; `reply` if it answers one of the connection's requests.
    Frame {
        frame: Bytes,
        reply: bool,
    },
    Close,
}

/// Events for the core task.
enum Event {
    Register {
        conn: ConnId,
        tx: mpsc::UnboundedSender<Outbound>,
    },
    /// Inputs from one connection, in order: those of one read (its handshake, its
    /// requests), or its end. One event per read rather than per request: under pipelined
    /// load, a channel send and a wake of the core's task for each request cost about a
    /// fifth of the server's time per getData.
    Inputs(Vec<Input>),
    Storage(StorageEvent),
    FourLetter {
        word: &'static str,
        reply: oneshot::Sender<String>,
    },
    ExpireSession {
        session_id: i64,
        reply: oneshot::Sender<bool>,
    },
}

impl Event {
    /// How many core inputs the event holds.
    fn inputs(&self) -> usize {
        match self {
            Event::Inputs(inputs) => inputs.len(),
            _ => 1,
        }
    }
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    shutdown: watch::Sender<bool>,
    core_task: Option<JoinHandle<Result<(), ServerError>>>,
    accept_task: Option<JoinHandle<()>>,
    /// An ensemble member's quorum transport.
    transport: Option<QuorumTransport>,
}

impl Server {
    /// Recovers the data directory, binds the client port and starts serving: standalone,
    /// or as a member of the ensemble [`ServerConfig::quorum`] describes.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        if let Some(quorum) = config.quorum.clone() {
            return Server::start_ensemble(config, quorum).await;
        }
        let started = Instant::now();
        let dirs = DataDirs::create(&config.data_dir, &config.log_dir())
            .map_err(|e| StorageError::io("creating the data directories", e))?;
        let recovered = {
            let dirs = dirs.clone();
            tokio::task::spawn_blocking(move || storage::recover(&dirs))
                .await
                .map_err(|e| ServerError::Fatal(format!("recovery task failed: {e}")))??
        };
        if recovered.fresh {
            let image = recovered.tree.image();
            storage::snapshot::write_with(&dirs.snap_dir, 0, |file| {
                storage::snapshot::serialize_into(&image, &[], file)
            })
            .map_err(|e| StorageError::io("writing the initial snapshot", e))?;
        }
        tracing::info!(
            snapshot_zxid = format_args!("0x{:x}", recovered.snapshot_zxid),
            replayed = recovered.replayed,
            last_zxid = format_args!("0x{:x}", recovered.tree.last_processed_zxid()),
            truncated_tail = recovered.truncated_tail,
            "recovered data directory"
        );

        let mut config = config;
        let (listener, local_addr) = bind_client_port(&mut config).await?;

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let storage_events = events_tx.clone();
        let purge_retain = (config.purge_interval_hours > 0).then_some(config.snap_retain_count);
        let storage = storage::spawn_storage_thread(dirs, purge_retain, move |event| {
            let _ = storage_events.send(Event::Storage(event));
        })
        .map_err(|e| StorageError::io("starting the storage thread", e))?;

        let epoch = Instant::now();
        let core = ServerCore::new(
            core_config(&config, 0, false),
            recovered.tree,
            &recovered.sessions,
            now(epoch),
        );
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut driver = Driver {
            core,
            conns: IdMap::default(),
            storage: Some(storage),
            config: config.clone(),
            started,
            epoch,
        };
        let core_task = tokio::spawn({
            let shutdown_rx = shutdown_rx.clone();
            async move { driver.run(events_rx, shutdown_rx).await }
        });
        let accept_task = tokio::spawn(accept_loop(
            listener,
            events_tx.clone(),
            shutdown_rx,
            Arc::new(config),
        ));
        tracing::info!(address = %local_addr, "zk-server serving");
        Ok(Server {
            local_addr,
            events: events_tx,
            shutdown: shutdown_tx,
            core_task: Some(core_task),
            accept_task: Some(accept_task),
            transport: None,
        })
    }

    /// Starts an ensemble member: its replica (log, snapshot and epochs in the data
    /// directories; the quorum port of its `server.N` line) with the server core as the
    /// replicated state machine, and the client port.
    async fn start_ensemble(
        config: ServerConfig,
        quorum: QuorumConfig,
    ) -> Result<Server, ServerError> {
        let started = Instant::now();
        let storage =
            DiskStorage::open(&config.data_dir, &config.log_dir(), DiskOptions::default())
                .map_err(crate::quorum::DriverError::from)?;
        let mut config = config;
        let (listener, local_addr) = bind_client_port(&mut config).await?;
        let mut transport_config = TransportConfig::from_quorum(&quorum);
        // A forwarded request or a proposal carries up to a whole client request.
        transport_config.limits.max_message = transport_config
            .limits
            .max_message
            .max(config.jute_max_buffer.saturating_mul(2));
        let quorum_addr = transport_config
            .listen_addr(quorum.listen_on_all_ips)
            .and_then(|(host, port)| Some(SocketAddr::new(host.parse().ok()?, port)))
            .unwrap_or(local_addr);
        let (transport, inputs) = QuorumTransport::bind(transport_config, quorum.listen_on_all_ips)
            .await
            .map_err(|source| ServerError::Bind {
                addr: quorum_addr,
                source,
            })?;
        let server_id = u8::try_from(quorum.my_id).unwrap_or(u8::MAX);
        let epoch = Instant::now();
        let learner_mode = match quorum.member(quorum.my_id) {
            Some(member) if !member.is_voter() => "observer",
            _ => "follower",
        };
        let machine = ensemble::EnsembleMachine {
            core: ServerCore::new(
                core_config(&config, server_id, true),
                crate::tree::DataTree::new(),
                &[],
                now(epoch),
            ),
            conns: IdMap::default(),
            config: config.clone(),
            started,
            epoch,
            learner_mode,
            last_container_check_ms: 0,
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut driver = DriverConfig::new(peer_config(&quorum, u64::from(config.tick_time_ms)));
        driver.snapshot_every = config.snap_count;
        let replica = Replica::spawn_with_events(
            driver,
            storage,
            machine,
            transport.clone(),
            inputs,
            events_rx,
        )?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let core_task = tokio::spawn({
            let mut shutdown_rx = shutdown_rx.clone();
            async move {
                let mut replica = replica;
                tokio::select! {
                    // Stopped as a crash would stop it: everything it acknowledged is
                    // durable already.
                    _ = shutdown_rx.changed() => {
                        replica.stop().await;
                        Ok(())
                    }
                    result = replica.stopped() => result.map_err(ServerError::from),
                }
            }
        });
        let accept_task = tokio::spawn(accept_loop(
            listener,
            events_tx.clone(),
            shutdown_rx,
            Arc::new(config),
        ));
        tracing::info!(address = %local_addr, id = quorum.my_id, "zk-server ensemble member serving");
        Ok(Server {
            local_addr,
            events: events_tx,
            shutdown: shutdown_tx,
            core_task: Some(core_task),
            accept_task: Some(accept_task),
            transport: Some(transport),
        })
    }
}

/// Binds the client port (port 0: any free one, written back into `config`).
async fn bind_client_port(
    config: &mut ServerConfig,
) -> Result<(TcpListener, SocketAddr), ServerError> {
    let addr = SocketAddr::new(config.client_port_address, config.client_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    config.client_port = local_addr.port();
    Ok((listener, local_addr))
}

fn core_config(config: &ServerConfig, server_id: u8, replicated: bool) -> CoreConfig {
    let ensemble_config = config
        .quorum
        .as_ref()
        .filter(|_| replicated)
        .map(crate::config::QuorumConfig::dynamic_config);
    CoreConfig {
        server_id,
        min_session_timeout_ms: config.min_session_timeout(),
        max_session_timeout_ms: config.max_session_timeout(),
        extended_types: config.extended_types,
        super_digest: config.super_digest.clone(),
        snap_count: config.snap_count,
        container_max_never_used_ms: config.container_max_never_used_ms,
        container_max_per_tick: usize::try_from(
            (config.container_max_per_minute * config.container_check_interval_ms / 60_000).max(1),
        )
        .unwrap_or(usize::MAX),
        emulate_3_5: config.emulate_3_5,
        replicated,
        ensemble_config,
    }
}

impl Server {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Ensemble members only: cuts this member off from the members `peers` (closing and
    /// refusing quorum connections with them) until called again without them. One side of
    /// a network partition, for tests; clients can still connect.
    pub fn set_partitioned_from(&self, peers: std::collections::BTreeSet<u64>) {
        if let Some(transport) = &self.transport {
            transport.set_blocked(peers);
        }
    }

    /// Expires a session as if its timeout had elapsed; false if it is unknown.
    pub async fn expire_session(&self, session_id: i64) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .events
            .send(Event::ExpireSession { session_id, reply })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Answers a four-letter word as a connection would get it.
    pub async fn four_letter_word(&self, word: &str) -> Option<String> {
        let word = admin::four_letter_word(word.as_bytes())?;
        let (reply, rx) = oneshot::channel();
        self.events.send(Event::FourLetter { word, reply }).ok()?;
        rx.await.ok()
    }

    /// Waits until the server stops by itself (a storage failure) and returns why.
    pub async fn wait(&mut self) -> Result<(), ServerError> {
        match self.core_task.as_mut() {
            Some(task) => {
                let result = task
                    .await
                    .unwrap_or_else(|e| Err(ServerError::Fatal(e.to_string())));
                self.core_task = None;
                result
            }
            None => Ok(()),
        }
    }

    /// Stops accepting, closes every connection, flushes the log and stops the storage thread.
    /// Sessions stay in the data directory: a restarted server resumes them.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
        self.wait().await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn now(epoch: Instant) -> Now {
    Now {
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0),
        mono_ms: u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

struct Driver {
    core: ServerCore,
    conns: IdMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    storage: Option<StorageHandle>,
    config: ServerConfig,
    started: Instant,
    epoch: Instant,
}

impl Driver {
    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ServerError> {
        let tick = Duration::from_millis(u64::from(self.config.tick_time_ms / 2).clamp(10, 500));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut containers = tokio::time::interval(Duration::from_millis(
            self.config.container_check_interval_ms,
        ));
        containers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // autopurge.purgeInterval hours (a timer that never fires when autopurge is off).
        let purge_every =
            Duration::from_secs(3600 * u64::from(self.config.purge_interval_hours.max(1)));
        let mut purge =
            tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
        let result = loop {
            tokio::select! {
                // Timers before events: a channel that never runs dry must not keep sessions
                // from expiring (a timer that is not due costs nothing here).
                biased;
                _ = shutdown.changed() => break Ok(()),
                _ = ticker.tick() => self.step(Input::Tick, now(self.epoch)),
                _ = containers.tick() => self.step(Input::CheckContainers, now(self.epoch)),
                _ = purge.tick(), if self.config.purge_interval_hours > 0 => {
                    if let Some(storage) = &self.storage {
                        storage.submit(StorageOp::Purge);
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { break Ok(()) };
                    let mut handled = event.inputs();
                    if let Err(e) = self.handle(event) {
                        break Err(e);
                    }
                    // Handle what else is queued, up to about a thousand inputs, before
                    // yielding, so that replies batch up.
                    let mut failed = None;
                    while handled < 1024 {
                        match events.try_recv() {
                            Ok(event) => {
                                handled += event.inputs();
                                if let Err(e) = self.handle(event) {
                                    failed = Some(e);
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if let Some(e) = failed {
                        break Err(e);
                    }
                }
            }
        };
        for (_, tx) in self.conns.drain() {
            let _ = tx.send(Outbound::Close);
        }
        if let Some(storage) = self.storage.take() {
            let _ = tokio::task::spawn_blocking(move || storage.shutdown()).await;
        }
        result
    }

    fn handle(&mut self, event: Event) -> Result<(), ServerError> {
        match event {
            Event::Register { conn, tx } => {
                self.conns.insert(conn, tx);
            }
            Event::Inputs(inputs) => {
                // One reading of the clocks for the requests of one read (two clock_gettime
                // calls per request were 4 % of the server's time under pipelined load).
                let now = now(self.epoch);
                for input in inputs {
                    forget_if_disconnected(&mut self.conns, &input);
                    self.step(input, now);
                }
            }
            Event::Storage(StorageEvent::Persisted(zxid)) => {
                self.step(Input::Persisted(zxid), now(self.epoch));
            }
            Event::Storage(StorageEvent::Fatal(message)) => {
                return Err(ServerError::Fatal(message))
            }
            Event::FourLetter { word, reply } => {
                let ctx = AdminContext {
                    config: &self.config,
                    started: self.started,
                    mode: Some("standalone"),
                    learners: None,
                };
                let _ = reply.send(admin::respond(word, &mut self.core, &ctx));
            }
            Event::ExpireSession { session_id, reply } => {
                let (known, actions) = self.core.expire_session(session_id, now(self.epoch));
                self.execute(actions);
                let _ = reply.send(known);
            }
        }
        Ok(())
    }

    fn step(&mut self, input: Input, now: Now) {
        let actions = self.core.step(input, now);
        self.execute(actions);
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { .. } | Action::Close { .. } => deliver(&self.conns, action),
                Action::Persist { zxid, txn } => {
                    if let Some(storage) = &self.storage {
                        storage.submit(StorageOp::Append { zxid, txn });
                    }
                }
                Action::Propose { .. } | Action::Forward { .. } => {
                    tracing::error!("a standalone core emitted an ensemble action");
                }
                Action::Snapshot {
                    zxid,
                    image,
                    sessions,
                } => {
                    if let Some(storage) = &self.storage {
                        storage.submit(StorageOp::Snapshot {
                            zxid,
                            image,
                            sessions,
                        });
                    }
                }
            }
        }
    }
}

/// Drops the channel of a connection whose end `input` reports.
fn forget_if_disconnected(
    conns: &mut IdMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    input: &Input,
) {
    if let Input::Disconnected { conn } = input {
        conns.remove(conn);
    }
}

/// Executes a `Send` or `Close` action on the connection's channel.
fn deliver(conns: &IdMap<ConnId, mpsc::UnboundedSender<Outbound>>, action: Action) {
    match action {
        Action::Send { conn, frame, reply } => {
            if let Some(tx) = conns.get(&conn) {
                let _ = tx.send(Outbound::Frame { frame, reply });
            }
        }
        Action::Close { conn } => {
            if let Some(tx) = conns.get(&conn) {
                let _ = tx.send(Outbound::Close);
            }
        }
        _ => {}
    }
}

/// Connection counts per client address, for `maxClientCnxns`.
type PerIpCounts = Arc<Mutex<HashMap<IpAddr, u32>>>;

async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    mut shutdown: watch::Receiver<bool>,
    config: Arc<ServerConfig>,
) {
    let per_ip: PerIpCounts = Arc::default();
    let mut next_conn = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if config.max_client_cnxns > 0 {
            let mut counts = per_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = counts.entry(remote.ip()).or_insert(0);
            if *count >= config.max_client_cnxns {
                tracing::warn!(%remote, limit = config.max_client_cnxns, "too many connections from this address");
                continue;
            }
            *count += 1;
        }
        let _ = stream.set_nodelay(true);
        next_conn += 1;
        let conn = ConnId(next_conn);
        let (tx, rx) = mpsc::unbounded_channel();
        if events.send(Event::Register { conn, tx }).is_err() {
            return;
        }
        let events = events.clone();
        let per_ip = Arc::clone(&per_ip);
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            connection::run(stream, remote, conn, &events, rx, &config).await;
            let _ = events.send(Event::Inputs(vec![Input::Disconnected { conn }]));
            if config.max_client_cnxns > 0 {
                let mut counts = per_ip
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(count) = counts.get_mut(&remote.ip()) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        counts.remove(&remote.ip());
                    }
                }
            }
        });
    }
}
