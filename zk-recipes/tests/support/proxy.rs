//! The fault proxy of the recipe tests: `zk_server::FaultProxy` (cut, refuse, blackhole, delay, drop
//! replies).

pub use zk_server::{FaultMode as Mode, FaultProxy as Proxy};
