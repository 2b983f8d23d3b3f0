//! The quickstart: a distributed lock, a leader election and service discovery on an embedded
//! ZooKeeper-compatible server.
//!
//! Not available yet: it needs the embedded server (zk-server) and the client (zk-client), which
//! are being built. Until they land this program says so and exits without pretending to run.

fn main() {
    println!(
        "The quickstart is not available yet.\n\
         It will start an embedded ZooKeeper-compatible server and show a lock, a leader election\n\
         and service discovery once zk-server and zk-client have landed.\n\
         Today the workspace provides zk-proto, the complete ZooKeeper wire protocol\n\
         (see zk-proto's documentation: cargo doc -p zk-proto --open)."
    );
}
