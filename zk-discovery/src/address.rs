//! The default address of a new service instance: this host's primary non-loopback IP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};

/// The address [`default_address`] falls back to when no usable local address is found.
pub const FALLBACK_ADDRESS: &str = "127.0.0.1";

/// This host's primary IPv4 address: the source address the operating system would use to
/// reach a public address, or `None` if there is no route or the address is not usable
/// (loopback, unspecified or link-local — the addresses Curator's default `LocalIpFilter`
/// rejects).
///
/// It is found by "connecting" an unbound UDP socket to `8.8.8.8:80` and reading the socket's
/// local address: a UDP connect only selects a route, **no packet is sent**. This returns the
/// address of the interface that carries the default route, where Curator's
/// `ServiceInstanceBuilder.getAllLocalIPs()` returns the first address of the first interface
/// the JVM lists (an order that is not defined); both skip loopback addresses.
pub fn local_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(8, 8, 8, 8), 80)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    is_usable(ip).then_some(ip)
}

/// The address a [`ServiceInstanceBuilder`](crate::ServiceInstanceBuilder) uses when none is
/// set: [`local_address`] as a string, or [`FALLBACK_ADDRESS`] when there is none. Override it
/// per instance with [`ServiceInstanceBuilder::address`](crate::ServiceInstanceBuilder::address).
pub fn default_address() -> String {
    local_address().map_or_else(|| FALLBACK_ADDRESS.to_owned(), |ip| ip.to_string())
}

/// Curator's default filter: not loopback, not link-local (and, here, not unspecified).
fn is_usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_unspecified() || v4.is_link_local()),
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified() || is_unicast_link_local(v6)),
    }
}

/// `fe80::/10` (`Ipv6Addr::is_unicast_link_local` is not stable on the minimum Rust version).
fn is_unicast_link_local(ip: Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_and_unspecified_are_rejected() {
        for bad in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.1.2",
            "::1",
            "::",
            "fe80::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!(!is_usable(ip), "{bad}");
        }
        for good in ["10.0.0.5", "192.168.1.20", "2001:db8::1"] {
            let ip: IpAddr = good.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!(is_usable(ip), "{good}");
        }
    }

    #[test]
    fn default_address_is_an_ip() {
        let address = default_address();
        assert!(address.parse::<IpAddr>().is_ok(), "{address}");
        if let Some(ip) = local_address() {
            assert!(!ip.is_loopback());
            assert_eq!(address, ip.to_string());
        } else {
            assert_eq!(address, FALLBACK_ADDRESS);
        }
    }
}
