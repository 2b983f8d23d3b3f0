//! The quickstart: an embedded ZooKeeper-compatible server and the client, in one program.
//!
//! ```text
//! cargo run --example quickstart                       # embedded server, nothing to install
//! cargo run --example quickstart -- --connect HOST:PORT  # any ZooKeeper ensemble (or ZK_CONNECT)
//! ```
//!
//! It shows the building blocks the recipes are made of: workers registering as ephemeral
//! sequential nodes, a watcher that sees a worker leave when its session ends, and a versioned
//! (compare-and-set) configuration update. The recipes themselves (locks, leader election,
//! service discovery) are being built in zk-recipes and zk-discovery.

use std::time::Duration;

use zk::client::{Client, CreateMode, Error, ExponentialBackoffRetry};
use zk::server::TestingServer;

const WAIT: Duration = Duration::from_secs(10);

fn connect_arg() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--connect" {
            return args.next();
        }
        if let Some(value) = arg.strip_prefix("--connect=") {
            return Some(value.to_owned());
        }
    }
    std::env::var("ZK_CONNECT").ok().filter(|v| !v.is_empty())
}

fn client(connect: &str) -> Result<Client, Error> {
    Client::builder()
        .connect_string(connect)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 5))
        .namespace("quickstart")
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A server: the embedded one unless --connect / ZK_CONNECT names another.
    let (_embedded, connect) = match connect_arg() {
        Some(connect) => (None, connect),
        None => {
            let server = TestingServer::start().await?;
            let connect = server.connect_string();
            println!("started an embedded ZooKeeper-compatible server on {connect}");
            (Some(server), connect)
        }
    };

    // 2. Three workers, each with its own session, register under /workers. Their nodes are
    //    ephemeral (gone when the session ends) and sequential (the server numbers them);
    //    parents are created as containers, and protected mode survives a lost create reply.
    let mut workers = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let worker = client(&connect)?;
        worker.block_until_connected(WAIT).await?;
        let node = worker
            .create("/workers/worker-")
            .mode(CreateMode::EphemeralSequential)
            .creating_parent_containers_if_needed()
            .with_protection()
            .data(name.as_bytes().to_vec())
            .await?;
        println!("worker {name} registered as {}", node.path);
        workers.push((name, worker));
    }

    // 3. An observer lists the workers and watches the list.
    let observer = client(&connect)?;
    observer.block_until_connected(WAIT).await?;
    let (children, watch) = observer.get_children("/workers").watched().await?;
    println!("observer sees {} workers", children.len());

    // 4. Worker alpha stops: its session closes, its node disappears, the watch fires.
    let (name, leaving) = workers.remove(0);
    leaving.close().await?;
    let event = tokio::time::timeout(WAIT, watch).await?;
    println!(
        "worker {name} stopped; observer notified: {:?} on {}",
        event.event_type, event.path
    );
    let mut remaining = Vec::new();
    for child in observer.get_children("/workers").await? {
        let (data, _) = observer.get_data(&format!("/workers/{child}")).await?;
        remaining.push(String::from_utf8_lossy(&data).into_owned());
    }
    remaining.sort();
    println!("workers still registered: {}", remaining.join(", "));

    // 5. A configuration value updated with compare-and-set: a write based on a stale read
    //    is refused instead of silently overwriting.
    let config = observer
        .create("/config")
        .data(b"workers=3".to_vec())
        .or_set_data()
        .await?;
    let (_, stat) = observer.get_data(&config.path).await?;
    observer
        .set_data(&config.path, b"workers=2".to_vec())
        .version(stat.version)
        .await?;
    match observer
        .set_data(&config.path, b"workers=9".to_vec())
        .version(stat.version)
        .await
    {
        Err(Error::BadVersion) => println!(
            "stale configuration update refused (version {} is old)",
            stat.version
        ),
        other => println!("unexpected: {other:?}"),
    }
    let (data, stat) = observer.get_data(&config.path).await?;
    println!(
        "configuration is {:?} at version {}",
        String::from_utf8_lossy(&data),
        stat.version
    );

    for (_, worker) in workers {
        worker.close().await?;
    }
    observer.delete("/config").quietly().await?;
    observer.close().await?;
    println!("done");
    Ok(())
}
