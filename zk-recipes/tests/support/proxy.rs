//! A TCP proxy for fault tests (a copy of the workspace's root `tests/support/proxy.rs`): forwards
//! 127.0.0.1:<port> to a target and can cut, refuse, blackhole, delay or drop the server's replies.

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
pub enum Mode {
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
    mode: watch::Sender<Mode>,
    cut: watch::Sender<u64>,
    accepting: AtomicBool,
    active: AtomicUsize,
    target: String,
}

/// The proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    ctl: Arc<Ctl>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy to `target` (`host:port`) on a free loopback port.
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let ctl = Arc::new(Ctl {
            mode: watch::channel(Mode::Forward).0,
            cut: watch::channel(0).0,
            accepting: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            target: target.to_owned(),
        });
        let task = tokio::spawn(accept_loop(listener, ctl.clone()));
        Proxy { addr, ctl, task }
    }

    /// `127.0.0.1:<port>` of the proxy.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Closes every current connection (new ones are still accepted).
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
        self.ctl.mode.send_replace(Mode::Forward);
        self.ctl.accepting.store(true, Ordering::SeqCst);
    }

    /// Sets what happens to bytes on established and new connections.
    pub fn set_mode(&self, mode: Mode) {
        self.ctl.mode.send_replace(mode);
    }

    /// Connections currently open through the proxy.
    pub fn active_connections(&self) -> usize {
        self.ctl.active.load(Ordering::SeqCst)
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
            let mut cut = ctl.cut.subscribe();
            cut.mark_unchanged();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = pump(cr, sw, ctl.mode.subscribe(), false);
            let down = pump(sr, cw, ctl.mode.subscribe(), true);
            tokio::select! {
                _ = cut.changed() => {}
                _ = async { tokio::join!(up, down) } => {}
            }
            ctl.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
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
            Mode::Forward => {}
            Mode::Blackhole => continue,
            Mode::DropReplies if server_to_client => continue,
            Mode::DropReplies => {}
            Mode::Delay(d) => tokio::time::sleep(d).await,
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
