//! The fault proxy of the client suites: `zk_server::FaultProxy` (cut, refuse, blackhole, delay, drop
//! replies).

pub use zk_server::{FaultMode as Mode, FaultProxy as Proxy};
