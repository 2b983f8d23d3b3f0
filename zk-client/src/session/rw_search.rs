//! The search for a read-write server while connected to a read-only one.
//!
//! A server cut off from its quorum may serve reads as a read-only server (Apache's
//! `readonlymode.enabled`) to clients that allow it. Such a client keeps looking for a server
//! that has a quorum, as Apache's `ClientCnxn` does: after 100 ms, then at intervals doubling up
//! to a minute, it asks the next other host `isro` on a fresh connection; the first host that
//! answers `rw` ends the search, and the session task moves there.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::connect_string::HostPort;

/// The pause before the first probe; it doubles after every probe.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between probes.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// How long one probe (resolve, connect, ask, read the answer) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes the hosts other than `current`, in turn from the one after it, until one is a
/// read-write server, and returns it. Never returns when there is no other host.
pub(crate) async fn find_read_write_server(hosts: Vec<HostPort>, current: HostPort) -> HostPort {
    let others: Vec<HostPort> = match hosts.iter().position(|h| *h == current) {
        Some(i) => hosts[i + 1..].iter().chain(&hosts[..i]).cloned().collect(),
        None => hosts,
    };
    if others.is_empty() {
        return std::future::pending().await;
    }
    let mut pause = FIRST_PAUSE;
    for host in others.iter().cycle() {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
        if is_read_write(host).await {
            return host.clone();
        }
    }
    std::future::pending().await
}

/// Whether `host` answers `isro` with `rw`. Any failure counts as no.
async fn is_read_write(host: &HostPort) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect((host.host.as_str(), host.port)).await?;
        stream.write_all(b"isro").await?;
        let mut answer = Vec::with_capacity(4);
        stream.take(16).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(answer)) => {
            tracing::debug!(%host, answer = %String::from_utf8_lossy(&answer), "isro");
            answer.trim_ascii() == b"rw"
        }
        Ok(Err(e)) => {
            tracing::debug!(%host, error = %e, "isro probe failed");
            false
        }
        Err(_) => false,
    }
}
