//! Loopback ports for testing servers that must survive a restart on the same port.
//!
//! A port the kernel hands out for `bind(0)` lies in its ephemeral range, the same range it
//! picks outgoing connections' local ports from. While a member is stopped, any client
//! connecting anywhere can take its port as a local port and hold it for as long as that
//! connection lives, so the member cannot come back. Ports below the ephemeral range are
//! never chosen for outgoing connections; the testing servers take theirs from there.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The lowest port handed out.
const LOWEST: u16 = 10_000;
/// Linux's default ephemeral range starts here; used when the range cannot be read.
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
/// Random candidates tried before falling back to a kernel-chosen port.
const ATTEMPTS: usize = 200;

/// Ports handed out in this process, never handed out twice.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free loopback port outside the kernel's ephemeral range, not handed out before in this
/// process: for servers a test stops and starts again on the same port (as
/// [`TestingServer`](super::TestingServer) and [`TestingCluster`](super::TestingCluster) do),
/// which a port from `bind(0)` does not guarantee. Falls back to a kernel-chosen port when no
/// such port is free.
///
/// # Errors
/// Not even a kernel-chosen port could be bound.
pub fn reserve_port() -> io::Result<u16> {
    let high = ephemeral_low();
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if high > LOWEST {
        for _ in 0..ATTEMPTS {
            let port = LOWEST + rand::random::<u16>() % (high - LOWEST);
            if !handed_out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    handed_out.insert(port);
    Ok(port)
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| reserve_port().expect("a port")).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "no port handed out twice");
        let below_ephemeral = ephemeral_low() > LOWEST;
        for port in ports {
            assert!(
                !below_ephemeral || (LOWEST..ephemeral_low()).contains(&port),
                "{port} outside [{LOWEST}, {})",
                ephemeral_low()
            );
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("still free");
        }
    }
}
