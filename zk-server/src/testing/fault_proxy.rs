//! `FaultProxy`: a TCP proxy for fault tests. It forwards a loopback port to a server and can
//! cut connections, refuse new ones, blackhole traffic, delay it, or drop the server's replies —
//! the network failures a ZooKeeper client (and the recipes on it) must survive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What happens to bytes on established connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward both ways.
    Forward,
    /// Swallow everything both ways; the connections stay open (a dead network).
    Blackhole,
    /// Forward client → server, swallow server → client (lost replies).
    DropReplies,
    /// Forward both ways after a delay.
    Delay(Duration),
}

struct Ctl {
    mode: watch::Sender<FaultMode>,
    cut: watch::Sender<u64>,
    accepting: AtomicBool,
    active: AtomicUsize,
    forwarded: AtomicUsize,
    target: String,
}

/// The proxy; it stops (and cuts its connections) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    ctl: Arc<Ctl>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to `target` (`host:port`) on a free loopback port.
    pub async fn start(target: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ctl = Arc::new(Ctl {
            mode: watch::channel(FaultMode::Forward).0,
            cut: watch::channel(0).0,
            accepting: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            target: target.to_owned(),
        });
        let task = tokio::spawn(accept_loop(listener, ctl.clone()));
        Ok(FaultProxy { addr, ctl, task })
    }

    /// `127.0.0.1:<port>` of the proxy.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Closes every current connection (new ones are still accepted); bytes they have not
    /// forwarded yet are dropped.
    pub fn cut(&self) {
        self.ctl.cut.send_modify(|g| *g += 1);
    }

    /// Closes every connection and refuses new ones (accepted, then closed at once).
    pub fn down(&self) {
        self.ctl.accepting.store(false, Ordering::SeqCst);
        self.cut();
    }

    /// Accepts connections again, forwarding normally.
    pub fn up(&self) {
        self.ctl.mode.send_replace(FaultMode::Forward);
        self.ctl.accepting.store(true, Ordering::SeqCst);
    }

    /// Sets what happens to bytes on established and new connections.
    pub fn set_mode(&self, mode: FaultMode) {
        self.ctl.mode.send_replace(mode);
    }

    /// Connections currently open through the proxy.
    pub fn active_connections(&self) -> usize {
        self.ctl.active.load(Ordering::SeqCst)
    }

    /// Connections forwarded to the server so far, closed ones included: whether a client
    /// kept its connection, or made new ones.
    pub fn connections_forwarded(&self) -> usize {
        self.ctl.forwarded.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, ctl: Arc<Ctl>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        if !ctl.accepting.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let ctl = ctl.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&ctl.target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            ctl.active.fetch_add(1, Ordering::SeqCst);
            ctl.forwarded.fetch_add(1, Ordering::SeqCst);
            let mut cut = ctl.cut.subscribe();
            cut.mark_unchanged();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = pump(cr, sw, ctl.mode.subscribe(), ctl.cut.subscribe(), false);
            let down = pump(sr, cw, ctl.mode.subscribe(), ctl.cut.subscribe(), true);
            tokio::select! {
                _ = cut.changed() => {}
                _ = async { tokio::join!(up, down) } => {}
            }
            ctl.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Forwards `from` to `to` as the mode says. Bytes not yet forwarded when the connection is
/// cut are never forwarded (even if the mode changed meanwhile), so a test that cuts and then
/// sets [`FaultMode::Forward`] knows what got through.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<FaultMode>,
    cut: watch::Receiver<u64>,
    server_to_client: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let current = *mode.borrow();
        match current {
            FaultMode::Forward => {}
            FaultMode::Blackhole => continue,
            FaultMode::DropReplies if server_to_client => continue,
            FaultMode::DropReplies => {}
            FaultMode::Delay(d) => tokio::time::sleep(d).await,
        }
        if cut.has_changed().unwrap_or(true) {
            return;
        }
        if to
            .write_all(buf.get(..n).unwrap_or_default())
            .await
            .is_err()
        {
            return;
        }
    }
}
